"""The terminal-size classes every screen carries, for assets/ppdoctor.tcss to lay it out by (80×24 is -narrow -short).

Textual puts the class of the largest threshold not above the terminal's width (height) on the screen
and re-evaluates on every resize, so layouts follow the size with no arithmetic in Python.
"""

from __future__ import annotations

HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (120, "-wide")]
VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-mid"), (40, "-tall")]

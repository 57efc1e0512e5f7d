"""``ppdoctor echo``: a PROXY-aware echo server to deploy behind an NLB (the lab runs the same code as its pods).

It lives outside ``ppdoctor.lab`` because it is a product command: nothing here imports the lab.
"""

from .server import PP_MODES, VARIANTS, EchoServer, parse_listen, run_cli, start_echo, variant_for_image

__all__ = ["EchoServer", "PP_MODES", "VARIANTS", "parse_listen", "run_cli", "start_echo", "variant_for_image"]

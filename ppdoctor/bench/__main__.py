"""``python -m ppdoctor.bench [--config FILE] --rate …``: the bench without the ppdoctor CLI around it."""

from __future__ import annotations

import argparse
import sys

from ..errors import PPDoctorError
from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdoctor.bench", description="ppdoctor bench")
    parser.add_argument("--config", metavar="FILE", help="target configuration (TOML)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except PPDoctorError as exc:
        print(f"ppdoctor: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

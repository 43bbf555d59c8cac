"""Command line: `python -m scarlet_like --version` and `python -m scarlet_like demo`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    import scarlet_like

    parser = argparse.ArgumentParser(prog="python -m scarlet_like", description=scarlet_like.__doc__)
    parser.add_argument("--version", action="version", version=f"scarlet_like {scarlet_like.__version__}")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="fit the bundled real HSC blend and report the result")
    demo.add_argument("--steps", type=int, default=1000, help="the most optimizer steps (default 1000)")
    demo.add_argument(
        "--output",
        default="scarlet_like-demo",
        help="folder for the results, created if missing and checked before the fit: "
        "scarlet_like_demo.png (data / model / residual panels) and summary.json (sources, chi2_dof, "
        "fit_seconds, fitted values) (default: ./scarlet_like-demo)",
    )
    demo.add_argument("--no-plot", action="store_true", help="write nothing (no picture, no summary)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        run(
            steps=args.steps,
            progress=not args.no_progress,
            output=None if args.no_plot else args.output,
        )
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `python -m scarlet_like --version` and `python -m scarlet_like demo`."""

from __future__ import annotations

import argparse
import sys


def _demo_epilog() -> str:
    from .demo import CHAINS, DRAWS, FIT_OUTPUTS, FREEFORM_OUTPUTS, OUTPUTS, WARMUP

    width = max(len(name) for name in OUTPUTS)
    lines = ["files written into the output folder:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in OUTPUTS.items()]
    lines += [
        "",
        f"with --no-sample only {', '.join(FIT_OUTPUTS + FREEFORM_OUTPUTS)} are written",
        "(summary.json then without the sampling keys); --no-freeform leaves out",
        f"{', '.join(FREEFORM_OUTPUTS)} (and the five minutes of the free-form stage).",
        f"NUTS runs {CHAINS} chains of {WARMUP} warmup steps and {DRAWS} draws (change with --warmup,",
        "--draws, --chains), starting from the fit; parameters the fit left at a bound of their constraint",
        "are held fixed while sampling (summary.json lists them under fixed_for_sampling).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import scarlet_like

    from .demo import CHAINS, DRAWS, WARMUP

    parser = argparse.ArgumentParser(prog="python -m scarlet_like", description=scarlet_like.__doc__)
    parser.add_argument("--version", action="version", version=f"scarlet_like {scarlet_like.__version__}")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser(
        "demo",
        help="fit and sample the bundled real HSC blend, write figures and a summary",
        description="Fit the real HSC COSMOS blend bundled with scarlet_like (a point source and six "
        "elliptical Sersic galaxies in five bands), deblend it again with free-form sources, sample the "
        "parametric model's posterior with NUTS, and write figures, the posterior summary table and "
        "summary.json.",
        epilog=_demo_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--steps", type=int, default=1000, help="the most optimizer steps (default 1000)")
    demo.add_argument(
        "--output",
        default="scarlet_like-demo",
        help="folder for the results, created if missing and checked for writing before the fit "
        "(default: ./scarlet_like-demo)",
    )
    demo.add_argument("--no-sample", action="store_true", help="fit only: no NUTS run, no posterior figures")
    demo.add_argument(
        "--no-freeform",
        action="store_true",
        help="parametric fit only: no free-form deblending stage (which takes about five minutes)",
    )
    demo.add_argument("--warmup", type=int, default=WARMUP, help=f"NUTS warmup steps per chain ({WARMUP})")
    demo.add_argument("--draws", type=int, default=DRAWS, help=f"NUTS draws kept per chain ({DRAWS})")
    demo.add_argument("--chains", type=int, default=CHAINS, help=f"NUTS chains ({CHAINS})")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the sampler (0)")
    demo.add_argument("--no-plot", action="store_true", help="write nothing (no figures, no summary)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        run(
            steps=args.steps,
            progress=not args.no_progress,
            output=None if args.no_plot else args.output,
            sample=not args.no_sample,
            freeform=not args.no_freeform,
            num_warmup=args.warmup,
            num_samples=args.draws,
            num_chains=args.chains,
            seed=args.seed,
        )
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `python -m scarlet_like --version`, `python -m scarlet_like demo` and
`python -m scarlet_like catalog`."""

from __future__ import annotations

import argparse
import sys
from typing import Any


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
    demo.add_argument("--steps", type=int, default=2000, help="the most optimizer steps (default 2000)")
    demo.add_argument(
        "--output",
        default="scarlet_like-demo",
        help="folder for the results, created if missing and checked for writing before the fit "
        "(default: ./scarlet_like-demo)",
    )
    demo.add_argument("--no-sample", action="store_true", help="fit only: no NUTS run, no posterior figures")
    demo.add_argument(
        "--no-quick",
        action="store_true",
        help="no quick free-form fit (200 steps of free-form galaxies, a few seconds once compiled)",
    )
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
    _add_catalog_command(commands)
    _add_train_prior_command(commands)
    args = parser.parse_args(argv)
    if args.command == "catalog":
        return _run_catalog(args)
    if args.command == "train-prior":
        return _run_train_prior(args)
    if args.command == "demo":
        from .demo import run

        run(
            steps=args.steps,
            progress=not args.no_progress,
            output=None if args.no_plot else args.output,
            sample=not args.no_sample,
            quick=not args.no_quick,
            freeform=not args.no_freeform,
            num_warmup=args.warmup,
            num_samples=args.draws,
            num_chains=args.chains,
            seed=args.seed,
        )
        return 0
    parser.print_help()
    return 0


def _add_train_prior_command(commands: Any) -> None:
    from .astro.neural import FlowConfig

    default = FlowConfig()
    train = commands.add_parser(
        "train-prior",
        help="train the galaxy-shape flow prior on images drawn with the package's own profiles",
        description="Draw PSF-free, unit-flux galaxy images (Sersic, bulge + disk, knots; random sizes, "
        "indices, ellipticities, orientations), train a normalizing flow (flowjax) on them with optax, "
        "and write its weights with sl.save (and its configuration beside them, OUTPUT.json). Load it "
        "with sl.neural.load_galaxy_flow(OUTPUT) and use it with sl.galaxy_flow_prior(shape, flow, config).",
    )
    train.add_argument("--output", default="galaxy_flow.eqx", help="file to write (default galaxy_flow.eqx)")
    train.add_argument("--images", type=int, default=20000, help="training images (default 20000)")
    train.add_argument("--steps", type=int, default=3000, help="optimizer steps (default 3000)")
    train.add_argument("--batch", type=int, default=256, help="images per step (default 256)")
    train.add_argument("--side", type=int, default=default.side, help=f"input side (default {default.side})")
    train.add_argument("--layers", type=int, default=default.layers, help="coupling layers")
    train.add_argument("--width", type=int, default=default.width, help="conditioner width")
    train.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")


def _run_train_prior(args: Any) -> int:
    import jax

    from .astro.neural import FlowConfig, save_galaxy_flow, train_galaxy_flow

    if args.side < 5 or args.side % 2 == 0:
        raise SystemExit(f"train-prior: --side must be an odd number of pixels >= 5, got {args.side}")
    config = FlowConfig(side=args.side, layers=args.layers, width=args.width)
    flow, stats = train_galaxy_flow(
        jax.random.key(args.seed),
        config,
        count=args.images,
        steps=args.steps,
        batch=args.batch,
        log=lambda line: print(line, flush=True),
    )
    save_galaxy_flow(args.output, flow, config)
    print(
        f"wrote {args.output}: mean negative log likelihood per image {stats['train']:.1f} (training), "
        f"{stats['validation']:.1f} (validation), {stats['seconds']:.0f} s"
    )
    return 0


def _add_catalog_command(commands: Any) -> None:
    catalog = commands.add_parser(
        "catalog",
        help="fit every blend of a field and write a catalog (Parquet), on Dask workers",
        description="Group the detections into blends (friends of friends), cut each blend from every "
        "image, start its scene from the data (sl.init.scene), fit the blends bucket by bucket with "
        "sl.fit_many on Dask workers, and write one row per detection. Results are written per partition "
        "as they finish (into OUTPUT.parts/): running the same command again resumes.",
        epilog="IMAGE.fits: the (C, H, W) image cube with a celestial WCS in the primary HDU (header key "
        "BANDS = 'g,r,i', or --channels), image extensions WEIGHT (inverse variances) and PSF ((C, h, w), "
        "centred); several images may lie on different pixel grids (each with a WCS; x, y are the "
        "first's). DET.fits: a table with columns ra, dec "
        "(degrees) or x, y (pixels, 0-based), and optionally id. Output columns: id, blend, ra, dec, x, "
        "y, flux_<channel>, flux_err_<channel>, n, r_half, g1, g2, chi2, chi2_per_pixel, converged, flag "
        "(0 when all went well; 1 failed, 2 non-finite, 4 not converged, 8 at the field's edge, 16 "
        "outside the field), error.",
    )
    catalog.add_argument("images", nargs="+", metavar="IMAGE.fits", help="the field's image files")
    catalog.add_argument("--detections", required=True, metavar="DET.fits", help="the detection table")
    catalog.add_argument("--output", required=True, metavar="OUT.parquet", help="the catalog to write")
    catalog.add_argument("--fits", action="store_true", help="also write the catalog as FITS (OUT.fits)")
    catalog.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler's address")
    catalog.add_argument(
        "--workers",
        type=int,
        help="worker processes of a local Dask cluster (default: one per core; 0: none)",
    )
    catalog.add_argument(
        "--channels", help="comma-separated channel names, for images without a BANDS header key"
    )
    catalog.add_argument("--kinds", choices=("auto", "point", "extended"), default="auto")
    catalog.add_argument("--linking-length", type=float, help="pixels (default: 3 PSF FWHM)")
    catalog.add_argument(
        "--blends-per-partition", type=int, default=64, help="the most blends in one Dask task (64)"
    )
    catalog.add_argument("--max-steps", type=int, default=2000, help="the most optimizer steps per blend")
    catalog.add_argument(
        "--flux-errors",
        choices=("marginal", "fixed", "none"),
        default="marginal",
        help="flux uncertainties with shapes and centres free (marginal, default) or held (fixed)",
    )
    catalog.add_argument("--overwrite", action="store_true", help="start afresh over another run's parts")
    catalog.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_catalog(args: Any) -> int:
    from .catalog import FieldImage, fit_field

    channels = None if args.channels is None else [name.strip() for name in args.channels.split(",")]
    images = [FieldImage.from_fits(path, channels) for path in args.images]
    run = fit_field(
        images,
        args.detections,
        args.output,
        fits=args.fits,
        workers=args.workers,
        scheduler=args.scheduler,
        linking_length=args.linking_length,
        kinds=args.kinds,
        overwrite=args.overwrite,
        blends_per_partition=args.blends_per_partition,
        flux_errors=args.flux_errors,
        progress=not args.no_progress,
        max_steps=args.max_steps,
    )
    flags = run.table["flag"]
    print(
        f"catalog: {len(run.table)} detections in {len(set(run.table['blend'].tolist()) - {-1})} blends, "
        f"{int((flags == 0).sum())} without flags; {len(run.fitted)} partitions fitted, {len(run.skipped)} "
        f"resumed, in {run.seconds:.1f} s; wrote {run.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

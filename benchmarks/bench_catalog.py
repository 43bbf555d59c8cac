"""Benchmark: a simulated field through `sl.catalog.fit_field`, and the throughput of its engines.

Run from the repository root:

    python benchmarks/bench_catalog.py                     # 2048 x 2048, about 470 sources
    python benchmarks/bench_catalog.py --size 1024 --subset 32   # smaller and quicker

What is measured (see README.md in this folder):

1. **Throughput** on `--subset` isolated sources of the field (each a blend of one; the same blends in
   every variant): (a) a Python loop of `sl.fit`, each blend's cutouts, scene, fit and catalog row made
   as `fit_field` makes them; (b) `fit_field(workers=0)`: `sl.fit_many` per bucket in this process;
   (c) `fit_field` on a Dask `LocalCluster` of 1 and (d) 2 worker processes. The in-process variants
   run twice: cold (compilation included) and warm (compiled programs reused); the Dask variants start
   fresh workers every time, so they are cold (their JAX caches on disk are warm after the first run,
   as in any repeated use). Reported: wall time, blends per second, and the share of the time spent in
   tasks that compiled a fit (Dask) or the cold-warm difference (in process).
2. **The whole field** on 2 Dask workers: blends per second, completeness (the fraction of the true
   sources in the catalog with a finite flux and no `failed` / `nonfinite` flag), median and 90th
   percentile of |flux / true - 1| per band for isolated and blended sources, the peak memory per
   worker (resident set, MB).

3. **Flux uncertainties** (`--errors`, alone: no throughput or Dask runs): the whole field fitted in
   this process twice, with `flux_errors="fixed"` (shapes and centres held at the fit) and
   `"marginal"` (every other parameter free, the default); per kind of source (star, isolated galaxy,
   blended), the fraction of the pulls `(flux - true) / flux_err` within 1 and 3 (a Gaussian: 68 %
   and 99.7 %), their standard deviation, and the seconds spent on the errors.

The field (`catalog_sims.py`): `--size` square pixels, 3 bands (g, r, i), objects every `--spacing`
pixels (a quarter of them stars, the rest exponential disks), every sixth with a companion 6-8 px
away; detections at the true positions plus 0.2 px Gaussian scatter.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from catalog_sims import simulate_field  # noqa: E402

import scarlet_like as sl  # noqa: E402


def loop_of_fit(partition, max_steps: int):
    """`sl.fit` on each blend of a partition, everything else as `fit_field` does it."""
    from scarlet_like.catalog import _partition as P

    rows = []
    for blend in partition.blends:
        observations = P._observations(blend, partition.images)
        scene = P._scene(blend, observations, partition.options["kinds"])
        result = sl.fit(scene, observations, max_steps=max_steps, progress=False)
        rows.extend(P._fitted_rows(blend, partition, result, observations, partition.options))
    return P._to_table(rows, partition)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def accuracy(table, truth, bands):
    flags = np.asarray(table["flag"])[: len(truth)]
    bad = (flags & (sl.catalog.FLAGS["failed"] | sl.catalog.FLAGS["nonfinite"])) != 0
    finite = np.isfinite(np.asarray(table[f"flux_{bands[0]}"][: len(truth)]))
    good = ~bad & finite
    out = {"sources": len(truth), "completeness": float(good.mean())}
    isolated = np.asarray(truth["blend_of"]) == 1
    for label, chosen in (("isolated", isolated), ("blended", ~isolated)):
        for band in bands:
            ratio = np.asarray(table[f"flux_{band}"][: len(truth)]) / np.asarray(truth[f"flux_{band}"])
            error = np.abs(ratio - 1)[good & chosen]
            out[f"{label}_{band}_median"] = float(np.median(error)) if len(error) else float("nan")
            out[f"{label}_{band}_p90"] = float(np.percentile(error, 90)) if len(error) else float("nan")
    return out


def pulls(table, truth, bands):
    """Per kind of source, the fractions of |pull| within 1 and 3, and the pulls' standard deviation
    (over every band), of the sources fitted with finite errors."""
    flags = np.asarray(table["flag"])[: len(truth)]
    good = (flags & (sl.catalog.FLAGS["failed"] | sl.catalog.FLAGS["nonfinite"])) == 0
    star = np.asarray(truth["star"])
    isolated = np.asarray(truth["blend_of"]) == 1
    kinds = {"stars": star & isolated, "isolated galaxies": ~star & isolated, "blended": ~isolated}
    out = {}
    for kind, chosen in kinds.items():
        values = []
        for band in bands:
            error = np.asarray(table[f"flux_err_{band}"][: len(truth)])
            pull = (
                np.asarray(table[f"flux_{band}"][: len(truth)]) - np.asarray(truth[f"flux_{band}"])
            ) / error
            values.append(pull[good & chosen & np.isfinite(pull)])
        pull = np.concatenate(values)
        out[kind] = {
            "values": len(pull),
            "within_1": float(np.mean(np.abs(pull) < 1)),
            "within_3": float(np.mean(np.abs(pull) < 3)),
            "sd": float(np.std(pull)),
        }
    return out


def error_pulls(image, detections, truth, bands, common):
    """The field fitted in this process with fixed, then marginal flux errors: pulls and times."""
    out = {}
    for mode in ("fixed", "marginal"):
        run, wall = timed(
            lambda mode=mode: sl.catalog.fit_field(
                image, detections, None, workers=0, flux_errors=mode, **common
            )
        )
        metas = list(run.partitions.values())
        out[mode] = {
            "seconds": wall,
            "error_seconds": sum(m["error_seconds"] for m in metas),
            "error_compilations": sum(m["error_compilations"] for m in metas),
            "fit_compilations": sum(m["fit_compilations"] for m in metas),
            "pulls": pulls(run.table, truth, bands),
        }
        print(mode, json.dumps(out[mode], indent=1), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--spacing", type=int, default=100)
    parser.add_argument("--subset", type=int, default=64, help="isolated blends for the throughput runs")
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--per-partition", type=int, default=16, help="blends per Dask task")
    parser.add_argument("--skip-field", action="store_true", help="throughput runs only")
    parser.add_argument("--errors", action="store_true", help="flux uncertainties only (see 3.)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    folder = pathlib.Path(tempfile.mkdtemp(prefix="bench_catalog_"))
    field, seconds = timed(lambda: simulate_field(size=args.size, spacing=args.spacing, seed=0))
    truth = field.truth
    print(f"field {args.size}x{args.size}, {len(truth)} sources, simulated in {seconds:.1f} s ({folder})")
    image = sl.catalog.write_field(
        folder / "field.fits", field.images, field.weights, field.psfs, field.bands, field.wcs
    )
    rng = np.random.default_rng(1)
    detections = np.stack([truth["y"], truth["x"]], axis=-1) + rng.normal(0, 0.2, (len(truth), 2))
    common = {"max_steps": args.max_steps, "progress": False, "blends_per_partition": args.per_partition}
    results: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "size": args.size,
        "sources": len(truth),
        "load": os.getloadavg(),
    }

    if args.errors:
        results["errors"] = error_pulls(image, detections, truth, field.bands, common)
        print(json.dumps(results, indent=1))
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
        return

    # throughput on isolated sources away from the edges
    isolated = np.flatnonzero(
        (np.asarray(truth["blend_of"]) == 1)
        & np.all((detections > 40) & (detections < args.size - 40), axis=1)
    )[: args.subset]
    subset = detections[isolated]
    count = len(subset)
    runs = {}

    def in_process():
        return sl.catalog.fit_field(image, subset, None, workers=0, **common)

    def loop():
        from scarlet_like.catalog import _run

        # the partitions fit_field would make, fitted by a loop of sl.fit
        from scarlet_like.catalog._blends import psf_fwhm

        link = 3 * psf_fwhm(field.psfs)
        blends = sl.catalog.make_blends(subset, np.arange(count), link, link, sl.catalog.SIZES)
        options = {"kinds": "auto", "batch_size": 4, "fit": {}, "flux_errors": True}
        image_ = sl.catalog.FieldImage.from_fits(image)
        parts = _run._partitions(blends, (image_,), np.arange(count), options, args.per_partition)
        return [loop_of_fit(part, args.max_steps) for part in parts]

    for name, fn in (("loop of sl.fit", loop), ("fit_many, one process", in_process)):
        _, cold = timed(fn)
        _, warm = timed(fn)
        runs[name] = {"cold": cold, "warm": warm, "compile_share": (cold - warm) / cold}
        print(f"{name}: cold {cold:.1f} s, warm {warm:.1f} s ({count / warm:.2f} blends/s warm)", flush=True)
    for workers in (1, 2):
        run, wall = timed(lambda w=workers: sl.catalog.fit_field(image, subset, None, workers=w, **common))
        metas = list(run.partitions.values())
        compiling = sum(m["seconds"] for m in metas if m["fit_compilations"])
        total = sum(m["seconds"] for m in metas)
        steady = [m["seconds"] / m["blends"] for m in metas if not m["fit_compilations"]]
        runs[f"Dask, {workers} worker(s)"] = {
            "cold": wall,
            "task_seconds": total,
            "compiling_task_share": compiling / total,
            "steady_seconds_per_blend": float(np.median(steady)) if steady else float("nan"),
            "peak_memory_mb": max(m["peak_memory_mb"] for m in metas),
        }
        print(f"Dask {workers}: {wall:.1f} s ({count / wall:.2f} blends/s)", flush=True)
    results["throughput"] = {"blends": count, "runs": runs}

    if not args.skip_field:
        output = folder / "catalog.parquet"
        run, wall = timed(
            lambda: sl.catalog.fit_field(image, detections, output, workers=2, **{**common, "progress": True})
        )
        table = run.table
        metas = list(run.partitions.values())
        blends = len(set(table["blend"].tolist()) - {-1})
        results["field"] = {
            "seconds": wall,
            "blends": blends,
            "blends_per_second": blends / wall,
            "partitions": len(metas),
            "fit_compilations": sum(m["fit_compilations"] for m in metas),
            "compiling_task_share": sum(m["seconds"] for m in metas if m["fit_compilations"])
            / sum(m["seconds"] for m in metas),
            "peak_memory_mb_per_worker": sorted({m["pid"]: m["peak_memory_mb"] for m in metas}.values()),
            "flags": {
                str(k): int(v) for k, v in zip(*np.unique(table["flag"], return_counts=True), strict=True)
            },
            "parquet_mb": output.stat().st_size / 2**20,
            **accuracy(table, truth, field.bands),
        }
        print(json.dumps(results["field"], indent=1))
    print(json.dumps(results, indent=1))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark: `sl.fit` on the real HSC blend, and the throughput of `sl.fit_many`.

Run from the repository root:

    python benchmarks/bench_fit.py                 # everything (about 20 minutes on a 2-core CPU)
    python benchmarks/bench_fit.py --quick         # 8 blends, one warm round, one cold process
    python benchmarks/bench_fit.py --only hsc      # or --only many, --only compile

What is measured (see README.md in this folder):

1. **HSC blend.** `sl.fit(scene, observation)` with its defaults on the bundled 5-band HSC COSMOS blend
   (the scene of `scarlet_like.demo.build_scene`: a point source and six elliptical Sersic galaxies).
   *Cold*: the first fit in a fresh process, compilation included (median over `--cold` processes;
   the timer starts after the data are loaded and the scene built). *Warm*: further fits of the same
   shapes in one process (median over `--rounds`), with the number of compilations they triggered
   (`jax.log_compiles`; it should be 0).
2. **fit_many throughput.** `--blends` simulated blends (48x48 pixels, 5 bands, Gaussian PSFs,
   3 elliptical Gaussian galaxies each, 24 free parameters), fitted (a) by a Python loop of `sl.fit`
   (its defaults, progress bar off), (b) by `sl.fit_many` on one CPU device (one blend after the other
   inside one compiled call, the CPU default), (c) by `sl.fit_many(..., vectorize=blends)` (all blends
   side by side in one `vmap`, the GPU default), and (d) by `sl.fit_many` on 2 CPU devices (a fresh
   process with `XLA_FLAGS=--xla_force_host_platform_device_count=2`, one device per core). Every
   variant is timed once cold (compilation included) and then in `--rounds` interleaved warm rounds,
   so that load from other processes hits all of them alike; reported: median wall time, blends per
   second, and the ratio to the loop.
3. **Fit compile.** In fresh processes with the persistent compilation cache off: the CPU seconds that
   the first `sl.fit` spends beyond a second, identical one (tracing, lowering and compiling every
   program of the fit loop), against the anchor of compiling the model's own `value_and_grad` (the
   least any gradient-based fit must compile), on the HSC scene and on one simulated blend. The ratio
   is the fit loop's machinery (L-BFGS, line search, curvature, bookkeeping) in units of the model.
"""

from __future__ import annotations

import os

# Progress bars would only add noise to the output; tqdm reads this when it is imported.
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from provenance import commit, machine  # noqa: E402

import scarlet_like as sl  # noqa: E402
from scarlet_like.demo import build_scene  # noqa: E402
from scarlet_like.infer.batch import fit_many  # noqa: E402

BANDS = ("g", "r", "i", "z", "y")
PSF_SIGMA = (1.7, 1.5, 1.4, 1.3, 1.4)  # pixels, a typical ground-based seeing sequence
SIZE, SOURCES, NOISE = 48, 3, 0.05
MAX_STEPS = 1000


# ----------------------------------------------------------------------------------------------
# The problems
# ----------------------------------------------------------------------------------------------


def hsc_problem() -> tuple[sl.Scene, sl.Observation]:
    data = sl.datasets.hsc_cosmos()
    observation = sl.Observation(
        data.images,
        weights=1 / data.variance,
        mask=data.mask,
        psf=sl.ArrayPSF(data.psfs),
        channels=data.channels,
        name="HSC",
    )
    return build_scene(data, observation), observation


def simulated_blend(seed: int) -> tuple[sl.Scene, sl.Observation]:
    """Three elliptical Gaussian galaxies on 48x48 pixels in 5 bands, and a model started off the truth."""
    rng = np.random.default_rng(seed)
    psf = sl.GaussianPSF(PSF_SIGMA)
    frame = sl.Frame((len(BANDS), SIZE, SIZE), channels=BANDS)
    truth = [
        (
            rng.uniform(0.3 * SIZE, 0.7 * SIZE, 2),
            rng.uniform(0.5, 1.5, len(BANDS)) * rng.uniform(20.0, 200.0),
            rng.uniform(1.5, 4.0),
            rng.uniform(-0.3, 0.3, 2),
        )
        for _ in range(SOURCES)
    ]
    with sl.Scene(frame) as true_scene:
        for center, spectrum, sigma, shear in truth:
            sl.Source(center, spectrum, sl.GaussianMorphology(sigma, shear))
    empty = sl.Observation(np.zeros((len(BANDS), SIZE, SIZE)), psf=psf, channels=BANDS)
    data = np.asarray(empty.render(true_scene)) + rng.normal(0.0, NOISE, (len(BANDS), SIZE, SIZE))
    observation = sl.Observation(data, weights=np.full(data.shape, NOISE**-2), psf=psf, channels=BANDS)
    with sl.Scene(frame) as scene:
        for center, spectrum, _, _ in truth:
            sl.Source(
                sl.Parameter(center + rng.normal(0.0, 0.5, 2)),
                sl.Parameter(spectrum * rng.uniform(0.6, 1.4), constraint=sl.constraints.positive()),
                sl.GaussianMorphology(
                    sl.Parameter(2.5, constraint=sl.constraints.positive()),
                    sl.Parameter(np.zeros(2), constraint=sl.constraints.unit_disk()),
                ),
            )
    return scene, observation


def simulated_blends(count: int) -> tuple[list[sl.Scene], list[sl.Observation]]:
    pairs = [simulated_blend(seed) for seed in range(count)]
    return [scene for scene, _ in pairs], [observation for _, observation in pairs]


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree_util.tree_leaves(out))
    return time.perf_counter() - start, out


class CompileCounter(logging.Handler):
    """Counts the compilations that `jax.log_compiles` reports."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Compiling"):
            self.messages.append(message)


def hsc_cold() -> dict[str, Any]:
    """The first fit of a fresh process (run in a subprocess by `hsc`)."""
    scene, observation = hsc_problem()
    seconds, result = timed(lambda: sl.fit(scene, observation))
    return {
        "seconds": seconds,
        "steps": int(result.steps),
        "converged": bool(result.converged),
        "chi2": float(observation.goodness_of_fit(result.model)),
    }


def hsc(rounds: int, cold: int) -> dict[str, Any]:
    colds = [worker("hsc-cold") for _ in range(cold)]
    scene, observation = hsc_problem()
    timed(lambda: sl.fit(scene, observation))  # compile
    counter = CompileCounter()
    logging.getLogger("jax").addHandler(counter)
    warms = []
    with jax.log_compiles():
        for _ in range(rounds):
            seconds, result = timed(lambda: sl.fit(scene, observation))
            warms.append(seconds)
    logging.getLogger("jax").removeHandler(counter)
    return {
        "free parameters": len(sl.entry_names(scene)),
        "cold": statistics.median(c["seconds"] for c in colds),
        "cold rounds": [c["seconds"] for c in colds],
        "warm": statistics.median(warms),
        "warm rounds": warms,
        "steps": int(result.steps),
        "converged": bool(result.converged),
        "chi2": float(observation.goodness_of_fit(result.model)),
        "warm compilations": len(counter.messages),
    }


def fit_compile(problem: str) -> dict[str, Any]:
    """CPU seconds of the fit loop's compilation and of the model gradient's (run in a fresh process
    with the persistent cache off, by `compile_timings`)."""
    scene, observation = hsc_problem() if problem == "hsc" else simulated_blend(0)
    density = sl.LogDensity(scene, observation, jacobian=False)
    start = time.process_time()
    jax.jit(jax.value_and_grad(density)).lower(density.x0).compile()
    gradient = time.process_time() - start

    def cpu_of_fit() -> float:
        start = time.process_time()
        jax.block_until_ready(sl.fit(scene, observation, max_steps=MAX_STEPS, progress=False).model)
        return time.process_time() - start

    first = cpu_of_fit()
    second = cpu_of_fit()
    return {"gradient": gradient, "first fit": first, "second fit": second, "fit": first - second}


def compile_timings() -> dict[str, dict[str, Any]]:
    return {
        problem: worker("compile", "--problem", problem, env={"SCARLET_LIKE_CACHE": "0"})
        for problem in ("hsc", "blend")
    }


def many_variants(count: int, devices: int) -> dict[str, Callable[[], Any]]:
    models, observations = simulated_blends(count)
    if devices > 1:
        return {
            f"fit_many, {devices} CPU devices": lambda: fit_many(models, observations, max_steps=MAX_STEPS)
        }
    return {
        "loop of sl.fit": lambda: [
            sl.fit(model, observation, max_steps=MAX_STEPS)
            for model, observation in zip(models, observations, strict=True)
        ],
        "fit_many, 1 CPU device": lambda: fit_many(models, observations, max_steps=MAX_STEPS),
        f"fit_many, 1 CPU device, vectorize={count}": lambda: fit_many(
            models, observations, max_steps=MAX_STEPS, vectorize=count
        ),
    }


def many_timings(count: int, rounds: int, devices: int) -> dict[str, dict[str, Any]]:
    variants = many_variants(count, devices)
    out: dict[str, dict[str, Any]] = {}
    for name, fn in variants.items():
        seconds, results = timed(fn)
        out[name] = {
            "cold": seconds,
            "warm rounds": [],
            "steps": [int(r.steps) for r in results],
            "converged": sum(bool(r.converged) for r in results),
        }
    for _ in range(rounds):
        for name, fn in variants.items():
            out[name]["warm rounds"].append(timed(fn)[0])
    for entry in out.values():
        entry["warm"] = statistics.median(entry["warm rounds"])
        entry["blends per second"] = count / entry["warm"]
    return out


def worker(kind: str, *arguments: str, env: dict[str, str] | None = None) -> Any:
    """Run one measurement in a fresh Python process and return what it printed (JSON)."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, *arguments],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("hsc", "many", "compile"))
    parser.add_argument("--blends", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds (median reported)")
    parser.add_argument("--cold", type=int, default=3, help="fresh processes for the cold HSC fit")
    parser.add_argument("--quick", action="store_true", help="8 blends, 1 round, 1 cold process")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--problem", default="hsc", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "hsc-cold":
        print(json.dumps(hsc_cold()))
        return
    if args.worker == "compile":
        print(json.dumps(fit_compile(args.problem)))
        return
    if args.worker == "many":
        print(json.dumps(many_timings(args.blends, args.rounds, args.devices)))
        return
    if args.quick:
        args.blends, args.rounds, args.cold = 8, 1, 1

    started = datetime.datetime.now()
    print(f"{started:%Y-%m-%d %H:%M}  commit {commit()}  {machine()}")
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    report: dict[str, Any] = {"date": f"{started:%Y-%m-%d}", "commit": commit(), "machine": machine()}

    if args.only in (None, "hsc"):
        numbers = hsc(args.rounds, args.cold)
        report["hsc"] = numbers
        print(
            f"\nsl.fit on the HSC blend (7 sources, 5 bands, 58x48 pixels, {numbers['free parameters']} "
            f"free parameters; {numbers['steps']} steps, converged={numbers['converged']}, "
            f"chi^2/pixel {numbers['chi2']:.3f})"
        )
        print(f"  cold, compilation included  {numbers['cold']:7.1f} s   (median of {args.cold} processes)")
        print(
            f"  warm, same shapes           {numbers['warm']:7.1f} s   (median of {args.rounds}; "
            f"{numbers['warm compilations']} compilations)"
        )

    if args.only in (None, "many"):
        numbers = many_timings(args.blends, args.rounds, 1)
        cores = worker(
            "many",
            "--blends",
            str(args.blends),
            "--rounds",
            str(args.rounds),
            "--devices",
            "2",
            env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        )
        numbers.update(cores)
        report["many"] = numbers
        loop = numbers["loop of sl.fit"]["warm"]
        print(
            f"\n{args.blends} simulated blends ({SIZE}x{SIZE} pixels, {len(BANDS)} bands, {SOURCES} "
            f"elliptical Gaussian galaxies), median of {args.rounds} warm rounds"
        )
        print(f"  {'':42} {'cold (s)':>9} {'warm (s)':>9} {'blends/s':>9} {'vs loop':>8} converged")
        for name, entry in numbers.items():
            print(
                f"  {name:42} {entry['cold']:9.1f} {entry['warm']:9.1f} {entry['blends per second']:9.2f} "
                f"{loop / entry['warm']:7.2f}x {entry['converged']:>5}/{args.blends}"
            )
    if args.only in (None, "compile"):
        numbers = compile_timings()
        report["compile"] = numbers
        print("\nfit compile, CPU seconds in a fresh process without the persistent cache")
        print(f"  {'':28} {'gradient':>9} {'fit loop':>9} {'ratio':>6}")
        for problem, entry in numbers.items():
            name = "HSC scene (7 sources)" if problem == "hsc" else "simulated blend (3 sources)"
            ratio = entry["fit"] / entry["gradient"]
            print(f"  {name:28} {entry['gradient']:9.1f} {entry['fit']:9.1f} {ratio:6.1f}")
    print(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1)


if __name__ == "__main__":
    main()

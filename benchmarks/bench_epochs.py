"""Benchmark: N epochs of one field in one likelihood, stacked (one program) against one by one.

Run from the repository root:

    python benchmarks/bench_epochs.py                  # 5 and 50 epochs, about 6 minutes
    python benchmarks/bench_epochs.py --quick          # fewer rounds
    python benchmarks/bench_epochs.py --epochs 5 20 50 --json out.json

What is measured (see README.md in this folder):

- **The problem**: a supernova on its host, as in `tests/astro/test_transients.py`: one band, 25x25
  pixels, a Gaussian host (free centre, flux and width) and a point source at a free centre whose
  flux follows a Gaussian light curve (free t0, width, peak), all with priors; N nights, each with a
  Gaussian PSF of its own width (sigma drawn in [0.9, 2.2] px) and its own time, noise 0.5.
- **Variants**: `stacked`, the package's way (`sl.LogDensity(scene, nights)`: the nights stacked and
  rendered by one program, see `Observation.log_likelihood_of_many`), with the default chunking (every
  night at once, `vmap`, for these sizes), in chunks of 1 MB of Fourier images (7 nights, `vmap`
  within a chunk, `lax.scan` over chunks) and one night at a time (`map`); `stacked, shifted`, the
  same with a free astrometric shift for every night but the first (`sl.Scene(frame, shifts=...)`,
  prior Normal(0, 0.5 px) on each axis: 2 (N - 1) more free entries, stacked with the nights' data;
  its log density differs from the others' by the shifts' log prior);
  `one by one`, the observations' own `log_likelihood` called in a Python loop (what every likelihood
  did before stacking: N renders in the program).
- **Compile time**: `jax.jit(jax.value_and_grad(density)).lower(x0)` and `.compile()`, fresh, nothing
  cached (the persistent cache is off in this script); wall time and process CPU time. The temporary
  memory of the compiled program (`memory_analysis().temp_size_in_bytes`).
- **Gradient time**: the compiled value and gradient, warmed up, the variants timed in interleaved
  rounds (per round `--calls` calls of each, median kept); the median and minimum over rounds, and
  the median process CPU time per call.
- **Fit** (`--fit N ...`): `sl.fit(start, likelihood)` then `sl.laplace(fitted.model, likelihood,
  fit=False)` on N nights, first call in the process (compilation included), wall and CPU time, for
  the stacked likelihood and the one-by-one one.
"""

from __future__ import annotations

import os

# before jax is imported by scarlet_like: compile times are measured from scratch
os.environ["SCARLET_LIKE_CACHE"] = "0"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as nd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
from bench_render import timed_rounds  # noqa: E402

import scarlet_like as sl  # noqa: E402
from scarlet_like.astro import observation as observation_module  # noqa: E402

FRAME = sl.Frame((1, 25, 25), channels=("r",))
NOISE = 0.5
HOST = {"center": (12.3, 11.8), "flux": 400.0, "sigma": 2.0}
SUPERNOVA = {"center": (14.2, 10.1), "t0": 13.6, "width": 3.4, "peak": 120.0}
POSITIVE = sl.constraints.positive()
#: chunk sizes (bytes of Fourier images per chunk) of the stacked variants: the default (every night at
#: once here), chunks of 1 MB (7 nights), one night at a time
CHUNKS = {
    "stacked": observation_module.EPOCH_CHUNK_BYTES,
    "stacked, 1 MB": 1 << 20,
    "stacked, map": 0,
}


class GaussianBurst(sl.Module):
    t0: sl.Parameter
    width: sl.Parameter
    peak: sl.Parameter

    def __call__(self, time: jax.Array) -> jax.Array:
        return self.peak * jnp.exp(-0.5 * ((time - self.t0) / self.width) ** 2)


class OneByOne(eqx.Module):
    """A likelihood of observations, each's own `log_likelihood` in a Python loop (no stacking)."""

    observations: tuple[sl.Observation, ...]

    def __call__(self, scene: Any) -> jax.Array:
        values = [observation.log_likelihood(scene) for observation in self.observations]
        return sum(values[1:], start=values[0])


def truth() -> sl.Scene:
    curve = GaussianBurst(SUPERNOVA["t0"], SUPERNOVA["width"], jnp.array([SUPERNOVA["peak"]]))
    with sl.Scene(FRAME) as scene:
        sl.Source(
            HOST["center"], jnp.array([HOST["flux"]]), sl.GaussianMorphology(HOST["sigma"], (0.2, -0.1))
        )
        sl.PointSource(SUPERNOVA["center"], curve)
    return scene


def start(shifts: dict[str, Any] | None = None) -> sl.Scene:
    host = jnp.array(HOST["center"]) + 0.4
    near = jnp.array(SUPERNOVA["center"]) - 0.3
    curve = GaussianBurst(
        t0=sl.Parameter(11.0, prior=nd.Normal(12.0, 10.0)),
        width=sl.Parameter(2.5, constraint=POSITIVE, prior=nd.LogNormal(jnp.log(3.0), 1.0)),
        peak=sl.Parameter(
            jnp.array([80.0]),
            constraint=POSITIVE,
            prior=nd.LogNormal(jnp.log(jnp.array([100.0])), 2.0).to_event(1),
        ),
    )
    with sl.Scene(FRAME, shifts=shifts) as scene:
        sl.Source(
            sl.Parameter(host, prior=nd.Normal(host, 2.0).to_event(1)),
            sl.Parameter(jnp.array([300.0]), constraint=POSITIVE),
            sl.GaussianMorphology(sl.Parameter(1.5, constraint=POSITIVE), (0.2, -0.1)),
        )
        sl.PointSource(sl.Parameter(near, prior=nd.Normal(near, 2.0).to_event(1)), curve)
    return scene


@jax.jit
def _simulated(night: sl.Observation, scene: sl.Scene, key: jax.Array) -> jax.Array:
    return night.simulate(scene, key)


def nights(count: int, seed: int = 0) -> list[sl.Observation]:
    """`count` nights over 30 days, each with a PSF of its own width."""
    rng = np.random.default_rng(seed)
    sigmas = rng.uniform(0.9, 2.2, count)
    times = np.linspace(0.0, 30.0, count)
    keys = jax.random.split(jax.random.key(seed), count)
    made = []
    for index, (key, sigma, when) in enumerate(zip(keys, sigmas, times, strict=True)):
        night = sl.Observation(
            np.zeros(FRAME.shape),
            weights=NOISE**-2,
            psf=sl.GaussianPSF(float(sigma)),
            channels=FRAME.channels,
            time=float(when),
            name=f"night {index}",
        )
        made.append(eqx.tree_at(lambda o: o.data, night, _simulated(night, truth(), key)))
    return made


def free_shifts(observations: Sequence[sl.Observation]) -> dict[str, sl.Parameter]:
    """A free shift, from zero with a prior of 0.5 px on each axis, for every night but the first."""
    prior = nd.Normal(0.0, 0.5).expand([2]).to_event(1)
    return {night.name: sl.Parameter(jnp.zeros(2), prior=prior) for night in observations[1:]}


def density(variant: str, observations: list[sl.Observation]) -> sl.LogDensity:
    likelihood = OneByOne(tuple(observations)) if variant == "one by one" else observations
    shifts = free_shifts(observations) if variant == "stacked, shifted" else None
    return sl.LogDensity(start(shifts), likelihood)


def compiled(
    variant: str, observations: list[sl.Observation]
) -> tuple[Callable, jax.Array, dict[str, float]]:
    """The variant's value and gradient, compiled fresh; its compile times and temporary memory."""
    observation_module.EPOCH_CHUNK_BYTES = CHUNKS.get(variant, CHUNKS["stacked"])
    built = density(variant, observations)
    function = jax.jit(jax.value_and_grad(built))
    wall, cpu = time.perf_counter(), time.process_time()
    lowered = function.lower(built.x0)
    lowered_wall, lowered_cpu = time.perf_counter(), time.process_time()
    program = lowered.compile()
    done_wall, done_cpu = time.perf_counter(), time.process_time()
    memory = program.memory_analysis()
    observation_module.EPOCH_CHUNK_BYTES = CHUNKS["stacked"]
    return (
        program,
        built.x0,
        {
            "lower_s": lowered_wall - wall,
            "compile_s": done_wall - lowered_wall,
            "total_s": done_wall - wall,
            "total_cpu_s": done_cpu - cpu,
            "lower_cpu_s": lowered_cpu - cpu,
            "temp_mb": (memory.temp_size_in_bytes / 1e6) if memory is not None else float("nan"),
        },
    )


def fit_times(count: int, variants: Sequence[str] = ("stacked", "one by one")) -> dict[str, dict[str, float]]:
    """First `sl.fit` and `sl.laplace` over `count` nights, stacked and one by one (compilation included)."""
    observations = nights(count)
    out = {}
    print(f"\n## sl.fit + sl.laplace over N = {count} nights, first call (compilation included)")
    for variant in variants:
        likelihood = OneByOne(tuple(observations)) if variant == "one by one" else observations
        wall, cpu = time.perf_counter(), time.process_time()
        fitted = sl.fit(start(), likelihood, progress=False)
        fit_wall, fit_cpu = time.perf_counter(), time.process_time()
        laplace = sl.laplace(fitted.model, likelihood, fit=False)
        jax.block_until_ready(laplace.covariance)
        done_wall, done_cpu = time.perf_counter(), time.process_time()
        t0 = float(sl.get_values(fitted.model)["sources[1].spectrum.t0"])
        out[variant] = {
            "fit_s": fit_wall - wall,
            "fit_cpu_s": fit_cpu - cpu,
            "laplace_s": done_wall - fit_wall,
            "laplace_cpu_s": done_cpu - fit_cpu,
            "t0": t0,
        }
        print(
            f"{variant:<12} fit {fit_wall - wall:6.1f} s (cpu {fit_cpu - cpu:5.1f} s), laplace "
            f"{done_wall - fit_wall:6.1f} s (cpu {done_cpu - fit_cpu:5.1f} s); t0 = {t0:.3f}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, nargs="*", default=[5, 50], help="numbers of nights")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["stacked", "stacked, shifted", "stacked, 1 MB", "stacked, map", "one by one"],
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    parser.add_argument("--calls", type=int, default=10, help="calls per variant per round (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 calls")
    parser.add_argument("--fit", type=int, nargs="*", default=[], help="also time sl.fit + sl.laplace")
    parser.add_argument("--fit-variants", nargs="*", default=["stacked", "one by one"])
    parser.add_argument("--json", type=str, default=None, help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 5
    results: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": provenance.commit(),
        "machine": provenance.machine(),
        "epochs": {},
    }
    print(f"# epochs benchmark, {results['date']}, commit {results['commit']}, {results['machine']}")
    print("# supernova on its host, 1 band, 25x25 px, Gaussian PSFs of sigma 0.9-2.2 px, one per night")
    for count in args.epochs:
        observations = nights(count)
        functions, compile_rows, values = {}, {}, {}
        for variant in args.variants:
            program, x0, row = compiled(variant, observations)
            compile_rows[variant] = row
            functions[variant] = (program, (x0,))
            values[variant] = float(program(x0)[0])
        timings = timed_rounds(functions, args.rounds, args.calls)
        reference = values[args.variants[-1]]
        results["epochs"][count] = {
            variant: {**compile_rows[variant], **timings[variant], "value": values[variant]}
            for variant in args.variants
        }
        print(f"\n## N = {count} nights (log density at x0: {reference:.6g})")
        print(
            f"{'variant':<16} {'lower s':>8} {'compile s':>10} {'total s':>8} {'cpu s':>7} {'temp MB':>8} "
            f"{'grad ms (med)':>14} {'(min)':>7} {'cpu ms':>7} {'rel. diff':>10}"
        )
        for variant in args.variants:
            row = results["epochs"][count][variant]
            difference = abs(row["value"] - reference) / abs(reference)
            print(
                f"{variant:<16} {row['lower_s']:8.2f} {row['compile_s']:10.2f} {row['total_s']:8.2f} "
                f"{row['total_cpu_s']:7.2f} {row['temp_mb']:8.2f} {row['median_ms']:14.2f} "
                f"{row['min_ms']:7.2f} {row['cpu_ms']:7.2f} {difference:10.1e}"
            )
    for count in args.fit:
        results.setdefault("fit", {})[count] = fit_times(count, args.fit_variants)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()

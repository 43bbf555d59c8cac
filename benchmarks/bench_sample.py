"""Benchmark: effective samples per second of `sl.sample` against numpyro's NUTS on the same density.

Run from the repository root:

    python benchmarks/bench_sample.py                  # both models, 2 warm rounds (~10 min on 2 cores)
    python benchmarks/bench_sample.py --quick          # half the steps, one warm round (~3 min)
    python benchmarks/bench_sample.py --only schools   # 30 s; or --only scene (~9 min)

What is measured (see README.md in this folder). For each model, one `sl.LogDensity` is built, and
the same number of chains, warmup steps and draws are run from the same per-chain starting points by

- `sl.sample(model, likelihood, init=starts, progress=False)` (blackjax NUTS, chains vmapped),
- the same with `chain_method="sequential"` (row `sequential`: one chain after the other), and
- `numpyro.infer.MCMC(NUTS(potential_fn=lambda x: -density(x)), chain_method="vectorized")`

in the same process: both are Stan's windowed adaptation of a step size and a diagonal mass matrix,
target acceptance 0.8, at most 10 tree doublings. Three timings per sampler:

- *cold*: the first run in the process, compilation included;
- *warm*: `--rounds` further runs with new keys, called the same way (median). `sl.sample` reuses
  its compiled code; numpyro's `MCMC.run` compiles its loop again at every call;
- *jit*: the whole run inside `jax.jit` (the problem's arrays as arguments), compiled once (its
  compile time reported apart), then `--rounds` runs: the samplers' own speed.

Warm and jit runs are interleaved, so that load from other processes hits both samplers alike. The
effective sample size is the minimum over the entries of the flat unconstrained vector of the bulk
ESS (rank-normalised split chains, `Posterior.summary`'s estimator), computed the same way from both
samplers' draws. Reported: ESS per second for the three timings, gradient evaluations (leapfrog
steps over all chains), the process CPU time per *lockstep* gradient evaluation (chains advance
together under `vmap`, so a draw costs the longest trajectory of the chains), and the ratios
scarlet_like / numpyro.

Models:

1. **eight schools**, non-centred (10 free entries; `mu`, `tau > 0` with a half-Cauchy prior, eight
   standardised school effects): the classic hierarchical test.
2. **small scene**: two elliptical Gaussian galaxies on 16x16 pixels in 2 bands, Gaussian PSF
   (14 free entries: centres with Normal priors, positive spectra, sizes with log-normal priors,
   ellipticities in the unit disk), on simulated data; chains start at the MAP fit.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as nd  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402
from provenance import commit, machine  # noqa: E402

import scarlet_like as sl  # noqa: E402
from scarlet_like.infer.sample import _diagnostics  # noqa: E402

CHAINS = 4

# The spectra of the scene have a positivity constraint and no prior: the data pin them down.
warnings.filterwarnings("ignore", category=sl.ImproperPriorWarning)

# ----------------------------------------------------------------------------------------------
# The models
# ----------------------------------------------------------------------------------------------

Y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


class Schools(sl.Module):
    mu: sl.Parameter
    tau: sl.Parameter
    theta: Any


def shift_and_scale(mu: jax.Array, tau: jax.Array, standard: jax.Array) -> jax.Array:
    return mu + tau * standard


def eight_schools() -> tuple[Any, Any]:
    mu = sl.Parameter(0.0, prior=nd.Normal(0.0, 5.0))
    tau = sl.Parameter(3.0, constraint=sl.constraints.positive(), prior=nd.HalfCauchy(5.0))
    standard = sl.Parameter(jnp.zeros(8), prior=nd.Normal(0.0, 1.0))
    model = Schools(mu=mu, tau=tau, theta=sl.Derived(shift_and_scale, mu, tau, standard))
    return model, SchoolData(Y)


class SchoolData(sl.Module):
    values: jax.Array

    def log_likelihood(self, schools: Schools) -> jax.Array:
        return jnp.sum(nd.Normal(schools.theta, SIGMA).log_prob(self.values))


def small_scene() -> tuple[Any, Any]:
    bands, size, noise = ("g", "r"), 16, 0.05
    psf = sl.GaussianPSF((1.6, 1.4))
    frame = sl.Frame((len(bands), size, size), channels=bands)
    truth = [
        ((6.5, 6.0), np.array([20.0, 30.0]), 1.8, (0.15, -0.1)),
        ((9.5, 10.0), np.array([12.0, 10.0]), 2.5, (-0.2, 0.05)),
    ]
    with sl.Scene(frame) as true_scene:
        for center, spectrum, sigma, shear in truth:
            sl.Source(
                jnp.asarray(center), jnp.asarray(spectrum), sl.GaussianMorphology(sigma, jnp.asarray(shear))
            )
    empty = sl.Observation(np.zeros((len(bands), size, size)), psf=psf, channels=bands)
    rng = np.random.default_rng(0)
    data = np.asarray(empty.render(true_scene)) + rng.normal(0.0, noise, (len(bands), size, size))
    observation = sl.Observation(data, weights=np.full(data.shape, noise**-2), psf=psf, channels=bands)
    with sl.Scene(frame) as scene:
        for center, spectrum, _, _ in truth:
            sl.Source(
                sl.Parameter(
                    jnp.asarray(center) + 0.3, prior=nd.Normal(jnp.asarray(center), 1.0).to_event(1)
                ),
                sl.Parameter(jnp.asarray(spectrum * 0.8), constraint=sl.constraints.positive()),
                sl.GaussianMorphology(
                    sl.Parameter(2.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.7, 0.5)),
                    sl.Parameter(jnp.zeros(2), constraint=sl.constraints.unit_disk()),
                ),
            )
    # start where the posterior is: at the MAP fit
    return sl.fit(scene, observation, progress=False).model, observation


MODELS: dict[str, Callable[[], tuple[Any, Any]]] = {"schools": eight_schools, "scene": small_scene}
# (warmup steps, draws) per chain: the scene's gradient costs ~100x more than the schools'
STEPS = {"schools": (500, 1000), "scene": (200, 400)}
LABELS = {
    "schools": "eight schools, non-centred (10 entries)",
    "scene": "small scene: 2 Gaussian galaxies, 2 bands, 16x16 px (14 entries)",
}

# ----------------------------------------------------------------------------------------------
# The two samplers
# ----------------------------------------------------------------------------------------------


def starts(density: sl.LogDensity, seed: int = 0) -> jax.Array:
    """One start per chain, a little apart around the model's values (the same for both samplers)."""
    noise = np.random.default_rng(seed).normal(0.0, 0.1, (CHAINS, density.size))
    return jnp.asarray(np.asarray(density.x0) + noise, density.x0.dtype)


def ours(
    warmup: int, draws: int, chain_method: str = "vectorized"
) -> Callable[[jax.Array, jax.Array, Any], dict]:
    def run(key: jax.Array, init: jax.Array, problem: tuple[Any, Any]) -> dict:
        model, likelihood = problem
        posterior = sl.sample(
            model,
            likelihood,
            key=key,
            init=init,
            num_warmup=warmup,
            num_samples=draws,
            num_chains=CHAINS,
            progress=False,
            chain_method=chain_method,
        )
        return {
            "samples": posterior.samples,
            "steps": posterior.num_integration_steps,
            "divergences": posterior.divergences,
        }

    return run


def numpyro(warmup: int, draws: int) -> Callable[[jax.Array, jax.Array, Any], dict]:
    def run(key: jax.Array, init: jax.Array, density: sl.LogDensity) -> dict:
        # a new MCMC object per call, as a user running a script would have: numpyro compiles its loop
        # at every `run` anyway (it caches nothing that the next `run` with a new key reuses)
        kernel = NUTS(potential_fn=lambda x: -density(x), target_accept_prob=0.8, max_tree_depth=10)
        mcmc = MCMC(
            kernel,
            num_warmup=warmup,
            num_samples=draws,
            num_chains=CHAINS,
            chain_method="vectorized",
            progress_bar=False,
        )
        with jax.numpy_dtype_promotion("standard"):
            mcmc.run(key, init_params=init, extra_fields=("num_steps", "diverging"))
        extra = mcmc.get_extra_fields(group_by_chain=True)
        return {
            "samples": mcmc.get_samples(group_by_chain=True),
            "steps": extra["num_steps"],
            "divergences": extra["diverging"],
        }

    return run


def compiled(run: Callable[[jax.Array, jax.Array, Any], dict], key: jax.Array, init: jax.Array, problem: Any):
    """`run` compiled as a whole with `jax.jit`, its problem's arrays as arguments (not constants)."""
    arrays, static = eqx.partition(problem, eqx.is_array)
    whole = jax.jit(lambda key, init, arrays: run(key, init, eqx.combine(arrays, static)))
    executable = whole.lower(key, init, arrays).compile()
    return lambda key, init, problem: executable(key, init, eqx.partition(problem, eqx.is_array)[0])


def min_bulk_ess(samples: np.ndarray) -> float:
    return float(np.nanmin(_diagnostics(np.asarray(samples, np.float64))["ess_bulk"]))


def timed(
    run: Callable[[jax.Array, jax.Array, Any], dict], key: jax.Array, init: jax.Array, problem: Any
) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(run(key, init, problem))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = np.asarray(out["steps"])
    return {
        "seconds": wall,
        "cpu seconds": cpu,
        "ess": min_bulk_ess(np.asarray(out["samples"])),
        "gradients": int(steps.sum()),
        # chains run in lockstep (vmap): a draw costs the longest of the chains' trajectories
        "lockstep gradients": int(steps.max(axis=0).sum()),
        "divergences": int(np.asarray(out["divergences"]).sum()),
    }


def compare(name: str, warmup: int, draws: int, rounds: int) -> dict[str, Any]:
    """Per sampler: the first run in the process (compilation included), warm runs as a user calls them
    again, and warm runs of the whole run under `jax.jit` (compiled once: the sampler's own speed)."""
    model, likelihood = MODELS[name]()
    density = sl.LogDensity(model, likelihood)
    init = starts(density)
    plain = {
        "scarlet_like": ours(warmup, draws),
        "sequential": ours(warmup, draws, "sequential"),
        "numpyro": numpyro(warmup, draws),
    }
    problems = {"scarlet_like": (model, likelihood), "sequential": (model, likelihood), "numpyro": density}
    out: dict[str, Any] = {
        sampler: {"cold": timed(run, jax.random.key(0), init, problems[sampler])}
        for sampler, run in plain.items()
    }
    jitted = {}
    for sampler, run in plain.items():
        begin = time.perf_counter()
        jitted[sampler] = compiled(run, jax.random.key(0), init, problems[sampler])
        out[sampler]["jit compile seconds"] = time.perf_counter() - begin
        out[sampler]["warm"], out[sampler]["jit warm"] = [], []
    for index in range(rounds):
        key = jax.random.key(index + 1)
        for sampler in plain:
            out[sampler]["warm"].append(timed(plain[sampler], key, init, problems[sampler]))
            out[sampler]["jit warm"].append(timed(jitted[sampler], key, init, problems[sampler]))
    for entry in out.values():
        summary = {
            "cold seconds": entry["cold"]["seconds"],
            "ESS/s cold": entry["cold"]["ess"] / entry["cold"]["seconds"],
            "jit compile seconds": entry["jit compile seconds"],
        }
        for kind in ("warm", "jit warm"):
            runs = entry[kind]
            seconds = statistics.median(r["seconds"] for r in runs)
            summary[f"{kind} seconds"] = seconds
            summary[f"ESS/s {kind}"] = statistics.median(r["ess"] / r["seconds"] for r in runs)
        runs = entry["jit warm"]
        summary["min bulk ESS"] = statistics.median(r["ess"] for r in runs)
        summary["gradients"] = statistics.median(r["gradients"] for r in runs)
        summary["us per lockstep gradient"] = statistics.median(
            1e6 * r["cpu seconds"] / r["lockstep gradients"] for r in runs
        )
        summary["divergences"] = statistics.median(r["divergences"] for r in runs)
        entry["summary"] = summary
    return out


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=tuple(MODELS))
    parser.add_argument("--rounds", type=int, default=2, help="warm rounds (median reported)")
    parser.add_argument("--quick", action="store_true", help="half the steps, 1 warm round")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1

    started = datetime.datetime.now()
    print(f"{started:%Y-%m-%d %H:%M}  commit {commit()}  {machine()}")
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{CHAINS} chains, median of {args.rounds} warm rounds")
    report: dict[str, Any] = {"date": f"{started:%Y-%m-%d}", "commit": commit(), "machine": machine()}
    columns = (
        "cold s",
        "warm s",
        "jit comp s",
        "jit s",
        "min ESS",
        "ESS/s cold",
        "ESS/s warm",
        "ESS/s jit",
        "grads",
        "us/grad",
    )
    for name in (args.only,) if args.only else tuple(MODELS):
        warmup, draws = (steps // 2 if args.quick else steps for steps in STEPS[name])
        numbers = compare(name, warmup, draws, args.rounds)
        report[name] = numbers
        print(f"\n{LABELS[name]}: {CHAINS} chains x ({warmup} warmup steps + {draws} draws)")
        print(f"  {'':13}" + "".join(f"{c:>11}" for c in columns))
        for sampler, entry in numbers.items():
            s = entry["summary"]
            cells = (
                f"{s['cold seconds']:11.2f}{s['warm seconds']:11.2f}{s['jit compile seconds']:11.2f}"
                f"{s['jit warm seconds']:11.2f}"
                f"{s['min bulk ESS']:11.0f}{s['ESS/s cold']:11.1f}{s['ESS/s warm']:11.1f}"
                f"{s['ESS/s jit warm']:11.1f}{s['gradients']:11.0f}{s['us per lockstep gradient']:11.1f}"
            )
            print(f"  {sampler:13}{cells}")
        mine, theirs = numbers["scarlet_like"]["summary"], numbers["numpyro"]["summary"]
        ratios = {
            key: mine[key] / theirs[key]
            for key in ("ESS/s cold", "ESS/s warm", "ESS/s jit warm", "us per lockstep gradient")
        }
        numbers["ratios"] = ratios
        print("  scarlet_like / numpyro: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1, default=float)


if __name__ == "__main__":
    main()

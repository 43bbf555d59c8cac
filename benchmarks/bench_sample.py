"""Benchmark: effective samples per second, and per gradient evaluation, of `sl.sample` against numpyro's
NUTS on the same density.

Run from the repository root:

    python benchmarks/bench_sample.py                  # schools and scene, 2 warm rounds (~1 h, 2 busy cores)
    python benchmarks/bench_sample.py --quick          # half the steps, one warm round
    python benchmarks/bench_sample.py --only schools   # 3-4 min
    python benchmarks/bench_sample.py --only hsc --cold-only --samplers dense,numpyro   # ~25 min
    python benchmarks/bench_sample.py --only scene --rounds 1 --samplers sequential,dense,laplace,numpyro
                                                       # ~30 min at load average 6-8 on 2 cores

What is measured (see README.md in this folder). For each model, one `sl.LogDensity` is built, and
the same number of chains, warmup steps and draws are run from the same per-chain starting points by

- `vectorized`: `sl.sample(..., chain_method="vectorized", mass_matrix="diagonal")` (chains vmapped);
- `sequential`: the same with `chain_method="sequential"` (one chain after the other: the default
  on CPUs), still a diagonal mass matrix;
- `dense`: sequential chains with `mass_matrix="dense"`: a dense mass matrix, first the inverse of
  the curvature where each chain starts (the Laplace covariance when the chains start at the mode),
  then estimated from the draws of Stan's windows;
- `laplace` (the scene only: its chains start at the MAP fit, while the mode of eight schools lies at
  tau = 0): `init=sl.laplace(model, likelihood, fit=False)` and a dense mass matrix: chains start at
  draws of the Laplace approximation, with its covariance as the inverse mass matrix, and a short
  warmup of 19 steps (`LAPLACE_WARMUP`: fewer than 20 adapt the step size alone, keeping the Laplace
  covariance) before the same number of draws as the others. The time of `sl.laplace` is counted; no
  jit timing: it is not jittable;
- `numpyro`: `numpyro.infer.MCMC(NUTS(potential_fn=lambda x: -density(x)), chain_method="vectorized")`,
  Stan's windowed adaptation of a step size and a diagonal mass matrix.

All: target acceptance 0.8, at most 10 tree doublings. Three timings per sampler:

- *cold*: the first call, compilation included, each sampler in a fresh Python process of its own
  (started by this one; the timer starts once the model is built) with an empty persistent
  compilation cache: what a user waits for the first time;
- *warm*: `--rounds` further runs with new keys in this process, called the same way (median).
  `sl.sample` reuses its compiled code; numpyro's `MCMC.run` compiles its loop again at every call
  (read back from the persistent compilation cache that importing scarlet_like turns on, here a
  fresh folder for the run);
- *jit*: the whole run inside `jax.jit` (the problem's arrays as arguments), compiled once (its
  compile time reported apart), then `--rounds` runs: the samplers' own speed.

Warm and jit runs are interleaved, so that load from other processes hits every sampler alike; the
cold processes run one after the other, `--cold-rounds` times interleaved (median). The effective
sample size is the minimum over the entries of the flat unconstrained vector of the bulk ESS
(rank-normalised split chains, `Posterior.summary`'s estimator), computed the same way from every
sampler's draws; R-hat the maximum of split R-hat. Gradient evaluations are leapfrog steps summed over
chains, warmup included (`Posterior.gradient_evaluations()`; numpyro's `num_steps` of every step,
collected from the first warmup step). Reported: ESS per second for the three timings, ESS per 1000
gradient evaluations, wall time per gradient evaluation, and the ratios to numpyro.

Models:

1. **eight schools**, non-centred (10 free entries; `mu`, `tau > 0` with a half-Cauchy prior, eight
   standardised school effects): the classic hierarchical test.
2. **small scene**: two elliptical Gaussian galaxies on 16x16 pixels in 2 bands, Gaussian PSF
   (14 free entries: centres with Normal priors, positive spectra, sizes with log-normal priors,
   ellipticities in the unit disk), on simulated data; chains start at the MAP fit.
3. **the HSC blend** of `python -m scarlet_like demo` (`--only hsc`): its fitted parametric scene,
   the parameters the demo holds while sampling held fixed, on the real data; chains
   start at draws of the Laplace approximation at the fit (see `starts`). 100 warmup steps and 400
   draws per chain: numpyro's run takes many minutes here.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")
# A fresh persistent compilation cache (see `scarlet_like._cache`) for this run, set before scarlet_like
# is imported: numbers do not depend on what an earlier run left there.
os.environ.setdefault("SCARLET_LIKE_CACHE", tempfile.mkdtemp(prefix="bench_sample_cache_"))

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
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


def hsc_scene() -> tuple[Any, Any]:
    """The demo's model of the bundled HSC blend, fitted, with the parameters the demo holds while
    sampling held fixed (`demo.held_parameters`): what `python -m scarlet_like demo` samples."""
    from scarlet_like import demo

    data = sl.datasets.hsc_cosmos()
    observation = data.observation(name="HSC")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fit's notes on bounds and priors, which the demo prints
        result = sl.fit(demo.build_scene(data, observation), observation, progress=False)
        held = demo.held_parameters(result, observation)
    return (sl.fix(result.model, held) if held else result.model), observation


MODELS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "schools": eight_schools,
    "scene": small_scene,
    "hsc": hsc_scene,
}
# (warmup steps, draws) per chain: the scene's gradient costs ~100x more than the schools'. 1000 draws
# of the scene rather than 400: with 400, min bulk ESS was 380-460 for the dense mass matrix and R-hat
# up to 1.019 (1.029 for numpyro), too few draws to tell whether R-hat <= 1.01.
STEPS = {"schools": (500, 1000), "scene": (200, 1000), "hsc": (100, 400)}
# Run without `--only`: the HSC blend's numpyro runs take half an hour per call, so it is asked for by name
DEFAULT_MODELS = ("schools", "scene")
# Warmup steps of the `laplace` sampler: fewer than 20 adapt the step size alone (`sl.sample`), keeping
# the Laplace covariance as the mass matrix. Measured on the scene (2 runs each, 400 draws): 19 steps
# gave min bulk ESS 517-701 for 18 500-22 200 gradient evaluations; 50 steps (a slow window replacing
# the covariance by an estimate from 38 draws) 427-461 for 19 500-21 400.
LAPLACE_WARMUP = 19
# The models whose chains start at the posterior mode, where a Laplace approximation makes sense
HAS_MODE = {"scene", "hsc"}
LABELS = {
    "schools": "eight schools, non-centred (10 entries)",
    "scene": "small scene: 2 Gaussian galaxies, 2 bands, 16x16 px (14 entries)",
    "hsc": "the demo's HSC blend: 7 sources, 5 bands, 58x48 px (69 entries)",
}

# ----------------------------------------------------------------------------------------------
# The samplers: each `run(key, init, problem)` returns the draws after warmup, the leapfrog steps of
# every step (warmup included) and the divergences
# ----------------------------------------------------------------------------------------------

Run = Callable[[jax.Array, jax.Array, Any], dict]


def starts(name: str, model: Any, likelihood: Any, seed: int = 0) -> jax.Array:
    """One start per chain, a little apart around the model's values (the same for every sampler).

    On the HSC blend, draws of the Laplace approximation at the fit instead: its data pin some entries
    down far more tightly (the Laplace standard deviations of the unconstrained entries run from 5.5e-4,
    a bright galaxy's log-flux, median 0.025), and a step of 0.1 in every entry starts the chains 3e4 to
    2e5 below the mode's log density (Laplace draws: about 30 below). From such starts our first run had
    not finished its 500 steps per chain after 14 minutes; from the fit, 200 steps took 2."""
    if name == "hsc":
        approximation = sl.laplace(model, likelihood, fit=False)
        return approximation.sample(jax.random.key(seed), CHAINS, flat=True).astype(approximation.x.dtype)
    density = sl.LogDensity(model, likelihood)
    noise = np.random.default_rng(seed).normal(0.0, 0.1, (CHAINS, density.size))
    return jnp.asarray(np.asarray(density.x0) + noise, density.x0.dtype)


def ours(warmup: int, draws: int, chain_method: str, mass_matrix: str, laplace: bool = False) -> Run:
    def run(key: jax.Array, init: jax.Array, problem: tuple[Any, Any]) -> dict:
        model, likelihood = problem
        start = sl.laplace(model, likelihood, fit=False) if laplace else init
        posterior = sl.sample(
            model,
            likelihood,
            key=key,
            init=start,
            num_warmup=warmup,
            num_samples=draws,
            num_chains=CHAINS,
            progress=False,
            chain_method=chain_method,
            mass_matrix=mass_matrix,
        )
        return {
            "samples": posterior.samples,
            "steps": posterior.num_integration_steps,
            "warmup steps": posterior.warmup_integration_steps,
            "divergences": posterior.divergences,
        }

    return run


def numpyro(warmup: int, draws: int) -> Run:
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
        # Collect from the first warmup step, to count the warmup's leapfrog steps too: the same single
        # loop `run` compiles anyway, only its collection starts earlier (numpyro has no public switch
        # for it: `MCMC.warmup(collect_warmup=True)` then `run` would compile two loops).
        mcmc._set_collection_params(0, warmup + draws, warmup + draws)
        with jax.numpy_dtype_promotion("standard"):
            mcmc.run(key, init_params=init, extra_fields=("num_steps", "diverging"))
        extra = mcmc.get_extra_fields(group_by_chain=True)
        return {
            "samples": mcmc.get_samples(group_by_chain=True)[:, warmup:],
            "steps": extra["num_steps"],
            "warmup steps": None,
            "divergences": extra["diverging"][:, warmup:],
        }

    return run


# name: (factory of `run` from (warmup, draws), whether it takes the density (numpyro) rather than
# (model, likelihood), whether it can run inside `jax.jit`)
SAMPLERS: dict[str, tuple[Callable[[int, int], Run], bool, bool]] = {
    "vectorized": (lambda w, d: ours(w, d, "vectorized", "diagonal"), False, True),
    "sequential": (lambda w, d: ours(w, d, "sequential", "diagonal"), False, True),
    "dense": (lambda w, d: ours(w, d, "sequential", "dense"), False, True),
    "laplace": (
        lambda w, d: ours(min(w, LAPLACE_WARMUP), d, "sequential", "dense", laplace=True),
        False,
        False,
    ),
    "numpyro": (numpyro, True, True),
}
DEFAULT_SAMPLERS = ("vectorized", "sequential", "dense", "laplace", "numpyro")


def compiled(run: Run, key: jax.Array, init: jax.Array, problem: Any) -> Run:
    """`run` compiled as a whole with `jax.jit`, its problem's arrays as arguments (not constants)."""
    arrays, static = eqx.partition(problem, eqx.is_array)
    whole = jax.jit(lambda key, init, arrays: run(key, init, eqx.combine(arrays, static)))
    executable = whole.lower(key, init, arrays).compile()
    return lambda key, init, problem: executable(key, init, eqx.partition(problem, eqx.is_array)[0])


def timed(run: Run, key: jax.Array, init: jax.Array, problem: Any) -> dict:
    wall = time.perf_counter()
    out = jax.block_until_ready(run(key, init, problem))
    wall = time.perf_counter() - wall
    stats = _diagnostics(np.asarray(out["samples"], np.float64))
    gradients = int(np.asarray(out["steps"], np.int64).sum())
    if out["warmup steps"] is not None:
        gradients += int(np.asarray(out["warmup steps"], np.int64).sum())
    return {
        "seconds": wall,
        "ess": float(np.nanmin(stats["ess_bulk"])),
        "r_hat": float(np.nanmax(stats["r_hat"])),
        "gradients": gradients,
        "divergences": int(np.asarray(out["divergences"]).sum()),
    }


def problem_for(sampler: str, model: Any, likelihood: Any) -> Any:
    return sl.LogDensity(model, likelihood) if SAMPLERS[sampler][1] else (model, likelihood)


def cold(name: str, sampler: str, warmup: int, draws: int) -> dict:
    """The first call of `sampler` in a fresh process with an empty compilation cache (run in a child)."""
    env = dict(os.environ, SCARLET_LIKE_CACHE=tempfile.mkdtemp(prefix="bench_sample_cold_"))
    arguments = ["--cold-child", sampler, "--only", name, "--steps", f"{warmup},{draws}"]
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *arguments], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold run of {sampler} on {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_child(name: str, sampler: str, warmup: int, draws: int) -> None:
    model, likelihood = MODELS[name]()
    init = starts(name, model, likelihood)
    run = SAMPLERS[sampler][0](warmup, draws)
    print(json.dumps(timed(run, jax.random.key(0), init, problem_for(sampler, model, likelihood))))


def compare(
    name: str,
    samplers: tuple[str, ...],
    warmup: int,
    draws: int,
    rounds: int,
    cold_rounds: int,
    cold_only: bool = False,
) -> dict[str, Any]:
    """Per sampler: first calls in fresh processes (compilation included), warm runs as a user calls them
    again, and warm runs of the whole run under `jax.jit` (compiled once: the sampler's own speed); only
    the first calls with `cold_only`."""
    out: dict[str, Any] = {sampler: {"cold": [], "warm": [], "jit warm": []} for sampler in samplers}
    for _ in range(cold_rounds):
        for sampler in samplers:
            out[sampler]["cold"].append(cold(name, sampler, warmup, draws))
    if not cold_only:
        in_process(out, name, samplers, warmup, draws, rounds)
    for entry in out.values():
        entry["summary"] = summarise(entry)
    return out


def in_process(
    out: dict[str, Any], name: str, samplers: tuple[str, ...], warmup: int, draws: int, rounds: int
) -> None:
    """The warm and jit runs of `compare`, in this process."""
    model, likelihood = MODELS[name]()
    init = starts(name, model, likelihood)
    plain = {sampler: SAMPLERS[sampler][0](warmup, draws) for sampler in samplers}
    problems = {sampler: problem_for(sampler, model, likelihood) for sampler in samplers}
    jitted = {}
    for sampler, run in plain.items():
        timed(run, jax.random.key(0), init, problems[sampler])  # the first call in this process
        if SAMPLERS[sampler][2]:
            begin = time.perf_counter()
            jitted[sampler] = compiled(run, jax.random.key(0), init, problems[sampler])
            out[sampler]["jit compile seconds"] = time.perf_counter() - begin
    for index in range(rounds):
        key = jax.random.key(index + 1)
        for sampler in plain:
            out[sampler]["warm"].append(timed(plain[sampler], key, init, problems[sampler]))
            if sampler in jitted:
                out[sampler]["jit warm"].append(timed(jitted[sampler], key, init, problems[sampler]))


def summarise(entry: dict[str, Any]) -> dict[str, float]:
    """The numbers reported for one sampler, from its runs."""
    summary: dict[str, float] = {"jit compile seconds": entry.get("jit compile seconds", np.nan)}
    for kind in ("cold", "warm", "jit warm"):
        runs = entry[kind] or [{"seconds": np.nan, "ess": np.nan}]
        summary[f"{kind} seconds"] = statistics.median(r["seconds"] for r in runs)
        summary[f"ESS/s {kind}"] = statistics.median(r["ess"] / r["seconds"] for r in runs)
    # the statistics of the draws, over every run made (cold, warm, jit: each a new key)
    runs = entry["cold"] + entry["warm"] + entry["jit warm"]
    summary["min bulk ESS"] = statistics.median(r["ess"] for r in runs)
    summary["max R-hat"] = max(r["r_hat"] for r in runs)
    summary["gradients"] = statistics.median(r["gradients"] for r in runs)
    summary["ESS per 1000 gradients"] = statistics.median(1e3 * r["ess"] / r["gradients"] for r in runs)
    timing = entry["jit warm"] or entry["warm"] or entry["cold"]
    summary["us per gradient"] = statistics.median(1e6 * r["seconds"] / r["gradients"] for r in timing)
    summary["divergences"] = statistics.median(r["divergences"] for r in runs)
    return summary


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

COLUMNS = (
    ("cold s", "cold seconds", "11.2f"),
    ("warm s", "warm seconds", "11.2f"),
    ("jit comp s", "jit compile seconds", "11.2f"),
    ("jit s", "jit warm seconds", "11.2f"),
    ("min ESS", "min bulk ESS", "11.0f"),
    ("max R-hat", "max R-hat", "11.3f"),
    ("ESS/s cold", "ESS/s cold", "11.1f"),
    ("ESS/s warm", "ESS/s warm", "11.1f"),
    ("ESS/s jit", "ESS/s jit warm", "11.1f"),
    ("grads", "gradients", "11.0f"),
    ("ESS/kgrad", "ESS per 1000 gradients", "11.1f"),
    ("us/grad", "us per gradient", "11.1f"),
    ("divergent", "divergences", "11.0f"),
)
RATIOS = ("ESS/s cold", "ESS/s warm", "ESS/s jit warm", "ESS per 1000 gradients")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=tuple(MODELS))
    parser.add_argument("--rounds", type=int, default=2, help="warm rounds (median reported)")
    parser.add_argument("--cold-rounds", type=int, default=1, help="fresh processes per sampler")
    parser.add_argument("--quick", action="store_true", help="half the steps, 1 warm round")
    parser.add_argument(
        "--samplers", default=",".join(DEFAULT_SAMPLERS), help=f"any of {', '.join(SAMPLERS)}"
    )
    parser.add_argument(
        "--cold-only", action="store_true", help="first calls in fresh processes only (no warm, no jit)"
    )
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--steps", help=argparse.SUPPRESS)  # "warmup,draws", for the cold children
    parser.add_argument("--cold-child", choices=tuple(SAMPLERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        warmup, draws = map(int, args.steps.split(","))
        cold_child(args.only, args.cold_child, warmup, draws)
        return
    if args.quick:
        args.rounds = 1
    samplers = tuple(args.samplers.split(","))
    unknown = [sampler for sampler in samplers if sampler not in SAMPLERS]
    if unknown:
        parser.error(f"unknown samplers {unknown}; choose among {', '.join(SAMPLERS)}")

    started = datetime.datetime.now()
    print(f"{started:%Y-%m-%d %H:%M}  commit {commit()}  {machine()}")
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{CHAINS} chains, median of {args.rounds} warm rounds and {args.cold_rounds} cold processes")
    report: dict[str, Any] = {"date": f"{started:%Y-%m-%d}", "commit": commit(), "machine": machine()}
    for name in (args.only,) if args.only else DEFAULT_MODELS:
        warmup, draws = (steps // 2 if args.quick else steps for steps in STEPS[name])
        these = tuple(sampler for sampler in samplers if sampler != "laplace" or name in HAS_MODE)
        numbers = compare(name, these, warmup, draws, args.rounds, args.cold_rounds, args.cold_only)
        report[name] = numbers
        print(f"\n{LABELS[name]}: {CHAINS} chains x ({warmup} warmup steps + {draws} draws)")
        if "laplace" in these:
            print(f"  (laplace: {min(warmup, LAPLACE_WARMUP)} warmup steps)")
        print(f"  {'':11}" + "".join(f"{label:>11}" for label, _, _ in COLUMNS))
        for sampler, entry in numbers.items():
            s = entry["summary"]
            print(f"  {sampler:11}" + "".join(f"{s[key]:{spec}}" for _, key, spec in COLUMNS))
        if "numpyro" in numbers:
            theirs = numbers["numpyro"]["summary"]
            for sampler in these:
                if sampler == "numpyro":
                    continue
                mine = numbers[sampler]["summary"]
                ratios = {key: mine[key] / theirs[key] for key in RATIOS}
                numbers[sampler]["ratios"] = ratios
                print(
                    f"  {sampler} / numpyro: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
                    + f" (max R-hat {mine['max R-hat']:.3f}, numpyro {theirs['max R-hat']:.3f})"
                )
    print(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1, default=float)


if __name__ == "__main__":
    main()

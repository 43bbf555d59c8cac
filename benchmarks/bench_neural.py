"""Benchmark: NUTS on one free-form galaxy under the learned prior, ESS per gradient evaluation.

Run from the repository root:

    python benchmarks/bench_neural.py                 # 2 chains, 300 warmup + 300 draws per prior
    python benchmarks/bench_neural.py --quick         # 100 + 100

One Sersic galaxy (n 1.5, r_half 2.5 px, g = (0.2, -0.1)) with three knots, 3 bands of 25 x 25 pixels,
Gaussian PSF, noise sigma 1 (total S/N about 150). The recipe of `sl.init.freeform`: a parametric fit,
the galaxy made free-form (11 x 11 image, monotonic by its constraint, centre fixed), a MAP fit, then
`sl.sample` started at the fit, with either prior: the hand-made `FreeFormPrior` (symmetry 1) or the
shipped flow (`sl.galaxy_flow_prior`). Reported per prior: the adapted step size, the mean leapfrog steps
per draw, the smallest and the median bulk ESS over the flat vector's entries, and the ESS per gradient
evaluation (min ESS / leapfrog steps of the kept draws; warmup's steps not counted).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from numpyro.diagnostics import effective_sample_size

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import commit, machine  # noqa: E402

import scarlet_like as sl  # noqa: E402

BANDS = ("g", "r", "i")


def blend() -> tuple[sl.Observation, sl.Scene]:
    psf = sl.GaussianPSF(np.array([1.1, 1.0, 0.9], np.float32))
    empty = sl.Observation(np.zeros((3, 25, 25), np.float32), psf=psf, channels=BANDS)
    frame = sl.Frame.from_observations(empty)
    with sl.Scene(frame) as truth:
        sl.Source((12.0, 12.0), np.array([400.0, 600.0, 800.0]), sl.SersicMorphology(1.5, 2.5, (0.2, -0.1)))
        for y, x in ((10.0, 14.0), (14.5, 10.5), (13.0, 15.0)):
            sl.Source((y, x), np.array([40.0, 30.0, 20.0]), sl.GaussianMorphology(0.7))
    model = np.asarray(empty.render(truth))
    data = model + np.random.default_rng(1).normal(0.0, 1.0, model.shape)
    observation = sl.Observation(
        data.astype(np.float32), weights=np.ones_like(data, np.float32), psf=psf, channels=BANDS
    )
    with sl.Scene(frame) as start:
        sl.Source(
            sl.Parameter(np.array([12.0, 12.0], np.float32)),
            sl.Parameter(np.array([300.0, 300.0, 300.0], np.float32), constraint=sl.constraints.positive()),
            sl.SersicMorphology(
                sl.Parameter(2.0, constraint=sl.constraints.interval(0.5, 6.0)),
                sl.Parameter(2.0, constraint=sl.constraints.positive()),
                sl.Parameter(np.zeros(2, np.float32), constraint=sl.constraints.unit_disk()),
            ),
        )
    return observation, start


def run(prior: str, warmup: int, draws: int, chains: int) -> dict[str, float]:
    observation, start = blend()
    parametric = sl.fit(start, observation, progress=False).model
    # the flow alone: sl.init.freeform would otherwise add the symmetry penalty to it
    options = {"prior": sl.galaxy_flow_prior, "symmetry": 0.0} if prior.startswith("neural") else {}
    free = sl.init.freeform_scene(parametric, observation, side=11, fix_center=True, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sl.FitWarning)
        fitted = sl.fit(free, observation, progress=False, max_steps=3000)
    began = time.perf_counter()
    # "neural+laplace": the chains start at draws of the Laplace approximation, whose covariance is
    # the first (dense) inverse mass matrix
    init = sl.laplace(fitted.model, observation, fit=False) if prior == "neural+laplace" else fitted
    posterior = sl.sample(
        fitted.model,
        observation,
        init=init,
        mass_matrix="dense" if prior == "neural+laplace" else "auto",
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        key=jax.random.key(0),
        progress=False,
    )
    seconds = time.perf_counter() - began
    ess = np.asarray(effective_sample_size(np.asarray(posterior.samples)))
    steps = int(np.sum(np.asarray(posterior.num_integration_steps)))
    return {
        "entries": float(ess.size),
        "step size": float(np.mean(np.asarray(posterior.step_size))),
        "leapfrog steps per draw": steps / (chains * draws),
        "min ESS": float(ess.min()),
        "median ESS": float(np.median(ess)),
        "min ESS per gradient": float(ess.min()) / steps,
        "median ESS per gradient": float(np.median(ess)) / steps,
        "divergences": float(np.sum(np.asarray(posterior.divergences))),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--priors", nargs="+", default=["hand-made", "neural", "neural+laplace"])
    args = parser.parse_args()
    warmup = draws = 100 if args.quick else 300
    print(f"commit {commit()}  {machine()}  {warmup} warmup + {draws} draws x {args.chains} chains")
    for prior in args.priors:
        numbers = run(prior, warmup, draws, args.chains)
        print(f"  {prior:9} " + "  ".join(f"{k} {v:.4g}" for k, v in numbers.items()), flush=True)


if __name__ == "__main__":
    main()

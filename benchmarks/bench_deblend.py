"""Benchmark: deblending simulated bulge + disk blends, fluxes and centroids against their truth.

Run from the repository root:

    python benchmarks/bench_deblend.py                       # sersic on 40 blends x 2 PSF sets
    python benchmarks/bench_deblend.py --quick               # 4 blends of one structure, ~1 minute
    python benchmarks/bench_deblend.py --method sersic --method oracle --json out.json
    python benchmarks/bench_deblend.py --psf band --blends 10 --difficulty hard
    SCARLET2_PYTHON=/work/venv-s2/bin/python python benchmarks/bench_deblend.py --method scarlet2
    BENCH_FLOW=my_flow.eqx python benchmarks/bench_deblend.py --method freeform_neural_sym  # a new flow

The blends (`deblend_sims.py`): 2-4 galaxies, each a red bulge (de Vaucouleurs or Sersic n 3-4) and
a bluer exponential disk with offset centres, star-forming knots (`galsim.RandomKnots`, bluer still)
in about half the disks, a star in about a third of the blends; 6 bands, Gaussian noise, drawn with
GalSim through a different Moffat PSF per band (`--psf band`) or one for all bands (`--psf single`),
with effective PSF images for the observation. Truth per object and band from its isolated render.
`--difficulty hard` draws fainter galaxies, closer together, with more knots and more offset bulges.

Per method and PSF set it reports, over galaxy-bands, the median and 90th percentile of the relative
flux error |f_fit - f_true| / f_true, where both fluxes are sums over the cutout of the object drawn
alone (the fit's object rendered through the observation, the truth through GalSim); over galaxies,
the centroid error (pixels) between the first moments of those band-summed images; the failures
(blends whose fit stopped on a non-finite value, did not converge, or gave a non-finite flux); and
the wall time of building the scenes and of fitting (compilation included).

Methods (`--method NAME`, repeatable):

- `sersic`: today's baseline. One `SersicMorphology` per galaxy (n from 1.5 in (0.5, 6), r_half and
  ellipticity from `sl.init.moments` with the other objects as neighbours) and one `PointSource` per
  star, at the TRUE positions (a Normal prior of 1 px); galaxy spectra start from the sum of the data
  in a 9 x 9 box, stars' from `sl.init.pixel_spectrum`. Blends of one structure are fitted together
  by `sl.fit_many` with `sl.fit`'s defaults.
- `oracle`: not a deblender but the floor the noise leaves: the objects' TRUE isolated images, only
  their amplitude per band fitted to the data by linear least squares.
- `scarlet2`: scarlet2's documented quick-start recipe (free-form morphologies started from Gaussian
  moments), at the true positions. Never a dependency: it runs where `import scarlet2` works, or in
  the interpreter named by `$SCARLET2_PYTHON` (a venv of its own with scarlet2 and galsim).

A new method is a `Method` added to `METHODS`: a `build_scene(blend, observation) -> scene`, fitted
by `fit_scenes` (`sl.fit_many` per structure) as `sersic` is, or by its own `fit(scenes,
observations) -> results` (anything with `model`, `converged`, `nonfinite` and `steps`, as
`sl.FitResult` has: a multi-start fit, say); or a `run(blends) -> (outcomes, seconds)` of its own.
`build_scene` may return `(scene, groups)` where `groups[k]` lists the indices of the scene's
sources that make truth object `k` (default: source `k` is object `k`): a galaxy modelled as
several sources, or a detection list that does not follow the truth's order.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import itertools
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deblend_sims import BANDS, Blend, simulate_blend, structure  # noqa: E402

#: Side of the box whose data sum starts a galaxy's spectrum in `sersic`.
START_BOX = 9


# ----------------------------------------------------------------------------------------------
# What a method returns, and how it is scored
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """A method's result on one blend: per truth object, its flux per band and centroid.

    `fluxes` `(K, C)` and `centers` `(K, 2)` are measured as the truth is: sums and first moments of
    each object's image alone on the cutout, through the observation. `failed` says why the fit
    failed (`""` if it did not); `steps` the optimizer steps.
    """

    fluxes: np.ndarray
    centers: np.ndarray
    failed: str = ""
    steps: int = 0
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: `(K, 2)` ellipticity of each object's band-summed image (see `image_shape`), where measured
    shapes: np.ndarray | None = None


def image_shape(images: np.ndarray) -> np.ndarray:
    """Ellipticity `(e1, e2) = (Ixx - Iyy, 2 Ixy) / (Ixx + Iyy)` of an object's band-summed image
    `(C, H, W)`, from its unweighted second moments about its centroid (noise-free images only)."""
    total = np.asarray(images, dtype=np.float64).sum(axis=0)
    y, x = np.indices(total.shape, dtype=np.float64)
    weight = total.sum()
    cy, cx = (total * y).sum() / weight, (total * x).sum() / weight
    ixx = (total * (x - cx) ** 2).sum() / weight
    iyy = (total * (y - cy) ** 2).sum() / weight
    ixy = (total * (x - cx) * (y - cy)).sum() / weight
    return np.array([ixx - iyy, 2 * ixy]) / (ixx + iyy)


def image_measure(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fluxes `(C,)` and centroid `(y, x)` of an object's image `(C, H, W)` (first moment, all bands)."""
    images = np.asarray(images, dtype=np.float64)
    total = images.sum(axis=0)
    y, x = np.indices(total.shape, dtype=np.float64)
    weight = total.sum()
    centre = np.array([(total * y).sum(), (total * x).sum()]) / weight if weight != 0 else np.full(2, np.nan)
    return images.sum(axis=(-2, -1)), centre


def score(blends: Sequence[Blend], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Median and 90th percentile flux and centroid errors over galaxy-bands and galaxies; failures."""
    flux_errors, centroid_errors, star_errors, knotty, shape_errors = [], [], [], [], []
    failures = {}
    for blend, outcome in zip(blends, outcomes, strict=True):
        if outcome.failed:
            failures[blend.name] = outcome.failed
        for k, kind in enumerate(blend.kinds):
            errors = np.abs(outcome.fluxes[k] - blend.fluxes[k]) / blend.fluxes[k]
            if kind == "galaxy":
                flux_errors.append(errors)
                knotty.append(blend.components[k]["knots"] > 0)
                centroid_errors.append(float(np.hypot(*(outcome.centers[k] - blend.centers[k]))))
                if outcome.shapes is not None:
                    truth = image_shape(blend.isolated[k])
                    shape_errors.append(float(np.hypot(*(outcome.shapes[k] - truth))))
            else:
                star_errors.extend(errors)
    per_band = np.where(np.isfinite(flux_errors), flux_errors, np.inf)  # (galaxies, C)
    knotty = np.asarray(knotty)
    flux_errors = np.ravel(flux_errors)
    centroid_errors = np.asarray(centroid_errors)
    # a non-finite error counts as infinitely wrong, so that it shows in the percentiles
    flux_finite = np.where(np.isfinite(flux_errors), flux_errors, np.inf)
    centroid_finite = np.where(np.isfinite(centroid_errors), centroid_errors, np.inf)
    return {
        "blends": len(blends),
        "galaxy-bands": int(flux_errors.size),
        "flux error median": float(np.median(flux_finite)),
        "flux error p90": float(np.percentile(flux_finite, 90)),
        "flux error mean": float(np.mean(flux_finite)),
        "centroid error median": float(np.median(centroid_finite)),
        "centroid error p90": float(np.percentile(centroid_finite, 90)),
        # |e_fit - e_true| of the band-summed images' second-moment ellipticities
        "shape error median": float(np.median(np.where(np.isfinite(shape_errors), shape_errors, np.inf)))
        if shape_errors
        else None,
        "flux error median per band": dict(zip(BANDS, np.median(per_band, axis=0).tolist(), strict=True)),
        "flux error median, galaxies with knots": float(np.median(per_band[knotty]))
        if knotty.any()
        else None,
        "flux error median, galaxies without knots": float(np.median(per_band[~knotty]))
        if (~knotty).any()
        else None,
        "star-bands": len(star_errors),
        "star flux error median": float(np.median(np.where(np.isfinite(star_errors), star_errors, np.inf)))
        if star_errors
        else float("nan"),
        "non-finite galaxy-bands": int(np.sum(~np.isfinite(flux_errors))),
        "failures": len(failures),
        "failed blends": failures,
    }


# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Method:
    """How a method deblends: `build_scene` (fitted by `fit`, default `fit_scenes`), or `run`."""

    description: str
    build_scene: Callable[[Blend, Any], Any] | None = None
    fit: Callable[[Sequence[Any], Sequence[Any]], list[Any]] | None = None
    run: Callable[[Sequence[Blend]], tuple[list[Outcome], dict[str, float]]] | None = None
    fit_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def box_sum(observation: Any, center: np.ndarray, side: int = START_BOX) -> np.ndarray:
    """The data summed over a `side` x `side` box around `center`, per band, floored at one noise sigma."""
    data = np.asarray(observation.data, dtype=np.float64)
    weights = np.asarray(observation.weights, dtype=np.float64)
    row, col = (int(round(float(v))) for v in center)
    half = side // 2
    rows = slice(max(row - half, 0), row + half + 1)
    cols = slice(max(col - half, 0), col + half + 1)
    sums = data[:, rows, cols].sum(axis=(-2, -1))
    noise = 1 / np.sqrt(np.median(weights, axis=(-2, -1)))
    return np.maximum(sums, noise)


def sersic_scene(blend: Blend, observation: Any) -> Any:
    """Today's baseline: one Sersic per galaxy, one point source per star, at the true positions."""
    import jax.numpy as jnp
    import numpyro.distributions as nd

    import scarlet_like as sl

    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        for k, (kind, center) in enumerate(zip(blend.kinds, blend.centers, strict=True)):
            start = jnp.asarray(center, dtype=jnp.float32)
            position = sl.Parameter(start, prior=nd.Normal(start, 1.0).to_event(1))
            if kind == "star":
                spectrum = sl.init.pixel_spectrum(observation, center)
                sl.PointSource(position, sl.Parameter(spectrum, constraint=sl.constraints.positive()))
                continue
            others = np.delete(blend.centers, k, axis=0)
            guess = sl.init.moments(observation, center, neighbors=others)
            sl.Source(
                position,
                sl.Parameter(box_sum(observation, center), constraint=sl.constraints.positive()),
                sl.SersicMorphology(
                    n=sl.Parameter(1.5, constraint=sl.constraints.interval(0.5, 6.0)),
                    r_half=sl.Parameter(
                        np.clip(float(guess.r_half), 0.5, 20.0), constraint=sl.constraints.interval(0.3, 30.0)
                    ),
                    ellipticity=sl.Parameter(guess.ellipticity, constraint=sl.constraints.unit_disk()),
                ),
            )
    return scene


#: `max_shift` of `sl.init.scene` for the methods whose centres stay within reach ("_reach"): pixels
REACH = 4.0


def auto_scene(blend: Blend, observation: Any, max_shift: float | None = None) -> Any:
    """The automatic start: `sl.init.scene` at the true positions (point or extended from the data)."""
    import scarlet_like as sl

    return sl.init.scene(observation, np.asarray(blend.centers, dtype=np.float64), max_shift=max_shift)


def bulge_disk_scene(blend: Blend, observation: Any, max_shift: float | None = None, **options: Any) -> Any:
    """`sl.init.scene`, then every extended source split by `sl.init.bulge_disk` (with `options`)."""
    import scarlet_like as sl

    return sl.init.bulge_disk_scene(auto_scene(blend, observation, max_shift), **options)


def fit_with_starts(scenes: Sequence[Any], observations: Sequence[Any]) -> list[Any]:
    """Each blend from 4 starts (`sl.fit_starts`, scatter 0.5), the best kept."""
    import warnings

    import scarlet_like as sl

    results = []
    for scene, observation in zip(scenes, observations, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sl.FitWarning)
            results.append(sl.fit_starts(scene, observation, starts=4, progress=False).best)
    return results


def fit_and_choose(scenes: Sequence[Any], observations: Sequence[Any]) -> list[Any]:
    """Fit, then let `sl.choose_sources` (BIC) pick point, Sersic or bulge + disk per source, refit."""
    import warnings

    import scarlet_like as sl

    results = []
    for scene, observation in zip(scenes, observations, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sl.FitWarning)
            first = sl.fit(scene, observation, progress=False)
            choice = sl.choose_sources(first.model, observation, candidates=sl.with_bulge_disk)
            results.append(sl.fit(choice.model, observation, progress=False))
    return results


def fit_then_split(scenes: Sequence[Any], observations: Sequence[Any], **options: Any) -> list[Any]:
    """Fit the one-profile scenes (batched), split every galaxy by `sl.init.bulge_disk_scene` (with
    `options`) from its fitted values, and fit again (batched)."""
    import scarlet_like as sl

    first = fit_scenes(scenes, observations, progress=False)
    split = [sl.init.bulge_disk_scene(result.model, **options) for result in first]
    return fit_scenes(split, observations, progress=False)


def fit_freeform(
    scenes: Sequence[Any],
    observations: Sequence[Any],
    *,
    monotonicity: float = 1.0,
    symmetry: float = 1.0,
    sparsity: float = 0.0,
    fix_center: bool = False,
    monotonic: bool = True,
    prior: str | None = None,
    strength: float = 1.0,
) -> list[Any]:
    """Fit the parametric scenes (batched), make every galaxy free-form from its fit
    (`sl.init.freeform_scene` with these prior strengths, the image monotonic by its constraint or by
    the penalty) and fit again, blend by blend (image sizes differ from blend to blend, so each
    free-form scene compiles its own fit)."""
    import warnings

    import scarlet_like as sl

    results = []
    parametric = fit_scenes(scenes, observations, progress=False)
    for first, observation in zip(parametric, observations, strict=True):
        free = sl.init.freeform_scene(
            first.model,
            observation,
            monotonicity=monotonicity,
            symmetry=symmetry,
            sparsity=sparsity,
            fix_center=fix_center,
            monotonic=monotonic,
            prior=functools.partial(_flow_prior, strength=strength) if prior == "neural" else None,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sl.FitWarning)
            results.append(sl.fit(free, observation, progress=False, max_steps=FREEFORM_STEPS))
    return results


def _flow_prior(shape: tuple[int, int], strength: float = 1.0) -> Any:
    """`sl.galaxy_flow_prior` with the shipped flow, or the one in the file `$BENCH_FLOW` (written by
    `python -m scarlet_like train-prior`): to measure a new flow before shipping it."""
    import scarlet_like as sl

    path = os.environ.get("BENCH_FLOW")
    flow, config = sl.neural.load_galaxy_flow(path) if path else (None, None)
    return sl.galaxy_flow_prior(shape, flow, config, strength=strength)


#: free-form fits take thousands of steps (4000-5000 on the HSC blend)
FREEFORM_STEPS = 5000


def oracle_run(blends: Sequence[Blend]) -> tuple[list[Outcome], dict[str, float]]:
    """The true isolated images, scaled per band by linear least squares against the noisy data."""
    start = time.perf_counter()
    outcomes = []
    for blend in blends:
        amplitudes = np.empty((len(blend.kinds), len(BANDS)))
        for band in range(len(BANDS)):
            templates = blend.isolated[:, band].reshape(len(blend.kinds), -1).T
            amplitudes[:, band] = np.linalg.lstsq(templates, blend.images[band].ravel(), rcond=None)[0]
        images = blend.isolated * amplitudes[:, :, None, None]
        measured = [image_measure(image) for image in images]
        outcomes.append(Outcome(np.array([m[0] for m in measured]), np.array([m[1] for m in measured])))
    return outcomes, {"build": 0.0, "fit": time.perf_counter() - start}


def _scarlet2_here(blends: Sequence[Blend]) -> tuple[list[Outcome], dict[str, float]]:
    """scarlet2's documented recipe (`scarlet2_recipe.py`), one blend after the other, centres at the true
    positions, as for `sersic`."""
    import jax.numpy as jnp
    import scarlet2 as s2
    import scarlet2_recipe

    s2.set_validation(False)
    outcomes, build, fit = [], 0.0, 0.0
    for blend in blends:
        start = time.perf_counter()
        weights = np.broadcast_to((1 / blend.variance)[:, None, None], blend.images.shape)
        observation = s2.Observation(
            jnp.asarray(blend.images, dtype=jnp.float32),
            jnp.asarray(weights, dtype=jnp.float32),
            psf=s2.ArrayPSF(jnp.asarray(blend.psfs, dtype=jnp.float32)),
            channels=list(BANDS),
        )
        centers = [jnp.asarray(center, dtype=jnp.float32) for center in blend.centers]
        scene = scarlet2_recipe.scene(observation, centers, blend.kinds)
        built = time.perf_counter()
        fitted = scarlet2_recipe.fit(scene, observation)
        images = [np.asarray(observation.render(fitted.evaluate_source(source))) for source in fitted.sources]
        done = time.perf_counter()
        build, fit = build + built - start, fit + done - built
        measured = [image_measure(image) for image in images]
        fluxes = np.array([m[0] for m in measured])
        centers = np.array([m[1] for m in measured])
        finite = np.all(np.isfinite(fluxes)) and np.all(np.isfinite(centers))
        outcomes.append(Outcome(fluxes, centers, "" if finite else "NaN flux or centroid", 200))
    return outcomes, {"build": build, "fit": fit}


def scarlet2_run(blends: Sequence[Blend]) -> tuple[list[Outcome], dict[str, float]]:
    """scarlet2 where it is installed; else in the Python named by `$SCARLET2_PYTHON` (its own venv)."""
    try:
        import scarlet2  # noqa: F401
    except ImportError:
        pass
    else:
        return _scarlet2_here(blends)
    python = os.environ.get("SCARLET2_PYTHON")
    if not python:
        raise SystemExit(
            "--method scarlet2: scarlet2 is not installed here; install it in a venv of its own "
            "(python -m venv /work/venv-s2; /work/venv-s2/bin/pip install scarlet2 galsim) and set "
            "SCARLET2_PYTHON=/work/venv-s2/bin/python"
        )
    with tempfile.TemporaryDirectory() as folder:
        blend_file, result_file = os.path.join(folder, "blends.pkl"), os.path.join(folder, "out.pkl")
        with open(blend_file, "wb") as file:
            pickle.dump(list(blends), file)
        subprocess.run(
            [python, os.path.abspath(__file__), "--scarlet2-worker", blend_file, result_file], check=True
        )
        with open(result_file, "rb") as file:
            outcomes, seconds = pickle.load(file)
        return [Outcome(**outcome) for outcome in outcomes], seconds


METHODS: dict[str, Method] = {
    "sersic": Method(
        "single Sersic per galaxy + point source per star, box-sum spectra, sl.init.moments shapes, "
        "true positions",
        build_scene=sersic_scene,
    ),
    "auto": Method(
        "sl.init.scene at the true positions (point or Sersic from the data)", build_scene=auto_scene
    ),
    "bulge_disk": Method(
        "sl.init.scene, every extended source split by sl.init.bulge_disk (exponential disk + de "
        "Vaucouleurs bulge in units of the disk's radius: smaller, centred within it)",
        build_scene=bulge_disk_scene,
    ),
    "bulge_disk_free": Method(
        "as bulge_disk, the bulge's size and offset free on their own (size_ratio=None: LogNormal prior "
        "on its r_half, Normal(0, 1 px) on its offset), as before 2026-12-06",
        build_scene=functools.partial(bulge_disk_scene, size_ratio=None),
    ),
    "bulge_disk_fitted": Method(
        "sl.init.scene fitted, then every extended source split by sl.init.bulge_disk from its fitted "
        "values, fitted again (the documented recipe)",
        build_scene=auto_scene,
        fit=fit_then_split,
    ),
    "auto_starts": Method(
        "sl.init.scene, fitted from 4 starts by sl.fit_starts", build_scene=auto_scene, fit=fit_with_starts
    ),
    "auto_choice": Method(
        "sl.init.scene, fitted, then sl.choose_sources (BIC) among point, Sersic and bulge + disk per "
        "source, refitted",
        build_scene=auto_scene,
        fit=fit_and_choose,
    ),
    "freeform": Method(
        "sl.init.scene fitted, then every galaxy free-form (sl.init.freeform_scene: monotonic images, "
        "symmetry prior of strength 1) and fitted again",
        build_scene=auto_scene,
        fit=fit_freeform,
    ),
    "freeform_fixed": Method(
        "as freeform, each galaxy's centre held where the parametric fit put it (fix_center=True)",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, fix_center=True),
    ),
    "auto_reach": Method(
        f"as auto, every centre within {REACH:g} px of its detection and half-way to its neighbours "
        "(sl.init.scene's max_shift)",
        build_scene=functools.partial(auto_scene, max_shift=REACH),
    ),
    "bulge_disk_reach": Method(
        "as bulge_disk, the centres within reach as for auto_reach",
        build_scene=functools.partial(bulge_disk_scene, max_shift=REACH),
    ),
    "freeform_reach": Method(
        "as freeform_fixed, from the parametric fit of auto_reach (the HSC blend's recipe in docs/astro.md)",
        build_scene=functools.partial(auto_scene, max_shift=REACH),
        fit=functools.partial(fit_freeform, fix_center=True),
    ),
    "freeform_reach_soft": Method(
        "as freeform_reach, monotonic by the prior's penalty (strength 1) rather than the constraint",
        build_scene=functools.partial(auto_scene, max_shift=REACH),
        fit=functools.partial(fit_freeform, fix_center=True, monotonic=False),
    ),
    "freeform_neural": Method(
        "as freeform_fixed, the learned prior (sl.galaxy_flow_prior) in place of the symmetry prior, "
        "the images monotonic by their constraint",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, fix_center=True, symmetry=0.0, prior="neural"),
    ),
    "freeform_neural_sym": Method(
        "as freeform_fixed, the learned prior added to the symmetry prior, the images monotonic by "
        "their constraint",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, fix_center=True, prior="neural"),
    ),
    "freeform_neural_sym_half": Method(
        "as freeform_neural_sym, the learned prior at half strength",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, fix_center=True, prior="neural", strength=0.5),
    ),
    "freeform_neural_sym_double": Method(
        "as freeform_neural_sym, the learned prior at twice its strength",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, fix_center=True, prior="neural", strength=2.0),
    ),
    "freeform_neural_only": Method(
        "as freeform_fixed, the learned prior alone (no monotonicity constraint, no symmetry prior)",
        build_scene=auto_scene,
        fit=functools.partial(
            fit_freeform, fix_center=True, monotonic=False, monotonicity=0.0, symmetry=0.0, prior="neural"
        ),
    ),
    "freeform_fixed_noprior": Method(
        "as freeform_fixed, without a shape prior (all strengths 0, no monotonicity constraint)",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, fix_center=True, monotonicity=0.0, symmetry=0.0, monotonic=False),
    ),
    "freeform_noprior": Method(
        "as freeform, without a shape prior (all strengths 0, monotonic neither by constraint nor penalty)",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, monotonicity=0.0, symmetry=0.0, monotonic=False),
    ),
    "freeform_monotonic": Method(
        "as freeform, the monotonicity constraint only",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, symmetry=0.0),
    ),
    "freeform_symmetric": Method(
        "as freeform, the symmetry prior only",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, monotonicity=0.0, monotonic=False),
    ),
    "freeform_sparse": Method(
        "as freeform, with the starlet sparsity prior (strength 1) as well",
        build_scene=auto_scene,
        fit=functools.partial(fit_freeform, sparsity=1.0),
    ),
    "oracle": Method(
        "true isolated images, amplitudes per band by least squares (the noise floor)", run=oracle_run
    ),
    "scarlet2": Method(
        "scarlet2's documented recipe (free-form morphologies), true positions", run=scarlet2_run
    ),
}


# ----------------------------------------------------------------------------------------------
# Fitting scenes with scarlet_like
# ----------------------------------------------------------------------------------------------


def _structure(scene: Any, observation: Any) -> tuple[Any, ...]:
    """Blends with the same key have models and observations that `sl.fit_many` can stack."""
    import scarlet_like as sl

    psf = getattr(observation.psf, "images", None)
    return (
        tuple(observation.data.shape),
        None if psf is None else tuple(psf.shape),
        tuple(type(source).__name__ for source in scene.sources),
        sl.entry_names(scene),
    )


def fit_scenes(
    scenes: Sequence[Any], observations: Sequence[Any], progress: bool = True, **fit_kwargs: Any
) -> list[Any]:
    """Fit every scene to its observation: `sl.fit_many` per group of blends of one structure."""
    import scarlet_like as sl

    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, (scene, observation) in enumerate(zip(scenes, observations, strict=True)):
        groups.setdefault(_structure(scene, observation), []).append(index)
    results: list[Any] = [None] * len(scenes)
    bar = _bar(len(scenes), progress)
    for members in groups.values():
        try:
            fitted = sl.fit_many(
                [scenes[i] for i in members], [observations[i] for i in members], **fit_kwargs
            )
        except sl.PlateError:
            fitted = [sl.fit(scenes[i], observations[i], progress=False, **fit_kwargs) for i in members]
        for index, result in zip(members, fitted, strict=True):
            results[index] = result
        bar.update(len(members))
    bar.close()
    return results


def _bar(total: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="blends", unit="blend", disable=not progress, leave=False)


def scene_run(
    method: Method, blends: Sequence[Blend], progress: bool = True
) -> tuple[list[Outcome], dict[str, float]]:
    """Build every blend's scene with `method.build_scene`, fit them, and measure each truth object."""
    import scarlet_like as sl

    start = time.perf_counter()
    observations = [blend.observation() for blend in blends]
    scenes, groupings = [], []
    for blend, observation in zip(blends, observations, strict=True):
        built = method.build_scene(blend, observation)
        scene, grouping = (
            built if isinstance(built, tuple) else (built, [[k] for k in range(len(blend.kinds))])
        )
        scenes.append(scene)
        groupings.append(grouping)
    built_at = time.perf_counter()
    if method.fit is not None:
        results = method.fit(scenes, observations)
    else:
        results = fit_scenes(scenes, observations, progress=progress, **method.fit_kwargs)
    fitted_at = time.perf_counter()

    outcomes = []
    for observation, result, grouping in zip(observations, results, groupings, strict=True):
        images = [
            np.asarray(sl.measure.source_image(result.model, i, observation))
            for i in range(len(result.model.sources))
        ]
        measured = [image_measure(sum(images[i] for i in members)) for members in grouping]
        fluxes = np.array([m[0] for m in measured])
        centers = np.array([m[1] for m in measured])
        shapes = np.array([image_shape(sum(images[i] for i in members)) for members in grouping])
        failed = []
        if bool(np.any(np.asarray(result.nonfinite))):
            failed.append("non-finite")
        if not bool(result.converged):
            failed.append("not converged")
        if not (np.all(np.isfinite(fluxes)) and np.all(np.isfinite(centers))):
            failed.append("NaN flux or centroid")
        values = {name: np.asarray(value).tolist() for name, value in sl.get_values(result.model).items()}
        outcomes.append(Outcome(fluxes, centers, ", ".join(failed), int(result.steps), values, shapes))
    structures = len({_structure(scene, obs) for scene, obs in zip(scenes, observations, strict=True)})
    return outcomes, {"build": built_at - start, "fit": fitted_at - built_at, "structures": structures}


def run_method(
    name: str, blends: Sequence[Blend], progress: bool = True
) -> tuple[list[Outcome], dict[str, float]]:
    method = METHODS[name]
    if method.run is not None:
        return method.run(blends)
    return scene_run(method, blends, progress)


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def quick_selection(count: int, seed: int, difficulty: str) -> list[int]:
    """`count` blend indices of the most common structure among the first 40 (one compilation)."""
    structures = [structure(index, seed, difficulty) for index in range(40)]
    common = max(set(structures), key=structures.count)
    return [index for index, structure in enumerate(structures) if structure == common][:count]


def summary_line(name: str, numbers: dict[str, Any]) -> str:
    seconds, n = numbers["seconds"], numbers
    shape = "" if n.get("shape error median") is None else f" | shape median {n['shape error median']:.3f}"
    return (
        f"  {name:10} flux error median {n['flux error median']:.3f}  p90 {n['flux error p90']:.3f}"
        f" | centroid median {n['centroid error median']:.2f} px  p90 {n['centroid error p90']:.2f}"
        f" px{shape} | stars {numbers['star flux error median']:.3f} | failures {numbers['failures']}/"
        f"{numbers['blends']} | build {seconds['build']:.0f} s, fit {seconds['fit']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", action="append", choices=sorted(METHODS), help="default: sersic")
    parser.add_argument("--psf", choices=("band", "single", "both"), default="both")
    parser.add_argument("--difficulty", choices=("standard", "hard", "both"), default="standard")
    parser.add_argument("--blends", type=int, default=40)
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        help="only these blend indices (repeatable; overrides --blends)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 blends of one structure")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--json", help="also write the numbers (and per-blend outcomes) to this file")
    parser.add_argument("--scarlet2-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scarlet2_worker:
        with open(args.scarlet2_worker[0], "rb") as file:
            blends = pickle.load(file)
        with open(args.scarlet2_worker[1], "wb") as file:
            outcomes, seconds = _scarlet2_here(blends)
            pickle.dump(([dataclasses.asdict(outcome) for outcome in outcomes], seconds), file)
        return
    methods = args.method or ["sersic"]
    sets = ("band", "single") if args.psf == "both" else (args.psf,)

    from provenance import commit, machine

    started = datetime.datetime.now(datetime.UTC)
    print(f"{started:%Y-%m-%d %H:%M} UTC  commit {commit()}  {machine()}")
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    difficulties = ("standard", "hard") if args.difficulty == "both" else (args.difficulty,)
    report: dict[str, Any] = {
        "date": f"{started:%Y-%m-%d}",
        "commit": commit(),
        "machine": machine(),
        "seed": args.seed,
        "blends": {},
        "results": {},
    }
    for difficulty, psf in itertools.product(difficulties, sets):
        if args.quick:
            indices = quick_selection(4, args.seed, difficulty)
        else:
            indices = sorted(set(args.only)) if args.only else list(range(args.blends))
        report["blends"][difficulty] = indices
        begin = time.perf_counter()
        blends = [simulate_blend(index, args.seed, psf, difficulty) for index in indices]
        simulated = time.perf_counter() - begin
        galaxies = sum(kind == "galaxy" for blend in blends for kind in blend.kinds)
        stars = sum(kind == "star" for blend in blends for kind in blend.kinds)
        print(
            f"\n{difficulty}, psf={psf}: {len(blends)} blends, {galaxies} galaxies ({galaxies * len(BANDS)} "
            f"galaxy-bands), {stars} stars, simulated in {simulated:.1f} s"
        )
        for name in methods:
            outcomes, seconds = run_method(name, blends, progress=not args.no_progress)
            numbers = score(blends, outcomes)
            numbers["seconds"] = seconds
            numbers["steps median"] = float(np.median([o.steps for o in outcomes]))
            report["results"][f"{name}/{psf}/{difficulty}"] = {
                **numbers,
                "outcomes": [
                    {
                        "blend": b.name,
                        "fluxes": o.fluxes.tolist(),
                        "centers": o.centers.tolist(),
                        "failed": o.failed,
                        "values": o.values,
                    }
                    for b, o in zip(blends, outcomes, strict=True)
                ],
            }
            print(summary_line(name, numbers), flush=True)
            if args.json:  # after every result: a long run that dies later keeps what it measured
                with open(args.json, "w") as file:
                    json.dump(report, file, indent=1)
            for blend_name, why in numbers["failed blends"].items():
                print(f"      {blend_name}: {why}")
    print(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""`python -m scarlet_like demo`: fit and sample the bundled real HSC blend, and show what happened."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import scarlet_like as sl

from .infer.optimize import far_from_normal_priors

__all__ = [
    "OUTPUTS",
    "QUICK_STEPS",
    "at_bound_parameters",
    "build_scene",
    "deblend_freeform",
    "fit_quick",
    "held_parameters",
    "prepare_output",
    "pulled_parameters",
    "quick_scene",
    "run",
]


def build_scene(data: sl.datasets.Blend, observation: sl.Observation) -> sl.Scene:
    """The scene of the demo: [`sl.init.scene`][scarlet_like.init.scene] at the bundled detections.

    One source per detection, a point source or an elliptical Sérsic galaxy as the data say, started
    from the pixels (PSF-corrected spectra, adaptive-moment sizes and shapes), with a Normal prior of
    one pixel on each position around its detection.
    """
    return sl.init.scene(observation, data.centers)


# Steps of the quick free-form fit, in stretches of 25 (fresh curvature and L-BFGS memory at the start of
# each). Measured on the bundled blend, from `quick_scene`: chi^2 per pixel 1.13-1.15 after 200 steps (2.0 s
# of CPU, compiled); in stretches of 100 steps the same fit is at 1.52 after 200 and reaches 1.3 only
# after about 400 (the per-pixel curvature changes fast while the light moves between pixels).
QUICK_STEPS = 200
QUICK_STRETCH = 25


def quick_scene(data: sl.datasets.Blend, observation: sl.Observation) -> sl.Scene:
    """The scene of the quick free-form fit: [`build_scene`][scarlet_like.demo.build_scene]'s sources,
    every galaxy a free-form image that is positive but not held monotonic, spectra rescaled to the data.

    1. [`sl.init.scene`][scarlet_like.init.scene] at the bundled detections, unfitted: point sources
       and Sérsic profiles from the moments.
    2. [`sl.init.freeform_scene`][scarlet_like.init.freeform_scene] with `monotonic=False`: each
       galaxy's light a pixel image started from its profile, under the hand-made prior's
       monotonicity and symmetry penalties (a penalty, not a constraint: a pixel's parameter then
       moves only its own pixel, and the fit needs far fewer steps). This is scarlet2's quick-start
       recipe in kind: free-form positive morphologies from the moments.
    3. [`sl.init.linear_spectra`][scarlet_like.init.linear_spectra]: every spectrum rescaled, channel
       by channel, to the least-squares fit for those images (chi^2 per pixel 179 -> 47 at the start).
    """
    free = sl.init.freeform_scene(build_scene(data, observation), observation, monotonic=False)
    return sl.init.linear_spectra(free, observation)


def fit_quick(
    data: sl.datasets.Blend, observation: sl.Observation, steps: int = QUICK_STEPS, progress: bool = True
) -> tuple[sl.FitResult, dict[str, float]]:
    """The quick free-form fit: [`quick_scene`][scarlet_like.demo.quick_scene] fitted for `steps` steps
    in stretches of `QUICK_STRETCH` steps. It stops at `steps` without converging (the model is good
    before the loss settles); no `FitWarning` is raised for that.

    **Returns:**

    The fit's result and `{"chi2", "seconds", "cpu_seconds", "steps"}`: chi^2 per unmasked pixel value,
    wall and CPU time from scene construction to fitted model, compilation included.
    """
    import warnings

    start, cpu = time.perf_counter(), time.process_time()
    scene = quick_scene(data, observation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sl.FitWarning)
        chunks = max(1, -(-steps // QUICK_STRETCH))
        result = sl.fit(scene, observation, max_steps=steps, chunks=chunks, progress=progress)
    fitted = jax.block_until_ready(result.model)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return result, {
        "chi2": float(observation.goodness_of_fit(fitted)),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "steps": float(result.steps),
    }


def deblend_freeform(
    data: sl.datasets.Blend, observation: sl.Observation, progress: bool = True
) -> tuple[sl.FitResult, dict[str, float]]:
    """The demo's free-form deblending: each source its own object, drawn as a monotonic pixel image.

    1. [`sl.init.scene`][scarlet_like.init.scene] with every centre kept within 4 pixels of its
       detection and never half-way to a neighbour (`max_shift=4.0`), fitted (at most 2000 steps):
       the parametric start. One Sérsic profile cannot draw the bright galaxy (chi^2 per pixel about
       3.8), but no source moves onto another's light.
    2. [`sl.init.freeform_scene`][scarlet_like.init.freeform_scene] of it: every galaxy a monotonic
       free-form image; the centres of the sources with S/N >= 100 may move by 1 pixel, the others
       are held (`center_reach=1.0, center_snr=100.0`); fitted (at most 5000 steps).
    3. [`sl.init.add_residual_sources`][scarlet_like.init.add_residual_sources] adds a source at
       each significant peak of the residual (objects the detection list missed), and the scene is
       fitted again (at most 5000 steps).
    4. [`sl.init.core_scene`][scarlet_like.init.core_scene] gives the sources with S/N >= 300 (the
       bright galaxy) a compact core of their own colour, and the scene is fitted again (at most 5000
       steps): one colour per galaxy leaves its colour gradient in the residual.

    **Returns:**

    The last fit's result, and `{"parametric", "freeform", "residual_sources", "chi2", "seconds",
    "added"}`: the chi^2 per pixel after each stage, the wall time of the four stages (compilation
    included) and the number of sources added.
    """
    import warnings

    start = time.perf_counter()
    with warnings.catch_warnings():
        # the first three fits are starts for the last: that they stop before converging is no news
        warnings.simplefilter("ignore", sl.FitWarning)
        within_reach = sl.init.scene(observation, data.centers, max_shift=4.0)
        parametric = sl.fit(within_reach, observation, max_steps=2000, progress=progress).model
        free = sl.init.freeform_scene(parametric, observation, center_reach=1.0, center_snr=100.0)
        free = sl.fit(free, observation, max_steps=5000, progress=progress).model
        more = sl.init.add_residual_sources(free, observation, max_shift=4.0)
        with_residual_sources = sl.fit(more, observation, max_steps=5000, progress=progress).model
    cored = sl.init.core_scene(with_residual_sources, observation, min_snr=300.0, fraction=0.05)
    result = sl.fit(cored, observation, max_steps=5000, progress=progress)
    fitted = jax.block_until_ready(result.model)
    return result, {
        "parametric": float(observation.goodness_of_fit(parametric)),
        "freeform": float(observation.goodness_of_fit(free)),
        "residual_sources": float(observation.goodness_of_fit(with_residual_sources)),
        "chi2": float(observation.goodness_of_fit(fitted)),
        "seconds": time.perf_counter() - start,
        "added": float(len(more) - len(free)),
    }


def _is_point(source: object) -> bool:
    return isinstance(source, sl.PointSource)


def prepare_output(output: str | Path) -> Path:
    """Create the output folder and check that it can be written to, before any work is done.

    **Arguments:**

    - `output`: the folder (created with its parents if missing).

    **Returns:**

    The folder as a `Path`. Raises `OSError` naming the folder when it cannot be created or written.
    """
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"demo: cannot create the output folder {str(folder)!r}: {error}") from error
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(
            f"demo: the output folder {str(folder)!r} is not a writable folder; pass another --output"
        )
    return folder


# What the demo writes into its output folder (also the text of `--help`).
OUTPUTS = {
    "scarlet_like_demo.png": "data, fitted model and residual (in sigma) side by side, sources numbered",
    "sources.png": "each fitted source on its own, one panel per source, on one colour scale",
    "freeform.png": "data, free-form model and residual: each galaxy a monotonic pixel image",
    "freeform_sources.png": "each source of the free-form model on its own",
    "graph.png": "the model graph (sl.graph): sources, their parameters, constraints and priors",
    "corner.png": "corner plot of the posterior of one galaxy's position and shape (NUTS draws)",
    "trace.png": "trace plot of the same parameters: the draws of each chain in order",
    "rank.png": "rank plot of the same parameters: flat histograms when the chains agree",
    "predictive.png": "data, posterior mean model, its residual and the spread of the model over draws",
    "summary.txt": "the posterior summary table (mean, sd, quantiles, ESS, R-hat of every parameter)",
    "summary.json": "sources, chi2_dof, fit_seconds, sample_seconds, ess_min, rhat_max, divergences, "
    "fitted values and the run's settings",
}
# Written without sampling (`--no-sample`).
FIT_OUTPUTS = ("scarlet_like_demo.png", "sources.png", "graph.png", "summary.json")
# Written by the free-form stage (unless `--no-freeform`).
FREEFORM_OUTPUTS = ("freeform.png", "freeform_sources.png")
# The parameters of a galaxy drawn in the corner, trace and rank plots (those sampled).
GALAXY_PARAMETERS = ("center", "morphology.n", "morphology.r_half", "morphology.ellipticity")
# NUTS run of the demo; see `run` for the time they take.
WARMUP, DRAWS, CHAINS = 100, 100, 4


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a statistic that could not be computed is written `null`."""
    return float(value) if np.isfinite(value) else None


def _save(figure: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _write_graph(scene: sl.Scene, folder: Path) -> Path:
    """The model graph as a PNG; as DOT text (`graph.gv`) when Graphviz's `dot` program is missing."""
    import graphviz

    drawing = sl.graph(scene, name="demo scene")
    try:
        picture = folder / "graph.png"
        picture.write_bytes(drawing.pipe(format="png"))
        return picture
    except graphviz.ExecutableNotFound:
        text = folder / "graph.gv"
        text.write_text(drawing.source)
        return text


def at_bound_parameters(result: sl.FitResult, observation: sl.Observation) -> list[str]:
    """Names (as in `sl.get_values`) of the parameters with an entry the fit left at a bound of its
    constraint.

    Such a parameter sits far out in the unconstrained space the sampler moves in, where the
    posterior is flat along it and NUTS runs its longest trajectories; the demo holds it fixed at the
    fitted value while sampling, so the posterior drawn is conditional on those values.
    """
    # `at_bounds` follows the entries of the fit's log density (which may order them unlike
    # `sl.entry_names`, e.g. sources of one kind stacked)
    entries = sl.LogDensity(result.model, observation).names
    at = [name for name, flag in zip(entries, np.asarray(result.at_bounds), strict=True) if flag]
    return [
        name for name in sl.get_values(result.model) if any(e == name or e.startswith(f"{name}[") for e in at)
    ]


def pulled_parameters(scene: sl.Scene) -> list[str]:
    """Names (as in `sl.get_values`) of the centre and shape parameters of the sources whose centre
    the fit pulled more than 5 prior standard deviations from its detection (the fit warns of them).

    Such a source has been taken onto a neighbour's light as a further component of it, and its shape
    is then barely told by the data. Measured on the bundled blend: which optimum the fit reaches
    depends on the machine's rounding, and from one of them (sources 4 and 5 pulled onto the bright
    galaxy) the demo's NUTS chains drew source 5's Sérsic index anywhere in (0.5, 6) and disagreed
    (R-hat 22, bulk ESS 6 over 4 x 100 draws); with the pulled sources' centres and shapes held at
    their fitted values, the same run gave R-hat 1.014 and ESS 322 (from another optimum, with
    sources 4, 5 and 6 pulled: 1.011 and 354). The demo holds them so, and samples their spectra: the
    posterior is conditional on where the fit put them.
    """
    prefixes = [
        name.removesuffix("center")
        for name in far_from_normal_priors(scene)
        if name.startswith("sources[") and name.endswith("].center")
    ]
    return [
        name
        for name in sl.get_values(scene)
        if any(name.startswith(prefix) for prefix in prefixes) and not name.endswith(".spectrum")
    ]


def held_parameters(result: sl.FitResult, observation: sl.Observation) -> list[str]:
    """Names (as in `sl.get_values`) of the parameters the demo holds at their fitted values while
    sampling: those of [`at_bound_parameters`][scarlet_like.demo.at_bound_parameters], then those of
    [`pulled_parameters`][scarlet_like.demo.pulled_parameters] not among them.

    Measured on the bundled blend, from six optima (the fit from its own start, and from five starts
    moved by 1e-3 in every unconstrained entry; 4 chains x (100 + 100)): with only the parameters at a
    bound held, three of the six runs failed (R-hat 22, 2.8 and 1.20, bulk ESS 6 to 16); with both kinds
    held, every run mixed (R-hat 1.013 to 1.024, bulk ESS 197 to 322).
    """
    bound = at_bound_parameters(result, observation)
    return bound + [name for name in pulled_parameters(result.model) if name not in bound]


def shown_galaxy(scene: sl.Scene, held: list[str]) -> tuple[int, list[str]]:
    """The galaxy whose posterior the corner, trace and rank plots show: the first extended source with
    the most of `GALAXY_PARAMETERS` sampled (not `held`), and those parameters' names."""
    best: tuple[int, list[str]] = (-1, [])
    for index, source in enumerate(scene.sources):
        if _is_point(source):
            continue
        names = [f"sources[{index}].{name}" for name in GALAXY_PARAMETERS]
        names = [name for name in names if name not in held]
        if len(names) > len(best[1]):
            best = (index, names)
    return best


def run(
    steps: int = 2000,
    progress: bool = True,
    output: str | Path | None = "scarlet_like-demo",
    report: bool = True,
    *,
    sample: bool = True,
    quick: bool = True,
    freeform: bool = True,
    num_warmup: int = WARMUP,
    num_samples: int = DRAWS,
    num_chains: int = CHAINS,
    seed: int = 0,
) -> dict[str, float]:
    """Fit the bundled HSC blend, sample its posterior with NUTS, write figures and print a report.

    **Arguments:**

    - `steps`: the most optimizer steps.
    - `progress`: show the progress bars.
    - `output`: folder for the results (see `OUTPUTS`), created if missing and checked for writing
      before the fit starts; `None` to write nothing.
    - `report`: print what was done.
    - `sample`: after the fit, draw from the posterior with NUTS (`sl.sample`), starting at the fit,
      with some parameters held at their fitted values (see `held_parameters`).
    - `quick`: after the parametric fit, the quick free-form fit
      ([`fit_quick`][scarlet_like.demo.fit_quick]: a few seconds, chi^2 per pixel about 1.15).
    - `freeform`: after the parametric fit, deblend with free-form sources
      ([`deblend_freeform`][scarlet_like.demo.deblend_freeform]; about 5 minutes on two CPU cores).
    - `num_warmup`, `num_samples`, `num_chains`: the NUTS run (the defaults take about two minutes
      on two CPU cores, compilation included).
    - `seed`: the random seed of the sampler.

    **Returns:**

    `{"chi2_start", "chi2_end", "seconds", "steps"}` (chi^2 per unmasked pixel value; `seconds` from
    scene construction to fitted model, compilation included); with `quick`: `quick_chi2`,
    `quick_seconds`, `quick_cpu_seconds`, `quick_steps`; with `freeform`: `freeform_chi2`,
    `freeform_seconds`, `freeform_at_bounds` (how many entries the free-form fit left at a bound); with
    `sample`: `sample_seconds`, `ess_min`, `rhat_max`, `divergences`.
    """
    # a fit must never be lost to an output folder that could have been checked first
    folder = prepare_output(output) if output is not None else None
    data = sl.datasets.hsc_cosmos()
    observation = data.observation(name="HSC")
    start = time.perf_counter()
    scene = build_scene(data, observation)
    result = sl.fit(scene, observation, max_steps=steps, progress=progress)
    fitted = jax.block_until_ready(result.model)
    seconds = time.perf_counter() - start
    chi2_start = float(observation.goodness_of_fit(scene))
    chi2_end = float(observation.goodness_of_fit(fitted))
    summary = {"chi2_start": chi2_start, "chi2_end": chi2_end, "seconds": seconds, "steps": int(result.steps)}

    # the fit's figures first: a sampling run stopped early leaves them written
    written: list[Path] = []
    if folder is not None:
        import matplotlib

        matplotlib.use("Agg")
        from . import plot

        _save(plot.scene(fitted, observation), folder / "scarlet_like_demo.png")
        _save(plot.sources(fitted, observation), folder / "sources.png")
        written += [folder / "scarlet_like_demo.png", folder / "sources.png", _write_graph(fitted, folder)]

    quick_summary: dict[str, float] = {}
    if quick:
        _, quick_summary = fit_quick(data, observation, progress=progress)
        summary.update({f"quick_{key}": value for key, value in quick_summary.items()})

    free_result: sl.FitResult | None = None
    free_summary: dict[str, float] = {}
    free_bounds: list[str] = []
    if freeform:
        free_result, free_summary = deblend_freeform(data, observation, progress=progress)
        free_bounds = at_bound_parameters(free_result, observation)
        summary.update(
            freeform_chi2=free_summary["chi2"],
            freeform_seconds=free_summary["seconds"],
            freeform_at_bounds=int(np.asarray(free_result.at_bounds).sum()),
        )
        if folder is not None:
            _save(plot.scene(free_result.model, observation), folder / "freeform.png")
            _save(plot.sources(free_result.model, observation), folder / "freeform_sources.png")
            written += [folder / name for name in FREEFORM_OUTPUTS]

    posterior, held = None, []
    if sample:
        held = held_parameters(result, observation)
        start = time.perf_counter()
        posterior = sl.sample(
            sl.fix(fitted, held) if held else fitted,
            observation,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            key=jax.random.key(seed),
            progress=progress,
        )
        posterior = jax.block_until_ready(posterior)
        sample_seconds = time.perf_counter() - start
        table = posterior.summary(as_dict=True)
        ess = np.array([row["ess_bulk"] for row in table.values()])
        r_hat = np.array([row["r_hat"] for row in table.values()])
        summary.update(
            sample_seconds=sample_seconds,
            ess_min=float(np.nanmin(ess)) if np.isfinite(ess).any() else float("nan"),
            rhat_max=float(np.nanmax(r_hat)) if np.isfinite(r_hat).any() else float("nan"),
            divergences=int(np.asarray(posterior.divergences).sum()),
        )

    if folder is not None:
        record = {
            "sources": len(scene),
            "chi2_dof": chi2_end,
            "chi2_start": chi2_start,
            "fit_seconds": seconds,
            "fit_steps": int(result.steps),
            "converged": bool(result.converged),
            "values": {name: np.asarray(value).tolist() for name, value in sl.get_values(fitted).items()},
        }
        if quick_summary:
            record["quick"] = {
                "chi2_dof": quick_summary["chi2"],
                "seconds": quick_summary["seconds"],
                "cpu_seconds": quick_summary["cpu_seconds"],
                "steps": int(quick_summary["steps"]),
            }
        if free_result is not None:
            record["freeform"] = {
                "sources": len(free_result.model),
                "chi2_dof": free_summary["chi2"],
                "chi2_parametric_start": free_summary["parametric"],
                "chi2_before_added_sources": free_summary["freeform"],
                "chi2_before_cores": free_summary["residual_sources"],
                "seconds": free_summary["seconds"],
                "steps": int(free_result.steps),
                "converged": bool(free_result.converged),
                "at_bounds": free_bounds,
            }
        if posterior is not None:
            galaxy, chosen = shown_galaxy(fitted, held)
            _save(plot.corner(posterior, chosen), folder / "corner.png")
            _save(plot.trace(posterior, chosen), folder / "trace.png")
            _save(plot.rank(posterior, chosen), folder / "rank.png")
            _save(plot.predictive(posterior, observation), folder / "predictive.png")
            (folder / "summary.txt").write_text(posterior.summary() + "\n")
            written += [folder / name for name in ("corner.png", "trace.png", "rank.png", "predictive.png")]
            written.append(folder / "summary.txt")
            record.update(
                sample_seconds=summary["sample_seconds"],
                ess_min=_finite_or_none(summary["ess_min"]),
                rhat_max=_finite_or_none(summary["rhat_max"]),
                divergences=summary["divergences"],
                num_chains=num_chains,
                num_warmup=num_warmup,
                num_samples=num_samples,
                fixed_for_sampling=held,
                galaxy_shown=galaxy,
            )
        (folder / "summary.json").write_text(json.dumps(record, indent=2))
        written.append(folder / "summary.json")

    if report:
        _report(
            data,
            scene,
            fitted,
            result,
            summary,
            posterior,
            held,
            written,
            (free_result, free_summary, free_bounds),
        )
    return summary


def _report(data, scene, fitted, result, summary, posterior, held, written, free) -> None:
    free_result, free_summary, free_bounds = free
    values = sl.get_values(fitted)
    print(f"scarlet_like {sl.__version__} demo: the real HSC COSMOS blend bundled with the package")
    print(
        f"  data: {len(data.channels)} bands ({' '.join(data.channels)}), {data.images.shape[1]}x"
        f"{data.images.shape[2]} pixels, {int(data.mask.sum())} masked pixel values"
    )
    points = sum(_is_point(source) for source in scene.sources)
    print(
        f"  model (sl.init.scene): {len(scene)} sources ({points} point, {len(scene) - points} elliptical "
        f"Sersic galaxies), {len(sl.entry_names(scene))} free parameters"
    )
    state = "converged" if bool(result.converged) else "stopped"
    print(
        f"  fit: {state} after {int(result.steps)} L-BFGS steps in {summary['seconds']:.1f} s "
        "(scene construction and compilation included)"
    )
    print(f"  chi^2 per pixel: {summary['chi2_start']:.1f} at the start -> {summary['chi2_end']:.3f} fitted")
    bands = " ".join(f"{c:>7}" for c in data.channels)
    print(f"  source   y       x      n    r_half   g1     g2    flux {bands}")
    for index, source in enumerate(fitted.sources):
        prefix = f"sources[{index}]"
        y, x = np.asarray(values[f"{prefix}.center"])
        flux = " ".join(f"{float(f):7.1f}" for f in np.asarray(values[f"{prefix}.spectrum"]))
        if _is_point(source):
            shape = "  (point source)          "
        else:
            n = float(values[f"{prefix}.morphology.n"])
            r_half = float(values[f"{prefix}.morphology.r_half"])
            g1, g2 = np.asarray(values[f"{prefix}.morphology.ellipticity"])
            shape = f"{n:5.2f} {r_half:6.2f} {g1:6.2f} {g2:6.2f}"
        print(f"  {index:>6} {y:6.2f} {x:7.2f} {shape}       {flux}")
    if "quick_chi2" in summary:
        print(
            f"  quick free-form (sl.init.freeform_scene unfitted, not monotonic; sl.init.linear_spectra): "
            f"chi^2 per pixel {summary['quick_chi2']:.3f} after {int(summary['quick_steps'])} steps, "
            f"{summary['quick_seconds']:.1f} s ({summary['quick_cpu_seconds']:.1f} s of CPU, scene "
            "construction and compilation included)"
        )
    if free_result is not None:
        state = "converged" if bool(free_result.converged) else "stopped"
        print(
            f"  free-form (sl.init.freeform_scene, add_residual_sources, core_scene): chi^2 per pixel "
            f"{free_summary['parametric']:.2f} (parametric start, centres within reach) -> "
            f"{free_summary['freeform']:.3f} (free-form) -> {free_summary['residual_sources']:.3f} with "
            f"{int(free_summary['added'])} sources added -> {free_summary['chi2']:.3f} with cores; "
            f"{state} after {int(free_result.steps)} steps, {free_summary['seconds']:.0f} s in all"
        )
        if free_bounds:
            print(f"    left at a bound of their constraint: {', '.join(free_bounds)}")
    if posterior is not None:
        print(
            f"  NUTS: {posterior.num_chains} chains x {posterior.num_draws} draws in "
            f"{summary['sample_seconds']:.1f} s (compilation included); smallest bulk ESS "
            f"{summary['ess_min']:.0f}, largest R-hat {summary['rhat_max']:.3f}, "
            f"{summary['divergences']} divergences"
        )
        pulled = [name for name in pulled_parameters(fitted) if name in held]
        bound = [name for name in held if name not in pulled]
        if bound:
            print(f"    held at their fitted values (at a bound of their constraint): {', '.join(bound)}")
        if pulled:
            print(f"    held at their fitted values (sources pulled onto a neighbour): {', '.join(pulled)}")
    for path in written:
        text = OUTPUTS.get(path.name, "the model graph as DOT text (no Graphviz dot)")
        if path.name == "summary.json" and posterior is None:
            text = "sources, chi2_dof, fit_seconds, fitted values (no sampling)"
        print(f"  wrote {path}: {text}")

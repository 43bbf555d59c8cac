"""`python -m scarlet_like demo`: model the bundled real HSC blend and report what happened."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd

import scarlet_like as sl

__all__ = ["build_scene", "run"]

STAR = 0  # the compact detection at (y, x) = (33, 14)


def build_scene(data: sl.datasets.Blend, observation: sl.Observation) -> sl.Scene:
    """The scene of the demo: a point source for the star, an elliptical Sérsic for each galaxy.

    Spectra start at ten times the data at each detection (about the flux of a compact galaxy there),
    shapes from a round n = 1.5 profile of 2 px; positions carry a Normal prior of one pixel around the
    detection. (Starting from `sl.init` estimates converges to other, worse optima on this blend:
    with single Sérsic profiles its likelihood has several.)
    """
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        for index, center in enumerate(data.centers):
            position = sl.Parameter(center, prior=nd.Normal(jnp.asarray(center), 1.0).to_event(1))
            row, col = (int(round(float(v))) for v in center)
            start = np.clip(data.images[:, row, col], 0.01, None) * 10
            spectrum = sl.Parameter(start, constraint=sl.constraints.positive())
            if index == STAR:
                sl.PointSource(position, spectrum)
                continue
            sl.Source(
                position,
                spectrum,
                sl.SersicMorphology(
                    n=sl.Parameter(1.5, constraint=sl.constraints.interval(0.5, 6.0)),
                    r_half=sl.Parameter(2.0, constraint=sl.constraints.interval(0.3, 30.0)),
                    ellipticity=sl.Parameter(jnp.zeros(2), constraint=sl.constraints.unit_disk()),
                ),
            )
    return scene


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


def run(
    steps: int = 1000,
    progress: bool = True,
    output: str | Path | None = "scarlet_like-demo",
    report: bool = True,
) -> dict[str, float]:
    """Fit the bundled HSC blend and print a report.

    **Arguments:**

    - `steps`: the most optimizer steps.
    - `progress`: show the progress bar.
    - `output`: folder for the results (`scarlet_like_demo.png`, `summary.json`), created if missing
      and checked for writing before the fit starts; `None` to write nothing.
    - `report`: print what was done.

    **Returns:**

    `{"chi2_start", "chi2_end", "seconds", "steps"}` (chi^2 per unmasked pixel value).
    """
    # a fit must never be lost to an output folder that could have been checked first
    folder = prepare_output(output) if output is not None else None
    data = sl.datasets.hsc_cosmos()
    observation = data.observation(name="HSC")
    scene = build_scene(data, observation)
    chi2_start = float(observation.goodness_of_fit(scene))
    start = time.perf_counter()
    result = sl.fit(scene, observation, max_steps=steps, progress=progress)
    seconds = time.perf_counter() - start
    fitted = result.model
    chi2_end = float(observation.goodness_of_fit(fitted))
    summary = {"chi2_start": chi2_start, "chi2_end": chi2_end, "seconds": seconds, "steps": int(result.steps)}

    picture = None
    if folder is not None:
        import matplotlib

        matplotlib.use("Agg")
        from . import plot

        figure = plot.scene(fitted, observation)
        picture = folder / "scarlet_like_demo.png"
        figure.savefig(picture, dpi=110, bbox_inches="tight")
        record = {
            "sources": len(scene),
            "chi2_dof": chi2_end,
            "chi2_start": chi2_start,
            "fit_seconds": seconds,
            "fit_steps": int(result.steps),
            "converged": bool(result.converged),
            "values": {name: np.asarray(value).tolist() for name, value in sl.get_values(fitted).items()},
        }
        (folder / "summary.json").write_text(json.dumps(record, indent=2))

    if report:
        values = sl.get_values(fitted)
        print(f"scarlet_like {sl.__version__} demo: the real HSC COSMOS blend bundled with the package")
        print(
            f"  data: {len(data.channels)} bands ({' '.join(data.channels)}), {data.images.shape[1]}x"
            f"{data.images.shape[2]} pixels, {int(data.mask.sum())} masked pixel values"
        )
        print(
            f"  model: {len(scene)} sources (1 point source, {len(scene) - 1} elliptical Sersic galaxies), "
            f"{len(sl.entry_names(scene))} free parameters"
        )
        state = "converged" if bool(result.converged) else "stopped"
        print(f"  fit: {state} after {int(result.steps)} L-BFGS steps in {seconds:.1f} s (with compilation)")
        print(f"  chi^2 per pixel: {chi2_start:.1f} at the start -> {chi2_end:.3f} fitted")
        bands = " ".join(f"{c:>7}" for c in data.channels)
        print(f"  source   y       x      n    r_half   g1     g2    flux {bands}")
        for index in range(len(scene)):
            prefix = f"sources[{index}]"
            y, x = np.asarray(values[f"{prefix}.center"])
            flux = " ".join(f"{float(f):7.1f}" for f in np.asarray(values[f"{prefix}.spectrum"]))
            if index == STAR:
                shape = "  (point source)          "
            else:
                n = float(values[f"{prefix}.morphology.n"])
                r_half = float(values[f"{prefix}.morphology.r_half"])
                g1, g2 = np.asarray(values[f"{prefix}.morphology.ellipticity"])
                shape = f"{n:5.2f} {r_half:6.2f} {g1:6.2f} {g2:6.2f}"
            print(f"  {index:>6} {y:6.2f} {x:7.2f} {shape}       {flux}")
        if picture is not None:
            print(f"  picture: data, model and residuals in {picture}")
    return summary

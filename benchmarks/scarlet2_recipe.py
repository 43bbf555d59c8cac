"""scarlet2's documented quick-start recipe (as of 0.5.1), shared by the benchmarks that run it side by side
(`bench_deblend.py --method scarlet2`, `scarlet2_hsc.py`). Imports nothing of scarlet_like: it runs in the
interpreter of scarlet2's own venv, and the cold-start anchor times it in a fresh process.

The recipe: the model frame from the observation (scarlet2's default model PSF); each galaxy a free-form
`Source` started by `init.from_gaussian_moments(obs, center, min_corr=0.99)` (`init.pixel_spectrum` and
`init.compact_morphology` where that raises), each star a `PointSource` from `init.pixel_spectrum`; spectra
positive with steps of 5 % of their value, morphologies positive with step 0.1, stars' centres free with
step 0.1; then `scene.fit(obs, max_iter=200, e_rel=1e-4)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

MAX_ITER = 200


def scene(observation: Any, centers: Sequence[Any], kinds: Sequence[str] | None = None) -> Any:
    """The recipe's scene with its parameters, one source per centre (`kinds`: "star" or anything else
    per centre; default: all galaxies)."""
    import scarlet2 as s2
    from numpyro.distributions import constraints

    kinds = ["galaxy"] * len(centers) if kinds is None else list(kinds)
    frame = s2.Frame.from_observations(observation)
    with s2.Scene(frame) as built:
        for kind, center in zip(kinds, centers, strict=True):
            if kind == "star":
                s2.PointSource(center, s2.init.pixel_spectrum(observation, center))
                continue
            try:
                spectrum, morphology = s2.init.from_gaussian_moments(observation, center, min_corr=0.99)
            except ValueError:
                spectrum = s2.init.pixel_spectrum(observation, center)
                morphology = s2.init.compact_morphology()
            s2.Source(center, spectrum, morphology)
    step = partial(s2.relative_step, factor=0.05)
    with s2.Parameters(built):
        for index, (kind, source) in enumerate(zip(kinds, built.sources, strict=True)):
            s2.Parameter(
                source.spectrum, name=f"spectrum:{index}", constraint=constraints.positive, stepsize=step
            )
            if kind == "star":
                s2.Parameter(source.center, name=f"center:{index}", stepsize=0.1)
            else:
                s2.Parameter(
                    source.morphology, name=f"morph:{index}", constraint=constraints.positive, stepsize=0.1
                )
    return built


def fit(built: Any, observation: Any) -> Any:
    """The recipe's fit of `scene(...)`."""
    return built.fit(observation, max_iter=MAX_ITER, e_rel=1e-4, progress_bar=False)

"""Measurements on models: fluxes, centroids and second moments of rendered images.

These functions work on noiseless model images (a scene rendered in the model frame or through an
observation), so they use plain, unweighted moments. They are written in `jax.numpy`: they run under
`jit` and `grad`, and can define a [`scarlet_like.Derived`][] quantity.

```python
image = sl.measure.source_image(fitted.model, 2, obs)   # source 2 alone, as the observation sees it
sl.measure.moments(image).sigma                         # its size, PSF included
```

Conventions are those of the rest of the package: positions `(y, x)` in pixels with pixel centres at
integer indices, ellipticities as reduced shears `(g1, g2)` (GalSim's convention: `g1 > 0` stretches
along x).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from .._programs import stored_jit
from ..core.constraints import float_array
from ..core.layout import unstacked_lists
from ..core.tree import resolve
from ..infer.laplace import Laplace
from ..infer.sample import Posterior
from .components import MultiComponentSource
from .frame import FrameError, _sky_jacobian
from .scene import Scene, Source
from .spectrum import is_time_dependent

__all__ = [
    "Moments",
    "SkyUncertainty",
    "flux",
    "centroid",
    "moments",
    "sky_center",
    "sky_center_uncertainty",
    "source_image",
]

# Half-light radius of a circular Gaussian in units of its standard deviation, sqrt(2 ln 2).
GAUSSIAN_R_HALF_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))


class Moments(NamedTuple):
    """Flux, position, size and shape of a light profile.

    **Fields:**

    - `flux`: total flux, `(C,)` per channel (a scalar for a single image).
    - `centroid`: `(y, x)` in pixels.
    - `covariance`: the `2 x 2` second-moment matrix in `(y, x)` order, in pixels squared.
    - `sigma`: size, `det(covariance)^(1/4)`: the standard deviation of the Gaussian with these
      moments before shearing (the `sigma` of a [`scarlet_like.GaussianMorphology`][]).
    - `r_half`: the half-light radius of that Gaussian, `sqrt(2 ln 2) sigma` (the `r_half` of a
      [`scarlet_like.SersicMorphology`][] with `n = 0.5`).
    - `ellipticity`: reduced shear `(g1, g2)` of the covariance, `|g| < 1`.

    `sl.measure.moments` fills it with the moments of an image as it is (PSF and pixel included);
    `sl.init.moments` with PSF-corrected estimates from data.
    """

    flux: Float[Array, "*C"]
    centroid: Float[Array, "2"]
    covariance: Float[Array, "2 2"]
    sigma: Float[Array, ""]
    r_half: Float[Array, ""]
    ellipticity: Float[Array, "2"]


# run eagerly while models are built (PSF transforms, measured shapes): one stored program, not a
# dozen small ones each lowered again by every fresh process
@functools.partial(stored_jit, inline=True)
def reduced_shear(covariance: Float[ArrayLike, "*batch 2 2"]) -> Float[Array, "*batch 2"]:
    """The reduced shear `(g1, g2)` of a second-moment matrix in `(y, x)` order.

    **Arguments:**

    - `covariance`: symmetric positive (semi-)definite matrices, `(..., 2, 2)`.

    **Returns:**

    `(..., 2)`: `g = e / (1 + sqrt(1 - |e|^2))` with the distortion
    `e = ((Ixx - Iyy), 2 Ixy) / (Ixx + Iyy)`, so that a circular profile sheared by GalSim's
    `shear(g1=, g2=)` gives back `(g1, g2)`.
    """
    covariance = jnp.asarray(covariance)
    yy, xx, xy = covariance[..., 0, 0], covariance[..., 1, 1], covariance[..., 0, 1]
    trace = xx + yy
    safe_trace = jnp.where(trace > 0, trace, jnp.ones_like(trace))
    distortion = jnp.stack([(xx - yy) / safe_trace, 2 * xy / safe_trace], axis=-1)
    distortion = jnp.where((trace > 0)[..., None], distortion, jnp.zeros_like(distortion))
    squared = jnp.sum(distortion**2, axis=-1, keepdims=True)
    # |e| can reach 1 only for a degenerate (line-like) covariance; the clip keeps the root real there.
    return distortion / (1 + jnp.sqrt(jnp.clip(1 - squared, 0.0, 1.0)))


def _as_float_image(image: ArrayLike) -> Array:
    array = float_array(image)
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or a cube (C, H, W), got shape {array.shape}")
    return array


def flux(
    source_or_image: Source | MultiComponentSource | Real[ArrayLike, "*C H W"],
    time: Real[ArrayLike, "*T"] | None = None,
) -> Float[Array, "*T channels"] | Float[Array, ""]:
    """Total flux of a source or an image.

    **Arguments:**

    - `source_or_image`: a [`scarlet_like.Source`][] or [`scarlet_like.MultiComponentSource`][]
      (with Parameters or resolved), or an image
      `(H, W)` or cube `(C, H, W)`.
    - `time`: for a source whose spectrum changes with time (a light curve, an
      [`scarlet_like.PerEpochSpectrum`][]), when: one time, or an array of times (the light curve at
      each); required for such sources, ignored by others.

    **Returns:**

    For a source, its spectrum (morphologies integrate to 1, so that is its total flux per channel,
    all of it, also the part outside any image): `(C,)`, or `(*T, C)` for an array of times `(*T,)`
    (a static source's spectrum repeated); for an image, the sum of its pixels per channel (`(C,)`,
    or a scalar for `(H, W)`).

    ```python
    times = jnp.linspace(0.0, 30.0, 61)
    curve = sl.measure.flux(fitted.model.sources[1], time=times)  # (61, C): the light curve
    ```
    """
    if isinstance(source_or_image, (Source, MultiComponentSource)):
        # a source of several components: the sum of theirs
        spectrum = resolve(source_or_image).spectrum
        if time is None:
            if is_time_dependent(spectrum):
                raise ValueError(
                    f"measure.flux: the source's spectrum ({type(spectrum).__name__}) changes with time: "
                    "give the time (or an array of times) to measure it at, sl.measure.flux(source, time=t)"
                )
            return jnp.asarray(spectrum)
        times = jnp.asarray(time, dtype=jnp.float32)
        if is_time_dependent(spectrum):
            fluxes = jax.vmap(spectrum)(times.reshape(-1))
        else:
            fluxes = jnp.broadcast_to(jnp.asarray(spectrum), (times.size, jnp.shape(spectrum)[-1]))
        return fluxes.reshape(times.shape + fluxes.shape[-1:])
    return jnp.sum(_as_float_image(source_or_image), axis=(-2, -1))


def _pixel_grid(image: Array) -> tuple[Array, Array]:
    height, width = image.shape[-2:]
    return jnp.arange(height, dtype=image.dtype)[:, None], jnp.arange(width, dtype=image.dtype)[None, :]


def centroid(image: Real[ArrayLike, "*C H W"]) -> Float[Array, "2"]:
    """Flux-weighted mean position `(y, x)` of an image (of all channels together, for a cube).

    **Arguments:**

    - `image`: `(H, W)` or `(C, H, W)`, pixel centres at integer indices.

    **Returns:**

    `(y, x)` in pixels.
    """
    image = _as_float_image(image)
    summed = image.sum(axis=0) if image.ndim == 3 else image
    y, x = _pixel_grid(summed)
    total = summed.sum()
    return jnp.stack([jnp.sum(summed * y), jnp.sum(summed * x)]) / total


def moments(image: Real[ArrayLike, "*C H W"]) -> Moments:
    """Unweighted moments of a (noiseless) model image.

    **Arguments:**

    - `image`: `(H, W)` or `(C, H, W)`; the position, covariance and shape are those of the sum over
      channels.

    **Returns:**

    A [`scarlet_like.measure.Moments`][]. These are the moments of the image as it is: for a
    Gaussian of standard deviation `sigma` rendered through a Gaussian PSF `psf` and integrated over
    pixels, `covariance` is `(sigma^2 + psf^2 + 1/12) I` (round case). Moments of an image that is cut
    off by its edges are those of what is inside.
    """
    image = _as_float_image(image)
    total_flux = image.sum(axis=(-2, -1))
    summed = image.sum(axis=0) if image.ndim == 3 else image
    y, x = _pixel_grid(summed)
    total = summed.sum()
    center = jnp.stack([jnp.sum(summed * y), jnp.sum(summed * x)]) / total
    dy, dx = y - center[0], x - center[1]
    yy = jnp.sum(summed * dy * dy) / total
    xx = jnp.sum(summed * dx * dx) / total
    xy = jnp.sum(summed * dy * dx) / total
    covariance = jnp.stack([jnp.stack([yy, xy]), jnp.stack([xy, xx])])
    determinant = yy * xx - xy * xy
    sigma = jnp.sqrt(jnp.sqrt(jnp.maximum(determinant, jnp.zeros_like(determinant))))
    return Moments(
        flux=total_flux,
        centroid=center,
        covariance=covariance,
        sigma=sigma,
        r_half=sigma * GAUSSIAN_R_HALF_PER_SIGMA,
        ellipticity=reduced_shear(covariance),
    )


def source_image(
    scene: Scene, index: int, observation: Any = None, time: Real[ArrayLike, ""] | None = None
) -> Float[Array, "C H W"]:
    """One source of a scene rendered alone.

    **Arguments:**

    - `scene`: a [`scarlet_like.Scene`][] (with Parameters or resolved, e.g. a fitted model).
    - `index`: which source, as in `scene.sources[index]` (negative indices count from the end).
    - `observation`: if given, render through it ([`scarlet_like.Observation.render`][]: its PSF,
      pixel grid and channels, and its time); otherwise in the model frame at the model PSF, as
      `scene()` does.
    - `time`: without an observation, the time at which a source whose spectrum changes with time is
      drawn (as `scene(time=t)`); an observation brings its own time.

    **Returns:**

    `(C, H, W)`. The images of all sources add up to the scene's.
    """
    _check_source_index("source_image", scene, index)
    # Resolving first keeps the values of parameters shared with the other sources. `tree_at` makes
    # the one-source scene without `Scene.__init__`'s checks on concrete values, so this also runs
    # under `jit`.
    resolved = resolve(scene)
    alone = eqx.tree_at(lambda s: s.sources, resolved, [resolved.sources[index]])
    return alone(time) if observation is None else observation.render(alone)


def _check_source_index(who: str, scene: Any, index: int) -> None:
    if not isinstance(scene, Scene):
        raise TypeError(f"{who}: expected an sl.Scene, got {type(scene).__name__}")
    count = len(scene.sources)
    if not -count <= index < count:
        raise IndexError(f"{who}: the scene has {count} source(s), there is no sources[{index}]")


def _source_center(who: str, scene: Scene, index: int) -> Array:
    """The `(y, x)` centre of `scene.sources[index]` (resolved), with a named error if it has none."""
    source = unstacked_lists(resolve(scene)).sources[index]
    center = getattr(source, "center", None)
    if center is None:
        raise TypeError(
            f"{who}: sources[{index}] ({type(source).__name__}) has no `center` field; sky positions are "
            "those of sources placed at a centre (sl.Source, sl.PointSource, sl.MultiComponentSource)"
        )
    return jnp.asarray(center)


def _require_wcs(who: str, scene: Scene) -> None:
    if scene.frame.wcs is None:
        raise FrameError(
            f"{who}: the scene's frame has no WCS, so its pixels have no place on the sky; build the frame "
            "with one (`sl.Frame(shape, wcs=...)`, or `sl.Frame.from_observations` of observations made "
            "with `wcs=`)"
        )


def sky_center(scene: Scene, index: int) -> Any:
    """Where a source of a scene is on the sky.

    **Arguments:**

    - `scene`: a [`scarlet_like.Scene`][] whose frame has a WCS (with Parameters or resolved, e.g. a
      fitted model).
    - `index`: which source, as in `scene.sources[index]`.

    **Returns:**

    The astropy `SkyCoord` of the source's `center` (its current value: the fitted one for a fitted
    model), through the frame's WCS ([`scarlet_like.Frame.to_sky`][]). Unlike the other measurements,
    this one runs outside `jit`: astropy works on concrete numbers.
    """
    _check_source_index("sky_center", scene, index)
    _require_wcs("sky_center", scene)
    return scene.frame.to_sky(np.asarray(_source_center("sky_center", scene, index), dtype=np.float64))


class SkyUncertainty(NamedTuple):
    """How well a source's position on the sky is known.

    Returned by [`scarlet_like.measure.sky_center_uncertainty`][].

    **Fields:**

    - `center`: the position, an astropy `SkyCoord` (the mode for a Laplace approximation, the
      posterior mean of the pixel position for draws).
    - `ra_cos_dec`: standard deviation of the offset along right ascension, `Δα cos δ`, in arcsec
      (an astropy `Quantity`): the east-west distance on the sky, not the change of the RA coordinate.
    - `dec`: standard deviation of the declination, in arcsec.
    - `covariance`: `(2, 2)` covariance of `(Δα cos δ, Δδ)` in arcsec², astropy `Quantity`.
    - `pixel_covariance`: `(2, 2)` covariance of the centre `(y, x)` in model-frame pixels², a numpy
      array.
    """

    center: Any
    ra_cos_dec: Any
    dec: Any
    covariance: Any
    pixel_covariance: np.ndarray


def sky_center_uncertainty(result: Laplace | Posterior, index: int) -> SkyUncertainty:
    """How well a source's position on the sky is known, from a Laplace approximation or posterior draws.

    **Arguments:**

    - `result`: a [`scarlet_like.Laplace`][] (from [`scarlet_like.laplace`][]) or a
      [`scarlet_like.Posterior`][] (from [`scarlet_like.sample`][]) of a scene whose frame has a WCS.
    - `index`: which source, as in `scene.sources[index]`.

    **Returns:**

    A [`scarlet_like.measure.SkyUncertainty`][]. The covariance of the centre `(y, x)` in pixels
    comes from the Laplace covariance (the delta method through the constraints, and through an
    `sl.Derived` centre) or from the draws; it is then carried onto the sky with the WCS's local
    Jacobian at the centre, so that a rotated WCS and a flipped RA axis give the right east-west and
    north-south widths. A centre that is fixed has zero uncertainty.
    """
    from astropy import units

    if isinstance(result, Laplace):
        scene, who = result.mode, "sky_center_uncertainty"
        _check_source_index(who, unstacked_lists(scene), index)
        _require_wcs(who, scene)
        unravel = result.unravel
        jacobian = jax.jacfwd(lambda x: _source_center(who, unravel(x), index))(result.x)
        pixel_covariance = np.asarray(jacobian @ result.covariance @ jacobian.T, dtype=np.float64)
        center = np.asarray(_source_center(who, scene, index), dtype=np.float64)
    elif isinstance(result, Posterior):
        who = "sky_center_uncertainty"
        scene = result.model_at(0, 0)
        _check_source_index(who, scene, index)
        _require_wcs(who, scene)
        draws = result.map(lambda model: _source_center(who, model, index))
        draws = np.asarray(draws, dtype=np.float64).reshape(-1, 2)
        center = draws.mean(axis=0)
        pixel_covariance = np.cov(draws, rowvar=False)
    else:
        raise TypeError(
            "sky_center_uncertainty: expected an sl.Laplace (from sl.laplace) or an sl.Posterior (from "
            f"sl.sample), got {type(result).__name__}; for a fitted scene alone, sl.measure.sky_center "
            "gives the position"
        )
    frame = scene.frame
    jacobian_sky = _sky_jacobian(frame, center)
    covariance = jacobian_sky @ pixel_covariance @ jacobian_sky.T
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return SkyUncertainty(
        center=frame.to_sky(center),
        ra_cos_dec=std[0] * units.arcsec,
        dec=std[1] * units.arcsec,
        covariance=covariance * units.arcsec**2,
        pixel_covariance=pixel_covariance,
    )

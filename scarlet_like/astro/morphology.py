"""Morphologies: unit-flux light profiles, evaluated in Fourier space.

A morphology describes the shape of a source, centred at the origin, integrating to 1. The renderer
asks for its Fourier transform at the frequencies of each observation's pixel grid, mapped into the
model frame, so a parametric profile is rendered exactly on any grid, through any PSF, without
resampling.

## Writing your own

Subclass [`scarlet_like.Morphology`][] and implement `fourier(ky, kx)`: the transform
`F(k) = ∫ I(x) exp(-i k·x) d²x` of your unit-flux profile, centred at the origin, at angular
frequencies `(ky, kx)` in radians per model-frame pixel (arrays that broadcast together). Fields may
be [`scarlet_like.Parameter`][]s, shared ones included, or [`scarlet_like.Derived`][] values:
inside `fourier` they are plain arrays.

```python
class ExponentialDisk(sl.Morphology):
    scale: sl.Parameter  # scale length in pixels

    def fourier(self, ky, kx):
        return (1 + self.scale**2 * (ky**2 + kx**2)) ** -1.5
```

Optionally implement `extent(level)` too (see [`scarlet_like.Morphology.extent`][]): with it, the
renderer can draw the source in a box of its own on large frames instead of on the whole frame.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..core.constraints import NumbersLike
from ..core.module import Module
from ..core.parameter import Parameter
from ..core.resolve import Resolvable
from . import profiles
from .psf import image_fourier

__all__ = [
    "Morphology",
    "GaussianMorphology",
    "SersicMorphology",
    "ScaledSersicMorphology",
    "SpergelMorphology",
    "ImageMorphology",
    "PointMorphology",
]


#: What a field of a morphology, a source or a component takes: a plain value (then fixed), a
#: Parameter (possibly shared, one object used in several places), or a value derived from Parameters
#: (`sl.Derived`).
ParameterLike = NumbersLike | Parameter | Resolvable


def _as_parameter(value: ParameterLike, **kwargs: Any) -> Parameter | Resolvable:
    """Plain values become fixed Parameters (any argument that takes a Parameter takes a value);
    Parameters and derived values are kept as they are, so that sharing them keeps them shared."""
    if isinstance(value, Parameter | Resolvable):
        return value
    return Parameter(value, fixed=True, **kwargs)


class Morphology(Module):
    """Base class of morphologies.

    Implement `fourier(ky, kx)`: the transform `F(k) = ∫ I(x) exp(-i k·x) d²x` of the unit-flux
    profile centred at the origin, at angular frequencies in radians per model-frame pixel (arrays that
    broadcast together). Fields may be Parameters or `sl.Derived` values: inside `fourier` they are
    plain arrays.
    """

    def fourier(self, ky: Array, kx: Array) -> Array:
        """The transform of the unit-flux profile centred at the origin, at angular frequencies
        `(ky, kx)` in radians per model-frame pixel (arrays that broadcast together)."""
        raise NotImplementedError

    def extent(self, level: float) -> float | None:
        """How far the visible light reaches, from the current values (optional).

        **Arguments:**

        - `level`: a brightness relative to the profile's brightness at its half-light radius.

        **Returns:**

        The radius in model-frame pixels (along the major axis) beyond which the profile is fainter
        than `level` times its brightness at the half-light radius, or `None` if unknown (the
        default). Called outside any transformation, on a morphology whose fields are plain values; a
        [`scarlet_like.Source`][] uses it to choose the box it is rendered in on large frames.
        """
        return None


def _major_axis_factor(ellipticity: ArrayLike) -> float:
    """How much a reduced shear `(g1, g2)` stretches the major axis of a round profile (area kept)."""
    g = min(float(np.hypot(*np.asarray(ellipticity, dtype=np.float64))), 0.999)
    return math.sqrt((1 + g) / (1 - g))


class PointMorphology(Morphology):
    """A point: all the flux at the centre. Its transform is 1 at every frequency."""

    def fourier(self, ky: Array, kx: Array) -> Array:
        return jnp.ones(jnp.broadcast_shapes(jnp.shape(ky), jnp.shape(kx)), dtype=jnp.result_type(ky))

    def extent(self, level: float) -> float:
        return 0.0


class GaussianMorphology(Morphology):
    """An elliptical Gaussian.

    **Arguments:**

    - `sigma`: standard deviation in pixels (of the circularised profile: shear preserves area).
    - `ellipticity`: reduced shear `(g1, g2)`, `|g| < 1`, as GalSim's `shear(g1=, g2=)` (g1 > 0
      stretches along x); default round.
    """

    sigma: Parameter | Resolvable
    ellipticity: Parameter | Resolvable

    def __init__(self, sigma: ParameterLike, ellipticity: ParameterLike = (0.0, 0.0)):
        self.sigma = _as_parameter(sigma)
        self.ellipticity = _as_parameter(ellipticity)

    def fourier(self, ky: Array, kx: Array) -> Array:
        ellipticity = jnp.asarray(self.ellipticity)  # an array here: `self` is resolved
        g1, g2 = ellipticity[0], ellipticity[1]
        return profiles.gaussian_ft(ky, kx, self.sigma, g1, g2)

    def extent(self, level: float) -> float:
        # I(r) / I(r_half) = 2 exp(-r^2 / 2 sigma^2)
        sigma = float(np.asarray(self.sigma))
        return sigma * math.sqrt(2 * math.log(2 / level)) * _major_axis_factor(np.asarray(self.ellipticity))


class SersicMorphology(Morphology):
    """An elliptical Sérsic profile, `I(r) ∝ exp(-b_n (r / r_half)^(1/n))`.

    **Arguments:**

    - `n`: Sérsic index (0.5 is a Gaussian, 1 exponential, 4 de Vaucouleurs); table range 0.5 to 6.2,
      clamped outside.
    - `r_half`: half-light radius in pixels (of the circularised profile).
    - `ellipticity`: reduced shear `(g1, g2)`, as for [`scarlet_like.GaussianMorphology`][].

    Rendered from its exact Fourier transform (a Hankel-transform table), so the cusp is as accurate
    as the wings.
    """

    n: Parameter | Resolvable
    r_half: Parameter | Resolvable
    ellipticity: Parameter | Resolvable

    def __init__(
        self,
        n: ParameterLike,
        r_half: ParameterLike,
        ellipticity: ParameterLike = (0.0, 0.0),
    ):
        self.n = _as_parameter(n)
        self.r_half = _as_parameter(r_half)
        self.ellipticity = _as_parameter(ellipticity)

    def fourier(self, ky: Array, kx: Array) -> Array:
        ellipticity = jnp.asarray(self.ellipticity)  # an array here: `self` is resolved
        g1, g2 = ellipticity[0], ellipticity[1]
        return profiles.sersic_ft(ky, kx, self.n, self.r_half, g1, g2)

    def extent(self, level: float) -> float:
        # I(r) / I(r_half) = exp(-b_n ((r / r_half)^(1/n) - 1))
        n = float(np.clip(np.asarray(self.n), profiles.SERSIC_N_MIN, profiles.SERSIC_N_MAX))
        radius = float(np.asarray(self.r_half)) * (1 + math.log(1 / level) / profiles.sersic_b(n)) ** n
        return radius * _major_axis_factor(np.asarray(self.ellipticity))


class ScaledSersicMorphology(Morphology):
    """A Sérsic profile whose size is measured in units of another radius, `reference`, and whose
    centre is shifted from the source's by at most `reach` pixels.

    Its half-light radius is `ratio * reference`, and its centre lies `shift * reach` pixels from the
    source's centre. A bulge in units of its disk ([`scarlet_like.init.bulge_disk`][]): `reference`
    is the disk's `r_half` Parameter itself (one free entry, shared), `ratio` has an interval
    constraint and `shift` a unit-disk one, so the bulge is always smaller than its disk, whatever
    the disk's size does during a fit, and never leaves the galaxy's middle.

    **Arguments:**

    - `n`: Sérsic index, as for [`scarlet_like.SersicMorphology`][].
    - `ratio`: the half-light radius over `reference`.
    - `reference`: a radius in pixels, typically another morphology's `r_half` Parameter.
    - `ellipticity`: reduced shear `(g1, g2)`.
    - `shift`: `(dy, dx)` of the profile's centre from the source's centre, in units of `reach`.
    - `reach`: pixels; with `shift` in the unit disk (`sl.constraints.unit_disk()`), the largest
      offset. A plain number (fixed): the offset does not grow with the fitted sizes.
    """

    n: Parameter | Resolvable
    ratio: Parameter | Resolvable
    reference: Parameter | Resolvable
    ellipticity: Parameter | Resolvable
    shift: Parameter | Resolvable
    reach: Parameter | Resolvable

    def __init__(
        self,
        n: ParameterLike,
        ratio: ParameterLike,
        reference: ParameterLike,
        ellipticity: ParameterLike = (0.0, 0.0),
        shift: ParameterLike = (0.0, 0.0),
        reach: ParameterLike = 1.0,
    ):
        self.n = _as_parameter(n)
        self.ratio = _as_parameter(ratio)
        self.reference = _as_parameter(reference)
        self.ellipticity = _as_parameter(ellipticity)
        self.shift = _as_parameter(shift)
        self.reach = _as_parameter(reach)

    @property
    def r_half(self) -> Array:
        """The half-light radius in pixels, `ratio * reference`."""
        return jnp.asarray(self.ratio) * jnp.asarray(self.reference)

    @property
    def offset(self) -> Array:
        """The centre's `(dy, dx)` in pixels from the source's centre, `shift * reach`."""
        return jnp.asarray(self.shift) * jnp.asarray(self.reach)

    def fourier(self, ky: Array, kx: Array) -> Array:
        ellipticity = jnp.asarray(self.ellipticity)  # an array here: `self` is resolved
        g1, g2 = ellipticity[0], ellipticity[1]
        shift, reach = jnp.asarray(self.shift), jnp.asarray(self.reach)
        r_half = jnp.asarray(self.ratio) * jnp.asarray(self.reference)
        centred = profiles.sersic_ft(ky, kx, self.n, r_half, g1, g2)
        angle = ky * (shift[0] * reach) + kx * (shift[1] * reach)
        phase = jax.lax.complex(jnp.cos(angle), -jnp.sin(angle))  # a shift: exp(-i k . offset)
        return centred.astype(phase.dtype) * phase

    def extent(self, level: float) -> float:
        n = float(np.clip(np.asarray(self.n), profiles.SERSIC_N_MIN, profiles.SERSIC_N_MAX))
        r_half = float(np.asarray(self.ratio)) * float(np.asarray(self.reference))
        radius = r_half * (1 + math.log(1 / level) / profiles.sersic_b(n)) ** n
        offset = float(np.max(np.abs(np.asarray(self.shift, dtype=np.float64)))) * float(
            np.asarray(self.reach)
        )
        return radius * _major_axis_factor(np.asarray(self.ellipticity)) + offset


class SpergelMorphology(Morphology):
    """An elliptical Spergel (2010) profile, `I(r) ∝ (r / r_c)^nu K_nu(r / r_c)`.

    **Arguments:**

    - `nu`: Spergel index, -0.85 to 4 (GalSim's range), clamped outside: 0.5 is exponential, about
      -0.6 resembles de Vaucouleurs, large `nu` tends to a Gaussian.
    - `r_half`: half-light radius in pixels (of the circularised profile).
    - `ellipticity`: reduced shear `(g1, g2)`, as for [`scarlet_like.GaussianMorphology`][].

    Its Fourier transform is closed form, `(1 + (k r_c)^2)^(-1 - nu)`, so it is cheap and exact at any
    frequency; `r_c = r_half / x(nu)` with the half-light factor `x(nu)` interpolated from exact root
    solves (relative error below 1e-7, differentiable in `nu`; see
    `scarlet_like.astro.profiles.spergel_half_light_factor`).
    """

    nu: Parameter | Resolvable
    r_half: Parameter | Resolvable
    ellipticity: Parameter | Resolvable

    def __init__(
        self,
        nu: ParameterLike,
        r_half: ParameterLike,
        ellipticity: ParameterLike = (0.0, 0.0),
    ):
        self.nu = _as_parameter(nu)
        self.r_half = _as_parameter(r_half)
        self.ellipticity = _as_parameter(ellipticity)

    def fourier(self, ky: Array, kx: Array) -> Array:
        ellipticity = jnp.asarray(self.ellipticity)  # an array here: `self` is resolved
        g1, g2 = ellipticity[0], ellipticity[1]
        return profiles.spergel_ft(ky, kx, self.nu, self.r_half, g1, g2)

    def extent(self, level: float) -> float:
        from scipy import optimize, special

        nu = float(np.clip(np.asarray(self.nu), profiles.SPERGEL_NU_MIN, profiles.SPERGEL_NU_MAX))
        x_half = float(profiles.spergel_half_light_factor(nu))

        def log_ratio(x: float) -> float:  # log I(x r_c) / I(r_half) - log level, decreasing in x
            return (
                nu * math.log(x / x_half)
                + math.log(special.kve(nu, x) / special.kve(nu, x_half))
                - (x - x_half)
                - math.log(level)
            )

        if log_ratio(x_half) <= 0:
            return float(np.asarray(self.r_half)) * _major_axis_factor(np.asarray(self.ellipticity))
        upper = 2 * x_half
        while log_ratio(upper) > 0:
            upper *= 2
        x = optimize.brentq(log_ratio, x_half, upper)
        return float(np.asarray(self.r_half)) * x / x_half * _major_axis_factor(np.asarray(self.ellipticity))


class ImageMorphology(Morphology):
    """A free-form, non-negative pixel image in model-frame pixels, centred on the source position.

    **Arguments:**

    - `image`: `(h, w)` non-negative values; a Parameter with a `positive()` constraint is the usual
      choice. It is normalised to unit sum when rendered, so the source's spectrum carries the flux.

    Each pixel is a uniform square of the model frame; the image's centre is its geometric centre.
    """

    image: Parameter | Resolvable

    def __init__(self, image: ParameterLike):
        self.image = _as_parameter(image)

    def fourier(self, ky: Array, kx: Array) -> Array:
        image: Float[Array, "h w"] = jnp.asarray(self.image)  # an array here: `self` is resolved
        values = image_fourier(image / jnp.sum(image), ky, kx)
        return values * profiles.pixel_ft(ky, kx).astype(values.dtype)

    def extent(self, level: float) -> float:
        # the image's support, whatever the level: its half-diagonal
        height, width = jnp.shape(jnp.asarray(self.image))
        return 0.5 * math.hypot(height, width)

"""Free-form (pixel image) morphologies: a prior that keeps them galaxy-like, and the starlet
transform (isotropic undecimated wavelet, B3-spline "a trous") it uses, written in JAX so that the
prior is differentiable.
"""

import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..core.priors import Prior

# B3-spline kernel 1D taps: (1, 4, 6, 4, 1) / 16.
_B3 = (1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0)


def _smooth_axis(image: Float[Array, "H W"], step: int, axis: int) -> Float[Array, "H W"]:
    """Convolve along one axis with the B3 kernel dilated by `step`, mirror-reflected edges."""
    pad = 2 * step
    widths = [(0, 0), (0, 0)]
    widths[axis] = (pad, pad)
    padded = jnp.pad(image, widths, mode="symmetric")
    size = image.shape[axis]
    out = jnp.zeros_like(image)
    for tap, weight in zip(range(-2, 3), _B3, strict=True):
        start = pad + tap * step
        out = out + weight * jnp.take(padded, jnp.arange(start, start + size), axis=axis)
    return out


def starlet_transform(
    image: Float[Array, "H W"], scales: int = 3
) -> tuple[Float[Array, "S H W"], Float[Array, "H W"]]:
    """Starlet (isotropic undecimated B3-spline "a trous") transform of a 2D image.

    **Arguments:**

    - `image`: the 2D image.
    - `scales`: number of wavelet scales (positive int). The dilation of scale `j` is `2**j` pixels;
      with mirror-reflected edges it must stay below the image size.

    **Returns:**

    `(coefficients, coarse)`: the wavelet coefficients of each scale (first axis) and the coarse
    (smoothed) remainder, such that `coefficients.sum(0) + coarse == image` exactly up to rounding.
    """
    if scales < 1:
        raise ValueError(f"starlet_transform: `scales` must be a positive int, got {scales}.")
    limit = min(image.shape)
    if 2 * 2 ** (scales - 1) >= limit:
        raise ValueError(
            f"starlet_transform: {scales} scales need an image larger than {2 * 2 ** (scales - 1)} "
            f"pixels on each side, got shape {image.shape}; use fewer scales."
        )
    current = image
    coefficients = []
    for j in range(scales):
        step = 2**j
        smooth = _smooth_axis(_smooth_axis(current, step, 0), step, 1)
        coefficients.append(current - smooth)
        current = smooth
    return jnp.stack(coefficients), current


#: Width of the Normal prior on the log of a free-form image's sum. The renderer normalises the image
#: (the spectrum carries the flux), so without it the image's scale would be a direction that neither
#: the likelihood nor the penalties (measured on the normalised image) hold: a fit would wander along
#: it and a sampler would never mix.
SUM_LOG_WIDTH = 0.1


def _float_scalar(value: Any) -> Array:
    return value if isinstance(value, jax.core.Tracer) else jnp.asarray(value, jnp.float32)


class FreeFormPrior(Prior):
    """A smooth, samplable prior that keeps a free-form image galaxy-like, for
    [`scarlet_like.ImageMorphology`][].

    Three penalties, each with a strength a user sets (0 turns it off), evaluated on the image scaled
    to sum to `unit`:

    - **monotonicity**: brightness should decline from the centre outward. Each pixel is compared with
      its neighbour one step toward the central pixel; an increase `d` costs
      `softness * (softplus(d / softness) - log 2)`, smooth and close to `max(d, 0)` for `d >> softness`.
    - **symmetry**: galaxies are, to first order, point-symmetric about their centre. Each pixel's
      difference `d` from its 180-degree rotated partner costs `(sqrt(d**2 + softness**2) - softness) / 2`
      (a smooth absolute value, counted once per pair).
    - **sparsity**: the starlet coefficients `c` of the image's detail scales (see
      [`starlet_transform`][scarlet_like.astro.freeform.starlet_transform]) each cost
      `sqrt(c**2 + softness**2) - softness`: noise and sharp artefacts spread over many coefficients,
      a smooth galaxy needs few.

    `log_prob(image) = -(sum of strength * penalty) - (log(sum(image)) / SUM_LOG_WIDTH)**2 / 2`. The
    second term pins the image's overall scale, which rendering ignores (the spectrum carries the
    flux). Improper: it cannot be sampled from, so start the image from the data or from a fitted
    profile ([`scarlet_like.init.freeform`][]).

    **Arguments:**

    - `image_shape`: `(H, W)` of the image; odd sizes put the centre on a pixel (the centre is pixel
      `(H // 2, W // 2)`).
    - `unit`: what the image is scaled to sum to before the penalties are measured. With the source's
      flux divided by the noise per pixel (what `sl.init.freeform` sets), penalties are in units of the
      noise: strength 1 makes an increase of one noise sigma cost about as much as a residual of
      1.4 sigma in one pixel.
    - `monotonicity`, `symmetry`, `sparsity`: the strengths (non-negative).
    - `softness`: the smoothing scale of the penalties, in the same units (default 0.1 sigma).
    - `scales`: number of starlet scales of the sparsity penalty (the image must be larger than
      `2**scales` pixels on each side).
    """

    expects_values_at_bound: ClassVar[bool] = True

    image_shape: tuple[int, int] = eqx.field(static=True)
    # a leaf, not static: free-form sources whose units differ (each its own flux over the noise) still
    # stack into one vmapped evaluation of their priors
    unit: Float[ArrayLike, ""] = eqx.field(default=1.0, converter=_float_scalar)
    monotonicity: float = eqx.field(static=True, default=1.0)
    symmetry: float = eqx.field(static=True, default=1.0)
    sparsity: float = eqx.field(static=True, default=0.0)
    softness: float = eqx.field(static=True, default=0.1)
    scales: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        shape = tuple(self.image_shape)
        if len(shape) != 2 or not all(isinstance(side, int) and side > 0 for side in shape):
            raise ValueError(
                f"FreeFormPrior: image_shape must be two positive ints, got {self.image_shape!r}"
            )
        if jnp.shape(self.unit) != ():
            raise ValueError(f"FreeFormPrior: unit must be a number, got shape {jnp.shape(self.unit)}")
        values = {"softness": self.softness}
        if not isinstance(self.unit, jax.core.Tracer):
            values["unit"] = float(self.unit)
        for name, value in values.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"FreeFormPrior: {name} must be positive and finite, got {value!r}")
        for name in ("monotonicity", "symmetry", "sparsity"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"FreeFormPrior: the strength {name} must be >= 0, got {value!r}")
        if self.sparsity > 0 and 2 * 2 ** (self.scales - 1) >= min(shape):
            raise ValueError(
                f"FreeFormPrior: {self.scales} starlet scales need an image larger than "
                f"{2 * 2 ** (self.scales - 1)} pixels on each side, got {shape}; lower `scales`."
            )

    def penalties(self, value: Float[Array, "H W"]) -> dict[str, Float[Array, ""]]:
        """Each penalty (before its strength) of `value` scaled to sum to `unit`: what a user looks at
        to choose the strengths."""
        image = value * (jnp.asarray(self.unit, value.dtype) / jnp.sum(value))
        softness = jnp.asarray(self.softness, value.dtype)
        return {
            "monotonicity": _monotonicity(image, softness),
            "symmetry": _symmetry(image, softness),
            "sparsity": _sparsity(image, softness, self.scales)
            if self.sparsity > 0
            else jnp.zeros((), value.dtype),
        }

    def log_prob(self, value: Float[Array, "H W"]) -> Float[Array, ""]:
        penalties = self.penalties(value)
        total = sum(
            jnp.asarray(getattr(self, name), value.dtype) * penalty
            for name, penalty in penalties.items()
            if getattr(self, name) > 0
        )
        scale = jnp.log(jnp.sum(value)) / SUM_LOG_WIDTH
        return -(total + 0.5 * scale**2)

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        raise TypeError(
            "FreeFormPrior is an improper penalty and cannot be sampled from; start the free-form image "
            "from the data or a fitted profile (sl.init.freeform), or give it an explicit value."
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.image_shape)


def _monotonicity(image: Float[Array, "H W"], softness: Array) -> Float[Array, ""]:
    height, width = image.shape
    rows, columns = np.mgrid[0:height, 0:width]
    inward = image[rows - np.sign(rows - height // 2), columns - np.sign(columns - width // 2)]
    increase = image - inward
    return jnp.sum(softness * (jax.nn.softplus(increase / softness) - math.log(2.0)))


def _symmetry(image: Float[Array, "H W"], softness: Array) -> Float[Array, ""]:
    difference = image - image[::-1, ::-1]
    return jnp.sum(jnp.sqrt(difference**2 + softness**2) - softness) / 2


def _sparsity(image: Float[Array, "H W"], softness: Array, scales: int) -> Float[Array, ""]:
    coefficients, _ = starlet_transform(image, scales)
    return jnp.sum(jnp.sqrt(coefficients**2 + softness**2) - softness)

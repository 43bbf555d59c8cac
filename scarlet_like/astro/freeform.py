"""Tools for free-form (pixelated) morphologies.

For now: the starlet transform (isotropic undecimated wavelet, B3-spline "a trous"), written in JAX so
that priors on its coefficients are differentiable.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

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


class _ImagePenalty(Prior):
    """What the free-form image priors share: an improper penalty over an `(H, W)` image."""

    image_shape: eqx.AbstractVar[tuple[int, int]]

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        raise TypeError(
            f"{type(self).__name__} is an improper penalty and cannot be sampled from; initialise the "
            "free-form image from the data (or give it an explicit start value)."
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.image_shape)


class SymmetryPrior(_ImagePenalty):
    """Smooth penalty on differences between each pixel of a free-form image and its 180-degree
    rotated partner (galaxies are, to first order, point-symmetric about their center).

    `log_prob(image) = -strength * sum(sqrt((image - rot180(image))**2 + eps**2) - eps) / 2`: a smooth
    L1 norm, so the gradient is defined everywhere (usable by `sl.fit` and `sl.sample`). The image is
    rotated about its central pixel, so give it an odd size centered on the source.

    **Arguments:**

    - `image_shape`: `(H, W)` of the free-form image (odd sizes keep the center on a pixel).
    - `strength`: weight of the penalty (positive); larger forces more symmetry.
    - `eps`: smoothing scale of the L1 norm, in image units.
    """

    image_shape: tuple[int, int] = eqx.field(static=True)
    strength: float = eqx.field(static=True, default=1.0)
    eps: float = eqx.field(static=True, default=1e-3)

    def log_prob(self, value: Float[Array, "H W"]) -> Float[Array, ""]:
        difference = value - value[::-1, ::-1]
        eps = jnp.asarray(self.eps, dtype=value.dtype)
        penalty = jnp.sum(jnp.sqrt(difference**2 + eps**2) - eps) / 2
        return -jnp.asarray(self.strength, dtype=value.dtype) * penalty


class StarletSparsityPrior(_ImagePenalty):
    """Smooth L1 sparsity penalty on the starlet wavelet coefficients of a free-form image.

    `log_prob(image) = -strength * sum(sqrt(c**2 + eps**2) - eps)` over the detail coefficients `c` of
    [`starlet_transform`][] (the coarse scale is not penalised). Noise and sharp artefacts spread over
    many coefficients; a smooth galaxy needs few, so this favours galaxy-like images smoothly.

    **Arguments:**

    - `image_shape`: `(H, W)` of the free-form image.
    - `strength`: weight of the penalty (positive).
    - `scales`: number of wavelet scales.
    - `eps`: smoothing scale of the L1 norm, in image units.
    """

    image_shape: tuple[int, int] = eqx.field(static=True)
    strength: float = eqx.field(static=True, default=1.0)
    scales: int = eqx.field(static=True, default=3)
    eps: float = eqx.field(static=True, default=1e-3)

    def log_prob(self, value: Float[Array, "H W"]) -> Float[Array, ""]:
        coefficients, _ = starlet_transform(value, self.scales)
        eps = jnp.asarray(self.eps, dtype=value.dtype)
        penalty = jnp.sum(jnp.sqrt(coefficients**2 + eps**2) - eps)
        return -jnp.asarray(self.strength, dtype=value.dtype) * penalty


class MonotonicityPrior(_ImagePenalty):
    """Smooth penalty on brightness increasing outward from the image center (radial decline).

    Each pixel is compared with its neighbour one step toward the central pixel (step of
    `sign(dy), sign(dx)`); an increase `d = pixel - inward_neighbour > 0` costs
    `scale * softplus(d / scale)` minus its value at `d = 0`, so the penalty and its gradient are smooth.

    **Arguments:**

    - `image_shape`: `(H, W)` of the free-form image; the center is pixel `(H // 2, W // 2)`.
    - `strength`: weight of the penalty (positive).
    - `scale`: softness of the penalty in image units (smaller is closer to a hard max(d, 0)).
    """

    image_shape: tuple[int, int] = eqx.field(static=True)
    strength: float = eqx.field(static=True, default=1.0)
    scale: float = eqx.field(static=True, default=1e-3)

    def log_prob(self, value: Float[Array, "H W"]) -> Float[Array, ""]:
        height, width = self.image_shape
        rows, columns = jnp.mgrid[0:height, 0:width]
        inward_rows = rows - jnp.sign(rows - height // 2)
        inward_columns = columns - jnp.sign(columns - width // 2)
        increase = value - value[inward_rows, inward_columns]
        scale = jnp.asarray(self.scale, dtype=value.dtype)
        at_zero = jnp.log(jnp.asarray(2.0, dtype=value.dtype))
        penalty = jnp.sum(scale * (jax.nn.softplus(increase / scale) - at_zero))
        return -jnp.asarray(self.strength, dtype=value.dtype) * penalty

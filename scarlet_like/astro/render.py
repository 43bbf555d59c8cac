"""The Fourier-space renderer shared by the model frame and every observation.

Every source is evaluated as `spectrum x morphology transform x phase` on the frequency grid of the
target pixel grid (mapped into the model frame for the morphology), summed over sources, multiplied
once per channel by the PSF transform (with the pixel response for continuous PSFs), and brought back
with one inverse FFT per channel. Sources of the same structure are stacked and `vmap`-ed, so the
compiled program does not grow with their number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..core.plate import Plate, Stacked
from . import profiles
from .psf import PSF, GaussianPSF, phasor

__all__ = ["FourierGrid", "render"]


def _padded(size: int, margin: int) -> int:
    """A size at least `size + margin`, even and with small prime factors (fast FFTs)."""
    target = size + margin
    candidate = target + (target % 2)
    while True:
        remainder = candidate
        for prime in (2, 3, 5, 7):
            while remainder % prime == 0:
                remainder //= prime
        if remainder == 1:
            return candidate
        candidate += 2


class FourierGrid(eqx.Module):
    """The frequency grid of a pixel grid, with its PSF transform precomputed.

    **Arguments:**

    - `height`, `width`: the pixel grid.
    - `psf`: its PSF.
    - `margin`: padding in pixels against wrap-around of light across the edges (default: enough for
      the PSF and 16 pixels more).

    Continuous PSFs are not band-limited once multiplied by the pixel response: their few aliased
    copies beyond the Nyquist frequency are folded in, so pixel-centre samples come out exact.
    """

    height: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    padded: tuple[int, int] = eqx.field(static=True)
    aliases: tuple[tuple[int, int], ...] = eqx.field(static=True)
    ky: Float[Array, "Hp 1"]
    kx: Float[Array, "1 Wr"]
    psf_fourier: Array  # (aliases, C, Hp, Wr) complex

    def __init__(self, height: int, width: int, psf: PSF, margin: int | None = None):
        self.height, self.width = int(height), int(width)
        if margin is None:
            extent = 0
            if hasattr(psf, "images"):
                extent = max(psf.images.shape[1:])
            elif isinstance(psf, GaussianPSF):
                extent = int(math.ceil(8 * float(np.max(np.asarray(psf.sigma)))))
            # room for the PSF, and for the wings of sources near an edge not to wrap around
            margin = max(extent, max(height, width) // 2) + 16
        self.padded = (_padded(self.height, margin), _padded(self.width, margin))
        ky = 2 * np.pi * np.fft.fftfreq(self.padded[0])
        kx = 2 * np.pi * np.fft.rfftfreq(self.padded[1])
        self.ky = jnp.asarray(ky[:, None], dtype=jnp.float32)
        self.kx = jnp.asarray(kx[None, :], dtype=jnp.float32)
        if psf.includes_pixel:
            self.aliases = ((0, 0),)
        else:
            # fold the copies that are not negligible (a Gaussian PSF of sigma above ~2 px needs none)
            sigma = float(np.min(np.asarray(psf.sigma))) if isinstance(psf, GaussianPSF) else 0.0
            reach = 0 if np.exp(-0.5 * (sigma * np.pi) ** 2) < 1e-9 else (1 if sigma > 0.6 else 2)
            self.aliases = tuple((i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1))
        transforms = []
        for shift_y, shift_x in self.aliases:
            alias_ky = self.ky + 2 * np.pi * shift_y
            alias_kx = self.kx + 2 * np.pi * shift_x
            value = psf.fourier(alias_ky, alias_kx).astype(jnp.complex64)
            if not psf.includes_pixel:
                value = value * profiles.pixel_ft(alias_ky, alias_kx)[None].astype(value.dtype)
            transforms.append(jnp.broadcast_to(value, (value.shape[0], *self.padded[:1], kx.shape[0])))
        self.psf_fourier = jnp.stack(transforms)

    @property
    def channels(self) -> int:
        return self.psf_fourier.shape[1]


def group_by_structure(sources: Sequence[Any]) -> list[Any]:
    """Stack sources of the same structure: one `vmap`-able pytree per kind of source.

    Sources that come stacked already (resolved plates of a `Stacked` list, the layout `LogDensity`
    computes with) are used as they are; the others are stacked here.
    """
    stacked: list[Any] = []
    if isinstance(sources, Stacked):
        stacked = [part.members for part in sources.parts if isinstance(part, Plate)]
        sources = [part for part in sources.parts if not isinstance(part, Plate)]
    groups: dict[Any, list[Any]] = {}
    for source in sources:
        leaves, treedef = jax.tree_util.tree_flatten(source)
        key = (treedef, tuple((jnp.shape(leaf), jnp.result_type(leaf)) for leaf in leaves))
        groups.setdefault(key, []).append(source)
    return stacked + [
        jax.tree_util.tree_map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *members)
        for members in groups.values()
    ]


def render(
    sources: Sequence[Any],
    grid: FourierGrid,
    channel_index: Sequence[int],
    to_pixels: tuple[np.ndarray, np.ndarray] | None = None,
) -> Float[Array, "C H W"]:
    """Render resolved sources on a pixel grid.

    **Arguments:**

    - `sources`: resolved sources (plain arrays) with `center` `(2,)` in model-frame pixels (y, x),
      `spectrum` `(C_model,)` and a `morphology` with a `fourier(ky, kx)` method.
    - `grid`: the target's [`scarlet_like.astro.render.FourierGrid`][].
    - `channel_index`: for each target channel, its index in the model spectrum.
    - `to_pixels`: the affine map `(A, b)` from model-frame pixels to target pixels,
      `p = A @ q + b`; identity by default.

    **Returns:**

    The image `(C, H, W)`: the continuous scene convolved with the target's PSF, integrated over its
    pixels (or sampled at pixel centres through an effective PSF).
    """
    if to_pixels is None:
        matrix, offset = np.eye(2), np.zeros(2)
    else:
        matrix, offset = (np.asarray(part, dtype=np.float64) for part in to_pixels)
    channels = np.asarray(channel_index, dtype=np.int32)
    # All aliased copies of the frequency grid at once, (A, Hp, 1) and (A, 1, Wr): one evaluation of
    # each morphology per source, whatever the number of copies.
    shifts = 2 * np.pi * np.asarray(grid.aliases, dtype=np.float64)
    ky = grid.ky[None] + jnp.asarray(shifts[:, 0], grid.ky.dtype)[:, None, None]
    kx = grid.kx[None] + jnp.asarray(shifts[:, 1], grid.kx.dtype)[:, None, None]
    # A profile I(q) seen through p = A q + b has transform F(A^T k) exp(-i k . (A c + b)).
    model_ky = matrix[0, 0] * ky + matrix[1, 0] * kx
    model_kx = matrix[0, 1] * ky + matrix[1, 1] * kx
    linear = jnp.asarray(matrix, grid.ky.dtype)
    shift = jnp.asarray(offset, grid.ky.dtype)

    def one(source: Any) -> Array:
        center = linear @ source.center.astype(linear.dtype) + shift
        phase = _phase(ky, kx, center)
        return source.morphology.fourier(model_ky, model_kx).astype(phase.dtype) * phase

    def mixed(stacked: Any) -> Array:
        shapes = jax.vmap(one)(stacked)  # (K, A, Hp, Wr)
        return _mix_spectra(stacked.spectrum[:, channels].astype(shapes.real.dtype), shapes)

    frequencies = len(grid.aliases) * grid.padded[0] * grid.kx.shape[1]
    kimage = None
    for stacked in group_by_structure(sources):
        summed = _sum_in_chunks(mixed, stacked, frequencies)
        kimage = summed if kimage is None else kimage + summed
    if kimage is None:
        kimage = jnp.zeros(
            (len(channels), len(grid.aliases), grid.padded[0], grid.kx.shape[1]), jnp.complex64
        )
    # the PSF multiplies once per channel, then the copies fold together
    psf = jnp.moveaxis(grid.psf_fourier, 0, 1)  # (C or 1, A, Hp, Wr)
    kimage = jnp.sum(kimage * psf, axis=1)
    image = jnp.fft.irfft2(kimage, s=grid.padded)
    return image[:, : grid.height, : grid.width]


#: Sources are transformed and summed this many bytes of transforms at a time (see `_sum_in_chunks`).
CHUNK_BYTES = 1 << 20


def _sum_in_chunks(mixed: Any, stacked: Any, frequencies: int) -> Array:
    """`mixed(stacked)` (a sum over the stacked sources), computed a chunk of sources at a time.

    All K transforms at once make `(K, A, Hp, Wr)` intermediates, which for many sources no longer fit
    in cache: the cost per source grew 2-3 fold from K = 10 to K = 100 on CPU. Chunks of about
    `CHUNK_BYTES` of transforms go through a `lax.scan` whose body is rematerialised in the gradient
    (`jax.checkpoint`), so that neither pass holds more than one chunk, and the compiled program
    stays the same for any K.
    """
    count = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    chunk = max(1, CHUNK_BYTES // (8 * frequencies))
    if count <= chunk:
        return mixed(stacked)
    whole = (count // chunk) * chunk
    head = jax.tree_util.tree_map(
        lambda leaf: leaf[:whole].reshape(count // chunk, chunk, *leaf.shape[1:]), stacked
    )

    @jax.checkpoint
    def add(total: Array, part: Any) -> tuple[Array, None]:
        return total + mixed(part), None

    # start from zeros rather than from the first chunk: one copy of the source code less to compile
    out = jax.eval_shape(mixed, jax.tree_util.tree_map(lambda leaf: leaf[0], head))
    total, _ = jax.lax.scan(add, jnp.zeros(out.shape, out.dtype), head)
    if whole < count:
        total = total + mixed(jax.tree_util.tree_map(lambda leaf: leaf[whole:], stacked))
    return total


def _mix_spectra(spectra: Float[Array, "K C"], shapes: Array) -> Array:
    """`einsum("kc,kahw->cahw", spectra, shapes)` for real spectra, as real matrix products.

    Real spectra mix the real and imaginary parts of the source transforms separately: half the
    multiplications of a complex product. It also changes what XLA:CPU makes of the gradient: for
    the complex `einsum` it lays the `(K, A, Hp, Wr)` stack out transposed for the spectra's gradient,
    re-evaluating the source transforms to fill it; with the real and imaginary parts as operands,
    the forward products and both transposes read them in place (about 20 % of the K = 10 gradient,
    see `benchmarks/README.md`). A `custom_vjp` writing the transposes by hand compiles to the same
    program and would lose forward-mode differentiation, so autodiff is left to do them.
    """
    count, channels = spectra.shape
    flat = shapes.reshape(count, -1)
    # full float32 products on accelerators too (their default may round operands to fewer bits)
    highest = jax.lax.Precision.HIGHEST
    real = jnp.matmul(spectra.T, jnp.real(flat), precision=highest)
    imaginary = jnp.matmul(spectra.T, jnp.imag(flat), precision=highest)
    return jax.lax.complex(real, imaginary).reshape(channels, *shapes.shape[1:])


def _phase(ky: Float[Array, "A Hp 1"], kx: Float[Array, "A 1 Wr"], center: Float[Array, "2"]) -> Array:
    """`phasor(ky * center[0] + kx * center[1])`, `(A, Hp, Wr)`, from its row and column factors.

    The phase of a position is the outer product of two 1-D phases. Written as a broadcast product,
    XLA:CPU fuses the 1-D `cos` and `sin` into every consumer and evaluates them per frequency, several
    times: twice slower than the 2-D phase. As a matrix product of contraction size 2 (real and
    imaginary parts), which XLA does not fuse, they are evaluated once per row and column, and the
    gradient of a K = 10 scene takes 40 % (Gaussian) to 15 % (Sersic) less time.
    """
    row = phasor(ky[..., 0] * center[0])  # (A, Hp)
    column = phasor(kx[..., 0, :] * center[1])  # (A, Wr)
    # (a + ib)(c + id) = [a, b] . [[c, d], [-d, c]]: real parts in the first Wr columns, imaginary after
    left = jnp.stack([jnp.real(row), jnp.imag(row)], axis=-1)
    right = jnp.stack(
        [
            jnp.concatenate([jnp.real(column), jnp.imag(column)], axis=-1),
            jnp.concatenate([-jnp.imag(column), jnp.real(column)], axis=-1),
        ],
        axis=-2,
    )
    product = jnp.matmul(left, right, precision=jax.lax.Precision.HIGHEST)  # (A, Hp, 2 Wr)
    width = column.shape[-1]
    return jax.lax.complex(product[..., :width], product[..., width:])

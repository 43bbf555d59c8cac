"""The Fourier-space renderer shared by the model frame and every observation.

Every source is evaluated as `spectrum x morphology transform x phase` on the frequency grid of the
target pixel grid (mapped into the model frame for the morphology), summed over sources, multiplied
once per channel by the PSF transform (with the pixel response for continuous PSFs), and brought back
with one inverse FFT per channel. Sources of the same structure are stacked and `vmap`-ed, so the
compiled program does not grow with their number.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._programs import stored_jit
from ..core.constraints import float32_array
from ..core.plate import Plate, Stacked
from . import profiles
from .psf import PSF, GaussianPSF, phasor, psf_extent
from .spectrum import is_time_dependent

__all__ = ["FourierGrid", "RenderPlan", "box_shape", "common_grid", "render", "render_plan"]


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
    - `boxes`: whether sources with a `box` are drawn in boxes of their own: `None` (default) where
      that is cheaper than the whole grid, `True` wherever the box is smaller than the grid, `False`
      never.

    Continuous PSFs are not band-limited once multiplied by the pixel response: their few aliased
    copies beyond the Nyquist frequency are folded in, so pixel-centre samples come out exact.
    """

    height: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    padded: tuple[int, int] = eqx.field(static=True)
    aliases: tuple[tuple[int, int], ...] = eqx.field(static=True)
    psf_extent: int = eqx.field(static=True)
    boxes: bool | None = eqx.field(static=True)
    ky: Float[Array, "Hp 1"]
    kx: Float[Array, "1 Wr"]
    psf_fourier: Array  # (aliases, C, Hp, Wr) complex
    psf: PSF

    def __init__(
        self, height: int, width: int, psf: PSF, margin: int | None = None, boxes: bool | None = None
    ):
        self.height, self.width = int(height), int(width)
        self.psf = psf
        self.boxes = boxes
        self.psf_extent = psf_extent(psf)
        if margin is None:
            # room for the PSF, and for the wings of sources near an edge not to wrap around
            margin = max(self.psf_extent, max(height, width) // 2) + 16
        self.padded = (_padded(self.height, margin), _padded(self.width, margin))
        ky = 2 * np.pi * np.fft.fftfreq(self.padded[0])
        kx = 2 * np.pi * np.fft.rfftfreq(self.padded[1])
        self.ky = float32_array(ky[:, None])
        self.kx = float32_array(kx[None, :])
        if psf.includes_pixel:
            self.aliases = ((0, 0),)
        else:
            # fold the copies that are not negligible (a Gaussian PSF of sigma above ~2 px needs none)
            sigma = float(np.min(np.asarray(psf.sigma))) if isinstance(psf, GaussianPSF) else 0.0
            reach = 0 if np.exp(-0.5 * (sigma * np.pi) ** 2) < 1e-9 else (1 if sigma > 0.6 else 2)
            self.aliases = tuple((i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1))
        self.psf_fourier = _grid_psf_fourier(psf, self.ky, self.kx, self.aliases)

    @property
    def channels(self) -> int:
        return self.psf_fourier.shape[1]

    def with_psf(self, psf: PSF) -> FourierGrid:
        """The same grid with another PSF of the same kind, its transform computed from the PSF's arrays
        (which may be traced: one epoch of a stack, see [`common_grid`][scarlet_like.astro.common_grid]).
        The PSF's extent, which sizes boxes, is kept."""
        return self._replaced(
            psf=psf, psf_fourier=_psf_fourier(psf, _frequencies(self.ky, self.kx, self.aliases))
        )

    def _replaced(self, **changes: Any) -> FourierGrid:
        """A copy with some fields changed, without running `__init__` (which needs a concrete PSF)."""
        new = object.__new__(FourierGrid)
        for field in dataclasses.fields(FourierGrid):
            object.__setattr__(new, field.name, changes.get(field.name, getattr(self, field.name)))
        return new


def common_grid(grids: Sequence[FourierGrid]) -> FourierGrid:
    """A grid on which targets of several grids (one pixel grid, one kind of PSF) can all be rendered.

    **Arguments:**

    - `grids`: grids of one `height`, `width` and `boxes`, whose PSFs have one structure.

    **Returns:**

    The first grid if all have its padding and aliased copies; else a grid with the largest padding of
    any and every aliased copy any of them folds in (more margin, and copies of a negligible PSF
    transform, change an image only by what was wrapped around or below float32 rounding). Its PSF is
    the first's: give each target its own with
    [`FourierGrid.with_psf`][scarlet_like.astro.FourierGrid.with_psf].
    """
    first = grids[0]
    if all(grid.padded == first.padded and grid.aliases == first.aliases for grid in grids):
        return first
    padded = (max(grid.padded[0] for grid in grids), max(grid.padded[1] for grid in grids))
    aliases = tuple(sorted({alias for grid in grids for alias in grid.aliases}))
    ky = jnp.asarray(2 * np.pi * np.fft.fftfreq(padded[0])[:, None], dtype=jnp.float32)
    kx = jnp.asarray(2 * np.pi * np.fft.rfftfreq(padded[1])[None, :], dtype=jnp.float32)
    common = first._replaced(
        padded=padded, aliases=aliases, ky=ky, kx=kx, psf_extent=max(grid.psf_extent for grid in grids)
    )
    return common.with_psf(first.psf)


class RenderUnit(eqx.Module):
    """What the renderer draws: a spectrum times a morphology at a centre, in an optional box.

    Each source is one unit; a source with `components` (see [`scarlet_like.MultiComponentSource`][]) is
    one unit per component, at the source's centre plus the component's offset, in the source's box.
    Units of like structure are stacked across sources, so a bulge of one galaxy and a bulge of another
    are drawn by one vmapped program.
    """

    center: Any
    spectrum: Any
    morphology: Any
    box: int | None = eqx.field(static=True)


def render_units(source: Any) -> list[RenderUnit]:
    """A resolved source (or a stack of like sources, leaves with a leading axis) as render units."""
    box = getattr(source, "box", None)
    if hasattr(source, "components"):
        return [
            RenderUnit(source.center + component.offset, component.spectrum, component.morphology, box)
            for component in source.components
        ]
    return [RenderUnit(source.center, source.spectrum, source.morphology, box)]


def _at_time(unit: RenderUnit, time: Array | None, stacked: bool) -> RenderUnit:
    """The unit with a time-dependent spectrum evaluated at `time` (vmapped over a stack of units)."""
    if not is_time_dependent(unit.spectrum):
        return unit
    if time is None:
        raise ValueError(
            f"a source's spectrum ({type(unit.spectrum).__name__}) depends on time, and no time was "
            "given to render it at: give the observation a time, sl.Observation(..., time=t)"
        )
    spectrum = jax.vmap(lambda one: one(time))(unit.spectrum) if stacked else unit.spectrum(time)
    return RenderUnit(unit.center, spectrum, unit.morphology, unit.box)


def group_by_structure(sources: Sequence[Any] | Stacked, time: Array | None = None) -> list[Any]:
    """Stack render units of the same structure: one `vmap`-able pytree per kind of unit.

    Sources are first expanded into their [render units][scarlet_like.astro.RenderUnit], and
    time-dependent spectra (see [`scarlet_like.PerEpochSpectrum`][]) evaluated at `time`. Sources
    that come stacked already (resolved plates of a `Stacked` list, the layout `LogDensity` computes
    with) are used as they are, one stacked unit per component; the others are stacked here.
    """
    stacked: list[Any] = []
    if isinstance(sources, Stacked):
        stacked = [
            _at_time(unit, time, stacked=True)
            for part in sources.parts
            if isinstance(part, Plate)
            for unit in render_units(part.members)
        ]
        sources = [part for part in sources.parts if not isinstance(part, Plate)]
    groups: dict[Any, list[Any]] = {}
    for unit in (_at_time(unit, time, stacked=False) for source in sources for unit in render_units(source)):
        leaves, treedef = jax.tree_util.tree_flatten(unit)
        key = (treedef, tuple((jnp.shape(leaf), jnp.result_type(leaf)) for leaf in leaves))
        groups.setdefault(key, []).append(unit)
    return stacked + [
        jax.tree_util.tree_map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *members)
        for members in groups.values()
    ]


#: Sources are drawn in boxes of their own when a box's area is at most this fraction of the padded
#: frame's (and the observation leaves the choice to the renderer; see `FourierGrid`).
BOX_AREA_FRACTION = 0.15


class _Frequencies(NamedTuple):
    """Angular frequencies of a pixel grid with all its aliased copies, in target and model pixels."""

    ky: Array  # (A, Hp, 1)
    kx: Array  # (A, 1, Wr)
    model_ky: Array  # (A, Hp, Wr), or (A, Hp, 1) for a diagonal map
    model_kx: Array  # (A, Hp, Wr), or (A, 1, Wr)


def _frequencies(
    ky: Array,
    kx: Array,
    aliases: Sequence[tuple[int, int]],
    matrix: Any = None,
    diagonal: bool | None = None,
) -> _Frequencies:
    """All aliased copies of the frequencies `ky` `(Hp, 1)` and `kx` `(1, Wr)` at once: one evaluation
    of each morphology per source, whatever the number of copies. `matrix` maps model-frame pixels to
    the grid's (identity by default); a traced matrix needs `diagonal`, whether it has no off-diagonal
    terms (a concrete one is looked at)."""
    matrix = np.eye(2) if matrix is None else matrix
    if diagonal is None:
        concrete = np.asarray(matrix)
        diagonal = bool(concrete[0, 1] == 0 and concrete[1, 0] == 0)
    shifts = 2 * np.pi * np.asarray(aliases, dtype=np.float64)
    ky = ky[None] + jnp.asarray(shifts[:, 0], ky.dtype)[:, None, None]
    kx = kx[None] + jnp.asarray(shifts[:, 1], kx.dtype)[:, None, None]
    # A profile I(q) seen through p = A q + b has transform F(A^T k) exp(-i k . (A c + b)).
    if diagonal:
        # no rotation or shear: the model frequencies stay a column and a row, which morphologies
        # broadcast, and which pixel images transform separably (`image_fourier`)
        return _Frequencies(ky, kx, matrix[0, 0] * ky, matrix[1, 1] * kx)
    return _Frequencies(ky, kx, matrix[0, 0] * ky + matrix[1, 0] * kx, matrix[0, 1] * ky + matrix[1, 1] * kx)


def _psf_fourier(psf: PSF, frequencies: _Frequencies) -> Array:
    """The PSF's transform (with the pixel response for continuous PSFs) at every aliased copy of a
    grid's frequencies, `(A, C or 1, Hp, Wr)`."""
    transforms = []
    for ky, kx in zip(frequencies.ky, frequencies.kx, strict=True):
        value = psf.fourier(ky, kx).astype(jnp.complex64)
        if not psf.includes_pixel:
            value = value * profiles.pixel_ft(ky, kx)[None].astype(value.dtype)
        transforms.append(jnp.broadcast_to(value, (value.shape[0], ky.shape[0], kx.shape[1])))
    return jnp.stack(transforms)


@stored_jit
def _grid_psf_fourier(psf: PSF, ky: Array, kx: Array, aliases: tuple[tuple[int, int], ...]) -> Array:
    """`_psf_fourier` on a grid's own frequencies, compiled once per kind and shape of PSF: op by op,
    it took 22 ms of every observation made (a third of `sl.init.scene`'s time per blend of a catalog,
    where every cutout has the same PSF shapes)."""
    return _psf_fourier(psf, _frequencies(ky, kx, aliases))


def box_shape(
    grid: FourierGrid, side: int | None, matrix: np.ndarray | None = None
) -> tuple[int, int] | None:
    """The FFT box in which sources with a box of `side` model-frame pixels are drawn on `grid`.

    **Arguments:**

    - `grid`: the target's [`scarlet_like.astro.FourierGrid`][].
    - `side`: the sources' `box`, in model-frame pixels (`None`: no box).
    - `matrix`: the linear part of the map from model-frame to target pixels (identity by default).

    **Returns:**

    `(By, Bx)`: the square mapped onto the target, plus the PSF's extent, rounded up to fast FFT sizes;
    or `None` where the sources are drawn on the whole grid: no box, boxes turned off, or (by default)
    a box area above `BOX_AREA_FRACTION` of the padded grid.
    """
    if side is None or grid.boxes is False:
        return None
    matrix = np.eye(2) if matrix is None else np.asarray(matrix, dtype=np.float64)
    reach = np.abs(matrix) @ np.full(2, float(side))
    # two pixels more for the sub-pixel position and the rounding of the corner
    height, width = (_padded(int(math.ceil(length)) + grid.psf_extent, 2) for length in reach)
    shape = (height, width)
    if shape[0] >= grid.padded[0] or shape[1] >= grid.padded[1]:
        return None
    if grid.boxes is None and shape[0] * shape[1] > BOX_AREA_FRACTION * grid.padded[0] * grid.padded[1]:
        return None
    return shape


class RenderPlan(NamedTuple):
    """What [`render`][scarlet_like.astro.render.render] decides while tracing from the map onto a
    grid: whether its matrix is diagonal, and the FFT box (or `None`: the whole grid) of each box side
    among the sources. Made by [`render_plan`][scarlet_like.astro.render_plan]; hashable."""

    diagonal: bool
    boxes: tuple[tuple[int, tuple[int, int] | None], ...]


def render_plan(
    sources: Sequence[Any] | Stacked, grid: FourierGrid, matrix: np.ndarray | None = None
) -> RenderPlan:
    """What [`render`][scarlet_like.astro.render.render] decides while tracing, from the concrete map's
    matrix.

    Targets whose plans (and grid structures) are equal render in one program, their maps as data
    (see [`scarlet_like.Observation.log_likelihood_of_many`][]).

    **Arguments:**

    - `sources`: the resolved sources (a list, or the stacked layout `LogDensity` computes with).
    - `grid`: the target's [`scarlet_like.astro.FourierGrid`][].
    - `matrix`: the linear part of the map from model-frame to target pixels (`None`: identity).

    **Returns:**

    A [`RenderPlan`][scarlet_like.astro.RenderPlan].
    """
    matrix = np.eye(2) if matrix is None else np.asarray(matrix, dtype=np.float64)
    diagonal = bool(matrix[0, 1] == 0 and matrix[1, 0] == 0)
    if isinstance(sources, Stacked):
        listed = [part.members if isinstance(part, Plate) else part for part in sources.parts]
    else:
        listed = list(sources)
    sides = sorted({side for side in (getattr(source, "box", None) for source in listed) if side is not None})
    return RenderPlan(diagonal, tuple((side, box_shape(grid, side, matrix)) for side in sides))


def render(
    sources: Sequence[Any] | Stacked,
    grid: FourierGrid,
    channel_index: Sequence[int],
    to_pixels: tuple[Any, Any] | None = None,
    time: Float[Array, ""] | None = None,
    *,
    plan: RenderPlan | None = None,
    translation: Float[Array, "2"] | None = None,
) -> Float[Array, "C H W"]:
    """Render resolved sources on a pixel grid.

    **Arguments:**

    - `sources`: resolved sources (plain arrays) with `center` `(2,)` in model-frame pixels (y, x),
      `spectrum` `(C_model,)` (or a module returning it when called with `time`), a `morphology`
      with a `fourier(ky, kx)` method and optionally a static `box` (see [`scarlet_like.Source`][]).
    - `grid`: the target's [`scarlet_like.astro.FourierGrid`][].
    - `channel_index`: for each target channel, its index in the model spectrum.
    - `to_pixels`: the affine map `(A, b)` from model-frame pixels to target pixels,
      `p = A @ q + b`; identity by default. NumPy or JAX arrays; a traced `A` (one epoch of a stack
      of observations) needs `plan`.
    - `time`: the time at which time-dependent spectra (a module called with the time, see
      [`scarlet_like.PerEpochSpectrum`][]) are evaluated; needed only if there are some.
    - `plan`: what is decided while tracing (see [`render_plan`][scarlet_like.astro.render_plan]);
      default: worked out from `A`, which must then be concrete.
    - `translation`: `t`, `(dy, dx)` in target pixels, moving the whole scene: `p = A @ q + b + t`
      (an observation's astrometric shift, see [`scarlet_like.Scene`][]). The same as adding it to
      `b`, but for the sources drawn on the whole grid it is one phase on their summed transform: in
      a stack of epochs with shifts of their own, the sources' transforms stay shared.

    **Returns:**

    The image `(C, H, W)`: the continuous scene convolved with the target's PSF, integrated over its
    pixels (or sampled at pixel centres through an effective PSF).

    Sources whose box is small against the grid (see [`scarlet_like.astro.box_shape`][]) are
    each convolved in an FFT box of their own and added into the image; the others are summed on
    the whole padded grid, convolved once per channel, and brought back with one inverse FFT per
    channel.
    """
    matrix: Any = np.eye(2)
    offset: Any = np.zeros(2)
    if to_pixels is not None:
        matrix, offset = (
            part if isinstance(part, jax.Array) else np.asarray(part, dtype=np.float64) for part in to_pixels
        )
    if plan is None:
        if isinstance(matrix, jax.core.Tracer):
            raise ValueError(
                "render: the map's matrix is traced; give the `plan` worked out from a concrete matrix "
                "(sl.astro.render_plan)"
            )
        plan = render_plan(sources, grid, np.asarray(matrix))
    boxes = dict(plan.boxes)
    channels = np.asarray(channel_index, dtype=np.int32)
    linear = jnp.asarray(matrix, grid.ky.dtype)
    shift = jnp.asarray(offset, grid.ky.dtype)
    image = jnp.zeros((len(channels), grid.height, grid.width), grid.ky.dtype)
    kimage = None
    # the whole grid's frequencies, mapped into the model frame: shared by every group drawn on it
    frequencies = _frequencies(grid.ky, grid.kx, grid.aliases, linear, plan.diagonal)
    for stacked in group_by_structure(sources, time):
        side = getattr(stacked, "box", None)
        shape = None if side is None else boxes[side]
        if shape is not None:
            moved = shift if translation is None else shift + translation.astype(shift.dtype)
            image = _add_boxes(image, stacked, grid, shape, channels, plan.diagonal, linear, moved)
            continue
        if kimage is None:
            kimage = jnp.zeros(
                (len(channels), len(grid.aliases), grid.padded[0], grid.kx.shape[1]), jnp.complex64
            )
        kimage = _add_on_grid(kimage, stacked, grid, frequencies, channels, linear, shift)
    if kimage is None:
        return image
    if translation is not None:
        # Moving every source by t multiplies their summed transform by one phase. With the epochs of
        # a stack shifted each its own way, this keeps the sources' transforms and phases out of the
        # per-epoch part of the program: the gradient over 50 shifted nights of bench_epochs.py takes
        # 1.2 times as long as without shifts, 2.8 times when the shift went into each source's phase.
        kimage = kimage * _phase(frequencies.ky, frequencies.kx, translation.astype(grid.ky.dtype))[None]
    # the PSF multiplies once per channel, then the copies fold together
    psf = jnp.moveaxis(grid.psf_fourier, 0, 1)  # (C or 1, A, Hp, Wr)
    kimage = jnp.sum(kimage * psf, axis=1)
    whole = jnp.fft.irfft2(kimage, s=grid.padded)
    return image + whole[:, : grid.height, : grid.width]


def _add_on_grid(
    kimage: Array,
    stacked: Any,
    grid: FourierGrid,
    frequencies: _Frequencies,
    channels: np.ndarray,
    linear: Array,
    shift: Array,
) -> Array:
    """`kimage` plus the transforms of the stacked sources on the whole grid, mixed by their spectra."""

    def one(source: Any) -> Array:
        center = linear @ source.center.astype(linear.dtype) + shift
        phase = _phase(frequencies.ky, frequencies.kx, center)
        transform = source.morphology.fourier(frequencies.model_ky, frequencies.model_kx)
        return transform.astype(phase.dtype) * phase

    def mixed(part: Any) -> Array:
        shapes = jax.vmap(one)(part)  # (K, A, Hp, Wr)
        return _mix_spectra(part.spectrum[:, channels].astype(shapes.real.dtype), shapes)

    per_source = 8 * len(grid.aliases) * grid.padded[0] * grid.kx.shape[1]
    return _accumulate(mixed, jnp.add, kimage, stacked, per_source)


def _add_boxes(
    image: Array,
    stacked: Any,
    grid: FourierGrid,
    shape: tuple[int, int],
    channels: np.ndarray,
    diagonal: bool,
    linear: Array,
    shift: Array,
) -> Array:
    """`image` plus the stacked sources, each convolved in a `shape` FFT box around its centre."""
    ky = jnp.asarray(2 * np.pi * np.fft.fftfreq(shape[0])[:, None], grid.ky.dtype)
    kx = jnp.asarray(2 * np.pi * np.fft.rfftfreq(shape[1])[None, :], grid.kx.dtype)
    frequencies = _frequencies(ky, kx, grid.aliases, linear, diagonal)
    # The PSF's transform on the box's frequencies: evaluated while tracing when the PSF is a constant,
    # so that a compiled density does not recompute it at every call.
    with jax.ensure_compile_time_eval():
        psf = jnp.moveaxis(_psf_fourier(grid.psf, frequencies), 0, 1)  # (C or 1, A, By, Bxr)
    half = jnp.asarray([shape[0] // 2, shape[1] // 2], linear.dtype)

    def one(source: Any) -> tuple[Array, Array]:
        center = linear @ source.center.astype(linear.dtype) + shift
        # the box's pixel (i, j) is the target's pixel corner + (i, j); the centre sits near the middle
        corner = jnp.floor(center) - half
        phase = _phase(frequencies.ky, frequencies.kx, center - corner)
        transform = source.morphology.fourier(frequencies.model_ky, frequencies.model_kx)
        return transform.astype(phase.dtype) * phase, corner.astype(jnp.int32)

    def boxes(part: Any) -> tuple[Array, Array]:
        shapes, corners = jax.vmap(one)(part)  # (K, A, By, Bxr), (K, 2)
        convolved = jnp.sum(shapes[:, None] * psf[None], axis=2)  # (K, C or 1, By, Bxr)
        # one inverse FFT per source and PSF channel; the spectrum scales the result
        drawn = jnp.fft.irfft2(convolved, s=shape)
        spectra = part.spectrum[:, channels].astype(drawn.dtype)
        return drawn * spectra[:, :, None, None], corners

    def paste(total: Array, light: tuple[Array, Array]) -> Array:
        drawn, corners = light
        rows = corners[:, :1] + jnp.arange(shape[0])[None, :]
        columns = corners[:, 1:] + jnp.arange(shape[1])[None, :]
        # pixels off the image go to an index past its end, which the scatter drops
        rows = jnp.where((rows >= 0) & (rows < grid.height), rows, grid.height)
        columns = jnp.where((columns >= 0) & (columns < grid.width), columns, grid.width)
        index = (slice(None), rows[:, :, None], columns[:, None, :])
        return total.at[index].add(jnp.moveaxis(drawn, 1, 0), mode="drop")

    channels_in_psf = psf.shape[0]
    per_source = 8 * (len(grid.aliases) + channels_in_psf) * shape[0] * (shape[1] // 2 + 1)
    per_source += 4 * len(channels) * shape[0] * shape[1]
    return _accumulate(boxes, paste, image, stacked, per_source)


#: Sources are transformed and summed this many bytes of transforms at a time (see `_accumulate`).
CHUNK_BYTES = 1 << 20


def _accumulate(light: Any, put: Any, total: Array, stacked: RenderUnit, per_source: int) -> Array:
    """`put(total, light(stacked))`: the stacked render units' light added to `total`, a chunk at a time.

    All K transforms at once make `(K, A, Hp, Wr)` intermediates, which for many sources no longer fit
    in cache: the cost per source grew 2-3 fold from K = 10 to K = 100 on CPU. Chunks of about
    `CHUNK_BYTES` (at `per_source` bytes per source) go through a `lax.scan` whose body is
    rematerialised in the gradient (`jax.checkpoint`), so that neither pass holds more than one chunk,
    and the compiled program stays the same for any K.

    The chunks are of equal size, the last one filled up with blank units (copies of the first ones
    with a spectrum of zero: no light, and no gradient): fewer than one per chunk. A shorter last chunk
    would be drawn outside the scan, a second copy of the sources' code in the program: the gradient of
    105 Gaussian sources of `benchmarks/bench_render.py` (chunks of 10) was 1311 lines of StableHLO
    against 938 for 100 sources; with blank units 964, for 11 sources as for 105.
    """
    count = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    chunk = max(1, CHUNK_BYTES // per_source)
    if count <= chunk:
        return put(total, light(stacked))
    chunks = -(-count // chunk)
    size = -(-count // chunks)
    blank = chunks * size - count
    if blank:
        filler = jax.tree_util.tree_map(lambda leaf: leaf[:blank], stacked)
        filler = RenderUnit(filler.center, jnp.zeros_like(filler.spectrum), filler.morphology, filler.box)
        stacked = jax.tree_util.tree_map(lambda *parts: jnp.concatenate(parts), stacked, filler)
    parts = jax.tree_util.tree_map(lambda leaf: leaf.reshape(chunks, size, *leaf.shape[1:]), stacked)
    remat = jax.checkpoint(light)
    total, _ = jax.lax.scan(lambda total, part: (put(total, remat(part)), None), total, parts)
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

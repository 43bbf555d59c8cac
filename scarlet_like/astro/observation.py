"""`Observation`: data, noise, mask and PSF of one instrument, and the likelihood of a scene."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._programs import stored_jit
from ..core.constraints import float32_array
from ..core.tree import any_traced, resolve
from .frame import Frame, FrameError, _pixel_scale
from .psf import PSF, psf_extent
from .render import FourierGrid, RenderPlan, common_grid, render, render_plan
from .spectrum import time_dependent_sources

__all__ = ["Observation", "ObservationError", "simulate"]


_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: widest PSF (pixels) an Observation pads its FFT grid for by default: a Gaussian of sigma 1024 px; any
#: wider asks for grids of tens of thousands of pixels a side (a mistake, or a case for `margin=`)
MAX_PSF_EXTENT = 8192


class ObservationError(ValueError):
    """Bad observation input; the message names the observation and what is wrong."""


class Observation(eqx.Module):
    """Multi-band images with their noise, mask and PSF.

    **Arguments:**

    - `data`: `(C, H, W)` images.
    - `weights`: inverse variances, `(C, H, W)` (or anything broadcasting to it); default 1.
    - `mask`: `(C, H, W)` (or broadcasting), non-zero / `True` where a pixel must be ignored.
    - `psf`: an [`scarlet_like.ArrayPSF`][] (effective PSF images, one per channel) or
      [`scarlet_like.GaussianPSF`][]; default: no PSF beyond the pixel (a Gaussian of tiny width).
    - `channels`: the `C` channel names; they tie the data to the model frame's channels. Without
      them the channels are named by position, `"0" .. "C-1"`, which
      [`Frame.from_observations`][scarlet_like.Frame.from_observations] lets several observations share
      only when they are of one camera (as many channels, the same pixel grid); name the bands
      of observations from several instruments.
    - `wcs`: an astropy celestial WCS, to place this observation relative to a model frame on another
      pixel grid.
    - `name`: used in error messages and plots.
    - `margin`: padding in pixels of the FFT grid around the image (default: the PSF's size or half the
      image, whichever is larger, plus 16). Light further than this beyond an edge wraps around onto
      the opposite edge; enlarge it for very extended sources (large, high-n Sersic profiles) near the
      edges, at the cost of larger FFTs.
    - `boxes`: whether sources with a `box` (see [`scarlet_like.Source`][]) are each drawn in an FFT
      box of their own and added into the image: `None` (default) where that is cheaper than the
      whole frame (boxes of at most 15 % of the padded frame's area), `True` wherever a box is
      smaller than the frame, `False` never. Boxes leave out the light beyond them, and they do not
      wrap light around the image's edges.
    - `time`: when the exposure was taken, a real number in units of your choice (days since the
      first epoch, say); default `None`, no time. Sources whose spectrum changes with time (a module
      with a `__call__(self, time)` method, see [`scarlet_like.PerEpochSpectrum`][]) are rendered at
      this time, and need it. Stored as float32: give times relative to a nearby reference (MJD
      60000.37 keeps only about 0.004 days of its fraction in float32).

    An Observation is a likelihood: pass it (or a list of them) wherever a likelihood is accepted.
    """

    # worked out from the others: `sl.tree` folds them into one line
    __precomputed_fields__ = ("grid", "log_normalisation")

    data: Float[Array, "C H W"]
    weights: Float[Array, "C H W"]
    psf: PSF
    grid: FourierGrid
    log_normalisation: Float[Array, ""]
    # A leaf, not static metadata: epochs that differ only in their times (and data, PSF widths) are
    # one structure, so that a list of them, or a second set of epochs, runs in the same compiled
    # program; a static time would compile a program for every new set of times.
    time: Float[Array, ""] | None
    channels: tuple[str, ...] = eqx.field(static=True)
    # whether the channel names came from `channels=` (names of bands) or are the default positions
    # "0", "1", ...: `Frame.from_observations` merges default names only within one camera
    channels_given: bool = eqx.field(static=True)
    wcs: Any = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        data: ArrayLike,
        weights: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        psf: PSF | None = None,
        channels: Sequence[Any] | None = None,
        wcs: Any = None,
        name: str = "observation",
        margin: int | None = None,
        boxes: bool | None = None,
        time: Real[ArrayLike, ""] | None = None,
    ):
        self.name = name
        if time is None:
            self.time = None
        else:
            try:
                value = float(np.asarray(time, dtype=np.float64).item())
                good = np.ndim(time) == 0 and np.isfinite(value)
            except (TypeError, ValueError):
                good = False
            if not good:
                raise ObservationError(
                    f"Observation '{name}': time must be one finite real number (the exposure's time), "
                    f"got {time!r}"
                )
            self.time = jnp.asarray(value, dtype=jnp.float32)
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3 or 0 in data.shape:
            raise ObservationError(
                f"Observation '{name}': data must be (C, H, W) with positive sizes, got shape {data.shape}"
            )
        shape = data.shape
        weights = self._broadcast("weights", 1.0 if weights is None else weights, shape, np.float64)
        bad = np.zeros(shape, bool) if mask is None else self._broadcast("mask", mask, shape, None) != 0
        if np.any(~np.isfinite(weights)) or np.any(weights < 0):
            channel = int(np.argwhere(~(np.isfinite(weights) & (weights >= 0)))[0, 0])
            raise ObservationError(
                f"Observation '{name}': weights must be finite and non-negative (channel {channel} "
                "has negative or non-finite weights)"
            )
        used = (weights > 0) & ~bad
        non_finite = used & ~np.isfinite(data)
        if np.any(non_finite):
            per_channel = non_finite.sum(axis=(1, 2))
            channel = int(np.flatnonzero(per_channel)[0])
            raise ObservationError(
                f"Observation '{name}': {int(per_channel.sum())} pixel(s) with NaN or infinite data have "
                f"non-zero weight and no mask (first in channel {channel}); mask them or set their "
                "weight to 0"
            )
        # checked in float64 above, stored in float32 below: values beyond its range would become inf
        for what, values in (("data", np.where(used, data, 0.0)), ("weights", weights)):
            largest = float(np.max(np.abs(values)))
            if largest > _FLOAT32_MAX:
                raise ObservationError(
                    f"Observation '{name}': {what} reach {largest:.3g}, beyond the float32 range "
                    f"(±{_FLOAT32_MAX:.3g}) in which observations are stored; rescale them"
                )
        channels_given = channels is not None
        channels = tuple(str(c) for c in (range(shape[0]) if channels is None else channels))
        if len(channels) != shape[0]:
            raise ObservationError(
                f"Observation '{name}': {len(channels)} channel names {channels} for data with "
                f"{shape[0]} channels"
            )
        if len(set(channels)) != len(channels):
            raise ObservationError(f"Observation '{name}': channel names must be unique, got {channels}")
        self.channels = channels
        self.channels_given = channels_given
        if psf is None:
            from .psf import GaussianPSF

            psf = GaussianPSF(1e-3)
        if psf.channels not in (1, shape[0]):
            raise ObservationError(
                f"Observation '{name}': the PSF has {psf.channels} channels but the data have {shape[0]}"
            )
        self.psf = psf
        self.wcs = wcs
        final_weights = np.where(used, weights, 0.0)
        self.data = float32_array(np.where(used, data, 0.0))
        self.weights = float32_array(final_weights)
        positive = final_weights[final_weights > 0]
        self.log_normalisation = float32_array(0.5 * np.sum(np.log(positive / (2 * np.pi))))
        if margin is not None and (int(margin) != margin or margin < 0):
            raise ObservationError(
                f"Observation '{name}': margin must be a non-negative integer, got {margin!r}"
            )
        if boxes not in (None, True, False):
            raise ObservationError(f"Observation '{name}': boxes must be None, True or False, got {boxes!r}")
        extent = psf_extent(psf)
        if margin is None and extent > MAX_PSF_EXTENT:
            raise ObservationError(
                f"Observation '{name}': the PSF is {extent} pixels wide (more than {MAX_PSF_EXTENT}), and "
                "the FFT grid would be padded by as much on every side; give a narrower PSF, or an "
                "explicit `margin`"
            )
        self.grid = FourierGrid(
            shape[1], shape[2], psf, margin=None if margin is None else int(margin), boxes=boxes
        )

    def _broadcast(self, what: str, value: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        array = np.asarray(value, dtype=dtype)
        try:
            return np.broadcast_to(array, shape).copy()
        except ValueError:
            raise ObservationError(
                f"Observation '{self.name}': {what} of shape {array.shape} does not match the data's "
                f"shape {shape}"
            ) from None

    def __repr__(self) -> str:
        channels, height, width = self.data.shape
        parts = [
            repr(self.name),
            f"{channels} channel{'s' if channels != 1 else ''} {self.channels} of {height}x{width} pixels",
            f"psf={type(self.psf).__name__}",
        ]
        if self.time is not None:
            parts.append(f"time={_time_text(self.time)}")
        return f"Observation({', '.join(parts)})"

    @property
    def shape(self) -> tuple[int, int, int]:
        channels, height, width = self.data.shape
        return channels, height, width

    @property
    def pixel_scale(self) -> Any:
        """The side of one of this observation's pixels on the sky, an astropy `Quantity` in arcsec per
        pixel (the mean of the two axes' scales of its celestial WCS); `None` without a WCS."""
        return None if self.wcs is None else _pixel_scale(self.wcs)

    @property
    def mask(self) -> Array:
        """`True` where a pixel is ignored (masked, or zero weight)."""
        return self.weights <= 0

    def channel_index(self, frame: Frame) -> tuple[int, ...]:
        """For each channel of this observation, its index among the model frame's channels."""
        missing = [c for c in self.channels if c not in frame.channels]
        if missing:
            raise FrameError(
                f"Observation '{self.name}': channel(s) {missing} are not in the model frame's channels "
                f"{frame.channels}"
            )
        return tuple(frame.channels.index(c) for c in self.channels)

    def to_pixels(self, frame: Frame) -> tuple[np.ndarray, np.ndarray] | None:
        """The affine map `p = A q + b` from model-frame pixels `q` to this observation's pixels."""
        if frame.wcs is None or self.wcs is None:
            if self.data.shape[1:] != frame.shape[1:]:
                raise FrameError(
                    f"Observation '{self.name}' has a {self.data.shape[1]}x{self.data.shape[2]} grid and the "
                    f"frame {frame.shape[1]}x{frame.shape[2]}: without WCSs they must be the same grid"
                )
            return None
        # linearise the WCS mapping at the frame's centre
        cy, cx = (frame.height - 1) / 2, (frame.width - 1) / 2
        points = np.array([[cy, cx], [cy + 1, cx], [cy, cx + 1]])
        world = frame.wcs.celestial.pixel_to_world(points[:, 1], points[:, 0])
        x, y = self.wcs.celestial.world_to_pixel(world)
        mapped = np.stack([y, x], axis=-1)
        matrix = np.stack([mapped[1] - mapped[0], mapped[2] - mapped[0]], axis=-1)
        offset = mapped[0] - matrix @ points[0]
        return matrix, offset

    def render(self, scene: Any) -> Float[Array, "C H W"]:
        """The scene as this observation sees it.

        **Arguments:**

        - `scene`: a [`scarlet_like.Scene`][] (with Parameters or resolved).

        **Returns:**

        `(C, H, W)`: the continuous scene convolved with this observation's PSF and integrated over its
        pixels, as GalSim's `drawImage` gives; moved by the scene's shift for this observation's name,
        if it has one (see [`scarlet_like.Scene`][]).
        """
        scene = resolve(scene)
        frame = scene.frame
        self._check_time(scene)
        mapping = self.to_pixels(frame)
        shift = _shift(scene, self.name)
        matrix = np.eye(2) if mapping is None else mapping[0]
        translation = None if shift is None else _moved(matrix, shift)
        channels = tuple(int(c) for c in self.channel_index(frame))
        if not any_traced((scene.sources, self.grid, self.time, translation)):
            # Outside any transformation: one compiled program per scene structure, not op by op. Op by
            # op, a render dispatched some 35 small programs, each traced and lowered again in every
            # fresh process (and looked up in the persistent cache by its lowered text).
            plan = render_plan(scene.sources, self.grid, matrix)
            return _compiled_render(
                scene.sources, self.grid, channels, mapping, self.time, plan=plan, translation=translation
            )
        return render(scene.sources, self.grid, channels, mapping, time=self.time, translation=translation)

    def log_likelihood(self, scene: Any) -> Float[Array, ""]:
        """Gaussian log-likelihood of the data given the scene (masked pixels excluded)."""
        return _gaussian_log_likelihood(self.data, self.weights, self.log_normalisation, self.render(scene))

    @classmethod
    def log_likelihood_of_many(cls, observations: Sequence[Observation], scene: Any) -> Float[Array, ""]:
        """The sum of the observations' log-likelihoods, like observations evaluated as one stack.

        What a likelihood of several observations calls (see [`scarlet_like.Likelihood`][]).
        Observations that can share one compiled program (the same data and PSF shapes, channels, FFT
        grid, time or none, and a map from the model frame that the renderer treats alike, see
        [`render_plan`][scarlet_like.astro.render_plan]) are stacked, their arrays along a leading
        axis, and rendered by one program over the stack: epochs of one field, however many, compile
        as one. What tells them apart and is not an array (the name, the WCS) is used here, in
        Python: each observation's map onto the model frame is worked out from its WCS and passed as
        data. The others are evaluated one by one.

        **Arguments:**

        - `observations`: the observations.
        - `scene`: a [`scarlet_like.Scene`][] (with Parameters or resolved).

        **Returns:**

        `sum(o.log_likelihood(scene) for o in observations)`, equal to it to float32 rounding.
        """
        return _of_many(cls, observations, scene, chi2=False)

    @classmethod
    def chi2_of_many(cls, observations: Sequence[Observation], scene: Any) -> Float[Array, ""]:
        """The sum of the observations' chi^2, stacked as in
        [`log_likelihood_of_many`][scarlet_like.Observation.log_likelihood_of_many].

        **Returns:**

        `sum(o.chi2(scene) for o in observations)`, equal to it to float32 rounding.
        """
        return _of_many(cls, observations, scene, chi2=True)

    def _check_time(self, scene: Any) -> None:
        """A named error for an observation without a time, of a scene whose spectra depend on time."""
        if self.time is None:
            changing = time_dependent_sources(scene.sources)
            if changing:
                source, kind = changing[0]
                raise ObservationError(
                    f"Observation '{self.name}' has no time, but {source} has a spectrum that depends "
                    f"on time ({kind}): give the observation the time of its exposure, "
                    "sl.Observation(..., time=t)"
                )

    def _epoch(self, scene: Any) -> _Epoch:
        """This observation as one epoch of a stack: its map onto the resolved scene's frame, and the
        key of the observations it can be stacked with."""
        self._check_time(scene)
        frame = scene.frame
        channels = self.channel_index(frame)
        mapping = self.to_pixels(frame)
        matrix, offset = (np.eye(2), np.zeros(2)) if mapping is None else mapping
        plan = render_plan(scene.sources, self.grid, matrix)
        leaves = jax.tree_util.tree_leaves(_epoch_arrays(self))
        key = (
            type(self),
            channels,
            self.time is None,
            # the FFT padding and aliased copies may differ (see `common_grid`); the PSF's extent acts
            # through the boxes' sizes, in the plan
            (self.grid.height, self.grid.width, self.grid.boxes),
            jax.tree_util.tree_structure(self.psf),
            tuple((jnp.shape(leaf), jnp.result_type(leaf)) for leaf in leaves),
            plan,
        )
        return _Epoch(
            self,
            channels,
            np.asarray(matrix, np.float64),
            np.asarray(offset, np.float64),
            _shift(scene, self.name),
            plan,
            key,
        )

    def chi2(self, scene: Any) -> Float[Array, ""]:
        """Sum of weighted squared residuals over unmasked pixels."""
        residual = self.data - self.render(scene)
        return jnp.sum(self.weights * residual**2)

    def goodness_of_fit(self, scene: Any) -> Float[Array, ""]:
        """Chi-square per unmasked pixel value (1 for a model as good as the noise allows)."""
        return _goodness_of_fit(self, scene)

    def simulate(self, scene: Any, key: PRNGKeyArray) -> Float[Array, "C H W"]:
        """Mock data: the rendered scene plus Gaussian noise of this observation's variance.

        Masked (zero-weight) pixels get no noise. Works under `vmap` over keys. To simulate without
        an observation to start from, see [`scarlet_like.simulate`][].
        """
        model = self.render(scene)
        safe = jnp.where(self.weights > 0, self.weights, 1.0)
        noise = jax.random.normal(key, model.shape, dtype=model.dtype) / jnp.sqrt(safe)
        return model + jnp.where(self.weights > 0, noise, 0.0)


class _Epoch(NamedTuple):
    """An observation with what stacking it needs: channels, map onto the frame, plan, stack key."""

    observation: Observation
    channel_index: tuple[int, ...]
    matrix: np.ndarray
    offset: np.ndarray
    shift: Array | None  # the scene's astrometric shift for the observation (resolved), if any
    plan: RenderPlan
    key: Any


def _epoch_arrays(observation: Observation) -> tuple[Any, ...]:
    """The arrays of an observation that differ between the epochs of a stack, in the order
    `_stacked_sum` unpacks them (the PSF's transform, which comes with its grid, apart)."""
    return (
        observation.data,
        observation.weights,
        observation.log_normalisation,
        observation.time,
        observation.psf,
    )


def _gaussian_log_likelihood(data: Array, weights: Array, log_normalisation: Array, model: Array) -> Array:
    residual = data - model
    return -0.5 * jnp.sum(weights * residual**2) + log_normalisation


def _sum(values: Sequence[Array]) -> Array:
    return sum(values[1:], start=values[0])


_compiled_render = stored_jit(render)


@functools.partial(stored_jit, inline=True)  # one program, not eight op by op (and the render's own)
def _goodness_of_fit(observation: Observation, scene: Any) -> Float[Array, ""]:
    chi2 = observation.chi2(scene)
    return chi2 / jnp.sum(observation.weights > 0).astype(chi2.dtype)


def _shift(scene: Any, name: str) -> Array | None:
    """The resolved scene's shift for the observation `name` (see `Scene`'s `shifts`), or None."""
    shift = getattr(scene, "shifts", {}).get(name)
    return None if shift is None else jnp.asarray(shift, jnp.float32)


def _moved(matrix: ArrayLike, shift: Array) -> Array:
    """The translation in the observation's pixels of sources moved by `shift` in the model frame,
    seen through the map `p = A q + b`: `A (q + s) + b = (A q + b) + A s`. `matrix` concrete or traced
    (one epoch of a stack)."""
    return jnp.asarray(matrix, jnp.float32) @ shift


def _check_shift_names(observations: Sequence[Observation], scene: Any) -> None:
    """Named errors for shifts of the scene that name no observation, or several."""
    shifts = getattr(scene, "shifts", None)
    if not shifts:
        return
    names = [observation.name for observation in observations]
    for name in shifts:
        where = [index for index, other in enumerate(names) if other == name]
        if len(where) > 1:
            raise ObservationError(
                f"the scene has a shift for observation '{name}', and observations {where[0]} and "
                f"{where[1]} of the likelihood are both named '{name}': give each observation a name of "
                "its own (sl.Observation(..., name=...)), the key of its shift"
            )
        if not where:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ObservationError(
                f"the scene has a shift for observation '{name}', but no observation of the likelihood is "
                f"named so (its observations: {', '.join(repr(n) for n in dict.fromkeys(names))}){hint}"
            )


def _of_many(kind: type[Observation], observations: Sequence[Observation], scene: Any, chi2: bool) -> Array:
    """The sum of the observations' log-likelihoods (or chi^2), like observations as one stack (see
    `Observation.log_likelihood_of_many`)."""
    scene = resolve(scene)
    _check_shift_names(observations, scene)
    if not (kind.log_likelihood is Observation.log_likelihood and kind.render is Observation.render):
        # a subclass that renders or compares otherwise: its own methods, one by one
        return _sum([o.chi2(scene) if chi2 else o.log_likelihood(scene) for o in observations])
    groups: dict[Any, list[_Epoch]] = {}
    for observation in observations:
        epoch = observation._epoch(scene)
        groups.setdefault(epoch.key, []).append(epoch)
    values = []
    for members in groups.values():
        if len(members) > 1:
            values.append(_stacked_sum(members, scene, chi2))
        else:
            alone = members[0].observation
            values.append(alone.chi2(scene) if chi2 else alone.log_likelihood(scene))
    return _sum(values)


#: The epochs of a stack are rendered together (`vmap`) up to this many bytes of Fourier images (one
#: `(C, A, Hp, Wr)` complex image per epoch) at a time; more epochs go in equal chunks, one after the
#: other (`lax.scan`, rematerialised in the gradient), see `_sum_over_epochs`. All at once is the
#: fastest (CPU time of the gradient, `benchmarks/bench_epochs.py`: 50 nights of 25x25 px 24 ms, as one
#: by one, against 40 ms one night at a time in a scan; 20 nights of 96x96 px 59 ms, against 88 ms and
#: 90 ms one by one) and, up to here, needs no more memory than rendering the epochs one by one did
#: (20 nights of 96x96 px: 44 MB of temporaries, 68 MB one by one; 8 MB one at a time). Chunks bound
#: it for very many epochs or large images, at about 2.5-4 times this size.
EPOCH_CHUNK_BYTES = 64 << 20


def _stacked_sum(epochs: Sequence[_Epoch], scene: Any, chi2: bool = False) -> Array:
    """The summed log-likelihoods (or chi^2) of epochs of one key (see
    `Observation.log_likelihood_of_many`), by one program over their stacked arrays. `scene` is
    resolved."""
    first = epochs[0]
    grids = [epoch.observation.grid for epoch in epochs]
    grid = common_grid(grids)
    # the PSFs' transforms as they are when the epochs share their grid; else made on the common one
    shared = grid is grids[0]
    per_epoch = 8 * len(first.channel_index) * len(grid.aliases) * grid.padded[0] * grid.kx.shape[1]
    count = len(epochs)
    chunk = min(count, max(1, EPOCH_CHUNK_BYTES // per_epoch))
    chunks = -(-count // chunk)
    # chunks of equal size, the last filled up with copies of the first epoch of weight zero: one
    # program for the body, where a shorter last chunk would be a second one
    size = -(-count // chunks)
    # A map shared by every epoch (no WCS, or one WCS) stays out of the stack: what depends on it alone
    # (the sources' transforms and phases) is then computed once, not once per epoch; the gradient of 10
    # nights took 1.6 times as long as rendering them one by one without this (whose program repeats
    # the same transforms, which XLA computes once). The observations' shifts (see `Scene`) are data of
    # the stack like their arrays, zero for an epoch without one; each moves its epoch's whole image
    # (`render`'s `translation`), which leaves the sources' transforms shared.
    same_matrix = all(np.array_equal(e.matrix, first.matrix) for e in epochs)
    same_offset = all(np.array_equal(e.offset, first.offset) for e in epochs)
    shifted = any(e.shift is not None for e in epochs)
    rows = [
        (
            _epoch_arrays(e.observation),
            e.observation.grid.psf_fourier if shared else None,
            None if same_matrix else jnp.asarray(e.matrix, jnp.float32),
            None if same_offset else jnp.asarray(e.offset, jnp.float32),
            (jnp.zeros(2, jnp.float32) if e.shift is None else e.shift) if shifted else None,
        )
        for e in epochs
    ]
    (data, weights, _, time, psf), transform, matrix, offset, shift = rows[0]
    blank = (data, jnp.zeros_like(weights), jnp.zeros((), jnp.float32), time, psf)
    rows += [(blank, transform, matrix, offset, shift)] * (chunks * size - count)
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *rows)

    def one(epoch: Any) -> Array:
        (data, weights, log_normalisation, time, psf), transform, matrix, offset, shift = epoch
        own = grid.with_psf(psf) if transform is None else grid._replaced(psf=psf, psf_fourier=transform)
        matrix = first.matrix if matrix is None else matrix
        offset = first.offset if offset is None else offset
        moved = None if shift is None else _moved(matrix, shift)
        image = render(
            scene.sources,
            own,
            first.channel_index,
            (matrix, offset),
            time=time,
            plan=first.plan,
            translation=moved,
        )
        if chi2:
            return jnp.sum(weights * (data - image) ** 2)
        return _gaussian_log_likelihood(data, weights, log_normalisation, image)

    return _sum_over_epochs(one, stacked, chunks)


def _sum_over_epochs(one: Any, stacked: Any, chunks: int) -> Array:
    """`sum(one(epoch))` over the leading axis of `stacked`, in `chunks` equal chunks: `vmap` within a
    chunk, `lax.scan` over chunks with the body rematerialised in the gradient (`jax.checkpoint`), so
    that neither pass holds more than one chunk's intermediates."""
    if chunks == 1:
        return jnp.sum(jax.vmap(one)(stacked))
    folded = jax.tree_util.tree_map(lambda leaf: leaf.reshape(chunks, -1, *leaf.shape[1:]), stacked)
    body = jax.checkpoint(lambda part: jnp.sum(jax.vmap(one)(part)))
    total, _ = jax.lax.scan(
        lambda total, part: (total + body(part), None), jnp.zeros((), jnp.float32), folded
    )
    return total


def _time_text(time: Any) -> str:
    """An observation's time as it reads in a repr: its value, or `traced` inside a transformation."""
    if isinstance(time, jax.core.Tracer) or jnp.ndim(time) != 0:
        return "traced" if isinstance(time, jax.core.Tracer) else f"array of shape {jnp.shape(time)}"
    return f"{float(time):g}"


def simulate(
    scene: Any,
    key: PRNGKeyArray,
    *,
    noise: ArrayLike,
    psf: PSF | None = None,
    mask: ArrayLike | None = None,
    name: str = "simulation",
    time: Real[ArrayLike, ""] | None = None,
) -> Observation:
    """Mock data of a scene on its frame's grid, as an observation ready to fit.

    **Arguments:**

    - `scene`: a [`scarlet_like.Scene`][] (with Parameters or resolved): the truth.
    - `key`: a JAX random key for the noise.
    - `noise`: the standard deviation of the Gaussian noise: one number, one per channel `(C,)`, or
      per pixel (anything broadcasting to `(C, H, W)`); positive.
    - `psf`: the PSF the data are seen with (a [`scarlet_like.GaussianPSF`][] or
      [`scarlet_like.ArrayPSF`][]); default none beyond the pixel.
    - `mask`: non-zero / `True` where pixels are to be ignored, as for [`scarlet_like.Observation`][].
    - `name`: the observation's name.
    - `time`: the exposure's time, at which time-dependent spectra are rendered (see
      [`scarlet_like.Observation`][]); default none.

    **Returns:**

    An [`scarlet_like.Observation`][] on the frame's grid, channels and WCS, with weights
    `1 / noise**2`, the mask and the PSF, whose data are the scene rendered with the PSF
    (`obs.render(scene)`) plus noise of that standard deviation (zero on masked pixels). Fit it as any
    observation: `sl.fit(start, sl.simulate(truth, key, psf=psf, noise=0.1))`. More draws with the same
    noise, under `vmap`: `jax.vmap(lambda k: obs.simulate(truth, k))(keys)` with the returned `obs`
    (what this function calls, see [`Observation.simulate`][scarlet_like.Observation.simulate]).
    """
    frame = getattr(scene, "frame", None)
    if frame is None or not hasattr(frame, "shape"):
        raise ObservationError(
            "simulate: the scene must be an sl.Scene (with a frame giving the grid), got "
            f"{type(scene).__name__}"
        )
    shape = tuple(frame.shape)
    sigma = np.asarray(noise, dtype=np.float64)
    if sigma.ndim == 1 and sigma.shape[0] == shape[0]:
        sigma = sigma[:, None, None]  # one per channel
    if np.any(~np.isfinite(sigma)) or np.any(sigma <= 0):
        raise ObservationError(
            f"simulate: noise must be a positive standard deviation, got {noise!r} (for data without "
            "noise, render the scene: `sl.Observation(...).render(scene)` or `scene()`)"
        )
    try:
        weights = np.broadcast_to(1.0 / sigma**2, shape)
    except ValueError:
        raise ObservationError(
            f"simulate: noise of shape {sigma.shape} fits neither one per channel ({shape[0]},) nor the "
            f"frame's shape {shape}"
        ) from None
    template = Observation(
        np.zeros(shape),
        weights=weights,
        mask=mask,
        psf=psf,
        channels=frame.channels,
        wcs=frame.wcs,
        name=name,
        time=time,
    )
    data = template.simulate(scene, key)
    return eqx.tree_at(lambda obs: obs.data, template, jnp.where(template.weights > 0, data, 0.0))

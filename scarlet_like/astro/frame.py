"""`Frame`: the model's pixel grid, channels and (narrow) model PSF."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd

from ..core.parameter import Parameter, ParameterError
from ..core.resolve import Resolvable, resolve
from .psf import PSF, GaussianPSF
from .render import FourierGrid

__all__ = ["Frame", "FrameError", "MODEL_PSF_SIGMA"]

# Width of the default model PSF, in model-frame pixels: narrow enough to stay below any observed
# PSF, wide enough that the model cube is well sampled.
MODEL_PSF_SIGMA = 0.8


class FrameError(ValueError):
    """Inconsistent frame or observation geometry; the message names the culprit."""


class Frame(eqx.Module):
    """The model frame: where source positions live and what `scene()` renders.

    **Arguments:**

    - `shape`: `(C, H, W)`.
    - `channels`: the `C` channel (band) names; default `0 .. C-1`.
    - `psf`: the model PSF (default a narrow Gaussian of sigma `MODEL_PSF_SIGMA` pixels).
    - `wcs`: an astropy celestial WCS of the grid, used to place sources given as `SkyCoord` and to
      map the frame onto observations with other pixel grids.

    Positions are `(y, x)` pixel coordinates, pixel centres at integer indices.
    """

    # worked out from the others: `sl.tree` folds it into one line
    __precomputed_fields__ = ("grid",)

    shape: tuple[int, int, int] = eqx.field(static=True)
    channels: tuple[str, ...] = eqx.field(static=True)
    psf: PSF
    wcs: Any = eqx.field(static=True)
    grid: FourierGrid

    def __init__(
        self,
        shape: Sequence[int],
        channels: Sequence[Any] | None = None,
        psf: PSF | None = None,
        wcs: Any = None,
    ):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise FrameError(f"Frame: shape must be (C, H, W) with positive sizes, got {shape}")
        self.shape = shape
        channels = tuple(str(c) for c in (range(shape[0]) if channels is None else channels))
        if len(channels) != shape[0]:
            raise FrameError(f"Frame: {len(channels)} channel names for {shape[0]} channels")
        if len(set(channels)) != len(channels):
            raise FrameError(f"Frame: channel names must be unique, got {channels}")
        self.channels = channels
        self.psf = GaussianPSF(MODEL_PSF_SIGMA) if psf is None else psf
        if self.psf.channels not in (1, shape[0]):
            raise FrameError(f"Frame: the PSF has {self.psf.channels} channels, the frame {shape[0]}")
        self.wcs = wcs
        self.grid = FourierGrid(shape[1], shape[2], self.psf)

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    @property
    def pixel_scale(self) -> Any:
        """The side of a pixel on the sky, an astropy `Quantity` in arcsec per pixel (the mean of the
        two axes' scales of the celestial WCS); `None` for a frame without a WCS."""
        return None if self.wcs is None else _pixel_scale(self.wcs)

    def contains(self, center: Any) -> bool:
        """Whether a `(y, x)` position lies on the frame (within half a pixel of its edge pixels)."""
        y, x = (float(v) for v in np.asarray(center))
        return -0.5 <= y <= self.height - 0.5 and -0.5 <= x <= self.width - 0.5

    def to_pixel(self, position: Any) -> np.ndarray:
        """`(y, x)` of an astropy `SkyCoord` (needs the frame's WCS), or of a `(y, x)` pair.

        A Parameter or an `sl.Derived` position gives its current value (a Derived computed from
        its inputs' current values), for helpers that start other values from it
        (`sl.init.pixel_spectrum(obs, center, frame=frame)`).
        """
        if isinstance(position, Parameter | Resolvable):
            position = resolve(position)
        if _is_sky_coordinate(position):
            self._require_wcs("a position was given as a SkyCoord")
            x, y = self.wcs.celestial.world_to_pixel(position)
            return np.stack([np.asarray(y), np.asarray(x)], axis=-1).astype(np.float32)
        return np.asarray(position, dtype=np.float32)

    def to_sky(self, position: Any) -> Any:
        """The sky position of a `(y, x)` model-frame pixel position: the inverse of
        [`scarlet_like.Frame.to_pixel`][] for sky coordinates.

        **Arguments:**

        - `position`: `(y, x)` in model-frame pixels, or an array `(..., 2)` of them; a Parameter or an
          `sl.Derived` position gives its current value (a fitted source's `center`).

        **Returns:**

        An astropy `SkyCoord` (of shape `(...)` for an array of positions), in the frame of the WCS
        (ICRS for most images). Raises a [`scarlet_like.FrameError`][] for a frame without a WCS.
        """
        if isinstance(position, Parameter | Resolvable):
            position = resolve(position)
        self._require_wcs("to_sky needs the sky position of a pixel")
        pixels = np.asarray(position, dtype=np.float64)
        if pixels.ndim == 0 or pixels.shape[-1] != 2:
            raise FrameError(
                f"Frame.to_sky: expected (y, x) pixel positions, shape (..., 2), got shape {pixels.shape}"
            )
        return self.wcs.celestial.pixel_to_world(pixels[..., 1], pixels[..., 0])

    def _require_wcs(self, why: str) -> None:
        if self.wcs is None:
            raise FrameError(
                f"{why}, but the frame has no WCS: give it one (`sl.Frame(shape, wcs=...)`, or "
                "`sl.Frame.from_observations` of observations made with `wcs=`)"
            )

    @classmethod
    def from_observations(
        cls,
        observations: Any,
        psf: PSF | None = None,
        coverage: Literal["union", "intersection"] = "union",
    ) -> Frame:
        """The model frame for one or several observations.

        **Arguments:**

        - `observations`: an Observation or a list of them.
        - `psf`: the model PSF (default narrow Gaussian).
        - `coverage`: which sky the frame covers when the observations' footprints differ:
          `"union"` (default), every pixel seen by any observation; `"intersection"`, only sky that
          every observation sees.

        **Returns:**

        A frame with every observation's channels, each once (in order of first appearance). With
        one observation, or several on the same grid, it is that grid. With WCSs of different grids,
        it has the finest pixel scale (the WCS of the observation with the smallest pixels, its
        origin moved) and covers:

        - for `"union"`, the smallest rectangle of those pixels holding every footprint;
        - for `"intersection"`, the largest rectangle of whole pixels inside the overlap of all
          footprints. The footprints are the images' outer corners carried through each WCS onto the
          frame's pixel plane, and their overlap is a convex polygon; when the footprints are rotated
          against each other it is not a rectangle of frame pixels, and its corners outside that
          largest rectangle are left out, so that every pixel of the frame is seen by every
          observation.

        Several observations may see one channel: epochs of one band, or exposures with PSFs,
        WCSs and noise of their own. Their likelihoods add up, and each compares its data with the
        same entry of the scene's spectra. Channel names given with `channels=` are taken at their
        word: the same name is the same band. The default names of an observation made without
        `channels=` (`"0"`, `"1"`, ...) are only positions, and two observations may share one of
        them only if they are exposures of one camera as far as the frame can tell: both made without
        `channels=`, with as many channels, on the same pixel grid (same image size, and the same WCS
        or none). A default name shared with an observation that gave that name, or with one of
        another size or grid, is a `FrameError` naming both: give them `channels=`.

        Also a `FrameError`, naming the observations at fault:

        - one observation given twice (its data would count twice);
        - observations on different grids without WCSs;
        - footprints with no sky in common: for `"intersection"`, when no sky is seen by all; for
          `"union"`, when the observations make separate fields (groups that share no sky with each
          other, footprints that only touch included), which is almost always a wrong WCS or
          observations of another target. Fit each field with a frame of its own, or build a frame
          spanning them on purpose with `sl.Frame(shape, channels, wcs=...)`.
        """
        observations = list(observations) if isinstance(observations, list | tuple) else [observations]
        if not observations:
            raise FrameError("Frame.from_observations: got no observation")
        if coverage not in ("union", "intersection"):
            raise FrameError(
                f"Frame.from_observations: coverage must be 'union' (the sky any observation sees) or "
                f"'intersection' (the sky all of them see), got {coverage!r}"
            )
        for later, observation in enumerate(observations):
            earlier = next((i for i, other in enumerate(observations[:later]) if other is observation), None)
            if earlier is not None:
                raise FrameError(
                    f"Frame.from_observations: observation '{observation.name}' is given twice (at "
                    f"positions {earlier} and {later}), so its data would count twice; give it once (for "
                    "several exposures of one channel, give one Observation per exposure)"
                )
        _check_channel_names(observations)
        channels: list[str] = []
        for observation in observations:
            channels.extend(channel for channel in observation.channels if channel not in channels)
        reference = observations[0]
        same_grid = all(o.data.shape[1:] == reference.data.shape[1:] and o.wcs is None for o in observations)
        if same_grid or reference.wcs is None:
            for observation in observations[1:]:
                if observation.data.shape[1:] != reference.data.shape[1:]:
                    raise FrameError(
                        f"Frame.from_observations: observations '{reference.name}' and '{observation.name}' "
                        "have different pixel grids; give every observation a WCS"
                    )
            height, width = reference.data.shape[1:]
            return cls((len(channels), height, width), channels, psf, reference.wcs)
        return _frame_from_wcs(cls, observations, channels, psf, coverage)


def _pixel_scale(wcs: Any) -> Any:
    """The mean side of a pixel of a celestial WCS, as an astropy `Quantity` in arcsec per pixel."""
    from astropy import units
    from astropy.wcs.utils import proj_plane_pixel_scales

    celestial = wcs.celestial
    # in the units of the celestial axes (degrees, as FITS headers have them, unless CUNIT says otherwise)
    unit = units.Unit(celestial.wcs.cunit[0] or "deg")
    side = float(np.mean(proj_plane_pixel_scales(celestial))) * unit
    return side.to(units.arcsec) / units.pixel


#: overlap (in squared pixels of the frame) below which two footprints share no sky: edges that only
#: touch leave a sliver of rounding, about 1e-9 px^2 for the footprints of tests/astro/test_coverage.py
_NO_OVERLAP = 1e-3
#: how far (in pixels of the frame) a pixel may stick out of the overlap of footprints and still count as
#: inside it, or a footprint out of the union's pixels: the corners of footprints on one grid come back
#: from the WCSs within about 1e-9 px of the pixels' edges
_INSIDE_TOLERANCE = 1e-4


def _check_channel_names(observations: list) -> None:
    """A `FrameError` for two observations that share a channel name which means a band for one and
    a position for the other, or positions in two different cameras; see `Frame.from_observations`.

    Every observation made without `channels=` has a channel "0", so all of those must be of one
    camera: each is compared with the first of them (one comparison per observation, not per pair).
    """

    def labels(i: int, j: int) -> tuple[str, str, str]:
        """How observations `i < j` are called: each alone, and the two together."""
        first, second = observations[i].name, observations[j].name
        if first != second:
            return f"'{first}'", f"'{second}'", f"'{first}' and '{second}' (positions {i} and {j})"
        # observations are often left with the default name: then their positions tell them apart
        return f"'{first}' (at {i})", f"'{second}' (at {j})", f"'{first}' (at {i}) and '{second}' (at {j})"

    def refuse(i: int, j: int, channel: str, why: str) -> NoReturn:
        raise FrameError(
            f"Frame.from_observations: observations {labels(i, j)[2]} both have a channel named '{channel}', "
            f"but {why}; the frame would take them for one band. Name the bands of both, "
            "`sl.Observation(..., channels=['g', 'r', ...])`"
        )

    defaulted = [i for i, o in enumerate(observations) if not getattr(o, "channels_given", True)]
    for j in defaulted[1:]:
        i = defaulted[0]
        first, second, _ = labels(i, j)
        different = _camera_difference((first, observations[i]), (second, observations[j]))
        if different is not None:
            refuse(
                i,
                j,
                "0",
                "both were made without `channels=` (their channels are named by position, 0 .. C-1) and "
                f"they are not of one camera: {different}",
            )
    positions = {channel for i in defaulted for channel in observations[i].channels}
    for j, observation in enumerate(observations):
        if not getattr(observation, "channels_given", True) or not positions.intersection(
            observation.channels
        ):
            continue
        channel = next(c for c in observation.channels if c in positions)
        i = next(i for i in defaulted if channel in observations[i].channels)
        first, second, _ = labels(min(i, j), max(i, j))
        unnamed, named = (first, second) if i < j else (second, first)
        refuse(
            min(i, j),
            max(i, j),
            channel,
            f"{unnamed} was made without `channels=` (its channels are named by position, 0 .. C-1) and "
            f"{named} gave that name to a band of its own",
        )


def _camera_difference(labelled_first: tuple[str, Any], labelled_second: tuple[str, Any]) -> str | None:
    """What tells two `(label, observation)` apart as cameras (channel count, image size, WCS), or `None`."""
    (first_label, first), (second_label, second) = labelled_first, labelled_second
    if len(first.channels) != len(second.channels):
        return f"{first_label} has {len(first.channels)} channels, {second_label} {len(second.channels)}"
    shapes = [tuple(int(n) for n in o.data.shape[1:]) for o in (first, second)]
    if shapes[0] != shapes[1]:
        return "their images are {}x{} and {}x{} pixels".format(*shapes[0], *shapes[1])
    if first.wcs is None or second.wcs is None or first.wcs is second.wcs:
        return None
    corners = _footprint(first, second.wcs.celestial)
    height, width = shapes[0]
    own = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    offset = float(np.nanmax(np.abs(corners - own))) if np.all(np.isfinite(corners)) else np.inf
    if offset > _INSIDE_TOLERANCE:
        return f"their WCSs place their pixels differently on the sky (by up to {offset:.3g} pixels)"
    return None


def _footprint(observation: Any, wcs: Any) -> np.ndarray:
    """`(4, 2)`: the outer corners of an observation's image, `(x, y)` in the pixels of the celestial
    `wcs`, in order around the image (NaN for corners that do not project onto its plane)."""
    height, width = observation.data.shape[1:]
    xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    world = observation.wcs.celestial.pixel_to_world(xs, ys)
    return np.stack(wcs.world_to_pixel(world), axis=-1).astype(np.float64)


def _signed_area(polygon: np.ndarray) -> float:
    """Shoelace area of a polygon `(N, 2)`: positive when its vertices go counter-clockwise."""
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(x @ np.roll(y, -1) - y @ np.roll(x, -1))


def _clip(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """The part of the convex polygon `subject` inside the convex polygon `clip` (Sutherland-Hodgman).

    Vertices `(N, 2)` in order, either way round; a `(0, 2)` array when nothing is left, or when a
    polygon has corners that are not finite (a footprint that does not project onto the plane).
    """
    orientation = np.sign(_signed_area(clip))
    if not (np.all(np.isfinite(subject)) and np.all(np.isfinite(clip))) or orientation == 0:
        return np.zeros((0, 2))
    for start, end in zip(clip, np.roll(clip, -1, axis=0), strict=True):
        if len(subject) == 0:
            break
        edge = end - start
        # > 0 on the inner side of this edge of the clip polygon
        side = orientation * (edge[0] * (subject[:, 1] - start[1]) - edge[1] * (subject[:, 0] - start[0]))
        kept = []
        for i, (point, point_side) in enumerate(zip(subject, side, strict=True)):
            following, following_side = subject[(i + 1) % len(subject)], side[(i + 1) % len(subject)]
            if point_side >= 0:
                kept.append(point)
            if (point_side >= 0) != (following_side >= 0):  # the edge crosses the line: keep the crossing
                kept.append(point + point_side / (point_side - following_side) * (following - point))
        subject = np.array(kept).reshape(-1, 2)
    return subject


def _overlap_area(first: np.ndarray, second: np.ndarray) -> float:
    return abs(_signed_area(_clip(first, second)))


def _largest_rectangle_inside(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The largest rectangle of whole pixels inside a convex polygon `(N, 2)` of `(x, y)` positions.

    Pixel `(x, y)` (integers) covers `x - 0.5 .. x + 0.5` and `y - 0.5 .. y + 0.5`; it is inside when its
    four corners are inside every edge's half-plane (to within `_INSIDE_TOLERANCE` pixels). Per row of
    pixels this gives an interval of columns (the polygon is convex); the largest rectangle is then the
    best run of consecutive rows, their intervals intersected.

    **Returns:**

    `(low, high)`: the `(x, y)` of the first and last pixel of the rectangle, or `None` when no whole
    pixel fits in the polygon.
    """
    if _signed_area(polygon) < 0:
        polygon = polygon[::-1]
    edges = np.roll(polygon, -1, axis=0) - polygon
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    keep = lengths > 0
    edges, starts, lengths = edges[keep], polygon[keep], lengths[keep]
    # counter-clockwise: inside is on the left of each edge, n . p >= c with n the inward unit normal
    normal = np.stack([-edges[:, 1], edges[:, 0]], axis=-1) / lengths[:, None]
    bound = np.sum(normal * starts, axis=-1) - _INSIDE_TOLERANCE
    rows = np.arange(
        np.ceil(polygon[:, 1].min() + 0.5 - _INSIDE_TOLERANCE),
        np.floor(polygon[:, 1].max() - 0.5 + _INSIDE_TOLERANCE) + 1,
    )
    if rows.size == 0:
        return None
    left = np.full(rows.shape, -np.inf)
    right = np.full(rows.shape, np.inf)
    usable = np.ones(rows.shape, bool)
    for (nx, ny), c in zip(normal, bound, strict=True):
        for y in (rows - 0.5, rows + 0.5):  # the row's lower and upper edges
            if abs(nx) < 1e-12:  # a horizontal edge: a condition on the row alone
                usable &= ny * y >= c
            elif nx > 0:  # a lower bound on x, met first by the pixel's left side
                left = np.maximum(left, (c - ny * y) / nx + 0.5)
            else:  # an upper bound, met first by its right side
                right = np.minimum(right, (c - ny * y) / nx - 0.5)
    first = np.where(usable, np.ceil(left), np.inf)
    last = np.where(usable, np.floor(right), -np.inf)
    best, found = 0.0, None
    for top in range(rows.size):
        # for every bottom row below `top`: the columns all rows from `top` to it share
        shared_first = np.maximum.accumulate(first[top:])
        shared_last = np.minimum.accumulate(last[top:])
        widths = np.maximum(shared_last - shared_first + 1, 0)
        areas = widths * np.arange(1, widths.size + 1)
        bottom = int(np.argmax(areas))
        if areas[bottom] > best:
            best = float(areas[bottom])
            found = (
                np.array([shared_first[bottom], rows[top]], dtype=int),
                np.array([shared_last[bottom], rows[top + bottom]], dtype=int),
            )
    return found


def _fields(footprints: list[np.ndarray]) -> list[list[int]]:
    """The observations grouped into fields: footprints linked by overlaps, directly or through others."""
    field = list(range(len(footprints)))

    def root(i: int) -> int:
        while field[i] != i:
            i = field[i]
        return i

    for j in range(len(footprints)):
        for i in range(j):
            if root(i) != root(j) and _overlap_area(footprints[i], footprints[j]) > _NO_OVERLAP:
                field[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(footprints)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _names(observations: list, indices: list[int], most: int = 4) -> str:
    names = [f"'{observations[i].name}'" for i in indices[:most]]
    more = len(indices) - most
    return "[" + ", ".join(names) + (f" and {more} more" if more > 0 else "") + "]"


def _angle_text(degrees: float) -> str:
    if degrees >= 1:
        return f"{degrees:.3g} deg"
    if degrees >= 1 / 60:
        return f"{degrees * 60:.3g} arcmin"
    return f"{degrees * 3600:.3g} arcsec"


def _sky_centre(observation: Any) -> Any:
    height, width = observation.data.shape[1:]
    return observation.wcs.celestial.pixel_to_world((width - 1) / 2, (height - 1) / 2)


def _frame_from_wcs(
    cls: type, observations: list, channels: list[str], psf: PSF | None, coverage: str
) -> Frame:
    missing = [o.name for o in observations if o.wcs is None]
    if missing:
        raise FrameError(
            f"Frame.from_observations: observations on different grids all need a WCS; {missing} "
            f"{'has' if len(missing) == 1 else 'have'} none"
        )
    finest = min(observations, key=lambda o: _pixel_scale(o.wcs))
    wcs = finest.wcs.celestial.deepcopy()
    footprints = [_footprint(observation, wcs) for observation in observations]
    if coverage == "union":
        fields = _fields(footprints)
        if len(fields) > 1:
            first, others = fields[0], [i for field in fields[1:] for i in field]
            nearest = min(
                _sky_centre(observations[i]).separation(_sky_centre(observations[j])).deg
                for i in first
                for j in others
            )
            groups = " and ".join(_names(observations, field) for field in fields)
            raise FrameError(
                f"Frame.from_observations: the observations make {len(fields)} fields that share no sky: "
                f"{groups} (the nearest centres {_angle_text(nearest)} apart). A frame spanning separate "
                "fields is almost always a mistake: a wrong WCS, or observations of another target. Check "
                "their WCSs, or fit each field apart with a frame of its own "
                "(`sl.Frame.from_observations(field)`); for a frame spanning them on purpose, build it "
                "with `sl.Frame(shape, channels, wcs=...)`"
            )
        # every pixel any corner falls on; a corner on a pixel's edge (to within the rounding of the
        # WCSs) does not add the pixel beyond it
        corners = np.concatenate(footprints)
        low = np.floor(corners.min(axis=0) + 0.5 + _INSIDE_TOLERANCE).astype(int)
        high = np.ceil(corners.max(axis=0) - 0.5 - _INSIDE_TOLERANCE).astype(int)
    else:
        overlap = footprints[0]
        for footprint in footprints[1:]:
            overlap = _clip(overlap, footprint)
        inside = _largest_rectangle_inside(overlap) if abs(_signed_area(overlap)) > _NO_OVERLAP else None
        if inside is None:
            apart = [
                (i, j)
                for j in range(len(observations))
                for i in range(j)
                if _overlap_area(footprints[i], footprints[j]) <= _NO_OVERLAP
            ]
            if apart:
                pairs = ", ".join(
                    f"'{observations[i].name}' and '{observations[j].name}'" for i, j in apart[:4]
                )
                more = " (and more)" if len(apart) > 4 else ""
                what = f"no sky is seen by all of them: {pairs}{more} share none"
            elif abs(_signed_area(overlap)) > _NO_OVERLAP:
                what = "the sky they all see is narrower than one pixel of the frame"
            else:
                what = "every two of them overlap, but no sky is seen by all of them"
            raise FrameError(
                f"Frame.from_observations(coverage='intersection'): {what}. Check their WCSs, leave out the "
                "observations of other fields, or take coverage='union'"
            )
        low, high = inside
    wcs.wcs.crpix = wcs.wcs.crpix - low  # shift the origin to the frame's corner
    width, height = (high - low + 1).tolist()
    return cls((len(channels), height, width), channels, psf, wcs)


def _frame_position(frame: Frame, position: Any, who: str) -> np.ndarray:
    """`frame.to_pixel(position)` for a source's centre; a `SkyCoord` on a frame without WCS is a
    `FrameError` naming `who`."""
    if _is_sky_coordinate(position):
        frame._require_wcs(f"{who}: the centre is a SkyCoord")
    return frame.to_pixel(position)


def _is_sky_coordinate(value: Any) -> bool:
    # Importing astropy.coordinates takes about a second of CPU; a process that has not imported it
    # holds no SkyCoord, and a plain position should not pay for the import.
    coordinates = sys.modules.get("astropy.coordinates")
    return coordinates is not None and isinstance(value, coordinates.SkyCoord)


def _sky_jacobian(frame: Frame, center: np.ndarray) -> np.ndarray:
    """`d(Δα cos δ, Δδ) / d(y, x)` in arcsec per pixel at the `(y, x)` position `center`.

    Central differences over one pixel, in the tangent plane at the centre: exact for a linear WCS, and
    to well below 1e-6 for any smooth one. Rows east and north, columns y and x.
    """
    from astropy import units

    center = np.asarray(center, dtype=np.float64)
    origin = frame.to_sky(center)
    steps = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])
    east, north = origin.spherical_offsets_to(frame.to_sky(center[None, :] + steps))
    offsets = np.stack([east.to_value(units.arcsec), north.to_value(units.arcsec)])  # (2, 4)
    return np.stack([offsets[:, 1] - offsets[:, 0], offsets[:, 3] - offsets[:, 2]], axis=-1)


def _sky_parameter_input(frame: Frame, value: Any, prior: Any, who: str) -> tuple[Any, Any]:
    """A Parameter's value and prior in the frame's pixels, for Parameters made inside
    `with sl.Scene(frame):` (see `sl.core.parameter.converting`).

    A `SkyCoord` value becomes its `(y, x)` position; a prior given as an angle (an astropy `Quantity`,
    one width or the two of `(Δα cos δ, Δδ)`) becomes the Gaussian of those standard deviations on the
    sky around the position, carried into pixels by the WCS's local Jacobian `J`: covariance
    `J⁻¹ diag(w²) J⁻ᵀ`. Other values and priors are returned as they are.
    """
    if "astropy" not in sys.modules:
        return value, prior  # no SkyCoord nor Quantity can exist yet: every Parameter passes here
    from astropy import units

    sky_value = _is_sky_coordinate(value)
    sky_prior = isinstance(prior, units.Quantity)
    if not (sky_value or sky_prior):
        return value, prior
    if sky_value:
        frame._require_wcs(f"{who}: the value is a SkyCoord")
        value = frame.to_pixel(value)
    if not sky_prior:
        return value, prior
    if not prior.unit.is_equivalent(units.arcsec):
        raise ParameterError(
            f"{who}: a prior given as a Quantity is a width on the sky, an angle (`0.5 * u.arcsec`); got "
            f"units of {prior.unit}"
        )
    position = np.asarray(value, dtype=np.float64)
    if position.shape != (2,):
        raise ParameterError(
            f"{who}: a prior width in arcsec is around one position, a SkyCoord or a (y, x) pair; the "
            f"value has shape {position.shape}"
        )
    widths = np.ravel(prior.to_value(units.arcsec)).astype(np.float64)
    if widths.size not in (1, 2) or not np.all(np.isfinite(widths) & (widths > 0)):
        raise ParameterError(
            f"{who}: the prior width must be one positive angle, or two for (RA cos Dec, Dec); got {prior}"
        )
    widths = np.broadcast_to(widths, (2,))
    frame._require_wcs(f"{who}: the prior is a width on the sky")
    inverse = np.linalg.inv(_sky_jacobian(frame, position))  # pixels per arcsec
    covariance = inverse @ np.diag(widths**2) @ inverse.T
    return value, nd.MultivariateNormal(
        jnp.asarray(position, dtype=jnp.float32), covariance_matrix=jnp.asarray(covariance, dtype=jnp.float32)
    )

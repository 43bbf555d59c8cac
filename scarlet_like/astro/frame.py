"""`Frame`: the model's pixel grid, channels and (narrow) model PSF."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

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
    def from_observations(cls, observations: Any, psf: PSF | None = None) -> Frame:
        """The model frame for one or several observations.

        **Arguments:**

        - `observations`: an Observation or a list of them.
        - `psf`: the model PSF (default narrow Gaussian).

        **Returns:**

        A frame with every observation's channels, each once (in order of first appearance). With
        one observation, or several on the same grid, it is that grid; with WCSs of different pixel
        scales, the finest pixel scale over the union of the footprints.

        Several observations may see one channel: epochs of one band, or exposures with PSFs,
        WCSs and noise of their own. Their likelihoods add up, and each compares its data with the
        same entry of the scene's spectra. One observation given twice would count its data twice,
        and raises a `FrameError` naming it.
        """
        observations = list(observations) if isinstance(observations, list | tuple) else [observations]
        if not observations:
            raise FrameError("Frame.from_observations: got no observation")
        for later, observation in enumerate(observations):
            earlier = next((i for i, other in enumerate(observations[:later]) if other is observation), None)
            if earlier is not None:
                raise FrameError(
                    f"Frame.from_observations: observation '{observation.name}' is given twice (at "
                    f"positions {earlier} and {later}), so its data would count twice; give it once (for "
                    "several exposures of one channel, give one Observation per exposure)"
                )
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
        return _frame_from_wcs(cls, observations, channels, psf)


def _pixel_scale(wcs: Any) -> Any:
    """The mean side of a pixel of a celestial WCS, as an astropy `Quantity` in arcsec per pixel."""
    from astropy import units
    from astropy.wcs.utils import proj_plane_pixel_scales

    celestial = wcs.celestial
    # in the units of the celestial axes (degrees, as FITS headers have them, unless CUNIT says otherwise)
    unit = units.Unit(celestial.wcs.cunit[0] or "deg")
    side = float(np.mean(proj_plane_pixel_scales(celestial))) * unit
    return side.to(units.arcsec) / units.pixel


def _frame_from_wcs(cls: type, observations: list, channels: list[str], psf: PSF | None) -> Frame:
    if any(o.wcs is None for o in observations):
        raise FrameError("Frame.from_observations: observations on different grids all need a WCS")
    finest = min(observations, key=lambda o: _pixel_scale(o.wcs))
    wcs = finest.wcs.celestial.deepcopy()
    corner_lists = []
    for observation in observations:
        height, width = observation.data.shape[1:]
        xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
        ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
        world = observation.wcs.celestial.pixel_to_world(xs, ys)
        corner_lists.append(np.stack(wcs.world_to_pixel(world), axis=-1))
    corners = np.concatenate(corner_lists)
    low = np.floor(corners.min(axis=0) + 0.5).astype(int)
    high = np.ceil(corners.max(axis=0) - 0.5).astype(int)
    wcs.wcs.crpix = wcs.wcs.crpix - low  # shift the origin to the union's corner
    width, height = (high - low + 1).tolist()
    return cls((len(channels), height, width), channels, psf, wcs)


def _is_sky_coordinate(value: Any) -> bool:
    try:
        from astropy.coordinates import SkyCoord
    except ImportError:  # pragma: no cover - astropy is a dependency
        return False
    return isinstance(value, SkyCoord)


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

"""Observations of a field on different pixel grids (another instrument's pixel scale, a shifted or
rotated exposure): each blend's cutout from each image, one model frame, one compiled fit per bucket.

The catalog's pixels are those of the field's first image (the *reference*): blends, their boxes and
cutout sizes are made there. For a blend, each image gets a square cutout around the blend's sky
position, of a side fixed by the cutout size of the bucket (so that every blend of a bucket has
cutouts of the same shapes), whose pixels outside the blend's box (carried through the WCSs) get zero
weight. The model frame is the cutout of the image with the finest pixels.

Compile once. An observation's WCS is static metadata of the compiled fit, and the exact map from the
frame onto each cutout differs between blends by a fraction of a pixel. So every blend of a bucket
gets the *same* WCSs, made up for the bucket (`_LocalWCS`, equal by value): they carry the linear
part of the map (pixel scales and rotations, measured once at the field's centre: between two
tangent-plane images of a 2048-pixel 0.2" field, one of 0.1" pixels turned by 30 degrees, it changes
from the centre to a corner by 1.4e-5 per pixel with tangent points 0.4 degrees apart, 9e-4 pixels
across a 64-pixel cutout, and by 4e-10 with one tangent point), and the
fraction of a pixel each blend's cutout is off from them is the scene's fixed shift for that
observation (see [`scarlet_like.Scene`][]'s `shifts`), an array that differs between the blends of
one compiled fit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.wcs import WCS

from ._blends import Blend
from ._field import FieldImage

__all__ = ["Grids", "grids_of"]


class _LocalWCS(WCS):
    """A tangent-plane WCS equal to another with the same numbers (astropy's compare by identity): the
    made-up WCSs of one bucket are then one static value of its compiled fit, on every worker and in
    every task."""

    def _key(self) -> tuple[Any, ...]:
        numbers = self.wcs
        return (tuple(numbers.ctype), tuple(numbers.crval), tuple(numbers.crpix), tuple(numbers.cd.ravel()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _LocalWCS) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _local_wcs(cd: np.ndarray, side: int) -> _LocalWCS:
    """A TAN WCS at (0, 0) with the matrix `cd` (degrees per pixel, FITS (x, y) order), its reference
    pixel at the centre of a `side` x `side` image."""
    wcs = _LocalWCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [0.0, 0.0]
    wcs.wcs.crpix = [(side + 1) / 2, (side + 1) / 2]
    wcs.wcs.cd = np.asarray(cd, dtype=np.float64)
    wcs.wcs.set()
    return wcs


def _swap(matrix: np.ndarray) -> np.ndarray:
    """A 2x2 matrix between `(y, x)` vectors as one between `(x, y)` vectors (and back)."""
    return np.asarray(matrix)[::-1, ::-1]


@dataclasses.dataclass(frozen=True)
class Grids:
    """How the images of a field lie against the first one's pixels (measured at the field's centre).

    - `matrices`: per image, `d(its pixel (y, x)) / d(reference pixel (y, x))`, 4 numbers row by row.
    - `finest`: the image with the smallest pixels, whose cutouts are the model frames.
    - `scales`: per image, its pixel side in degrees.
    """

    matrices: tuple[tuple[float, ...], ...]
    finest: int
    scales: tuple[float, ...]

    def matrix(self, image: int) -> np.ndarray:
        return np.asarray(self.matrices[image], dtype=np.float64).reshape(2, 2)

    def side(self, image: int, size: int) -> int:
        """The cutout side in image `image` of a blend whose reference cutout is `size` pixels: the
        box holding that square carried onto the image's pixels, and a pixel either side for the
        rounding of the cutout's corner."""
        if image == 0:
            return int(size)
        extent = np.abs(self.matrix(image)).sum(axis=1).max() * size
        return int(math.ceil(extent - 1e-6)) + 2

    def to_frame(self, image: int) -> np.ndarray:
        """`d(image pixel) / d(frame pixel)`: the linear part of the map from the model frame's pixels
        (the finest image's) onto image `image`'s."""
        return self.matrix(image) @ np.linalg.inv(self.matrix(self.finest))

    def frame_origin(self, blend: Blend, images: Sequence[FieldImage]) -> tuple[np.ndarray, tuple[int, int]]:
        """The sky centre `(ra, dec)` of the blend's reference cutout, and the corner (field pixel) of
        the finest image's cutout, the model frame."""
        centre = np.asarray(blend.origin, dtype=np.float64) + (blend.size - 1) / 2
        sky = np.asarray(images[0].to_sky(centre[0], centre[1]), dtype=np.float64)
        return sky, self._origin(self.finest, sky, blend.size, images)

    def _origin(
        self, image: int, sky: np.ndarray, size: int, images: Sequence[FieldImage]
    ) -> tuple[int, int]:
        y, x = images[image].to_pixels(sky[0], sky[1])
        side = self.side(image, size)
        return (int(np.round(float(y) - (side - 1) / 2)), int(np.round(float(x) - (side - 1) / 2)))

    def to_reference(self, centers: np.ndarray, blend: Blend, images: Sequence[FieldImage]) -> np.ndarray:
        """`(K, 2)` model-frame pixels of a blend as reference (catalog) pixels."""
        _, origin = self.frame_origin(blend, images)
        field = np.asarray(centers, dtype=np.float64).reshape(-1, 2) + np.asarray(origin, dtype=np.float64)
        if self.finest == 0:
            return field
        ra, dec = images[self.finest].to_sky(field[:, 0], field[:, 1])
        y, x = images[0].to_pixels(ra, dec)
        return np.stack([np.asarray(y), np.asarray(x)], axis=-1)

    def observations(
        self, blend: Blend, images: Sequence[FieldImage]
    ) -> tuple[list[Any], Any, np.ndarray, dict[str, np.ndarray]]:
        """A blend's cutouts as `(observations, frame, positions, shifts)`: one observation per image,
        the model frame (on the finest image's cutout), the detections in frame pixels, and the fixed
        shift (frame pixels) of each observation not on the frame's grid."""
        from ..astro import ArrayPSF, Frame, Observation

        sky, frame_origin = self.frame_origin(blend, images)
        finest = images[self.finest]
        frame_side = self.side(self.finest, blend.size)
        channels: list[str] = []
        for image in images:
            channels.extend(channel for channel in image.channels if channel not in channels)
        scale = self.scales[self.finest]
        # the frame's made-up WCS: north up, east left, the finest image's pixel side
        frame_cd = np.diag([-scale, scale])
        frame = Frame((len(channels), frame_side, frame_side), channels, wcs=_local_wcs(frame_cd, frame_side))
        centre = np.full(2, (frame_side - 1) / 2)
        names = _unique_names(images)
        observations, shifts = [], {}
        for index, image in enumerate(images):
            side = self.side(index, blend.size)
            origin = self._origin(index, sky, blend.size, images)
            data, weights = self._cutout(index, images, blend, origin, side)
            wcs = None
            if index != self.finest:
                to_image = self.to_frame(index)
                # the same WCS for every blend of the bucket: frame pixels q -> A q + b0, the frame's centre
                # onto the cutout's
                wcs = _local_wcs(frame_cd @ np.linalg.inv(_swap(to_image)), side)
                # where the frame's centre truly falls in this cutout, and the shift that takes b0 there
                field = centre + np.asarray(frame_origin, dtype=np.float64)
                ra, dec = finest.to_sky(field[0], field[1])
                y, x = image.to_pixels(ra, dec)
                truly = np.array([float(y), float(x)]) - np.asarray(origin, dtype=np.float64)
                shifts[names[index]] = np.linalg.solve(to_image, truly - (side - 1) / 2)
            observations.append(
                Observation(
                    data,
                    weights=weights,
                    psf=ArrayPSF(image.psf),
                    channels=image.channels,
                    wcs=wcs,
                    name=names[index],
                )
            )
        positions = blend.positions
        if self.finest != 0:
            ra, dec = images[0].to_sky(positions[:, 0], positions[:, 1])
            y, x = finest.to_pixels(ra, dec)
            positions = np.stack([np.asarray(y), np.asarray(x)], axis=-1)
        return observations, frame, positions - np.asarray(frame_origin, dtype=np.float64), shifts

    def _cutout(
        self, index: int, images: Sequence[FieldImage], blend: Blend, origin: tuple[int, int], side: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image `index`'s cutout, zero weight outside the blend's box (reference pixels, through the
        WCSs) and beyond the image."""
        image = images[index]
        if index == 0:
            return image.cutout(origin, side, blend.keep)
        everything = (-(2**62), 2**62, -(2**62), 2**62)
        data, weights = image.cutout(origin, side, everything)
        ys, xs = np.indices((side, side), dtype=np.float64)
        ra, dec = image.to_sky(ys.ravel() + origin[0], xs.ravel() + origin[1])
        y, x = images[0].to_pixels(ra, dec)
        low_y, high_y, low_x, high_x = blend.keep
        inside = (y > low_y - 0.5) & (y < high_y + 0.5) & (x > low_x - 0.5) & (x < high_x + 0.5)
        weights = weights * inside.reshape(side, side)[None]
        return data, weights


def _unique_names(images: Sequence[FieldImage]) -> list[str]:
    """The images' names, made unique with their position where two share one (the keys of shifts)."""
    names = [image.name for image in images]
    return [name if names.count(name) == 1 else f"{name}[{index}]" for index, name in enumerate(names)]


def grids_of(images: Sequence[FieldImage]) -> Grids | None:
    """The field's images against the first one's pixels; `None` when they share its grid (then the
    cutouts are the same pixels of every image and the model frame is that grid).

    Raises a `ValueError` naming an image without a WCS when the grids differ.
    """
    reference = images[0]
    if all(reference.same_grid(image) for image in images[1:]):
        return None
    missing = [image.name for image in images if image.wcs is None]
    if missing:
        raise ValueError(
            f"catalog: the field images are on different pixel grids, which takes a celestial WCS in each; "
            f"{', '.join(repr(name) for name in missing)} {'has' if len(missing) == 1 else 'have'} none"
        )
    height, width = reference.shape[1:]
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    # the Jacobian of each image's pixels against the reference's, by differences over +-1 pixel
    points = np.array(
        [centre, centre + [1.0, 0.0], centre - [1.0, 0.0], centre + [0.0, 1.0], centre - [0.0, 1.0]]
    )
    ra, dec = reference.to_sky(points[:, 0], points[:, 1])
    matrices, scales = [], []
    for image in images:
        y, x = image.to_pixels(ra, dec)
        mapped = np.stack([np.asarray(y), np.asarray(x)], axis=-1)
        jacobian = np.stack([(mapped[1] - mapped[2]) / 2, (mapped[3] - mapped[4]) / 2], axis=-1)
        matrices.append(tuple(float(value) for value in jacobian.ravel()))
        scales.append(float(np.sqrt(abs(np.linalg.det(image.wcs.pixel_scale_matrix)))))
    finest = int(np.argmin(scales))
    return Grids(matrices=tuple(matrices), finest=finest, scales=tuple(scales))

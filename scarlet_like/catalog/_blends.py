"""Blends from detections (friends of friends), their cutout boxes, and buckets of one cutout size."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Blend", "SIZES", "friends_of_friends", "make_blends", "psf_fwhm"]

#: Standard cutout sides (pixels): a blend's cutout is the smallest of these that holds its box; beyond
#: the largest, the next multiple of it. Few sizes, few compiled fits.
SIZES = (32, 48, 64, 96, 128, 192, 256)


@dataclasses.dataclass(frozen=True)
class Blend:
    """One blend of a field: the detections it holds and where its cutout lies.

    - `index`: the blend's number in the catalog (column `blend`).
    - `rows`: the detections' rows in the detection table.
    - `positions`: `(K, 2)` their `(y, x)` positions in the field's pixels.
    - `origin`: `(y0, x0)`, the field pixel of the cutout's first pixel.
    - `size`: the side of the square cutout (one of the standard sizes).
    - `keep`: `(y_low, y_high, x_low, x_high)` the field rows and columns of the blend's own box
      (inclusive): the cutout's pixels outside it get zero weight.
    """

    index: int
    rows: tuple[int, ...]
    positions: np.ndarray
    origin: tuple[int, int]
    size: int
    keep: tuple[int, int, int, int]

    @property
    def bucket(self) -> tuple[int, int]:
        """`(cutout size, number of sources)`: blends of one bucket are fitted together."""
        return (self.size, len(self.rows))


def psf_fwhm(psf: np.ndarray) -> float:
    """The largest FWHM (pixels) over the channels of `(C, h, w)` PSF images, from their second moments
    (as for a Gaussian: 2.355 sigma)."""
    widths = []
    for image in np.asarray(psf, dtype=np.float64):
        image = np.clip(image, 0.0, None)
        total = image.sum()
        if not total > 0:
            continue
        ys, xs = np.indices(image.shape)
        cy, cx = (image * ys).sum() / total, (image * xs).sum() / total
        variance = (image * ((ys - cy) ** 2 + (xs - cx) ** 2)).sum() / total / 2
        widths.append(2 * math.sqrt(2 * math.log(2)) * math.sqrt(variance))
    if not widths:
        raise ValueError("catalog: the PSF images are empty (no positive pixel); give centred PSF images")
    return max(widths)


def friends_of_friends(positions: np.ndarray, linking_length: float) -> np.ndarray:
    """Group labels `(K,)`: detections closer than `linking_length` (pixels) to any member of a group
    are in that group (friends of friends, i.e. connected components of the "closer than" graph).

    Neighbours are looked up in a grid of cells of the linking length, so the cost grows with the
    number of detections, not its square.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    count = len(positions)
    parent = np.arange(count)

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = int(parent[item])
        return item

    cells: dict[tuple[int, int], list[int]] = {}
    keys = np.floor(positions / linking_length).astype(np.int64)
    for index, (cy, cx) in enumerate(keys.tolist()):
        cells.setdefault((cy, cx), []).append(index)
    for (cy, cx), members in cells.items():
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                others = cells.get((cy + dy, cx + dx))
                if others is None:
                    continue
                for one in members:
                    near = [o for o in others if o > one]
                    if not near:
                        continue
                    distance = np.hypot(*(positions[near] - positions[one]).T)
                    for other in np.asarray(near)[distance < linking_length]:
                        a, b = root(one), root(int(other))
                        if a != b:
                            parent[max(a, b)] = min(a, b)
    labels = np.array([root(index) for index in range(count)], dtype=np.int64)
    # numbered 0, 1, ... in order of each group's first detection
    _, numbered = np.unique(labels, return_inverse=True)
    order = np.argsort([np.flatnonzero(numbered == group)[0] for group in range(numbered.max() + 1)])
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    return renumber[numbered]


def _cutout_side(extent: float, sizes: Sequence[int]) -> int:
    for size in sizes:
        if extent <= size:
            return int(size)
    largest = int(sizes[-1])
    return largest * math.ceil(extent / largest)


def make_blends(
    positions: np.ndarray, rows: np.ndarray, linking_length: float, margin: float, sizes: Sequence[int]
) -> list[Blend]:
    """The blends of detections at field pixels `positions` (rows `rows` of the table).

    A blend's box runs from its detections' smallest to largest `y` and `x`, `margin` pixels further on
    every side; its cutout is the smallest standard size holding that box, centred on it.
    """
    labels = friends_of_friends(positions, linking_length)
    blends = []
    for label in range(int(labels.max()) + 1 if len(labels) else 0):
        members = np.flatnonzero(labels == label)
        points = positions[members]
        low = np.floor(points.min(axis=0) - margin).astype(int)
        high = np.ceil(points.max(axis=0) + margin).astype(int)
        size = _cutout_side(float((high - low + 1).max()), sizes)
        middle = (low + high) / 2
        origin = np.round(middle - (size - 1) / 2).astype(int)
        blends.append(
            Blend(
                index=label,
                rows=tuple(int(rows[m]) for m in members),
                positions=points,
                origin=(int(origin[0]), int(origin[1])),
                size=size,
                keep=(int(low[0]), int(high[0]), int(low[1]), int(high[1])),
            )
        )
    return blends

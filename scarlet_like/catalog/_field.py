"""A field's images on disk or in memory, cut into cutouts without reading the whole field."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["FieldImage", "read_detections", "write_field"]


class FieldImage:
    """One observation of a large field: an image cube, its weights, its PSF, its WCS.

    **Arguments:**

    - `data`: `(C, H, W)` images (a NumPy array or a memory map).
    - `weights`: `(C, H, W)` inverse variances.
    - `psf`: `(C, h, w)` effective PSF images, centred (one per channel), or `(h, w)` for all.
    - `channels`: the `C` channel names.
    - `wcs`: an astropy celestial WCS of the images' pixels (needed for `ra`, `dec` in and out).
    - `name`: used in messages and in the catalog's provenance.
    - `path`: the FITS file the arrays were read from, if any: an image with a path travels to Dask
      workers as its path alone, and each worker opens the file itself (as a memory map), so that the
      field is never copied whole, neither into memory nor over the network.

    Build it from a file with [`scarlet_like.catalog.FieldImage.from_fits`][]. Cutouts
    ([`scarlet_like.catalog.FieldImage.cutout`][]) read only the pixels they cover.
    """

    def __init__(
        self,
        data: Any,
        weights: Any,
        psf: Any,
        channels: Sequence[Any],
        wcs: Any = None,
        name: str = "field",
        path: str | os.PathLike | None = None,
    ):
        self.data = data
        self.weights = weights
        psf = np.asarray(psf, dtype=np.float64)
        self.psf = psf[None] if psf.ndim == 2 else psf
        self.channels = tuple(str(channel) for channel in channels)
        self.wcs: Any = None if wcs is None else wcs.celestial
        self.name = name
        self.path = None if path is None else str(path)
        shape = tuple(data.shape)
        if len(shape) != 3:
            raise ValueError(f"FieldImage '{name}': data must be (C, H, W), got shape {shape}")
        if tuple(weights.shape) != shape:
            raise ValueError(
                f"FieldImage '{name}': weights have shape {tuple(weights.shape)}, the data {shape}; give one "
                "inverse variance per pixel"
            )
        if len(self.channels) != shape[0]:
            raise ValueError(
                f"FieldImage '{name}': {len(self.channels)} channel names {self.channels} for {shape[0]} "
                "images; set the BANDS header key or pass channels"
            )
        if self.psf.ndim != 3 or self.psf.shape[0] not in (1, shape[0]):
            raise ValueError(
                f"FieldImage '{name}': the PSF must be (C, h, w) with C = 1 or {shape[0]}, got shape "
                f"{self.psf.shape}"
            )

    @classmethod
    def from_fits(cls, path: str | os.PathLike, channels: Sequence[str] | None = None) -> FieldImage:
        """Open a field image file as memory maps: nothing but the PSF and the header is read.

        **Arguments:**

        - `path`: a FITS file whose primary HDU holds the `(C, H, W)` image cube with a celestial WCS
          (and a `BANDS` key of comma-separated channel names), and whose image extensions `WEIGHT`
          (inverse variances, same shape) and `PSF` (`(C, h, w)`, centred) hold the rest.
        - `channels`: the channel names, when the header has no `BANDS` key.

        **Returns:**

        A `FieldImage` whose `data` and `weights` are memory maps of the file.
        """
        from astropy.io import fits
        from astropy.wcs import WCS

        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"catalog: no field image file {str(path)!r}")
        with fits.open(path, memmap=True, lazy_load_hdus=False) as hdus:
            names = [hdu.name for hdu in hdus]
            for needed in ("WEIGHT", "PSF"):
                if needed not in names:
                    raise ValueError(
                        f"catalog: {path.name} has no {needed} extension (it has {names}); a field image "
                        "holds the images in its primary HDU and extensions WEIGHT and PSF"
                    )
            header = hdus[0].header
            data, weights = hdus[0].data, hdus["WEIGHT"].data
            psf = np.array(hdus["PSF"].data, dtype=np.float64)
            if data is None or data.ndim not in (2, 3):
                raise ValueError(f"catalog: the primary HDU of {path.name} must hold a (C, H, W) image cube")
            if data.ndim == 2:
                data, weights = data[None], weights[None]
            if channels is None:
                if "BANDS" not in header:
                    raise ValueError(
                        f"catalog: {path.name} has no BANDS header key naming its channels; add one "
                        "(e.g. BANDS = 'g,r,i') or pass the channels (--channels g,r,i)"
                    )
                channels = [name.strip() for name in str(header["BANDS"]).split(",")]
            wcs = WCS(header, naxis=2) if "CTYPE1" in header else None
            # memory maps outlive the closed file object (numpy keeps the mapping open)
            return cls(data, weights, psf, channels, wcs, name=path.name, path=path)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    def cutout(self, origin: tuple[int, int], size: int, keep: tuple[int, int, int, int]) -> Any:
        """`(data, weights)` of a `size` x `size` cutout whose first pixel is the field's pixel
        `origin = (y0, x0)`; pixels beyond the field, and outside the rows and columns
        `keep = (y_low, y_high, x_low, x_high)` (field pixels, inclusive), get zero data and weight.

        Only the rows and columns inside the field are read from the file.
        """
        channels, height, width = self.shape
        y0, x0 = origin
        data = np.zeros((channels, size, size), dtype=np.float64)
        weights = np.zeros((channels, size, size), dtype=np.float64)
        ylo, yhi = max(y0, keep[0], 0), min(y0 + size - 1, keep[1], height - 1)
        xlo, xhi = max(x0, keep[2], 0), min(x0 + size - 1, keep[3], width - 1)
        if ylo <= yhi and xlo <= xhi:
            inside = (slice(None), slice(ylo - y0, yhi - y0 + 1), slice(xlo - x0, xhi - x0 + 1))
            field = (slice(None), slice(ylo, yhi + 1), slice(xlo, xhi + 1))
            data[inside] = self.data[field]
            weights[inside] = self.weights[field]
        return data, weights

    def to_pixels(self, ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
        """`(y, x)` field pixels (0-based) of sky positions in degrees."""
        self._require_wcs("sky positions (ra, dec)")
        x, y = self.wcs.world_to_pixel_values(np.asarray(ra, np.float64), np.asarray(dec, np.float64))
        return np.asarray(y), np.asarray(x)

    def to_sky(self, y: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """`(ra, dec)` in degrees of field pixels `(y, x)`; NaN without a WCS."""
        if self.wcs is None:
            nan = np.full(np.shape(y), np.nan)
            return nan, nan.copy()
        ra, dec = self.wcs.pixel_to_world_values(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return np.asarray(ra), np.asarray(dec)

    def _require_wcs(self, why: str) -> None:
        if self.wcs is None:
            raise ValueError(f"catalog: field image '{self.name}' has no WCS, needed for {why}")

    def same_grid(self, other: FieldImage) -> bool:
        """Whether `other` covers the same pixels (same shape and WCS to a thousandth of a pixel)."""
        if self.shape[1:] != other.shape[1:]:
            return False
        if self.wcs is None or other.wcs is None:
            return self.wcs is None and other.wcs is None
        height, width = self.shape[1:]
        ys, xs = np.array([0.0, height - 1, 0.0, height - 1]), np.array([0.0, 0.0, width - 1, width - 1])
        ra, dec = self.to_sky(ys, xs)
        y, x = other.to_pixels(ra, dec)
        return bool(np.all(np.abs(y - ys) < 1e-3) and np.all(np.abs(x - xs) < 1e-3))

    # A field read from a file travels (to Dask workers) as its path and is opened again there.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["data"] = state["weights"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.path is not None:
            opened = FieldImage.from_fits(self.path, self.channels)
            self.data, self.weights = opened.data, opened.weights

    def __repr__(self) -> str:
        where = f", path={self.path!r}" if self.path else ""
        return f"FieldImage('{self.name}', shape={self.shape}, channels={self.channels}{where})"


def write_field(
    path: str | os.PathLike,
    data: Any,
    weights: Any,
    psf: Any,
    channels: Sequence[str],
    wcs: Any = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Write a field image file as `python -m scarlet_like catalog` reads it.

    **Arguments:**

    - `path`: the FITS file to write.
    - `data`, `weights`: `(C, H, W)` images and inverse variances (float32 on disk).
    - `psf`: `(C, h, w)` centred effective PSF images.
    - `channels`: the channel names (header key `BANDS`).
    - `wcs`: the images' celestial astropy WCS.
    - `overwrite`: replace an existing file.

    **Returns:**

    The path written.
    """
    from astropy.io import fits

    header = fits.Header() if wcs is None else wcs.celestial.to_header()
    header["BANDS"] = ",".join(str(channel) for channel in channels)
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=header),
            fits.ImageHDU(np.asarray(weights, dtype=np.float32), name="WEIGHT"),
            fits.ImageHDU(np.asarray(psf, dtype=np.float32), name="PSF"),
        ]
    )
    hdus.writeto(path, overwrite=overwrite)
    return pathlib.Path(path)


def read_detections(source: Any) -> Any:
    """A detection table as an astropy Table with the columns `ra`, `dec` (degrees) or `y`, `x` (pixels).

    **Arguments:**

    - `source`: a file astropy reads (FITS, Parquet, ECSV, ...), an astropy Table, or a `(K, 2)` array
      of `(y, x)` pixel positions.

    **Returns:**

    An astropy Table; raises a `ValueError` naming the columns it has when it has neither pair.
    """
    from astropy.table import Table

    if isinstance(source, str | os.PathLike):
        table = Table.read(source)
    elif isinstance(source, Table):
        table = source
    else:
        positions = np.asarray(source, dtype=np.float64).reshape(-1, 2)
        table = Table({"y": positions[:, 0], "x": positions[:, 1]})
    names = set(table.colnames)
    if not ({"ra", "dec"} <= names or {"x", "y"} <= names):
        raise ValueError(
            f"catalog: the detection table needs columns ra, dec (degrees) or x, y (pixels); it has "
            f"{sorted(names)}"
        )
    return table

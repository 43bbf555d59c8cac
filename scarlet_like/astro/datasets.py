"""Real data shipped with the package, for tests, tutorials and the demo."""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import numpy as np
from jaxtyping import Bool, Float, Int

from .observation import Observation
from .psf import ArrayPSF

__all__ = ["Blend", "hsc_cosmos", "HSC_BAD_PIXEL_BITS"]

# HSC pipeline mask planes that make a pixel unusable: BAD, SAT, INTRP, CR, EDGE, NO_DATA. The file's
# other bits (DETECTED and friends) flag most pixels of a blend and say nothing about their quality.
HSC_BAD_PIXEL_BITS = 1 | 2 | 4 | 8 | 16 | 256


class Blend(NamedTuple):
    """A multi-band cutout of overlapping sources.

    **Fields:**

    - `images`: `(C, H, W)` background-subtracted pixel values.
    - `variance`: `(C, H, W)` per-pixel noise variance.
    - `mask`: `(C, H, W)` bool, `True` where the pixel is unusable.
    - `mask_bits`: `(C, H, W)` the survey pipeline's raw mask planes.
    - `psfs`: `(C, h, w)` effective PSF images, one per band, each summing to 1.
    - `channels`: the band names.
    - `centers`: `(K, 2)` detected source positions as `(y, x)` pixel coordinates.
    - `attribution`: where the data come from and what to cite.
    """

    images: Float[np.ndarray, "C H W"]
    variance: Float[np.ndarray, "C H W"]
    mask: Bool[np.ndarray, "C H W"]
    mask_bits: Int[np.ndarray, "C H W"]
    psfs: Float[np.ndarray, "C h w"]
    channels: tuple[str, ...]
    centers: Float[np.ndarray, "K 2"]
    attribution: str

    def observation(self, name: str = "HSC") -> Observation:
        """The blend as an [`scarlet_like.Observation`][]: weights `1 / variance`, the mask honoured, the
        PSF images as an `ArrayPSF`.

        **Arguments:**

        - `name`: the observation's name in messages and plots.
        """
        return Observation(
            self.images,
            weights=1 / self.variance,
            mask=self.mask,
            psf=ArrayPSF(self.psfs),
            channels=self.channels,
            name=name,
        )


def hsc_cosmos() -> Blend:
    """The bundled Hyper Suprime-Cam blend (COSMOS, bands g r i z y, 58 rows x 48 columns, 7 detections).

    **Returns:**

    A [`scarlet_like.astro.datasets.Blend`][]. Pixels whose mask has any of
    `HSC_BAD_PIXEL_BITS` set are masked (about 4 % of them: interpolated cosmic rays).
    """
    data_files = resources.files("scarlet_like") / "data"
    with resources.as_file(data_files / "hsc_cosmos_35.npz") as path, np.load(path) as data:
        catalog = data["catalog"]
        mask_bits = data["mask"].astype(np.int32)
        return Blend(
            images=data["images"].astype(np.float32),
            variance=data["variance"].astype(np.float32),
            mask=(mask_bits & HSC_BAD_PIXEL_BITS) != 0,
            mask_bits=mask_bits,
            psfs=data["psfs"].astype(np.float32),
            channels=tuple(str(band) for band in data["filters"]),
            centers=np.stack([catalog["y"], catalog["x"]], axis=-1).astype(np.float32),
            attribution=(data_files / "README.md").read_text(),
        )

"""Real data shipped with the package, for tests, tutorials and the demo."""

from __future__ import annotations

from importlib import resources
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import Bool, Float, Int

from .init import detect
from .observation import Observation
from .psf import ArrayPSF

__all__ = ["Blend", "Cutout", "TwoInstruments", "hsc_cosmos", "hsc_hst", "HSC_BAD_PIXEL_BITS", "HST_PSF_SIZE"]

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

    A [`scarlet_like.datasets.Blend`][]. Pixels whose mask has any of
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


# Side of the square the 179 x 179 HST PSF is cropped to: 91 px = 2.7", which holds 98 % of its light.
# The full image would make the HST FFT grid larger (the renderer pads by the PSF's size) for wings
# far below the noise of this cutout.
HST_PSF_SIZE = 91


class Cutout(NamedTuple):
    """One instrument's images of a patch of sky, with their celestial WCS.

    **Fields:**

    - `images`: `(C, H, W)` pixel values, background-subtracted.
    - `variance`: `(C, H, W)` per-pixel noise variance (one value per band: see `hsc_hst`).
    - `psfs`: `(C, h, w)` effective PSF images, one per band, each summing to 1, centred on the
      central pixel.
    - `channels`: the band names.
    - `wcs`: the astropy celestial WCS of the images.
    """

    images: Float[np.ndarray, "C H W"]
    variance: Float[np.ndarray, "C H W"]
    psfs: Float[np.ndarray, "C h w"]
    channels: tuple[str, ...]
    wcs: Any

    def observation(self, name: str, margin: int | None = None) -> Observation:
        """The cutout as an [`scarlet_like.Observation`][] with its WCS: weights `1 / variance`, the PSF
        images as an `ArrayPSF`.

        **Arguments:**

        - `name`: the observation's name in messages and plots.
        - `margin`: the FFT padding, as in [`scarlet_like.Observation`][].
        """
        return Observation(
            self.images,
            weights=1 / self.variance,
            psf=ArrayPSF(self.psfs),
            channels=self.channels,
            wcs=self.wcs,
            name=name,
            margin=margin,
        )


class TwoInstruments(NamedTuple):
    """The same sky seen by two instruments, with detections.

    **Fields:**

    - `hst`: the high-resolution [`Cutout`][scarlet_like.datasets.Cutout].
    - `hsc`: the multi-band, low-resolution one.
    - `centers`: an astropy `SkyCoord` of `K` detections (place sources with it, or convert it with
      `frame.to_pixel`).
    - `attribution`: where the data come from and what to cite.
    """

    hst: Cutout
    hsc: Cutout
    centers: Any
    attribution: str


def _read_fits(name: str) -> tuple[np.ndarray, Any]:
    from astropy.io import fits

    with resources.as_file(resources.files("scarlet_like") / "data" / name) as path, fits.open(path) as hdus:
        return np.asarray(hdus[0].data, dtype=np.float64), hdus[0].header.copy()


def _background_and_noise(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band: the sky level and the noise standard deviation, robust to the sources' light."""
    from astropy.stats import sigma_clipped_stats

    stats = np.array([sigma_clipped_stats(image, sigma=3.0, maxiters=10)[1:] for image in images])
    return stats[:, 0], stats[:, 1]


def hsc_hst() -> TwoInstruments:
    """A Hyper Suprime-Cam and a Hubble Space Telescope cutout of the same sky (COSMOS), with WCSs.

    HSC: bands g r i z y, 50 x 50 pixels of 0.168"; HST: ACS F814W, 250 x 250 pixels of 0.03" (7.5",
    inside the HSC cutout). The FITS headers carry the WCSs but neither band names nor noise; the
    band names are those of the survey products (scarlet's multi-resolution tutorial uses the same).

    **Returns:**

    A [`TwoInstruments`][scarlet_like.datasets.TwoInstruments], prepared as follows:

    - *Noise.* The cutouts have no variance planes. Each band's noise is the sigma-clipped
      (3 sigma, iterated) standard deviation of its pixels, which the sources (a few percent of the
      pixels) hardly affect, and its variance is used for every pixel: sky-dominated noise, without
      the sources' own Poisson noise. The HST image is drizzled, so its noise is correlated between
      neighbouring pixels; the per-pixel variance is right but treats them as independent.
    - *Background.* Each band's sigma-clipped median (a residual sky of up to a quarter of the noise
      in HSC g) is subtracted.
    - *PSFs.* Normalised to unit sum. The HST PSF's peak is not at the centre of its 179 x 179
      image but one pixel off along each axis; it is cropped to `HST_PSF_SIZE` pixels centred on
      the peak pixel, so that its centre is where the renderer puts it.
    - *Detections.* [`scarlet_like.init.detect`][] on the HST image smoothed by a 3-pixel (0.09")
      Gaussian, at 15 sigma: the four galaxies of the blend, the knots of the irregular ones merged
      into one peak each (at 10 sigma, a fifth peak on a plume comes in too). Then the HSC
      detections (smoothed by 1 pixel, 15 sigma; at 5 sigma one more at the edge) that fall outside
      the HST image. There is no star among them. `centers` is in ICRS (the HST header's FK5
      positions converted).
    """
    from astropy.wcs import WCS

    hsc_images, hsc_header = _read_fits("Cut_HSC.fits")
    hst_image, hst_header = _read_fits("Cut_HST.fits")
    hsc_psfs, _ = _read_fits("PSF_HSC.fits")
    hst_psf, _ = _read_fits("PSF_HST.fits")

    peak = np.unravel_index(np.argmax(hst_psf), hst_psf.shape)
    half = HST_PSF_SIZE // 2
    hst_psf = hst_psf[peak[0] - half : peak[0] + half + 1, peak[1] - half : peak[1] + half + 1][None]

    def cutout(images: np.ndarray, psfs: np.ndarray, channels: tuple[str, ...], header: Any) -> Cutout:
        sky, noise = _background_and_noise(images)
        variance = np.broadcast_to((noise**2)[:, None, None], images.shape)
        return Cutout(
            images=(images - sky[:, None, None]).astype(np.float32),
            variance=np.array(variance, dtype=np.float32),
            psfs=(psfs / psfs.sum(axis=(1, 2), keepdims=True)).astype(np.float32),
            channels=channels,
            wcs=WCS(header).celestial,
        )

    hst = cutout(hst_image[None], hst_psf, ("F814W",), hst_header)
    hsc = cutout(hsc_images, hsc_psfs, ("g", "r", "i", "z", "y"), hsc_header)

    hst_peaks = np.asarray(detect(hst.observation("HST"), sigma=3.0, threshold=15.0))
    hsc_peaks = np.asarray(detect(hsc.observation("HSC"), sigma=1.0, threshold=15.0))
    hst_sky = hst.wcs.pixel_to_world(hst_peaks[:, 1], hst_peaks[:, 0])
    hsc_sky = hsc.wcs.pixel_to_world(hsc_peaks[:, 1], hsc_peaks[:, 0])
    x, y = hst.wcs.world_to_pixel(hsc_sky)
    height, width = hst.images.shape[1:]
    outside = ~((x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5))

    from astropy.coordinates import SkyCoord

    # the two headers use different reference systems (HST FK5, HSC ICRS): one SkyCoord needs one
    kept = [hst_sky.icrs, hsc_sky[outside].icrs]
    centers = SkyCoord(
        np.concatenate([c.ra.deg for c in kept]),
        np.concatenate([c.dec.deg for c in kept]),
        unit="deg",
        frame="icrs",
    )
    data_files = resources.files("scarlet_like") / "data"
    return TwoInstruments(
        hst=hst, hsc=hsc, centers=centers, attribution=(data_files / "README.md").read_text()
    )

"""A simulated survey field for `bench_catalog.py` and `tests/test_catalog.py`, drawn with GalSim.

```python
from catalog_sims import simulate_field
field = simulate_field(size=2048, spacing=100, seed=0)
field.images, field.weights, field.psfs, field.wcs    # (C, H, W), (C, H, W), (C, h, w), astropy WCS
field.truth                                           # astropy Table: y, x, ra, dec, flux_<band>, star, ...
```

Objects sit on a grid of `spacing` pixels, each jittered by up to 10 % of it; every `pair_every`-th
grid object has a companion 6-8 px away (a blend of two). A quarter of the objects are stars (point
sources); the others exponential disks of half-light radius 1.5-3 px and |g| up to 0.28. Fluxes are
800-4000 in the middle band, with colours jittered by up to 40 % per band. The PSF is a Gaussian of
`psf_sigma` pixels in every band (its effective image, pixel included, is what the files hold). The
noise is Gaussian with standard deviation `noise` in every pixel, and the weights its inverse variance.

`draw_on_grid(field, bands, scale=0.5, rotation_deg=30)` draws the same objects on another pixel
grid of the same sky (pixels of `scale` times the field's side, turned by `rotation_deg`), as another
instrument or a rotated exposure would see them.

The truth is what was drawn: the profile's total flux per band (the stamps are 48 pixels wide, so
the light beyond 24 px of a centre, a fraction of a percent for these sizes, is left out of the
images), and the centre `(y, x)` in 0-based pixels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import galsim
import numpy as np

__all__ = ["Field", "draw_on_grid", "simulate_field"]


@dataclasses.dataclass(frozen=True)
class Field:
    images: np.ndarray
    weights: np.ndarray
    psfs: np.ndarray
    wcs: Any
    bands: tuple[str, ...]
    truth: Any  # astropy Table


def simulate_field(
    size: int = 240,
    spacing: int = 40,
    seed: int = 0,
    psf_sigma: float = 1.5,
    noise: float = 1.0,
    bands: tuple[str, ...] = ("g", "r", "i"),
    pair_every: int = 6,
) -> Field:
    from astropy.table import Table
    from astropy.wcs import WCS

    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [size / 2, size / 2]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    jitter = 0.1 * spacing
    truth: list[dict[str, Any]] = []
    grid = range(spacing // 2, size - spacing // 4, spacing)
    for index, (gy, gx) in enumerate((gy, gx) for gy in grid for gx in grid):
        centers = [(gy + rng.uniform(-jitter, jitter), gx + rng.uniform(-jitter, jitter))]
        if index % pair_every == pair_every // 2:
            angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(6.0, 8.0)
            centers.append(
                (centers[0][0] + distance * np.sin(angle), centers[0][1] + distance * np.cos(angle))
            )
        for y, x in centers:
            star = bool(rng.uniform() < 0.25)
            colour = rng.uniform(0.6, 1.4, len(bands))
            fluxes = rng.uniform(800, 4000) * colour / colour[len(bands) // 2]
            shear = rng.uniform(-0.2, 0.2, 2)
            truth.append(
                {
                    "y": y,
                    "x": x,
                    "star": star,
                    "r_half": 0.0 if star else rng.uniform(1.5, 3.0),
                    "g1": shear[0],
                    "g2": shear[1],
                    "blend_of": len(centers),
                    **{f"flux_{band}": flux for band, flux in zip(bands, fluxes, strict=True)},
                }
            )
    psf = galsim.Gaussian(sigma=psf_sigma)
    images = np.zeros((len(bands), size, size))
    for channel, band in enumerate(bands):
        image = galsim.ImageD(size, size, scale=1.0)
        for item in truth:
            flux = item[f"flux_{band}"]
            if item["star"]:
                profile = galsim.DeltaFunction(flux=flux)
            else:
                profile = galsim.Exponential(half_light_radius=item["r_half"], flux=flux)
                profile = profile.shear(g1=item["g1"], g2=item["g2"])
            # GalSim's pixels count from 1
            stamp = galsim.Convolve(profile, psf).drawImage(
                nx=48, ny=48, scale=1.0, center=galsim.PositionD(item["x"] + 1, item["y"] + 1)
            )
            overlap = stamp.bounds & image.bounds
            if overlap.isDefined():
                image[overlap] += stamp[overlap]
        images[channel] = image.array
    images += rng.normal(0.0, noise, images.shape)
    weights = np.full(images.shape, 1.0 / noise**2)
    psf_image = psf.drawImage(nx=25, ny=25, scale=1.0).array
    table = Table(truth)
    ra, dec = wcs.pixel_to_world_values(table["x"], table["y"])
    table["ra"], table["dec"] = ra, dec
    return Field(images, weights, np.repeat(psf_image[None], len(bands), axis=0), wcs, tuple(bands), table)


def draw_on_grid(
    field: Field,
    bands: tuple[str, ...],
    scale: float = 0.5,
    rotation_deg: float = 0.0,
    psf_sigma: float = 1.0,
    noise: float = 1.0,
    seed: int = 0,
) -> Field:
    """The objects of `field` (its truth) drawn in `bands` (columns `flux_<band>` of the truth) on
    another grid of the same sky: pixels `scale` times the field's pixel side, turned by
    `rotation_deg` against them, the grid's centre on the field's. `psf_sigma` is the Gaussian PSF's
    width in the *field's* pixels. Returns a `Field` whose `truth` is the field's (positions in the
    field's pixels) and whose `wcs` places the new grid on the sky."""
    from astropy.wcs import WCS

    rng = np.random.default_rng(seed)
    size = field.images.shape[-1]
    shape = int(np.ceil(size / scale))
    turn = np.radians(rotation_deg)
    # new pixels (x, y) -> field pixels (x, y): p_field = J (p_new - c_new) + c_field (0-based)
    jacobian = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    c_new, c_field = (shape - 1) / 2, (size - 1) / 2
    # GalSim's world coordinates are the field's pixels, so the profiles are drawn as in the field
    wcs_galsim = galsim.JacobianWCS(jacobian[0, 0], jacobian[0, 1], jacobian[1, 0], jacobian[1, 1])
    inverse = np.linalg.inv(jacobian)
    psf = galsim.Gaussian(sigma=psf_sigma)
    images = np.zeros((len(bands), shape, shape))
    for channel, band in enumerate(bands):
        image = galsim.ImageD(shape, shape, wcs=wcs_galsim)
        for item in field.truth:
            flux = float(item[f"flux_{band}"])
            if item["star"]:
                profile = galsim.DeltaFunction(flux=flux)
            else:
                profile = galsim.Exponential(half_light_radius=float(item["r_half"]), flux=flux)
                profile = profile.shear(g1=float(item["g1"]), g2=float(item["g2"]))
            x, y = inverse @ (np.array([item["x"], item["y"]]) - c_field) + c_new
            stamp = galsim.Convolve(profile, psf).drawImage(
                nx=64, ny=64, wcs=wcs_galsim, center=galsim.PositionD(x + 1, y + 1)
            )
            overlap = stamp.bounds & image.bounds
            if overlap.isDefined():
                image[overlap] += stamp[overlap]
        images[channel] = image.array
    images += rng.normal(0.0, noise, images.shape)
    weights = np.full(images.shape, 1.0 / noise**2)
    psf_image = psf.drawImage(nx=31, ny=31, wcs=wcs_galsim).array
    reference = field.wcs
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = list(reference.wcs.ctype)
    wcs.wcs.crval = list(reference.wcs.crval)
    wcs.wcs.cd = reference.pixel_scale_matrix @ jacobian
    # the new pixel (0-based) that falls on the field's reference pixel
    wcs.wcs.crpix = inverse @ (np.asarray(reference.wcs.crpix) - 1 - c_field) + c_new + 1
    return Field(
        images, weights, np.repeat(psf_image[None], len(bands), axis=0), wcs, tuple(bands), field.truth
    )

"""The FFT grid's default padding: small enough to be cheap, large enough that light wrapped around the
image's edges stays below the noise (see `scarlet_like.astro.render.default_margin`)."""

from __future__ import annotations

import equinox as eqx
import numpy as np
import pytest
from astropy.wcs import WCS

import scarlet_like as sl
from scarlet_like.astro.render import SOURCE_MARGIN, _padded, default_margin

SIZE = 96


def moffat_stamp(size: int = 41, fwhm: float = 4.0, beta: float = 3.5) -> np.ndarray:
    """The PSF of `benchmarks/bench_render.py`: a Moffat sampled at pixel centres, unit sum."""
    half = size // 2
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    image = (1.0 + (yy**2 + xx**2) / alpha**2) ** (-beta)
    return image / image.sum()


@eqx.filter_jit
def _render(observation: sl.Observation, scene: sl.Scene):
    return observation.render(scene)


def render(observation: sl.Observation, scene: sl.Scene) -> np.ndarray:
    return np.asarray(_render(observation, sl.resolve(scene)), dtype=np.float64)


def one_source(frame: sl.Frame, center, flux: float) -> sl.Scene:
    with sl.Scene(frame) as scene:
        sl.Source(center, [flux], sl.SersicMorphology(4.0, 4.0), box=None)
    return scene


def test_wrap_around_of_a_source_on_the_edge_stays_below_the_noise():
    # A de Vaucouleurs profile of half-light radius 4 px (the heaviest wings of the benchmark's sources)
    # centred on the image's top edge, at a peak S/N of 100 (unit noise). Its light further than the
    # margin beyond the edge wraps onto the bottom rows. Measured with the default (120^2 grid): 0.24
    # sigma at most; with 16 px of margin (112^2) 0.76 sigma, with 8 px 1.6 sigma.
    psf = sl.ArrayPSF(moffat_stamp())
    observation = sl.Observation(np.zeros((1, SIZE, SIZE)), psf=psf)
    frame = sl.Frame.from_observations(observation)
    peak = render(observation, one_source(frame, (48.0, 47.3), 1.0)).max()
    scene = one_source(frame, (0.0, 47.3), 100.0 / peak)
    unwrapped = render(sl.Observation(np.zeros((1, SIZE, SIZE)), psf=psf, margin=600), scene)
    error = np.abs(render(observation, scene) - unwrapped).max()
    assert observation.grid.padded == (120, 120)
    assert error < 0.3
    # the bound is tight enough to catch a margin shrunk by a third
    smaller = sl.Observation(np.zeros((1, SIZE, SIZE)), psf=psf, margin=16)
    assert smaller.grid.padded == (112, 112)
    assert np.abs(render(smaller, scene) - unwrapped).max() > 0.3


@pytest.mark.parametrize(
    ("shape", "psf", "expected"),
    [
        # the benchmark's case: the hand-written code's linear-convolution grid (image + half the PSF,
        # 116, up to a fast size), where the former default was 160^2
        ((SIZE, SIZE), sl.ArrayPSF(moffat_stamp()), (120, 120)),
        # the HSC demo's blend: 58 x 48 with 43 x 43 PSF images (formerly 120 x 108)
        ((58, 48), sl.ArrayPSF(moffat_stamp(43)), (84, 72)),
        # a large PSF stamp: its half-width, more than the sources' 24 px
        ((SIZE, SIZE), sl.ArrayPSF(moffat_stamp(101)), (150, 150)),
        # a narrow continuous PSF (8 sigma wide): the sources' 24 px
        ((64, 40), sl.GaussianPSF(1.2), (90, 64)),
    ],
)
def test_default_grid_is_no_larger_than_the_psf_and_the_sources_need(shape, psf, expected):
    grid = sl.Observation(np.zeros((psf.channels, *shape)), psf=psf).grid
    assert grid.padded == expected
    margin = default_margin(grid.psf_extent)
    assert margin == max(grid.psf_extent // 2, SOURCE_MARGIN)
    for size, padded in zip(shape, grid.padded, strict=True):
        # at least the margin, and the smallest fast FFT size that is
        assert padded >= size + margin and padded == _padded(size, margin)
        assert padded - (size + margin) <= 0.1 * padded


def test_default_grid_depends_on_the_psf_size_only():
    # blends whose PSF images differ (a PSF varying over the field) keep one grid, which `sl.fit_many`
    # needs to stack them
    narrow, wide = (sl.ArrayPSF(moffat_stamp(41, fwhm)) for fwhm in (2.5, 8.0))
    grids = [sl.Observation(np.zeros((1, 70, 70)), psf=psf).grid for psf in (narrow, wide)]
    assert grids[0].padded == grids[1].padded
    # an explicit margin wins
    assert sl.Observation(np.zeros((1, 70, 70)), psf=narrow, margin=6).grid.padded == (80, 80)


def celestial_wcs(shape, center_offset=(0.0, 0.0), scale_arcsec: float = 0.2) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    # the sky's reference point `center_offset` (y, x) pixels away from the image's centre
    wcs.wcs.crpix = [(shape[1] + 1) / 2 + center_offset[1], (shape[0] + 1) / 2 + center_offset[0]]
    wcs.wcs.cd = scale_arcsec / 3600 * np.array([[-1.0, 0.0], [0.0, 1.0]])
    return wcs


def test_a_frame_reaching_beyond_the_image_widens_its_grid():
    # Two overlapping 64^2 images 40 px apart along x; the frame covers both. A bright galaxy seen by
    # the second only, 12 px beyond the first's right edge, must not wrap around onto its left edge.
    psf = sl.ArrayPSF(moffat_stamp(41))
    first = sl.Observation(
        np.zeros((1, 64, 64)), psf=psf, wcs=celestial_wcs((64, 64)), channels="r", name="first"
    )
    second = sl.Observation(
        np.zeros((1, 64, 64)), psf=psf, wcs=celestial_wcs((64, 64), (0.0, -40.0)), channels="r", name="second"
    )
    frame = sl.Frame.from_observations([first, second])
    assert frame.shape[1:] == (64, 104)
    with sl.Scene(frame) as scene:
        sl.Source((32.0, 75.0), [1e4], sl.SersicMorphology(1.0, 3.0), box=None)
    unwrapped = sl.Observation(
        np.zeros((1, 64, 64)), psf=psf, wcs=celestial_wcs((64, 64)), channels="r", margin=600
    )
    reference = render(unwrapped, scene)
    ours = render(first, scene)
    # the galaxy's light on the first image is its wing past the right edge; none of it on the left
    assert reference[:, :, 60:].max() > 1.0
    assert np.abs(ours - reference).max() < 1e-3 * reference.max()
    # the same in a likelihood of both observations
    weights = np.ones((1, 64, 64))
    data = reference + 1.0
    pair = [
        sl.Observation(data, weights=weights, psf=psf, wcs=first.wcs, channels="r", name="first"),
        sl.Observation(data, weights=weights, psf=psf, wcs=first.wcs, channels="r", name="again"),
    ]
    stacked = float(sl.Observation.log_likelihood_of_many(pair, scene))
    expected = 2 * (-0.5 * data[0].size - 0.5 * data[0].size * np.log(2 * np.pi))
    assert stacked == pytest.approx(expected, rel=1e-4)
    # with a margin given, the grid is the user's: the galaxy's core wraps around onto the left edge
    given = sl.Observation(np.zeros((1, 64, 64)), psf=psf, wcs=first.wcs, channels="r", margin=24)
    assert np.abs(render(given, scene) - reference).max() > 0.1 * reference.max()

"""Rendering of scenes by observations: against GalSim, and against closed-form image moments.

`obs.render(scene)` must be the continuous scene convolved with the PSF and integrated over pixels,
which is what GalSim's `drawImage(method="auto")` gives.

**Placing a profile in GalSim.** `obj.drawImage(nx=W, ny=H, scale=1)` makes an image whose pixels have
1-based GalSim coordinates `(i, j)` = (column, row) in `[1, W] x [1, H]`, stored in `array[j - 1, i - 1]`,
and puts the profile's origin at the image's *true centre* `((W + 1) / 2, (H + 1) / 2)` plus `offset`
(given as `(dx, dy)`). In scarlet_like's 0-based `(y, x)` pixel-centre coordinates the true centre is
`((H - 1) / 2, (W - 1) / 2)`, between two pixels along an even axis. A source at `(y, x)` is therefore
drawn with `offset = (x - (W - 1) / 2, y - (H - 1) / 2)`; see `_galsim_image`. A wrong sign, a swapped
axis or a half-pixel slip in this mapping (or in the renderer) moves the profile by at least a tenth of
a pixel, which is far outside the tolerances below.

**Shear.** `(g1, g2)` is GalSim's `shear(g1=, g2=)`, `g1 > 0` stretching along x (columns); the GalSim
comparisons use a shear with both components non-zero, and `test_g1_stretches_along_columns` checks the
direction on its own.

**Effective PSFs.** `ArrayPSF` stamps are drawn by GalSim *with* the pixel (`method="auto"`), as a
survey pipeline would deliver them, and the reference is GalSim's rendering of the profile convolved with
the continuous Moffat: the pixel-integrated image is exactly what the effective-PSF samples represent. A
Moffat truncated at 20 pixels fits entirely in a 41 x 41 stamp, which isolates the renderer's own error;
the untruncated Moffat loses 5e-4 of its light outside the stamp (the stamp is renormalised), and that is
what its channel's error measures.

Measured max |ours - GalSim| / peak (float32 rendering, GalSim's default accuracy), per channel:

| profile, g = (0.2, -0.1) | GaussianPSF sigma 1.0 / 1.4 / 1.8 | Moffat 3.5 trunc / 3.5 untrunc / 2.8 trunc |
|--------------------------|-----------------------------------|--------------------------------------------|
| Gaussian sigma 1.5       | 1.0e-6 / 6.1e-7 / 6.1e-7          | 1.2e-6 / 5.2e-4 / 2.1e-5                   |
| Gaussian sigma 3         | 2.2e-6 / 9.9e-7 / 6.3e-7          | 6.1e-7 / 5.2e-4 / 1.9e-6                   |
| Sersic n 1, r_half 2     | 3.9e-6 / 7.0e-7 / 5.8e-7          | 1.7e-5 / 5.2e-4 / 1.1e-4                   |
| Sersic n 2.5, r_half 2   | 2.1e-5 / 1.9e-6 / 2.7e-6          | 6.8e-5 / 5.2e-4 / 3.8e-4                   |
| Sersic n 4, r_half 2     | 3.3e-5 / 2.5e-5 / 3.5e-5          | 1.1e-4 / 5.2e-4 / 5.6e-4                   |
| Sersic n 4, r_half 4     | 1.3e-4 / 1.9e-4 / 2.6e-4          | 1.1e-4 / 5.5e-4 / 4.3e-4                   |
| point source             | 1.3e-4 / 7.9e-6 / 4.7e-7          | 2.2e-4 / 5.1e-4 / 1.6e-3                   |

The asserted bounds are 1e-3 (Gaussian and point through a Gaussian PSF), 1e-2 (Sersic) and 3e-3 (point
through an effective PSF off the pixel grid). For Sersic n = 4, r_half = 4 the largest errors sit on the
grid's border: see `test_far_wings_do_not_wrap_around`.

Every image is rendered through one jitted function, so that scenes and observations of the same
structure share a compilation (about 20 s of CPU for the whole file).
"""

from __future__ import annotations

import math

import equinox as eqx
import galsim
import numpy as np
import pytest
from scipy import special

import scarlet_like as sl

SHEAR = (0.2, -0.1)
CENTER = (30.3, 27.8)  # (y, x), off the pixel grid in both axes
GAUSSIAN_TOLERANCE = 1e-3  # of the peak
SERSIC_TOLERANCE = 1e-2
POINT_TOLERANCE = 1e-3  # through a Gaussian PSF
POINT_STAMP_TOLERANCE = 3e-3  # through an effective PSF, off the pixel grid (see the test)
PIXEL_VARIANCE = 1.0 / 12.0  # variance of the unit box along one axis


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


@eqx.filter_jit
def _render_resolved(observation: sl.Observation, scene: sl.Scene):
    return observation.render(scene)


def render(observation: sl.Observation, scene: sl.Scene) -> np.ndarray:
    """`observation.render(scene)` as float64 numpy.

    The scene is resolved first (Parameters carry static identities that would defeat the jit cache);
    `render` accepts resolved scenes too.
    """
    return np.asarray(_render_resolved(observation, sl.resolve(scene)), dtype=np.float64)


def build_scene(frame: sl.Frame, sources) -> sl.Scene:
    """`sources`: `(center, spectrum, morphology)` triples, `morphology=None` for a point source."""
    with sl.Scene(frame) as scene:
        for center, spectrum, morphology in sources:
            if morphology is None:
                sl.PointSource(center, spectrum)
            else:
                sl.Source(center, spectrum, morphology)
    return scene


def render_sources(psf: sl.PSF, shape: tuple[int, int, int], sources, margin=None) -> np.ndarray:
    observation = sl.Observation(data=np.zeros(shape), psf=psf, margin=margin)
    frame = sl.Frame.from_observations(observation)
    return render(observation, build_scene(frame, sources))


def _galsim_image(profile: galsim.GSObject, height: int, width: int, center) -> np.ndarray:
    """GalSim's pixel-integrated drawing of `profile` with its origin at scarlet_like's `(y, x)`."""
    y, x = center
    offset = (x - (width - 1) / 2, y - (height - 1) / 2)  # GalSim's (dx, dy) from the true centre
    return profile.drawImage(nx=width, ny=height, scale=1.0, offset=offset, method="auto").array.astype(
        np.float64
    )


def _moffat_stamp(profile: galsim.GSObject, size: int = 41, offset=(0.0, 0.0)) -> np.ndarray:
    """An effective PSF: the continuous PSF integrated over pixels, sampled on an odd stamp."""
    return profile.drawImage(nx=size, ny=size, scale=1.0, offset=offset, method="auto").array.astype(
        np.float64
    )


def moments(image: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Flux, centroid `(y, x)` and covariance `[[Qyy, Qyx], [Qxy, Qxx]]` of a 2-d image."""
    y, x = np.mgrid[: image.shape[0], : image.shape[1]].astype(np.float64)
    flux = image.sum()
    cy, cx = (image * y).sum() / flux, (image * x).sum() / flux
    dy, dx = y - cy, x - cx
    qyy, qxx, qyx = ((image * v).sum() / flux for v in (dy * dy, dx * dx, dy * dx))
    return flux, np.array([cy, cx]), np.array([[qyy, qyx], [qyx, qxx]])


def reduced_shear(covariance: np.ndarray) -> np.ndarray:
    """`(g1, g2)` of second moments: `(Qxx - Qyy, 2 Qxy) / (Qxx + Qyy + 2 sqrt(det Q))`."""
    (qyy, qxy), (_, qxx) = covariance
    denominator = qxx + qyy + 2.0 * math.sqrt(qxx * qyy - qxy * qxy)
    return np.array([qxx - qyy, 2.0 * qxy]) / denominator


def sersic_variance(n: float, r_half: float) -> float:
    """Variance along one axis of a round Sersic profile: `<r^2> / 2`."""
    b = special.gammaincinv(2.0 * n, 0.5)
    return 0.5 * r_half**2 * math.exp(special.gammaln(4.0 * n) - special.gammaln(2.0 * n)) / b ** (2.0 * n)


# Galaxies for the GalSim comparisons: (our morphology, GalSim profile before shear, tolerance).
_BIG_FFT = galsim.GSParams(maximum_fft_size=16384)
GALAXIES = [
    pytest.param(
        lambda: sl.GaussianMorphology(1.5, SHEAR),
        lambda: galsim.Gaussian(sigma=1.5),
        GAUSSIAN_TOLERANCE,
        id="gaussian-sigma1.5",
    ),
    pytest.param(
        lambda: sl.GaussianMorphology(3.0, SHEAR),
        lambda: galsim.Gaussian(sigma=3.0),
        GAUSSIAN_TOLERANCE,
        id="gaussian-sigma3",
    ),
    pytest.param(
        lambda: sl.SersicMorphology(1.0, 2.0, SHEAR),
        lambda: galsim.Sersic(1.0, half_light_radius=2.0),
        SERSIC_TOLERANCE,
        id="sersic-n1-rhalf2",
    ),
    pytest.param(
        lambda: sl.SersicMorphology(2.5, 2.0, SHEAR),
        lambda: galsim.Sersic(2.5, half_light_radius=2.0, gsparams=_BIG_FFT),
        SERSIC_TOLERANCE,
        id="sersic-n2.5-rhalf2",
    ),
    pytest.param(
        lambda: sl.SersicMorphology(4.0, 2.0, SHEAR),
        lambda: galsim.Sersic(4.0, half_light_radius=2.0, gsparams=_BIG_FFT),
        SERSIC_TOLERANCE,
        id="sersic-n4-rhalf2",
    ),
    pytest.param(
        lambda: sl.SersicMorphology(4.0, 4.0, SHEAR),
        lambda: galsim.Sersic(4.0, half_light_radius=4.0, gsparams=_BIG_FFT),
        SERSIC_TOLERANCE,
        id="sersic-n4-rhalf4",
    ),
]


def _compare_with_galsim(ours: np.ndarray, references: list[np.ndarray], tolerance: float, label: str):
    errors = [float(np.max(np.abs(o - r)) / r.max()) for o, r in zip(ours, references, strict=True)]
    print(f"{label}: max |ours - galsim| / peak per channel = {[f'{e:.2e}' for e in errors]}")
    assert max(errors) <= tolerance, f"{label}: relative errors {errors} above {tolerance}"


# --------------------------------------------------------------------------------------
# 1. Against GalSim
# --------------------------------------------------------------------------------------

GAUSSIAN_PSF_SIGMAS = (1.0, 1.4, 1.8)
GAUSSIAN_PSF_FLUXES = (100.0, 60.0, 30.0)


@pytest.mark.parametrize("morphology, profile, tolerance", GALAXIES)
def test_matches_galsim_through_gaussian_psf(morphology, profile, tolerance):
    # 60 rows x 56 columns: a non-square grid with even sizes (GalSim's true centre between pixels).
    shape = (3, 60, 56)
    ours = render_sources(
        sl.GaussianPSF(GAUSSIAN_PSF_SIGMAS), shape, [(CENTER, GAUSSIAN_PSF_FLUXES, morphology())]
    )
    references = [
        _galsim_image(
            galsim.Convolve(
                profile().shear(g1=SHEAR[0], g2=SHEAR[1]).withFlux(flux), galsim.Gaussian(sigma=s)
            ),
            *shape[1:],
            CENTER,
        )
        for s, flux in zip(GAUSSIAN_PSF_SIGMAS, GAUSSIAN_PSF_FLUXES, strict=True)
    ]
    _compare_with_galsim(ours, references, tolerance, "GaussianPSF")


MOFFATS = (
    galsim.Moffat(beta=3.0, fwhm=3.5, trunc=20.0),
    galsim.Moffat(beta=3.0, fwhm=3.5),  # untruncated: 5e-4 of the light falls outside the stamp
    galsim.Moffat(beta=2.5, fwhm=2.8, trunc=20.0),
)
MOFFAT_FLUXES = (100.0, 80.0, 50.0)


@pytest.fixture(scope="module")
def moffat_psf() -> sl.ArrayPSF:
    return sl.ArrayPSF(np.stack([_moffat_stamp(moffat) for moffat in MOFFATS]))


@pytest.mark.parametrize("morphology, profile, tolerance", GALAXIES)
def test_matches_galsim_through_effective_moffat_psf(moffat_psf, morphology, profile, tolerance):
    shape = (3, 64, 64)
    ours = render_sources(moffat_psf, shape, [(CENTER, MOFFAT_FLUXES, morphology())])
    references = [
        _galsim_image(
            galsim.Convolve(profile().shear(g1=SHEAR[0], g2=SHEAR[1]).withFlux(flux), moffat),
            *shape[1:],
            CENTER,
        )
        for moffat, flux in zip(MOFFATS, MOFFAT_FLUXES, strict=True)
    ]
    _compare_with_galsim(ours, references, tolerance, "ArrayPSF")


def test_point_source_matches_galsim_off_the_pixel_grid(moffat_psf):
    # Through a Gaussian PSF a point source is the pixel-integrated Gaussian. Through an effective PSF it
    # is the stamp interpolated to a sub-pixel position by the stamp's Fourier series, which is exact
    # only for a band-limited PSF: a pixel-convolved Moffat is not, the more so the narrower it is
    # (FWHM 2.8 px, beta 2.5: 1.6e-3 of the peak). Extended sources damp these aliases themselves.
    gaussian = render_sources(
        sl.GaussianPSF(GAUSSIAN_PSF_SIGMAS), (3, 60, 56), [(CENTER, GAUSSIAN_PSF_FLUXES, None)]
    )
    references = [
        _galsim_image(galsim.Gaussian(sigma=s, flux=flux), 60, 56, CENTER)
        for s, flux in zip(GAUSSIAN_PSF_SIGMAS, GAUSSIAN_PSF_FLUXES, strict=True)
    ]
    _compare_with_galsim(gaussian, references, POINT_TOLERANCE, "point, GaussianPSF")
    moffat = render_sources(moffat_psf, (3, 64, 64), [(CENTER, MOFFAT_FLUXES, None)])
    references = [
        _galsim_image(m.withFlux(flux), 64, 64, CENTER)
        for m, flux in zip(MOFFATS, MOFFAT_FLUXES, strict=True)
    ]
    _compare_with_galsim(moffat, references, POINT_STAMP_TOLERANCE, "point, ArrayPSF")


# --------------------------------------------------------------------------------------
# 2. Closed-form image moments
# --------------------------------------------------------------------------------------

SIZE = 64
MOMENT_PSF_SIGMA = 1.2


@pytest.fixture(scope="module")
def psfs() -> dict[str, sl.PSF]:
    return {
        "gaussian": sl.GaussianPSF(MOMENT_PSF_SIGMA),
        "moffat": sl.ArrayPSF(_moffat_stamp(MOFFATS[0])),
    }


def _psf_variance(psf: sl.PSF) -> np.ndarray:
    """Covariance `(y, x)` that the PSF (with the pixel) adds to a rendered image."""
    if isinstance(psf, sl.GaussianPSF):
        return (MOMENT_PSF_SIGMA**2 + PIXEL_VARIANCE) * np.eye(2)
    # an effective PSF already contains the pixel: its samples' moments are what is added
    _, _, covariance = moments(np.asarray(psf.images[0], dtype=np.float64))
    return covariance


def _single(psf: sl.PSF, center, morphology, flux: float = 1.0, margin=None) -> np.ndarray:
    return render_sources(psf, (1, SIZE, SIZE), [(center, [flux], morphology)], margin)[0]


FLUX_GALAXIES = [
    pytest.param(lambda: sl.GaussianMorphology(2.0, SHEAR), id="gaussian"),
    pytest.param(lambda: sl.SersicMorphology(1.0, 2.0, (-0.3, 0.2)), id="sersic-n1"),
    pytest.param(lambda: None, id="point"),
]


@pytest.mark.parametrize("morphology", FLUX_GALAXIES)
@pytest.mark.parametrize("psf_kind", ["gaussian", "moffat"])
def test_flux_is_conserved(psfs, psf_kind, morphology):
    # a source well inside the grid: the image sums to its total flux
    image = _single(psfs[psf_kind], (31.4, 30.7), morphology(), flux=37.5)
    np.testing.assert_allclose(image.sum(), 37.5, rtol=1e-4)


MOMENT_GALAXIES = [
    pytest.param(lambda: sl.GaussianMorphology(2.0, SHEAR), id="gaussian"),
    pytest.param(lambda: sl.SersicMorphology(1.0, 2.0, SHEAR), id="sersic-n1"),
]


@pytest.mark.parametrize("morphology", MOMENT_GALAXIES)
@pytest.mark.parametrize("psf_kind", ["gaussian", "moffat"])
def test_centroid_is_the_source_center(psfs, psf_kind, morphology):
    center = np.array([31.37, 30.81])
    _, centroid, _ = moments(_single(psfs[psf_kind], center, morphology()))
    np.testing.assert_allclose(centroid, center, atol=1e-3)


@pytest.mark.parametrize("psf_kind", ["gaussian", "moffat"])
def test_translation_moves_the_image(psfs, psf_kind):
    psf = psfs[psf_kind]
    start, step = np.array([30.6, 31.2]), np.array([0.45, -0.7])
    # sub-pixel: the centroid follows and the shape does not change
    compact = sl.SersicMorphology(1.0, 2.0, SHEAR)
    _, before, covariance_before = moments(_single(psf, start, compact))
    _, after, covariance_after = moments(_single(psf, start + step, compact))
    np.testing.assert_allclose(after - before, step, atol=1e-4)
    np.testing.assert_allclose(covariance_after, covariance_before, rtol=1e-3)
    # whole pixels: the same array, shifted (3 rows down, 5 columns left), even with wide wings
    wide = sl.SersicMorphology(2.5, 2.0, SHEAR)
    image = _single(psf, start, wide)
    shifted = _single(psf, start + [3.0, -5.0], wide)
    np.testing.assert_allclose(shifted[3:, : SIZE - 5], image[: SIZE - 3, 5:], atol=1e-6 * image.max())


@pytest.mark.parametrize("sigma", [1.5, 3.0])
@pytest.mark.parametrize("psf_kind", ["gaussian", "moffat"])
def test_gaussian_variance_adds_psf_and_pixel(psfs, psf_kind, sigma):
    # round Gaussian of sigma s: s^2 + sigma_psf^2 + 1/12 per axis (Gaussian PSF), s^2 + the effective PSF
    # samples' moments (ArrayPSF, which already contain the pixel); so the size scales with sigma
    psf = psfs[psf_kind]
    _, _, covariance = moments(_single(psf, (31.4, 30.6), sl.GaussianMorphology(sigma)))
    np.testing.assert_allclose(covariance, sigma**2 * np.eye(2) + _psf_variance(psf), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("r_half", [2.0, 3.0])
def test_sersic_variance_adds_psf_and_pixel(psfs, r_half):
    # exponential profile: <r^2> / 2 = r_half^2 Gamma(4n) / (2 Gamma(2n) b_n^(2n)) per axis
    psf = psfs["gaussian"]
    _, _, covariance = moments(_single(psf, (31.4, 30.6), sl.SersicMorphology(1.0, r_half)))
    expected = sersic_variance(1.0, r_half) * np.eye(2) + _psf_variance(psf)
    np.testing.assert_allclose(covariance, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shear", [(0.2, -0.1), (-0.3, 0.25), (0.0, 0.4)])
@pytest.mark.parametrize(
    "morphology",
    [
        pytest.param(lambda g: sl.GaussianMorphology(2.5, g), id="gaussian"),
        pytest.param(lambda g: sl.SersicMorphology(1.0, 2.5, g), id="sersic-n1"),
    ],
)
@pytest.mark.parametrize("psf_kind", ["gaussian", "moffat"])
def test_moment_ellipticity_is_the_input_shear(psfs, psf_kind, morphology, shear):
    # Remove the PSF (and pixel) covariance, then convert the moments to a reduced shear; the area is
    # preserved by the shear, so sqrt(det Q) is the round profile's variance.
    psf = psfs[psf_kind]
    _, _, covariance = moments(_single(psf, (31.4, 30.6), morphology(shear)))
    intrinsic = covariance - _psf_variance(psf)
    np.testing.assert_allclose(reduced_shear(intrinsic), shear, atol=2e-4)
    size = 2.5**2 if isinstance(morphology(shear), sl.GaussianMorphology) else sersic_variance(1.0, 2.5)
    np.testing.assert_allclose(math.sqrt(np.linalg.det(intrinsic)), size, rtol=1e-3)


def test_g1_stretches_along_columns(psfs):
    _, _, covariance = moments(
        _single(psfs["gaussian"], (31.0, 31.0), sl.GaussianMorphology(2.0, (0.3, 0.0)))
    )
    assert covariance[1, 1] > 1.5 * covariance[0, 0]  # Qxx (columns) > Qyy (rows)
    _, _, covariance = moments(
        _single(psfs["gaussian"], (31.0, 31.0), sl.GaussianMorphology(2.0, (0.0, 0.3)))
    )
    assert covariance[0, 1] > 0.5  # g2 > 0 stretches along the diagonal x = y


SYMMETRY_GALAXIES = [
    pytest.param(lambda g: sl.GaussianMorphology(2.0, g), id="gaussian"),
    pytest.param(lambda g: sl.SersicMorphology(2.5, 2.0, g), id="sersic-n2.5"),
]


@pytest.mark.parametrize("morphology", SYMMETRY_GALAXIES)
def test_flipping_g1_transposes_the_image(psfs, morphology):
    # Swapping x and y maps (g1, g2) to (-g1, g2); the source sits on the diagonal of a square grid.
    psf = psfs["gaussian"]
    center = (31.3, 31.3)
    image = _single(psf, center, morphology((0.25, 0.15)))
    swapped = _single(psf, center, morphology((-0.25, 0.15)))
    assert np.max(np.abs(image - image.T)) > 0.05 * image.max()  # the test is not trivial
    np.testing.assert_allclose(swapped, image.T, atol=1e-5 * image.max())


@pytest.mark.parametrize("morphology", SYMMETRY_GALAXIES)
def test_quarter_turn_negates_the_shear(psfs, morphology):
    # A quarter turn about the grid centre maps g to -g (a spin-2 quantity).
    psf = psfs["gaussian"]
    center = ((SIZE - 1) / 2, (SIZE - 1) / 2)
    image = _single(psf, center, morphology((0.25, 0.15)))
    turned = _single(psf, center, morphology((-0.25, -0.15)))
    np.testing.assert_allclose(turned, np.rot90(image), atol=1e-5 * image.max())


# --------------------------------------------------------------------------------------
# 3. Point sources reproduce an effective PSF
# --------------------------------------------------------------------------------------


def test_point_source_at_a_pixel_reproduces_the_psf_stamp():
    # An asymmetric stamp (sheared and off-centre Moffat), so flips or transpositions would show.
    stamp = _moffat_stamp(MOFFATS[0].shear(g1=0.15, g2=0.1), offset=(0.3, -0.2))
    stamp = stamp / stamp.sum()
    assert np.max(np.abs(stamp - stamp.T)) > 0.01 * stamp.max()
    assert np.max(np.abs(stamp - stamp[::-1, ::-1])) > 0.01 * stamp.max()
    height, width, flux, (y, x) = 64, 60, 25.0, (30, 27)
    image = render_sources(sl.ArrayPSF(stamp), (1, height, width), [((float(y), float(x)), [flux], None)])[0]
    expected = np.zeros((height, width))
    expected[y - 20 : y + 21, x - 20 : x + 21] = flux * stamp
    np.testing.assert_allclose(image, expected, atol=1e-5 * expected.max())


# --------------------------------------------------------------------------------------
# 4. Several bands
# --------------------------------------------------------------------------------------

BANDS = ("g", "r", "i")
BAND_SIGMAS = (1.0, 1.5, 1.9)
BAND_SOURCES = [
    ((31.6, 29.3), np.array([10.0, 20.0, 40.0]), lambda: sl.GaussianMorphology(2.5, (0.1, 0.2))),
    ((30.0, 40.2), np.array([5.0, 3.0, 1.0]), lambda: None),
]


@pytest.fixture(scope="module")
def single_band_images() -> list[np.ndarray]:
    """Each band on its own: one source at a time, through a single-channel PSF, summed."""
    return [
        sum(
            _single(sl.GaussianPSF(sigma), center, morphology(), flux=float(spectrum[band]))
            for center, spectrum, morphology in BAND_SOURCES
        )
        for band, sigma in enumerate(BAND_SIGMAS)
    ]


def _band_scene(frame: sl.Frame) -> sl.Scene:
    return build_scene(
        frame, [(center, spectrum, morphology()) for center, spectrum, morphology in BAND_SOURCES]
    )


def test_each_band_is_rendered_with_its_own_psf(single_band_images):
    observation = sl.Observation(
        data=np.zeros((3, SIZE, SIZE)), psf=sl.GaussianPSF(BAND_SIGMAS), channels=BANDS
    )
    image = render(observation, _band_scene(sl.Frame.from_observations(observation)))
    for band, expected in enumerate(single_band_images):
        np.testing.assert_allclose(image[band], expected, atol=1e-5 * expected.max())
    # the bands differ by more than their fluxes (the test would notice one PSF used for all)
    peaks = [single.max() / single.sum() for single in single_band_images]
    assert peaks[0] > 1.3 * peaks[2]


def test_observation_picks_its_bands_from_the_frame(single_band_images):
    # an observation of two of the frame's three bands, in another order, with a PSF per band
    frame = sl.Frame((3, SIZE, SIZE), channels=BANDS)
    observation = sl.Observation(
        data=np.zeros((2, SIZE, SIZE)),
        psf=sl.GaussianPSF([BAND_SIGMAS[2], BAND_SIGMAS[0]]),
        channels=["i", "g"],
    )
    image = render(observation, _band_scene(frame))
    for rendered, band in zip(image, (2, 0), strict=True):
        expected = single_band_images[band]
        np.testing.assert_allclose(rendered, expected, atol=1e-5 * expected.max())


# --------------------------------------------------------------------------------------
# Known limitation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "margin",
    [
        pytest.param(
            None,
            marks=pytest.mark.xfail(
                strict=True,
                reason="the default FFT padding covers the PSF and half the frame: the far wings of a "
                "large n=4 profile still wrap around onto the opposite border (border pixels > 5% off, "
                "< 1% of the total flux)",
            ),
            id="default-margin",
        ),
        pytest.param(4 * SIZE, id="large-margin"),
    ],
)
def test_far_wings_do_not_wrap_around(psfs, margin):
    # A de Vaucouleurs profile of half-light radius 4 px has ~4% of its light beyond 30 px. With a
    # margin of four frames, no light that matters wraps around, and the borders agree with GalSim.
    center = (31.4, 30.6)
    image = _single(psfs["gaussian"], center, sl.SersicMorphology(4.0, 4.0), margin=margin)
    reference = _galsim_image(
        galsim.Convolve(
            galsim.Sersic(4.0, half_light_radius=4.0, gsparams=_BIG_FFT), galsim.Gaussian(sigma=1.2)
        ),
        SIZE,
        SIZE,
        center,
    )
    border = np.ones((SIZE, SIZE), bool)
    border[2:-2, 2:-2] = False
    np.testing.assert_allclose(image[border], reference[border], rtol=0.05)

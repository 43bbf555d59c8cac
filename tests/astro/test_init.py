"""Starting values from data: simulated sources with known answers, masks and NaNs, the real HSC blend."""

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.astro import init
from scarlet_like.astro.psf import psf_extent

HEIGHT, WIDTH = 41, 45
SPECTRUM = np.array([100.0, 200.0, 300.0], dtype=np.float32)
PSF_SIGMA = 1.5
TRUE_CENTER = (20.3, 22.6)
CATALOG_CENTER = (20.0, 23.0)  # a detection catalog's integer guess


def simulate(morphology, *, noise=0.01, mask=None, nan_where=None, seed=0, center=TRUE_CENTER):
    """A 3-band source rendered through a Gaussian PSF (pixel-integrated), with Gaussian noise."""
    frame = sl.Frame((3, HEIGHT, WIDTH))
    with sl.Scene(frame) as scene:
        sl.Source(np.asarray(center, dtype=np.float32), SPECTRUM, morphology)
    psf = sl.GaussianPSF(PSF_SIGMA)
    image = np.asarray(sl.Observation(np.zeros((3, HEIGHT, WIDTH)), psf=psf).render(scene), dtype=np.float64)
    data = image + noise * np.random.default_rng(seed).normal(size=image.shape)
    if nan_where is not None:
        data[nan_where] = np.nan
    weights = np.full(data.shape, 1 / noise**2)
    return sl.Observation(data, weights=weights, mask=mask, psf=psf)


@pytest.fixture(scope="module")
def hsc():
    data = sl.datasets.hsc_cosmos()
    observation = data.observation()
    return data, observation


# --------------------------------------------------------------------------------------
# pixel_spectrum
# --------------------------------------------------------------------------------------


def test_pixel_spectrum_of_a_point_source_is_its_flux():
    observation = simulate(sl.PointMorphology())
    spectrum = init.pixel_spectrum(observation, TRUE_CENTER)
    assert spectrum.shape == (3,) and spectrum.dtype == jnp.float32
    np.testing.assert_allclose(spectrum, SPECTRUM, rtol=0.1)
    # without the PSF correction: the value at the nearest pixel
    value = init.pixel_spectrum(observation, TRUE_CENTER, correct_psf=False)
    np.testing.assert_allclose(value, np.asarray(observation.data)[:, 20, 23], rtol=1e-4)


def test_pixel_spectrum_fills_a_masked_or_nan_centre_from_its_neighbours():
    mask = np.zeros((3, HEIGHT, WIDTH), bool)
    mask[:, 20, 23] = True
    mask[1, 19:22, 22:25] = True  # channel 1: the whole 3x3 block around the centre
    nan_where = (slice(None), slice(20, 21), slice(23, 24))
    observation = simulate(sl.PointMorphology(), mask=mask, nan_where=nan_where)
    spectrum = init.pixel_spectrum(observation, TRUE_CENTER)
    assert np.all(np.isfinite(spectrum))
    np.testing.assert_allclose(spectrum, SPECTRUM, rtol=0.1)


def test_pixel_spectrum_is_floored_positive_where_there_is_nothing():
    mask = np.zeros((3, HEIGHT, WIDTH), bool)
    mask[2] = True  # a channel with no data at all
    observation = simulate(sl.PointMorphology(), mask=mask)
    empty_spot = (5.0, 5.0)  # only noise there: some channels come out negative before the floor
    for spectrum in (
        init.pixel_spectrum(observation, empty_spot),
        init.pixel_spectrum(observation, TRUE_CENTER),
    ):
        assert np.all(np.isfinite(spectrum)) and np.all(spectrum > 0)
    assert np.all(init.pixel_spectrum(observation, empty_spot) < 0.1)


def test_pixel_spectrum_combines_observations_per_channel():
    first = simulate(sl.PointMorphology(), seed=1)
    second = simulate(sl.PointMorphology(), seed=2)
    blue = sl.Observation(first.data[:2], weights=first.weights[:2], psf=first.psf, channels=("g", "r"))
    red = sl.Observation(second.data[1:], weights=second.weights[1:], psf=second.psf, channels=("r", "i"))
    spectrum = init.pixel_spectrum([blue, red], TRUE_CENTER)
    assert spectrum.shape == (3,)  # g, r, i: r is seen twice and averaged
    np.testing.assert_allclose(spectrum, SPECTRUM, rtol=0.1)
    frame = sl.Frame((3, HEIGHT, WIDTH), channels=("g", "r", "i"))
    np.testing.assert_allclose(
        init.pixel_spectrum([blue, red], TRUE_CENTER, frame=frame), spectrum, rtol=1e-5
    )


def test_pixel_spectrum_names_bad_input():
    observation = simulate(sl.PointMorphology())
    with pytest.raises(ValueError, match="outside observation"):
        init.pixel_spectrum(observation, (80.0, 3.0))
    with pytest.raises(ValueError, match="finite"):
        init.pixel_spectrum(observation, (np.nan, 3.0))


# --------------------------------------------------------------------------------------
# moments
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma, shear", [(2.0, (0.3, -0.2)), (3.0, (0.0, 0.4)), (1.5, (-0.2, 0.1))])
def test_moments_recover_an_elliptical_gaussian(sigma, shear):
    observation = simulate(sl.GaussianMorphology(sigma, np.asarray(shear, dtype=np.float32)))
    result = init.moments(observation, CATALOG_CENTER)
    np.testing.assert_allclose(result.flux, SPECTRUM, rtol=0.1)
    np.testing.assert_allclose(result.centroid, TRUE_CENTER, atol=0.05)
    np.testing.assert_allclose(result.sigma, sigma, rtol=0.1)
    np.testing.assert_allclose(result.r_half, sigma * np.sqrt(2 * np.log(2)), rtol=0.1)
    np.testing.assert_allclose(result.ellipticity, shear, atol=0.03)


def test_moments_of_a_point_source_floor_the_size():
    result = init.moments(simulate(sl.PointMorphology()), CATALOG_CENTER)
    assert float(result.sigma) == pytest.approx(init.MIN_SIGMA, rel=1e-5)
    np.testing.assert_allclose(result.ellipticity, 0.0, atol=1e-6)
    np.testing.assert_allclose(result.flux, SPECTRUM, rtol=0.1)
    np.testing.assert_allclose(result.centroid, TRUE_CENTER, atol=0.05)


def test_moments_survive_a_masked_centre_and_nan_neighbours():
    morphology = sl.GaussianMorphology(2.0, np.array([0.3, -0.2], dtype=np.float32))
    mask = np.zeros((3, HEIGHT, WIDTH), bool)
    mask[:, 20, 23] = True  # the peak pixel, in every channel
    mask[:, 18:23, 25:27] = True  # a masked streak next to the source, holding NaN
    nan_where = np.zeros_like(mask)
    nan_where[:, 18:23, 25:27] = True
    result = init.moments(simulate(morphology, mask=mask, nan_where=nan_where), CATALOG_CENTER)
    for field in result:
        assert np.all(np.isfinite(field))
    np.testing.assert_allclose(result.flux, SPECTRUM, rtol=0.1)
    np.testing.assert_allclose(result.centroid, TRUE_CENTER, atol=0.1)
    np.testing.assert_allclose(result.sigma, 2.0, rtol=0.1)
    np.testing.assert_allclose(result.ellipticity, (0.3, -0.2), atol=0.05)


def test_moments_of_pure_noise_fall_back_to_finite_values():
    observation = simulate(sl.PointMorphology(), center=(5.0, 5.0))
    result = init.moments(observation, (30.0, 35.0))  # nothing there
    for field in result:
        assert np.all(np.isfinite(field))
    assert float(result.sigma) >= init.MIN_SIGMA * (1 - 1e-6)
    assert np.all(result.flux > 0) and float(jnp.hypot(*result.ellipticity)) <= init.MAX_SHEAR + 1e-6


# --------------------------------------------------------------------------------------
# The real HSC blend
# --------------------------------------------------------------------------------------


def test_every_hsc_detection_gets_finite_positive_starting_values(hsc):
    data, observation = hsc
    for index, center in enumerate(data.centers):
        spectrum = np.asarray(init.pixel_spectrum(observation, center))
        assert spectrum.shape == (5,) and np.all(np.isfinite(spectrum)) and np.all(spectrum > 0), index
        for neighbors in (None, data.centers):
            result = init.moments(observation, center, neighbors=neighbors)
            for field in result:
                assert np.all(np.isfinite(field)), (index, field)
            assert np.all(result.flux > 0)
            assert init.MIN_SIGMA * (1 - 1e-6) <= float(result.sigma) < 8.0, index
            assert float(jnp.hypot(*result.ellipticity)) <= init.MAX_SHEAR + 1e-6
            assert np.hypot(*(np.asarray(result.centroid) - center)) <= 2.0 + 1e-6


# --------------------------------------------------------------------------------------
# detect
# --------------------------------------------------------------------------------------


def test_detect_finds_simulated_sources_where_they_are():
    centers = np.array([[8.3, 9.6], [30.7, 12.2], [20.4, 33.1], [33.2, 38.5]], np.float32)
    fluxes = np.array([50.0, 30.0, 20.0, 8.0], np.float32)
    frame = sl.Frame((1, HEIGHT, WIDTH))
    with sl.Scene(frame) as scene:
        for center, flux in zip(centers, fluxes, strict=True):
            sl.Source(center, np.array([flux], np.float32), sl.GaussianMorphology(1.0))
    psf = sl.GaussianPSF(PSF_SIGMA)
    image = np.asarray(sl.Observation(np.zeros((1, HEIGHT, WIDTH)), psf=psf).render(scene), np.float64)
    noise = 0.05
    data = image + noise * np.random.default_rng(4).normal(size=image.shape)
    found = np.asarray(init.detect(sl.Observation(data, weights=np.full(data.shape, noise**-2), psf=psf)))
    assert found.shape == (4, 2)
    # brightest first, each within 0.3 pixels of the truth (the faintest has a peak S/N of about 10)
    np.testing.assert_allclose(found, centers, atol=0.3)


def test_detect_peaks_on_the_hsc_blend_are_pipeline_detections(hsc):
    data, observation = hsc
    found = np.asarray(init.detect(observation))
    distances = np.linalg.norm(found[:, None, :] - data.centers[None, :, :], axis=-1)
    # the survey pipeline's seven detections, each within 0.9 pixels, the star and the bright galaxy
    # first; one more peak, a faint galaxy the catalog lacks (above 10 sigma in g, r, i and z alone),
    # and no noise peak. (At 89f25a6, whose noise was the clipped standard deviation of this crowded
    # cutout, 15 times what the weights predict, only the four brightest came out.)
    matched = distances.min(axis=1) < 0.9
    assert matched.sum() == 7 and len(found) - matched.sum() <= 1, distances.min(axis=1)
    assert set(distances[:2].argmin(axis=1)) == {0, 1}


def _blend_with_faint_neighbours(noise_image):
    """A bright extended galaxy filling most of the image, and three faint point sources on its outskirts."""
    frame = sl.Frame((1, HEIGHT, WIDTH))
    faint = np.array([[3.2, 3.4], [37.6, 4.1], [3.3, 41.2]], np.float32)
    with sl.Scene(frame) as scene:
        sl.Source(
            np.array([20.5, 22.5], np.float32), np.array([4000.0], np.float32), sl.GaussianMorphology(6.0)
        )
        for center in faint:
            sl.Source(center, np.array([6.0], np.float32), sl.PointMorphology())
    psf = sl.GaussianPSF(PSF_SIGMA)
    image = np.asarray(sl.Observation(np.zeros((1, HEIGHT, WIDTH)), psf=psf).render(scene), np.float64)
    return image + noise_image, faint, psf


def test_detect_measures_the_noise_below_the_light_of_a_crowded_cutout():
    # Each faint source peaks at about 19 sigma of the smoothed image's noise, in a corner; the bright
    # galaxy's light covers most pixels, which made the level and the clipped standard deviation of
    # the whole smoothed image 14 and 55 times that noise (at 89f25a6: the faint ones were lost, the
    # threshold was 290 sigma). Measured below the level now: 3.6 and 2.7 times.
    noise = 0.05
    data, faint, psf = _blend_with_faint_neighbours(
        noise * np.random.default_rng(2).normal(size=(1, HEIGHT, WIDTH))
    )
    found = np.asarray(init.detect(sl.Observation(data, weights=np.full(data.shape, noise**-2), psf=psf)))
    distances = np.linalg.norm(found[:, None, :] - faint[None, :, :], axis=-1)
    assert np.all(distances.min(axis=0) < 0.5), distances.min(axis=0)  # every faint source, where it is
    assert len(found) == 4  # and the galaxy; no noise peak


def test_detect_raises_the_noise_of_correlated_pixels_above_the_weights_prediction():
    # Pure noise smoothed by a 1.5-pixel Gaussian (as drizzling correlates it), with weights that
    # claim each pixel's variance independently: the prediction is 2.6 times too small, so 5 sigma of
    # it would be 2 sigma of the real noise, hundreds of peaks. Measured below the median, none.
    rng = np.random.default_rng(5)
    white = rng.normal(size=(1, 128, 128))
    ky = 2 * np.pi * np.fft.fftfreq(128)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(128)[None, :]
    correlated = np.fft.ifft2(np.fft.fft2(white) * np.exp(-0.5 * 1.5**2 * (ky**2 + kx**2))).real
    observation = sl.Observation(correlated, weights=np.full(correlated.shape, correlated.var() ** -1.0))
    assert len(np.asarray(init.detect(observation))) == 0
    assert len(np.asarray(init.detect(observation, threshold=2.0))) > 20  # the peaks are there


# --------------------------------------------------------------------------------------
# scene
# --------------------------------------------------------------------------------------


def test_scene_from_detections_starts_a_galaxy_at_its_shape_and_flux():
    shear = np.array([0.25, -0.15], np.float32)
    observation = simulate(sl.GaussianMorphology(2.0, shear))
    scene = init.scene(observation, [CATALOG_CENTER])
    assert len(scene) == 1 and type(scene.sources[0]) is sl.Source
    values = sl.get_values(scene)
    np.testing.assert_allclose(values["sources[0].center"], CATALOG_CENTER)
    # a Gaussian of sigma 2: r_half = 1.177 sigma, within 10 %, its shape within 0.03
    np.testing.assert_allclose(values["sources[0].morphology.r_half"], 2.0 * np.sqrt(2 * np.log(2)), rtol=0.1)
    np.testing.assert_allclose(values["sources[0].morphology.ellipticity"], shear, atol=0.03)
    np.testing.assert_allclose(
        values["sources[0].spectrum"], init.pixel_spectrum(observation, CATALOG_CENTER)
    )
    # every prior is finite at the start and the parameters are free
    morphology = scene.sources[0].morphology
    for parameter in (morphology.n, morphology.r_half, morphology.ellipticity, scene.sources[0].center):
        assert np.isfinite(float(parameter.prior.log_prob(parameter.value)))
    assert set(values) == {
        "sources[0].center",
        "sources[0].spectrum",
        "sources[0].morphology.n",
        "sources[0].morphology.r_half",
        "sources[0].morphology.ellipticity",
    }


def test_scene_point_source_and_detection_when_none_given():
    observation = simulate(sl.PointMorphology(), noise=0.02)
    scene = init.scene(observation)  # runs detect
    assert len(scene) == 1 and isinstance(scene.sources[0], sl.PointSource)
    np.testing.assert_allclose(sl.get_values(scene)["sources[0].center"], TRUE_CENTER, atol=0.3)
    # forced kinds
    forced = init.scene(observation, [TRUE_CENTER], kinds=["extended"])
    assert type(forced.sources[0]) is sl.Source


def test_sersic_morphology_priors_vanish_at_the_bounds():
    morphology = init.sersic_morphology(2.0, (0.1, 0.0), n=1.0)
    n_prior = morphology.n.prior
    low, high = init.SERSIC_N_RANGE
    inside = [float(n_prior.log_prob(jnp.asarray(v))) for v in (low + 1e-4, 0.5 * (low + high), high - 1e-4)]
    assert inside[0] < inside[1] - 5 and inside[2] < inside[1] - 5
    with pytest.raises(ValueError, match="r_half"):
        init.sersic_morphology(0.0)


def test_scene_names_bad_detections():
    observation = simulate(sl.PointMorphology())
    with pytest.raises(ValueError, match="empty"):
        init.scene(observation, [])
    with pytest.raises(ValueError, match="detection 1 at .* outside"):
        init.scene(observation, [TRUE_CENTER, (80.0, 3.0)])
    with pytest.raises(ValueError, match="detection 0 is not finite"):
        init.scene(observation, [(np.nan, 3.0)])
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        init.scene(observation, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="kinds"):
        init.scene(observation, [TRUE_CENTER], kinds=["star"])
    empty = sl.Observation(
        np.zeros((3, HEIGHT, WIDTH)), weights=np.ones((3, HEIGHT, WIDTH)), psf=observation.psf
    )
    with pytest.raises(ValueError, match="found no source"):
        init.scene(empty)


def test_scene_centres_stay_half_way_from_their_neighbours():
    observation = simulate(sl.GaussianMorphology(2.0, (0.0, 0.0)))
    detections = [(20.0, 10.0), (20.0, 16.0), (10.0, 40.0)]
    free = init.scene(observation, detections)
    # by default no limit
    assert all(source.center.constraint == sl.constraints.real() for source in free.sources)
    scene = init.scene(observation, detections, max_shift=4.0, neighbors=[(30.0, 40.0)])
    reaches = [float(np.asarray(source.center.constraint.radius.to_numpy())) for source in scene.sources]
    # half of 6 px to the next detection; max_shift; half of 10 px to the neighbour
    np.testing.assert_allclose(reaches, [3.0, 3.0, 4.0])
    # the constraint is live: the unconstrained centre at infinity lands on the disk's edge
    center = scene.sources[0].center
    far = center.constraint.forward(jnp.asarray([0.0, 50.0], jnp.float32))
    np.testing.assert_allclose(far, [20.0, 13.0], atol=1e-4)
    assert bool(center.constraint.at_bound(jnp.asarray([0.0, 50.0]), jnp.zeros(2))[0])
    wider = init.scene(observation, detections, max_shift=math.inf)
    widest = float(wider.sources[2].center.constraint.radius.to_numpy())
    np.testing.assert_allclose(widest, 0.5 * np.hypot(10, 24))
    with pytest.raises(ValueError, match=r"detection 0 at \(y, x\) = \(20.0, 10.0\) is at the same position"):
        init.scene(observation, [(20.0, 10.0), (20.0, 10.0)], max_shift=4.0)
    with pytest.raises(ValueError, match="max_shift"):
        init.scene(observation, detections, max_shift=0.0)
    with pytest.raises(ValueError, match="neighbors"):
        init.scene(observation, detections, neighbors=[1.0, 2.0, 3.0])


def test_scene_from_sky_coordinates_on_two_instruments():
    data = sl.datasets.hsc_hst()
    observations = [data.hst.observation("HST"), data.hsc.observation("HSC")]
    frame = sl.Frame.from_observations(observations)
    inside = [c for c in data.centers if frame.contains(frame.to_pixel(c))]
    from astropy.coordinates import SkyCoord

    scene = init.scene(observations, SkyCoord(inside), frame=frame)
    assert len(scene) == len(inside)
    values = sl.get_values(scene)
    for index, coordinate in enumerate(inside):
        np.testing.assert_allclose(values[f"sources[{index}].center"], frame.to_pixel(coordinate), atol=1e-3)
        spectrum = np.asarray(values[f"sources[{index}].spectrum"])
        assert spectrum.shape == (6,) and np.all(np.isfinite(spectrum)) and np.all(spectrum > 0)
    # the four galaxies HST resolves (the first detections, from its image) are extended
    assert all(type(source) is sl.Source for source in scene.sources[:4])


def test_bulge_disk_splits_a_galaxy_and_keeps_its_flux_and_centre():
    frame = sl.Frame((3, 40, 40), psf=sl.GaussianPSF(0.7))
    with sl.Scene(frame):
        galaxy = sl.Source(
            sl.Parameter(jnp.array([20.0, 21.0])),
            sl.Parameter(jnp.array([10.0, 20.0, 30.0]), constraint=sl.constraints.positive()),
            sl.init.sersic_morphology(4.0, (0.3, -0.1)),
        )
    with sl.Scene(frame) as split:
        sl.init.bulge_disk(galaxy)
    source = split.sources[0]
    assert isinstance(source, sl.MultiComponentSource) and len(source.components) == 2
    assert source.center is galaxy.center  # the same Parameter: its prior and sharing kept
    np.testing.assert_allclose(sl.resolve(source.spectrum), [10.0, 20.0, 30.0], rtol=1e-6)
    disk, bulge = (sl.resolve(component.morphology) for component in source.components)
    assert (float(bulge.n), float(disk.n)) == (4.0, 1.0)
    np.testing.assert_allclose([float(bulge.r_half), float(disk.r_half)], [1.6, 4.0], rtol=1e-6)
    # the bulge is measured in units of the disk: one free size, shared; its centre within a fixed
    # reach of the galaxy's
    assert source.components[1].morphology.reference is source.components[0].morphology.r_half
    np.testing.assert_allclose(float(bulge.reach), init.BULGE_REACH * 4.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bulge.offset), [0.0, 0.0])
    names = sl.entry_names(split)
    assert "sources[0].components[0].morphology.r_half" in names
    assert "sources[0].components[1].morphology.ratio" in names
    assert "sources[0].components[1].morphology.shift[0]" in names
    assert not any(name.endswith("reference") or ".offset" in name for name in names)
    # the older parametrisation: the bulge's own size and offset
    with sl.Scene(frame) as free:
        sl.init.bulge_disk(galaxy, size_ratio=None)
    names = sl.entry_names(free)
    assert "sources[0].components[1].offset[0]" in names and "sources[0].components[0].offset[0]" not in names
    assert "sources[0].components[1].morphology.r_half" in names
    # the light is where the galaxy's was: the same total in every band (but the 1% of the de
    # Vaucouleurs bulge's light that lies beyond the 40 x 40 frame)
    np.testing.assert_allclose(np.asarray(split()).sum(axis=(1, 2)), [9.9, 19.8, 29.7], rtol=2e-3)
    with sl.Scene(frame), pytest.raises(ValueError, match="r_half and ellipticity"):
        sl.init.bulge_disk(sl.PointSource(jnp.array([20.0, 20.0]), jnp.ones(3)))
    with sl.Scene(frame), pytest.raises(ValueError, match="size_ratio"):
        sl.init.bulge_disk(galaxy, size_ratio=(0.5, 0.9))


@pytest.mark.slow
def test_bulge_disk_of_a_fitted_blend_stays_inside_its_disk_and_recovers_the_fluxes():
    """Two bulge + disk galaxies 9 pixels apart, the bright one's red bulge offset: one Sérsic per
    galaxy misses the faint galaxy's reddest band by 30 %; split by `bulge_disk` and fitted again,
    every flux is within 15 % (measured at most 11 %), each bulge smaller than its disk and within its
    reach. About 3 minutes on a loaded 2-core machine, nearly all of it compiling."""
    rng = np.random.default_rng(0)
    psf = sl.GaussianPSF(1.0)
    frame = sl.Frame((3, 40, 40), psf=psf)
    # centre, bulge spectrum, r_half, offset; disk spectrum, r_half, ellipticity
    truth = [
        ((18.0, 15.0), [60.0, 120.0, 200.0], 1.0, (0.5, -0.4), [300.0, 280.0, 220.0], 4.0, (0.3, 0.1)),
        ((20.0, 24.0), [400.0, 900.0, 1500.0], 1.0, (-0.3, 0.3), [300.0, 300.0, 250.0], 2.5, (-0.1, 0.2)),
    ]
    with sl.Scene(frame) as true_scene:
        for center, bulge, bulge_size, offset, disk, disk_size, shape in truth:
            sl.MultiComponentSource(
                jnp.array(center),
                [
                    sl.Component(jnp.array(disk), sl.SersicMorphology(1.0, disk_size, shape)),
                    sl.Component(jnp.array(bulge), sl.SersicMorphology(4.0, bulge_size, (0.0, 0.05)), offset),
                ],
            )
    blank = sl.Observation(np.zeros((3, 40, 40)), psf=psf)
    data = np.asarray(blank.render(true_scene)) + rng.normal(0.0, 1.0, (3, 40, 40))
    observation = sl.Observation(data, weights=np.ones_like(data), psf=psf)
    fluxes = np.array([np.add(bulge, disk) for _, bulge, _, _, disk, _, _ in truth])
    centers = np.array([center for center, *_ in truth])

    first = sl.fit(init.scene(observation, centers), observation, progress=False)
    one = np.array([sl.measure.flux(source) for source in first.model.sources])
    assert np.max(np.abs(one / fluxes - 1)) > 0.2  # measured 0.30: one profile is not enough
    split = sl.fit(init.bulge_disk_scene(first.model), observation, progress=False)
    assert split.converged
    two = np.array([sl.measure.flux(source) for source in split.model.sources])
    assert np.max(np.abs(two / fluxes - 1)) < 0.15, two / fluxes - 1  # measured 0.11
    for source, start in zip(sl.resolve(split.model).sources, sl.resolve(first.model).sources, strict=True):
        disk, bulge = (component.morphology for component in source.components)
        assert float(bulge.r_half) < init.BULGE_RATIO[1] * float(disk.r_half) + 1e-6
        reach = init.BULGE_REACH * float(start.morphology.r_half)
        assert float(np.hypot(*np.asarray(bulge.offset))) <= reach + 1e-5


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_effective_psf_on_the_psf_extent_is_the_pixel_integrated_gaussian(sigma):
    """`sl.init` samples the effective PSF on the renderer's PSF extent (8 sigma): there, the sampled
    image is the exact pixel-integrated Gaussian to 1e-4 of its peak (measured: at most 9e-5, sigma 3)."""
    from scipy.special import erf

    psf = sl.GaussianPSF(sigma)
    image = init._effective_psf(psf, 1)[0]
    size = image.shape[-1]
    assert size % 2 == 1 and size >= psf_extent(psf)
    edges = np.arange(size + 1) - size // 2 - 0.5
    profile = np.diff(0.5 * erf(edges / (np.sqrt(2) * sigma)))
    exact = np.outer(profile, profile)
    assert np.max(np.abs(image - exact)) < 1e-4 * exact.max()


# --------------------------------------------------------------------------------------
# add_residual_sources
# --------------------------------------------------------------------------------------


def _blend_with_missed_sources() -> tuple[sl.Observation, np.ndarray, np.ndarray, sl.Scene]:
    """A bright galaxy, a faint star 6 pixels from its centre (too close for a peak of its own in the
    data) and a faint galaxy far away, observed; the scene fitted from a detection list with only the
    bright galaxy. Returns the observation, the star's and the far galaxy's centres, the fitted scene."""
    psf = sl.GaussianPSF(PSF_SIGMA)
    frame = sl.Frame((3, HEIGHT, WIDTH))
    star, far = np.array([24.0, 27.5]), np.array([8.0, 9.0])
    with sl.Scene(frame) as truth:
        sl.Source(np.float32(TRUE_CENTER), 20 * SPECTRUM, sl.SersicMorphology(1.0, 4.0, (0.2, 0.0)))
        sl.PointSource(star, SPECTRUM / 4)
        sl.Source(far, SPECTRUM / 2, sl.SersicMorphology(1.0, 2.0))
    empty = sl.Observation(np.zeros((3, HEIGHT, WIDTH)), psf=psf)
    image = np.asarray(empty.render(truth), np.float64)
    data = image + np.random.default_rng(1).normal(size=image.shape)
    observation = sl.Observation(data, weights=np.ones_like(data), psf=psf)
    fitted = sl.fit(init.scene(observation, [TRUE_CENTER]), observation, progress=False).model
    return observation, star, far, fitted


def test_residual_sources_find_a_faint_neighbour_the_detection_list_missed():
    observation, star, far, fitted = _blend_with_missed_sources()
    grown = init.add_residual_sources(fitted, observation)
    centers = np.array([np.asarray(sl.resolve(source).center) for source in grown.sources])
    # the fitted source comes first, as fitted
    np.testing.assert_array_equal(centers[0], np.asarray(sl.resolve(fitted.sources[0]).center))
    assert len(grown) == 3, centers
    found = {
        tuple(np.round(truth_center)): np.min(np.linalg.norm(centers[1:] - truth_center, axis=1))
        for truth_center in (star, far)
    }
    assert all(distance < 1.0 for distance in found.values()), found
    assert (
        type(grown.sources[1 + int(np.argmin(np.linalg.norm(centers[1:] - star, axis=1)))]).__name__
        == "PointSource"
    )


# a second fit of the grown scene (about 20 s): the detection itself is checked in the default suite above
@pytest.mark.slow
def test_residual_sources_fitted_explain_the_data_and_leave_nothing_to_add():
    observation, _, _, fitted = _blend_with_missed_sources()
    refit = sl.fit(init.add_residual_sources(fitted, observation), observation, progress=False).model
    assert float(observation.goodness_of_fit(refit)) < 1.05 < float(observation.goodness_of_fit(fitted))
    # nothing left to add: the scene comes back as it is
    assert init.add_residual_sources(refit, observation) is refit


def test_residual_sources_name_bad_input():
    observation = simulate(sl.PointMorphology())
    fitted = init.scene(observation, [TRUE_CENTER])
    with pytest.raises(TypeError, match="add_residual_sources: expected an sl.Scene"):
        init.add_residual_sources(observation, observation)
    # the test suite's run-time type checks (tests/conftest.py) may see the bad element first: beartype
    # checks one element of a list, drawn at random, and words its message in more than one way; each
    # names the argument
    with pytest.raises(TypeError, match="expected sl.Observation|'observations'"):
        init.add_residual_sources(fitted, [observation, "HSC"])
    with pytest.raises(ValueError, match="min_distance"):
        init.add_residual_sources(fitted, observation, min_distance=-1.0)


# --------------------------------------------------------------------------------------
# linear_spectra
# --------------------------------------------------------------------------------------


def _two_galaxies_and_a_star() -> tuple[sl.Observation, sl.Scene, np.ndarray]:
    """Two overlapping galaxies and a star observed without noise, and a scene of the same shapes whose
    spectra are wrong (each channel off by its own factor, the star's fixed). Returns the observation,
    the scene and the true spectra of the galaxies."""
    psf = sl.GaussianPSF(PSF_SIGMA)
    frame = sl.Frame((3, HEIGHT, WIDTH))
    truth_spectra = np.array([SPECTRUM, SPECTRUM[::-1] / 2])
    shapes = [
        ((18.0, 20.0), sl.SersicMorphology(1.0, 4.0, (0.2, 0.0))),
        ((23.0, 26.0), sl.GaussianMorphology(2.0)),
    ]
    with sl.Scene(frame) as truth:
        for (center, morphology), spectrum in zip(shapes, truth_spectra, strict=True):
            sl.Source(np.float32(center), spectrum, morphology)
        sl.PointSource(np.float32((8.0, 9.0)), SPECTRUM / 4)
    empty = sl.Observation(np.zeros((3, HEIGHT, WIDTH)), psf=psf)
    observation = sl.Observation(
        np.asarray(empty.render(truth), np.float64), weights=np.ones((3, HEIGHT, WIDTH)), psf=psf
    )
    wrong = np.array([[0.2, 3.0, 0.5], [1.0, 0.1, 4.0]], np.float32)
    with sl.Scene(frame) as scene:
        for (center, morphology), spectrum, factor in zip(shapes, truth_spectra, wrong, strict=True):
            sl.Source(
                np.float32(center),
                sl.Parameter(spectrum * factor, constraint=sl.constraints.positive()),
                morphology,
            )
        sl.PointSource(np.float32((8.0, 9.0)), SPECTRUM / 4)
    return observation, scene, truth_spectra


def test_linear_spectra_recover_the_spectra_of_known_shapes():
    observation, scene, truth_spectra = _two_galaxies_and_a_star()
    solved = init.linear_spectra(scene, observation)
    values = sl.get_values(solved)
    for index, spectrum in enumerate(truth_spectra):
        np.testing.assert_allclose(np.asarray(values[f"sources[{index}].spectrum"]), spectrum, rtol=1e-3)
    assert float(observation.goodness_of_fit(solved)) < 1e-6 < float(observation.goodness_of_fit(scene))
    # the shapes are as they were, and the fixed star kept its spectrum
    assert sl.get_values(solved).keys() == sl.get_values(scene).keys()
    np.testing.assert_array_equal(np.asarray(sl.resolve(solved.sources[2]).spectrum), SPECTRUM / 4)


def test_linear_spectra_keep_a_floor_where_the_data_want_nothing(caplog):
    observation, scene, _ = _two_galaxies_and_a_star()
    # data with no light at all: every free channel falls to the floor, none to zero
    dark = sl.Observation(np.zeros((3, HEIGHT, WIDTH)), weights=observation.weights, psf=observation.psf)
    init.linear_spectra(scene, observation)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        solved = init.linear_spectra(scene, dark, floor=0.1)
    # the sources are rendered by one compiled program, compiled once for data of the same shapes
    assert not [
        r for r in caplog.records if "Compiling" in r.getMessage() and "_source_images" in r.getMessage()
    ]
    start = np.asarray(sl.get_values(scene)["sources[0].spectrum"])
    np.testing.assert_allclose(
        np.asarray(sl.get_values(solved)["sources[0].spectrum"]), 0.1 * start, rtol=1e-6
    )


def test_linear_spectra_name_bad_input():
    observation, scene, _ = _two_galaxies_and_a_star()
    with pytest.raises(TypeError, match="linear_spectra: expected an sl.Scene"):
        init.linear_spectra(observation, observation)
    with pytest.raises(ValueError, match="floor"):
        init.linear_spectra(scene, observation, floor=0.0)
    held = sl.fix(scene, lambda s: [s.sources[0].spectrum, s.sources[1].spectrum])
    with pytest.raises(ValueError, match="no source of the scene has a free spectrum"):
        init.linear_spectra(held, observation)

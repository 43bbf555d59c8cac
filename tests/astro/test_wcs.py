"""Sky coordinates and observations on other pixel grids (multi-resolution), through WCSs."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from astropy import units
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

import scarlet_like as sl


def celestial_wcs(shape, scale_arcsec, center=(150.1, 2.2), rotation_deg=0.0, reference_pixel=None):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(center)
    height, width = shape
    wcs.wcs.crpix = list(reference_pixel or ((width + 1) / 2, (height + 1) / 2))
    scale = scale_arcsec / 3600
    angle = np.deg2rad(rotation_deg)
    wcs.wcs.cd = scale * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return wcs


def test_sources_placed_by_sky_coordinates():
    wcs = celestial_wcs((40, 50), 0.2)
    frame = sl.Frame((1, 40, 50), wcs=wcs)
    position = SkyCoord(150.1 * units.deg + 0.5 * units.arcsec, 2.2 * units.deg + 1.0 * units.arcsec)
    with sl.Scene(frame) as scene:
        sl.PointSource(position, jnp.array([1.0]))
    x, y = wcs.world_to_pixel(position)
    np.testing.assert_allclose(np.asarray(scene.sources[0].center.value), [float(y), float(x)], atol=1e-4)
    with pytest.raises(sl.FrameError, match="no WCS"), sl.Scene(sl.Frame((1, 40, 50))):
        sl.PointSource(position, jnp.array([1.0]))


def test_rendering_onto_a_coarser_grid_matches_rendering_there_directly():
    """A model frame 3x finer than the observation: the renderer maps frequencies, no resampling."""
    fine, coarse = 0.05, 0.15
    observation_wcs = celestial_wcs((30, 36), coarse)
    psf = sl.GaussianPSF(1.3)
    observation = sl.Observation(np.zeros((1, 30, 36)), psf=psf, wcs=observation_wcs)
    frame = sl.Frame((1, 90, 108), wcs=celestial_wcs((90, 108), fine))
    with sl.Scene(frame) as fine_scene:
        sl.Source(
            jnp.array([40.0, 61.0]), jnp.array([10.0]), sl.GaussianMorphology(6.0, ellipticity=(0.2, -0.1))
        )
    rendered = observation.render(fine_scene)
    # the same source described directly on the observation's grid
    matrix, offset = observation.to_pixels(frame)
    np.testing.assert_allclose(matrix, np.eye(2) / 3, atol=1e-6)
    center = matrix @ np.array([40.0, 61.0]) + offset
    direct_frame = sl.Frame((1, 30, 36))
    with sl.Scene(direct_frame) as direct:
        sl.Source(jnp.asarray(center), jnp.array([10.0]), sl.GaussianMorphology(2.0, ellipticity=(0.2, -0.1)))
    expected = sl.Observation(np.zeros((1, 30, 36)), psf=psf).render(direct)
    np.testing.assert_allclose(rendered, expected, atol=1e-5 * float(expected.max()))
    np.testing.assert_allclose(float(rendered.sum()), 10.0, rtol=1e-3)


def test_rotated_observation_places_the_source_by_the_sky():
    frame_wcs = celestial_wcs((60, 60), 0.1)
    frame = sl.Frame((1, 60, 60), wcs=frame_wcs)
    observation_wcs = celestial_wcs((40, 40), 0.15, rotation_deg=30.0)
    observation = sl.Observation(np.zeros((1, 40, 40)), psf=sl.GaussianPSF(1.0), wcs=observation_wcs)
    with sl.Scene(frame) as scene:
        sl.Source(jnp.array([22.0, 37.0]), jnp.array([5.0]), sl.GaussianMorphology(3.0))
    image = np.asarray(observation.render(scene))[0]
    rows, cols = np.indices(image.shape)
    centroid = np.array([(image * rows).sum(), (image * cols).sum()]) / image.sum()
    sky = frame_wcs.pixel_to_world(37.0, 22.0)
    x, y = observation_wcs.world_to_pixel(sky)
    np.testing.assert_allclose(centroid, [float(y), float(x)], atol=0.01)
    np.testing.assert_allclose(image.sum(), 5.0, rtol=1e-3)


def test_frame_from_observations_on_two_grids():
    hst_like = sl.Observation(
        np.zeros((1, 90, 90)), psf=sl.GaussianPSF(1.5), channels=["F814W"], wcs=celestial_wcs((90, 90), 0.05)
    )
    hsc_like = sl.Observation(
        np.zeros((2, 20, 20)), psf=sl.GaussianPSF(1.2), channels=["g", "r"], wcs=celestial_wcs((20, 20), 0.2)
    )
    frame = sl.Frame.from_observations([hst_like, hsc_like])
    assert frame.channels == ("F814W", "g", "r")
    # the finest pixels, covering both footprints (20 px of 0.2" = 80 px of 0.05", inside 90 px)
    assert frame.shape[1:] == (90, 90)
    with sl.Scene(frame) as scene:
        sl.PointSource(jnp.array([44.5, 44.5]), jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(float(hsc_like.render(scene)[1].sum()), 3.0, rtol=1e-3)
    np.testing.assert_allclose(float(hst_like.render(scene).sum()), 1.0, rtol=1e-3)


def test_pixel_scale_of_frames_and_observations():
    wcs = celestial_wcs((20, 30), 0.168, rotation_deg=25.0)
    frame = sl.Frame((1, 20, 30), wcs=wcs)
    observation = sl.Observation(np.zeros((1, 20, 30)), wcs=celestial_wcs((20, 30), 0.03))
    assert frame.pixel_scale.unit == units.arcsec / units.pixel
    np.testing.assert_allclose(frame.pixel_scale.value, 0.168, rtol=1e-9)
    np.testing.assert_allclose(observation.pixel_scale.to_value(units.arcsec / units.pixel), 0.03, rtol=1e-9)
    assert sl.Frame((1, 20, 30)).pixel_scale is None
    assert sl.Observation(np.zeros((1, 20, 30))).pixel_scale is None


@pytest.mark.parametrize("rotation_deg", [0.0, 30.0, -115.0])
def test_to_sky_is_astropy_pixel_to_world_and_inverts_to_pixel(rotation_deg):
    wcs = celestial_wcs((40, 60), 0.2, rotation_deg=rotation_deg)
    frame = sl.Frame((1, 40, 60), wcs=wcs)
    positions = np.array([[5.0, 30.0], [17.25, 3.5], [39.0, 59.0], [-2.0, 61.5]], dtype=np.float32)
    sky = frame.to_sky(positions)
    assert sky.shape == (4,)
    # astropy takes (x, y): the column first
    expected = wcs.pixel_to_world(positions[:, 1], positions[:, 0])
    np.testing.assert_allclose(sky.separation(expected).to_value(units.arcsec), 0.0, atol=1e-9)
    np.testing.assert_allclose(frame.to_pixel(sky), positions, atol=1e-6)
    one = frame.to_sky(positions[1])
    assert one.isscalar
    np.testing.assert_allclose(frame.to_pixel(one), positions[1], atol=1e-6)
    # a Parameter gives its current value
    np.testing.assert_allclose(
        one.separation(frame.to_sky(sl.Parameter(positions[1]))).to_value(units.arcsec), 0.0
    )


def test_to_sky_puts_east_on_the_correct_side():
    """Real images have RA growing to the left (east left, north up): the source at the smaller
    column is the eastern one. With the RA axis not flipped, it is the other way around."""
    flipped = sl.Frame((1, 40, 40), wcs=celestial_wcs((40, 40), 0.2))
    west, east = flipped.to_sky(np.array([[20.0, 30.0], [20.0, 10.0]]))
    assert east.ra > west.ra
    np.testing.assert_allclose(west.position_angle(east).to_value(units.deg), 90.0, atol=1e-3)
    np.testing.assert_allclose(west.separation(east).to_value(units.arcsec), 4.0, rtol=1e-6)
    north = flipped.to_sky(np.array([30.0, 20.0]))
    np.testing.assert_allclose(
        flipped.to_sky(np.array([20.0, 20.0])).position_angle(north).wrap_at(180 * units.deg).deg,
        0.0,
        atol=1e-3,
    )
    wcs = celestial_wcs((40, 40), 0.2)
    wcs.wcs.cd = wcs.wcs.cd @ np.diag([-1.0, 1.0])  # RA growing to the right
    unflipped = sl.Frame((1, 40, 40), wcs=wcs)
    left, right = unflipped.to_sky(np.array([[20.0, 10.0], [20.0, 30.0]]))
    assert right.ra > left.ra


def test_to_sky_without_a_wcs_says_what_to_do():
    frame = sl.Frame((1, 10, 10))
    with pytest.raises(sl.FrameError, match=r"no WCS: give it one \(`sl.Frame\(shape, wcs="):
        frame.to_sky(np.array([3.0, 4.0]))
    with pytest.raises(sl.FrameError, match=r"shape \(\.\.\., 2\)"):
        sl.Frame((1, 10, 10), wcs=celestial_wcs((10, 10), 0.2)).to_sky(np.array([1.0, 2.0, 3.0]))


def fitted_sky_source(rotation_deg):
    """A galaxy stretched along x, simulated and fitted (centre and flux free) on a frame whose WCS is
    rotated and has RA growing to the left; its Laplace approximation."""
    wcs = celestial_wcs((32, 32), 0.2, rotation_deg=rotation_deg)
    frame = sl.Frame((1, 32, 32), wcs=wcs)
    truth_center = jnp.array([15.3, 16.6])
    with sl.Scene(frame) as truth:
        sl.Source(truth_center, jnp.array([60.0]), sl.GaussianMorphology(2.0, ellipticity=(0.5, 0.0)))
    observation = sl.simulate(truth, jax.random.key(3), noise=0.2, psf=sl.GaussianPSF(1.0))
    with sl.Scene(frame) as scene:
        sl.Source(
            sl.Parameter(jnp.array([16.0, 16.0]), prior=nd.Normal(jnp.array([16.0, 16.0]), 5.0).to_event(1)),
            sl.Parameter(
                jnp.array([40.0]),
                constraint=sl.constraints.positive(),
                prior=nd.HalfNormal(500.0).expand([1]).to_event(1),
            ),
            sl.GaussianMorphology(2.0, ellipticity=(0.5, 0.0)),
        )
    return frame, truth_center, observation, sl.laplace(scene, observation)


def test_fitted_centre_and_its_uncertainty_on_a_rotated_flipped_sky():
    rotation = 30.0
    frame, truth_center, observation, laplace = fitted_sky_source(rotation)
    wcs = frame.wcs
    fitted = laplace.mode
    center = np.asarray(fitted.sources[0].center.value, dtype=np.float64)
    sky = sl.measure.sky_center(fitted, 0)
    # the fitted centre through astropy, (x, y) order
    expected = wcs.pixel_to_world(center[1], center[0])
    assert sky.separation(expected).to_value(units.arcsec) < 1e-8

    error = sl.measure.sky_center_uncertainty(laplace, 0)
    assert error.center.separation(sky).to_value(units.arcsec) < 1e-8
    # the pixel covariance: the Laplace covariance of the (unconstrained) centre entries
    np.testing.assert_allclose(
        np.sqrt(np.diag(error.pixel_covariance)), laplace.std["sources[0].center"], rtol=1e-5
    )
    # stretched along x, the centre is less well known along x than along y
    sigma_y, sigma_x = np.sqrt(np.diag(error.pixel_covariance))
    assert sigma_x > 1.3 * sigma_y
    # on the sky: CD = s [[-cos, sin], [sin, cos]] maps (dx, dy) onto (east, north)
    s, angle = 0.2, np.deg2rad(rotation)
    to_sky = s * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])  # (y, x) -> (x, y)
    analytic = to_sky @ swap @ error.pixel_covariance @ swap.T @ to_sky.T
    np.testing.assert_allclose(error.covariance.to_value(units.arcsec**2), analytic, rtol=1e-4)
    np.testing.assert_allclose(error.ra_cos_dec.to_value(units.arcsec), np.sqrt(analytic[0, 0]), rtol=1e-4)
    np.testing.assert_allclose(error.dec.to_value(units.arcsec), np.sqrt(analytic[1, 1]), rtol=1e-4)
    # the rotation matters: the east-west width is not the width along x
    assert abs(error.ra_cos_dec.to_value(units.arcsec) - s * sigma_x) > 0.05 * s * sigma_x

    # independently: Laplace draws of the centre, each placed on the sky by astropy
    draws = np.asarray(
        sl.get_values(laplace.sample(jax.random.key(1), 4000))["sources[0].center"], np.float64
    )
    east, north = sky.spherical_offsets_to(wcs.pixel_to_world(draws[:, 1], draws[:, 0]))
    np.testing.assert_allclose(np.std(east.to_value(units.arcsec)), error.ra_cos_dec.value, rtol=0.05)
    np.testing.assert_allclose(np.std(north.to_value(units.arcsec)), error.dec.value, rtol=0.05)

    # the truth is within the error ellipse's reach (chi^2 with 2 degrees of freedom below 13.8: p = 0.001)
    offset = sky.spherical_offsets_to(frame.to_sky(np.asarray(truth_center)))
    offset = np.array([part.to_value(units.arcsec) for part in offset])
    assert offset @ np.linalg.solve(error.covariance.value, offset) < 13.8


def test_sky_measurements_name_what_is_missing(unchecked):
    frame = sl.Frame((1, 16, 16))
    with sl.Scene(frame) as scene:
        sl.PointSource(jnp.array([8.0, 8.0]), jnp.array([1.0]))
    with pytest.raises(sl.FrameError, match="sky_center: the scene's frame has no WCS"):
        sl.measure.sky_center(scene, 0)
    with pytest.raises(IndexError, match=r"no sources\[3\]"):
        sl.measure.sky_center(scene, 3)
    with unchecked(), pytest.raises(TypeError, match="expected an sl.Laplace .* or an sl.Posterior"):
        sl.measure.sky_center_uncertainty(scene, 0)


@pytest.mark.slow
def test_posterior_sky_uncertainty_agrees_with_laplace():
    frame, _, observation, laplace = fitted_sky_source(30.0)
    posterior = sl.sample(
        laplace.mode,
        observation,
        num_warmup=300,
        num_samples=500,
        num_chains=2,
        key=jax.random.key(0),
        progress=False,
        init=laplace.mode,
    )
    from_draws = sl.measure.sky_center_uncertainty(posterior, 0)
    from_laplace = sl.measure.sky_center_uncertainty(laplace, 0)
    # a Gaussian posterior: the two agree to the Monte-Carlo error of 1000 correlated draws
    # (measured: 6 % and 3 %)
    np.testing.assert_allclose(from_draws.ra_cos_dec.value, from_laplace.ra_cos_dec.value, rtol=0.15)
    np.testing.assert_allclose(from_draws.dec.value, from_laplace.dec.value, rtol=0.15)
    assert from_draws.center.separation(from_laplace.center) < 0.5 * from_laplace.dec


@pytest.mark.slow
def test_docs_example_runs(docs_section):
    # docs/astro.md, "Positions on the sky" (tests/test_docs.py does not run that page)
    header = (
        "import jax\nimport jax.numpy as jnp\nimport numpyro.distributions as nd\nimport scarlet_like as sl\n"
    )
    namespace = docs_section("astro.md", "Positions on the sky", header)
    np.testing.assert_allclose(namespace["start"], [15.5, 15.5], atol=1e-5)
    prior = namespace["scene"].sources[0].center.prior.distribution
    np.testing.assert_allclose(
        np.asarray(prior.covariance_matrix), 2.5**2 * np.eye(2), atol=1e-4
    )  # 0.5" / 0.2"
    error = namespace["error"]
    for std in (error.ra_cos_dec, error.dec):
        assert 0.004 < std.to_value(units.arcsec) < 0.006
    # the text: 0.006" from the truth
    assert namespace["found"].separation(namespace["true"]).to_value(units.arcsec) < 0.008


def test_a_parameter_made_from_a_sky_coordinate_is_a_pixel_position():
    frame = sl.Frame((1, 40, 40), wcs=celestial_wcs((40, 40), 0.2, rotation_deg=30.0))
    sky = frame.to_sky(np.array([12.0, 25.0]))
    with sl.Scene(frame) as scene:
        center = sl.Parameter(sky)
        sl.PointSource(center, jnp.array([1.0]))
    np.testing.assert_allclose(np.asarray(center.value), [12.0, 25.0], atol=1e-5)
    assert center.value.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(sl.get_values(scene)["sources[0].center"]), [12.0, 25.0], atol=1e-5)
    assert sl.measure.sky_center(scene, 0).separation(sky).to_value(units.arcsec) < 1e-5


def test_a_prior_width_in_arcsec_is_carried_into_pixels_by_the_wcs():
    """Widths of 0.4" east-west and 0.8" north-south on a rotated WCS with RA growing to the left: the
    prior in pixels is an ellipse, tilted, whose draws placed back on the sky have those widths."""
    rotation, scale = 30.0, 0.2
    frame = sl.Frame((1, 40, 40), wcs=celestial_wcs((40, 40), scale, rotation_deg=rotation))
    start = np.array([12.0, 25.0])
    sky = frame.to_sky(start)
    with sl.Scene(frame):
        center = sl.Parameter(sky, prior=[0.4, 0.8] * units.arcsec)
        round_center = sl.Parameter(sky, prior=0.5 * units.arcsec)
    draws = np.asarray(center.prior.sample(jax.random.key(0), (20000,)), dtype=np.float64)
    np.testing.assert_allclose(draws.mean(axis=0), start, atol=0.05)
    east, north = sky.spherical_offsets_to(frame.to_sky(draws))
    offsets = np.stack([east.to_value(units.arcsec), north.to_value(units.arcsec)])
    np.testing.assert_allclose(offsets.std(axis=1), [0.4, 0.8], rtol=0.03)
    assert abs(np.corrcoef(offsets)[0, 1]) < 0.03
    # the density in pixels: the one on the sky times |det J| = scale^2 (arcsec^2 per pixel^2)
    s, angle = scale, np.deg2rad(rotation)
    cd = s * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])  # (dx, dy) -> (E, N)
    jacobian = cd[:, ::-1]  # (dy, dx) -> (E, N)
    point = start + np.array([1.5, -2.0])
    on_sky = jacobian @ (point - start) / np.array([0.4, 0.8])
    expected = -0.5 * on_sky @ on_sky - np.log(2 * np.pi * 0.4 * 0.8) + np.log(s**2)
    np.testing.assert_allclose(
        float(center.prior.log_prob(jnp.asarray(point, jnp.float32))), expected, rtol=1e-4
    )
    # one width: round on the sky, round in pixels of 0.2"
    covariance = np.asarray(round_center.prior.distribution.covariance_matrix)
    np.testing.assert_allclose(covariance, np.eye(2) * 2.5**2, atol=1e-4)


def test_sky_parameters_say_what_is_wrong():
    wcs = celestial_wcs((20, 20), 0.2)
    sky = SkyCoord(150.1 * units.deg, 2.2 * units.deg)
    with pytest.raises(
        sl.ParameterError, match=r"cannot convert SkyCoord .* inside `with sl.Scene\(frame\):`"
    ):
        sl.Parameter(sky)
    with (
        pytest.raises(
            sl.FrameError, match="Parameter 'host': the value is a SkyCoord, but the frame has no WCS"
        ),
        sl.Scene(sl.Frame((1, 20, 20))),
    ):
        sl.Parameter(sky, name="host")
    with sl.Scene(sl.Frame((1, 20, 20), wcs=wcs)):
        with pytest.raises(sl.ParameterError, match="width on the sky, an angle .* got units of pix"):
            sl.Parameter(sky, prior=2.0 * units.pixel)
        with pytest.raises(sl.ParameterError, match="one positive angle, or two"):
            sl.Parameter(sky, prior=-1.0 * units.arcsec)
        with pytest.raises(sl.ParameterError, match=r"around one position.* shape \(3,\)"):
            sl.Parameter(np.zeros(3), prior=1.0 * units.arcsec)

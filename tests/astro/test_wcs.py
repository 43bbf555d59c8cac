"""Sky coordinates and observations on other pixel grids (multi-resolution), through WCSs."""

import jax.numpy as jnp
import numpy as np
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

"""Measurements on model images against closed forms, and single-source images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.astro import measure

SPECTRUM = np.array([3.0, 5.0], dtype=np.float32)
PSF_SIGMA = 1.2


def gaussian_scene(sigma=2.0, shear=(0.0, 0.0), center=(16.4, 17.7), shape=(2, 34, 36)):
    frame = sl.Frame(shape, channels=("g", "r"))
    with sl.Scene(frame) as scene:
        sl.Source(
            np.asarray(center, dtype=np.float32),
            SPECTRUM,
            sl.GaussianMorphology(sigma, np.asarray(shear, dtype=np.float32)),
        )
        sl.PointSource(np.array([8.0, 9.0], dtype=np.float32), np.array([1.0, 0.5], dtype=np.float32))
    observation = sl.Observation(np.zeros(shape), psf=sl.GaussianPSF(PSF_SIGMA), channels=("g", "r"))
    return scene, observation


@pytest.mark.parametrize("sigma, shear", [(2.0, (0.0, 0.0)), (1.6, (0.25, -0.3))])
def test_moments_of_a_rendered_gaussian_are_analytic(sigma, shear):
    scene, observation = gaussian_scene(sigma, shear)
    image = measure.source_image(scene, 0, observation)
    result = measure.moments(image)
    np.testing.assert_allclose(result.flux, SPECTRUM, rtol=1e-3)
    np.testing.assert_allclose(result.centroid, (16.4, 17.7), atol=1e-3)
    # Shear, then PSF, then the pixel: covariances add.
    shear_matrix = np.asarray(sl.astro.profiles.shear_matrix(*shear), dtype=np.float64)
    expected = sigma**2 * shear_matrix @ shear_matrix.T + (PSF_SIGMA**2 + 1 / 12) * np.eye(2)
    np.testing.assert_allclose(result.covariance, expected, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(result.sigma, np.linalg.det(expected) ** 0.25, rtol=1e-3)
    np.testing.assert_allclose(result.r_half, result.sigma * np.sqrt(2 * np.log(2)), rtol=1e-6)
    if shear == (0.0, 0.0):
        np.testing.assert_allclose(
            result.covariance, (sigma**2 + PSF_SIGMA**2 + 1 / 12) * np.eye(2), rtol=2e-3, atol=1e-4
        )


def test_reduced_shear_inverts_the_shear_matrix():
    for g1, g2 in [(0.3, 0.0), (0.0, -0.5), (0.2, 0.45)]:
        matrix = np.asarray(sl.astro.profiles.shear_matrix(g1, g2))
        np.testing.assert_allclose(measure.reduced_shear(2.5 * matrix @ matrix.T), (g1, g2), atol=1e-5)
    # g1 > 0 stretches along x (columns)
    wide = np.zeros((21, 21), np.float32)
    wide[10, 5:16] = 1.0
    assert float(measure.moments(wide).ellipticity[0]) > 0.9


def test_flux_and_centroid_of_images_and_sources():
    scene, observation = gaussian_scene()
    np.testing.assert_allclose(measure.flux(scene.sources[0]), SPECTRUM)
    image = measure.source_image(scene, 0)
    np.testing.assert_allclose(measure.flux(image), SPECTRUM, rtol=1e-3)
    np.testing.assert_allclose(measure.flux(image[1]), SPECTRUM[1], rtol=1e-3)
    np.testing.assert_allclose(measure.centroid(image), (16.4, 17.7), atol=1e-3)
    np.testing.assert_allclose(measure.centroid(np.ones((3, 5), np.int32)), (1.0, 2.0))


def test_source_images_add_up_to_the_scene():
    scene, observation = gaussian_scene()
    for render, whole in (
        (lambda i: measure.source_image(scene, i), scene()),
        (lambda i: measure.source_image(scene, i, observation), observation.render(scene)),
    ):
        np.testing.assert_allclose(render(0) + render(-1), whole, atol=1e-5)
    np.testing.assert_allclose(measure.flux(measure.source_image(scene, 1)), [1.0, 0.5], rtol=1e-3)
    with pytest.raises(IndexError, match="2 source"):
        measure.source_image(scene, 2)


def test_moments_run_under_jit_and_grad():
    y, x = np.mgrid[:30, :32].astype(np.float32)
    image = np.exp(-0.5 * ((y - 14.2) ** 2 + (x - 15.6) ** 2) / 2.5**2).astype(np.float32)
    size, gradient = jax.jit(jax.value_and_grad(lambda image: measure.moments(image).sigma))(image)
    np.testing.assert_allclose(size, 2.5, rtol=1e-3)
    assert jnp.all(jnp.isfinite(gradient))

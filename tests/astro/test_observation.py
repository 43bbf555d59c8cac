"""sl.simulate: mock data from a scene, a PSF and a noise level, with no observation to start from."""

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl


def truth(channels=("g", "r")):
    frame = sl.Frame((len(channels), 40, 36), channels=channels)
    with sl.Scene(frame) as scene:
        sl.Source((20.0, 17.0), jnp.full(len(channels), 200.0), sl.GaussianMorphology(2.0))
        sl.PointSource((8.0, 28.0), jnp.full(len(channels), 80.0))
    return scene


def test_simulated_data_are_the_rendered_scene_plus_noise_of_the_asked_sigma():
    scene = truth()
    psf = sl.GaussianPSF(1.3)
    obs = sl.simulate(scene, jax.random.key(0), psf=psf, noise=jnp.array([0.5, 2.0]))
    assert isinstance(obs, sl.Observation)
    assert obs.channels == ("g", "r") and obs.shape == (2, 40, 36) and obs.psf == psf
    np.testing.assert_allclose(obs.weights, np.broadcast_to([[[4.0]], [[0.25]]], obs.shape))
    residual = np.asarray(obs.data - obs.render(scene), np.float64).reshape(2, -1)
    count = residual.shape[1]  # 1440 values per channel: the sd is known to 2 %, the mean to sd / 38
    np.testing.assert_allclose(residual.std(axis=1), [0.5, 2.0], rtol=0.08)
    assert np.all(np.abs(residual.mean(axis=1)) < 4 * np.array([0.5, 2.0]) / count**0.5)
    # the mean is the rendered model: the same as the dummy observation of zeros users built before
    dummy = sl.Observation(np.zeros((2, 40, 36)), psf=psf, channels=("g", "r"))
    np.testing.assert_allclose(obs.render(scene), dummy.render(scene), rtol=1e-6, atol=1e-6)
    # the residuals are the noise: a chi^2 per value near 1, ready for fitting
    assert abs(float(obs.goodness_of_fit(scene)) - 1.0) < 0.1
    # and a key gives its own noise, the same each time
    again = sl.simulate(scene, jax.random.key(0), psf=psf, noise=jnp.array([0.5, 2.0]))
    np.testing.assert_array_equal(obs.data, again.data)


def test_a_render_outside_jit_is_one_program_compiled_once_per_scene_structure(caplog):
    scene = sl.resolve(truth(channels=("g", "r", "i")))  # three channels: shapes no other test renders
    obs = sl.Observation(np.zeros((3, 40, 36)), psf=sl.GaussianPSF(1.1), channels=("g", "r", "i"))
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        image = obs.render(scene)
    compiled = [r.getMessage().split()[1] for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiled == ["jit(render)"], compiled
    # the same image as the render traced inside the user's jit
    traced = eqx.filter_jit(lambda obs, scene: obs.render(scene))(obs, scene)
    np.testing.assert_allclose(image, traced, rtol=1e-6, atol=1e-6 * float(jnp.max(image)))
    moved = eqx.tree_at(lambda s: s.sources[0].center, scene, jnp.array([18.0, 15.0]))
    caplog.clear()
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        obs.render(moved)
    assert [r for r in caplog.records if "Compiling" in r.getMessage()] == []


def test_masked_pixels_are_ignored_and_carry_no_data():
    scene = truth(("i",))
    mask = np.zeros((1, 40, 36), bool)
    mask[0, :10] = True
    obs = sl.simulate(scene, jax.random.key(1), noise=0.1, mask=mask)
    assert np.all(np.asarray(obs.weights)[mask] == 0) and np.all(np.asarray(obs.data)[mask] == 0)
    np.testing.assert_allclose(np.asarray(obs.weights)[~mask], 100.0)


@pytest.mark.parametrize(
    ("noise", "message"),
    [(0.0, "positive standard deviation"), (-1.0, "positive"), (np.ones(3), r"shape \(3,\)")],
)
def test_bad_noise_is_named(noise, message):
    with pytest.raises(sl.ObservationError, match=message):
        sl.simulate(truth(), jax.random.key(0), noise=noise)


def test_tree_folds_the_precomputed_arrays_of_observations_and_frames():
    scene = truth()
    obs = sl.simulate(scene, jax.random.key(0), psf=sl.GaussianPSF(1.3), noise=0.5)
    text = sl.tree([scene, obs])
    assert "psf_fourier" not in text.replace("(FourierGrid: ky, kx, psf_fourier)", "")
    assert "      (precomputed: grid (FourierGrid: ky, kx, psf_fourier))" in text.splitlines()
    assert (
        "    (precomputed: grid (FourierGrid: ky, kx, psf_fourier), log_normalisation)" in text.splitlines()
    )
    # what the user gave is still listed
    assert "    data = float32[2, 40, 36]  const" in text.splitlines()
    assert "      sigma = 1.3  const" in text.splitlines()

"""The learned galaxy-shape prior: size handling, the shipped flow, one vmapped call per scene, training."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.__main__ import main
from scarlet_like.astro import neural

pytest.importorskip("flowjax")

BANDS = ("g", "r", "i")
PSF = sl.GaussianPSF(np.array([1.2, 1.1, 1.0], np.float32))


def test_image_input_pads_small_boxes_and_resizes_large_ones():
    preprocess = sl.ImageInput((15, 15))
    small = jnp.ones((9, 9))
    fitted = preprocess.fitted(small)
    assert fitted.shape == (15, 15)
    np.testing.assert_allclose(fitted[3:12, 3:12], 1 / 81, rtol=1e-6)  # centred, zeros around
    assert float(fitted[:3].sum() + fitted[12:].sum()) == 0.0
    y, x = np.mgrid[-15:16, -15:16]
    large = jnp.asarray(np.exp(-(x**2 + y**2) / 50.0))
    shrunk = preprocess.fitted(large)
    assert shrunk.shape == (15, 15) and int(jnp.argmax(shrunk)) == 7 * 15 + 7
    np.testing.assert_allclose(float(shrunk.sum()), 1.0, rtol=1e-5)
    # the input does not see the image's scale; the extra term pins it
    np.testing.assert_allclose(preprocess(3.0 * small), preprocess(small), rtol=1e-6)
    assert float(preprocess.log_prob_extra(small / 81)) == pytest.approx(0.0, abs=1e-8)
    assert float(preprocess.log_prob_extra(3.0 * small / 81)) < -50


def test_shipped_flow_prefers_galaxies_to_noise_and_blobs():
    prior = sl.galaxy_flow_prior((15, 15))
    galaxies = neural.galaxy_images(jax.random.key(5), 20, 15)
    noisy = jnp.abs(galaxies + 0.02 * jax.random.normal(jax.random.key(6), galaxies.shape))
    blob = galaxies.at[:, 2:5, 10:13].add(0.03)  # an off-centre blob: a neighbour's light
    good, bad, blobbed = (jax.vmap(prior.log_prob)(images) for images in (galaxies, noisy, blob))
    assert float(jnp.median(good - bad)) > 50 and float(jnp.median(good - blobbed)) > 10
    assert float(jnp.mean(good > bad)) >= 0.95


def _blend():
    empty = sl.Observation(np.zeros((3, 35, 35), np.float32), psf=PSF, channels=BANDS)
    with sl.Scene(sl.Frame.from_observations(empty)) as truth:
        sl.Source((17.0, 14.0), np.array([300.0, 500.0, 700.0]), sl.SersicMorphology(1.0, 2.5, (0.2, 0.1)))
        sl.Source((18.0, 21.0), np.array([600.0, 450.0, 300.0]), sl.SersicMorphology(2.0, 2.0, (-0.1, 0.2)))
    model = np.asarray(empty.render(truth))
    data = model + np.random.default_rng(0).normal(0.0, 1.0, model.shape)
    observation = sl.Observation(
        data.astype(np.float32), weights=np.ones_like(data, np.float32), psf=PSF, channels=BANDS
    )
    return observation, truth


def test_one_vmapped_call_evaluates_the_prior_of_every_free_form_source():
    observation, truth = _blend()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "A JAX array is being set as static!"
        scene = sl.init.freeform_scene(truth, observation, side=15, symmetry=0.0, prior=sl.galaxy_flow_prior)
        combined = sl.init.freeform_scene(truth, observation, side=15, prior=sl.galaxy_flow_prior)
    priors = [source.morphology.image.prior for source in scene.sources]
    assert all(isinstance(prior, sl.FlowPrior) for prior in priors)
    # with the hand-made symmetry penalty (strength 1 by default) added to the flow
    for source in combined.sources:
        flow, hand_made = source.morphology.image.prior.terms
        assert isinstance(flow, sl.FlowPrior) and hand_made.symmetry == 1.0 and hand_made.monotonicity == 0.0
    density = sl.LogDensity(scene, observation)
    images = [source.morphology.image for source in scene.sources]
    expected = sum(float(image.prior.log_prob(image.value)) for image in images)
    np.testing.assert_allclose(float(density.log_prior(density.x0)), expected, rtol=1e-5)
    # the flow is traced once for both sources: their images go through it in one vmapped call
    flow, config = neural.load_galaxy_flow()
    counting = sl.init.freeform_scene(
        truth,
        observation,
        side=15,
        symmetry=0.0,
        prior=lambda shape: sl.FlowPrior(
            flow, shape, CountingInput((config.side, config.side), config.softening)
        ),
    )
    TRACED.clear()
    density = sl.LogDensity(counting, observation)
    TRACED.clear()
    np.testing.assert_allclose(float(density.log_prior(density.x0)), expected, rtol=1e-5)
    assert TRACED == [(15, 15)]
    # also with the symmetry penalty added, whose unit (flux over noise) differs from source to source
    with_penalty = sl.init.freeform_scene(
        truth,
        observation,
        side=15,
        prior=lambda shape: sl.FlowPrior(
            flow, shape, CountingInput((config.side, config.side), config.softening)
        ),
    )
    units = [float(source.morphology.image.prior.terms[1].unit) for source in with_penalty.sources]
    assert units[0] != units[1]
    expected = sum(
        float(source.morphology.image.prior.log_prob(source.morphology.image.value))
        for source in with_penalty.sources
    )
    density = sl.LogDensity(with_penalty, observation)
    TRACED.clear()
    np.testing.assert_allclose(float(density.log_prior(density.x0)), expected, rtol=1e-5)
    assert TRACED == [(15, 15)]


TRACED: list = []


class CountingInput(sl.ImageInput):
    """The shipped preprocessing, noting each time it is traced."""

    def __call__(self, image):
        TRACED.append(tuple(image.shape))
        return super().__call__(image)


@pytest.mark.slow  # 93 s at load 11 (drawing and training compile); the command's test below is cheaper
def test_trained_flow_round_trips_through_save_and_load(tmp_path):
    config = neural.FlowConfig(side=7, layers=1, width=8)
    flow, stats = neural.train_galaxy_flow(jax.random.key(0), config, count=64, steps=3, batch=16)
    assert np.isfinite(stats["validation"])
    neural.save_galaxy_flow(tmp_path / "flow.eqx", flow, config)
    loaded, loaded_config = neural.load_galaxy_flow(tmp_path / "flow.eqx")
    assert loaded_config == config
    # 70 images of 7 pixels, as the training drew: no new compilation of the drawing
    image = neural.galaxy_images(jax.random.key(1), 70, 7)[0]
    original = sl.galaxy_flow_prior((7, 7), flow, config)
    again = sl.galaxy_flow_prior((7, 7), loaded, loaded_config)
    np.testing.assert_allclose(again.log_prob(image), original.log_prob(image), rtol=1e-6)


@pytest.mark.slow
def test_train_prior_command_writes_a_loadable_flow(tmp_path, capsys):
    output = tmp_path / "tiny.eqx"
    args = ["train-prior", "--output", str(output), "--images", "64", "--steps", "2", "--batch", "16"]
    assert main([*args, "--side", "7", "--layers", "1", "--width", "8"]) == 0
    assert "validation" in capsys.readouterr().out
    flow, config = neural.load_galaxy_flow(output)
    assert config.side == 7 and np.isfinite(float(flow.log_prob(jnp.zeros(49))))


@pytest.mark.slow
def test_docs_example_runs(docs_section):
    header = (
        "import scarlet_like as sl\ndata = sl.datasets.hsc_cosmos()\nobs = data.observation()\n"
        "start = sl.init.scene(obs, data.centers)\n"
    )
    namespace = docs_section("astro.md", "Learned shape priors", header)
    image = namespace["pixels"]
    learned, hand_made = image.prior.terms  # the flow, and the symmetry penalty added to it
    assert isinstance(learned, sl.FlowPrior) and isinstance(hand_made, sl.FreeFormPrior)
    assert np.isfinite(float(image.prior.log_prob(image.value)))

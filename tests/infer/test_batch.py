"""sl.fit_many: same results as one fit at a time, sharded over devices, compiled once, clear errors."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.core import canonical_tokens
from scarlet_like.infer.batch import fit_many

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from core_models import LightCurve, light_curve  # noqa: E402

PSF = sl.GaussianPSF(2.1)  # wide enough that no aliased copies of it need folding in: cheap steps
SIZE = 20
BLENDS = 6
MAX_STEPS = 200


def small_blend(seed, sources=2):
    """A simulated 2-band blend of Gaussian sources, and a model starting away from the truth.

    The sources are bright and apart: their parameters are well determined, so that fits whose
    float32 rounding differs (one blend at a time, or many at once) end at the same optimum.
    """
    rng = np.random.default_rng(seed)
    frame = sl.Frame((2, SIZE, SIZE))
    truth = [
        (
            np.array([SIZE / 2, SIZE * (0.3 + 0.4 * index)]) + rng.uniform(-1.5, 1.5, 2),
            rng.uniform(1000.0, 3000.0, 2),
            rng.uniform(1.0, 2.0),
        )
        for index in range(sources)
    ]
    with sl.Scene(frame) as true_scene:
        for center, flux, sigma in truth:
            sl.Source(center, flux, sl.GaussianMorphology(sigma))
    clean = np.asarray(sl.Observation(np.zeros((2, SIZE, SIZE)), psf=PSF).render(true_scene))
    data = clean + rng.normal(0.0, 1.0, clean.shape)
    observation = sl.Observation(data, psf=PSF)
    with sl.Scene(frame) as scene:
        for center, flux, sigma in truth:
            sl.Source(
                sl.Parameter(center + rng.uniform(-0.5, 0.5, 2)),
                sl.Parameter(flux * 0.7, constraint=sl.constraints.positive()),
                sl.GaussianMorphology(sl.Parameter(sigma * 1.2, constraint=sl.constraints.positive())),
            )
    return scene, observation


def blends(count=BLENDS):
    pairs = [small_blend(seed) for seed in range(count)]
    return [model for model, _ in pairs], [observation for _, observation in pairs]


@eqx.filter_jit
def _fit_one(model, observation):
    return sl.fit(model, observation, max_steps=MAX_STEPS, progress=False)


def fit_one(model, observation):
    # Every Parameter has its own identity, static metadata of the jitted function: numbered
    # canonically, the blends (built separately) share one compilation (22 s instead of 68 s here).
    return _fit_one(canonical_tokens(model)[0], observation)


TIMES = jnp.linspace(-10.0, 10.0, 41)


class Data(sl.Module):
    """A likelihood holding its data as a leaf: it stacks across blends."""

    values: jax.Array

    def log_likelihood(self, curve):
        return -0.5 * jnp.sum(((curve(TIMES) - self.values) / 0.01) ** 2)


@eqx.filter_jit
def _fit_curve(model, data):
    return sl.fit(model, data, max_steps=300, progress=False)


def fit_curve(model, data):
    return _fit_curve(canonical_tokens(model)[0], data)


@pytest.fixture(scope="module")
def one_by_one():
    """The reference: every blend fitted alone."""
    return [fit_one(model, observation) for model, observation in zip(*blends(), strict=True)]


def assert_same_fits(results, references, rtol=1e-4):
    assert len(results) == len(references)
    for result, reference in zip(results, references, strict=True):
        values, expected = sl.get_values(result.model), sl.get_values(reference.model)
        assert values.keys() == expected.keys()
        for name in expected:
            np.testing.assert_allclose(values[name], expected[name], rtol=rtol, err_msg=name)
        assert int(result.steps) > 0


def test_fit_many_equals_fits_one_at_a_time_and_compiles_once(sharded_run, one_by_one, caplog):
    models, observations = blends()
    # batches of 4: the second batch (2 blends) is padded to the shape of the first
    results = fit_many(models, observations, max_steps=MAX_STEPS, batch_size=4, progress=True)
    assert_same_fits(results, one_by_one)
    # each result is a model of its own blend, like that of sl.fit
    assert isinstance(results[0].model, sl.Scene) and results[0].loss.shape == (MAX_STEPS,)
    for result, observation in zip(results, observations, strict=True):
        assert float(observation.goodness_of_fit(result.model)) < 1.3

    # new data and starting points of the same shapes: the compiled fit is reused
    more_models, more_observations = [], []
    for seed in range(10, 14):
        model, observation = small_blend(seed)
        more_models.append(model)
        more_observations.append(observation)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        again = fit_many(more_models, more_observations, max_steps=MAX_STEPS, batch_size=4)
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not [message for message in compiles if "_fit_batch" in message], compiles
    assert len(again) == 4
    np.testing.assert_allclose(
        sl.get_values(again[1].model)["sources[0].center"],
        sl.get_values(fit_one(more_models[1], more_observations[1]).model)["sources[0].center"],
        rtol=1e-4,
    )


SHARDED_SCRIPT = """
import json, sys
import jax
import numpy as np
sys.path.insert(0, sys.argv[1])
jax.config.update("jax_numpy_dtype_promotion", "strict")
import scarlet_like as sl
from scarlet_like.infer.batch import fit_many
from test_batch import MAX_STEPS, blends

assert len(jax.devices()) == 4, jax.devices()
models, observations = blends()
results = fit_many(models, observations, max_steps=MAX_STEPS)
values = [{k: np.asarray(v).tolist() for k, v in sl.get_values(r.model).items()} for r in results]
# 8 blends: the shape the 6 were padded to, so the same compiled fit; the results stay sharded
models, observations = blends(8)
stacked = fit_many(models, observations, max_steps=MAX_STEPS, unstack_results=False)
center = stacked.model.members.sources[0].center.value
print(json.dumps(dict(
    values=values,
    devices=len(stacked.x.sharding.device_set),
    spec=str(stacked.x.sharding.spec),
    center_devices=len(center.sharding.device_set),
    plate=isinstance(stacked.model, sl.Plate) and stacked.model.size == 8,
)))
"""


@pytest.fixture(scope="module")
def sharded_run():
    """A fresh process with 4 CPU devices (the flag must be set before jax starts), started as soon as
    the first test asks for it so that it runs while the tests of this process compile theirs."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    process = subprocess.Popen(
        [sys.executable, "-c", SHARDED_SCRIPT, str(Path(__file__).parent)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_sharded_over_four_devices_equals_fits_one_at_a_time(sharded_run, one_by_one):
    stdout, stderr = sharded_run.communicate(timeout=600)
    assert sharded_run.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["devices"] == 4 and report["center_devices"] == 4 and "blends" in report["spec"]
    assert report["plate"]
    for values, reference in zip(report["values"], one_by_one, strict=True):
        expected = sl.get_values(reference.model)
        for name in expected:
            np.testing.assert_allclose(values[name], expected[name], rtol=1e-4, err_msg=name)
    # the same call on this process's one device gives the same numbers to the bit (measured: equal)
    here = fit_many(*blends(), max_steps=MAX_STEPS)
    for values, result in zip(report["values"], here, strict=True):
        for name, value in sl.get_values(result.model).items():
            sharded = np.asarray(values[name], np.float32)
            np.testing.assert_array_equal(sharded, np.asarray(value), err_msg=name)


@pytest.mark.slow
def test_vectorised_groups_of_any_model():
    """Any model, not only scenes; 5 blends fitted side by side in groups of 3 (`vmap`), the last group
    padded."""
    truths = [(-1.0, 3.0, 0.3), (0.5, 2.0, 0.5), (1.5, 2.5, 0.4), (-0.5, 1.5, 0.6), (0.0, 3.5, 0.2)]
    datasets = [
        light_curve(*truth)(TIMES) + 0.01 * jax.random.normal(jax.random.key(seed), TIMES.shape)
        for seed, truth in enumerate(truths)
    ]
    models = [light_curve() for _ in truths]
    results = fit_many(models, [Data(values) for values in datasets], max_steps=300, vectorize=3)
    alone = [fit_curve(light_curve(), Data(values)) for values in datasets]
    assert_same_fits(results, alone)
    for result, truth in zip(results, truths, strict=True):
        values = sl.get_values(result.model)
        np.testing.assert_allclose(
            [values["t0"], values["width"], values["peak"]], truth, rtol=0.1, atol=0.25
        )


class Pair(sl.Module):
    """Two light curves with one width: a parameter shared by identity, so each build has its own token."""

    first: object
    second: object

    def __call__(self, t):
        return self.first(t) + self.second(t)


def pair(t0):
    width = sl.Parameter(2.5, constraint=sl.constraints.positive())
    curve = lambda t0: LightCurve(  # noqa: E731
        t0=sl.Parameter(t0), width=width, peak=sl.Parameter(0.3, constraint=sl.constraints.positive())
    )
    return Pair(curve(t0), curve(t0 + 3.0))


def test_named_parameters_fit_many():
    def named(t0):
        curve = light_curve(t0=t0)
        return eqx.tree_at(lambda c: c.t0, curve, sl.Parameter(t0, name="host_t0"))

    models = [named(-2.0), named(-1.0)]
    datasets = [Data(light_curve(t0=-2.5)(TIMES)), Data(light_curve(t0=-0.5)(TIMES))]
    results = fit_many(models, datasets, max_steps=300, devices=jax.local_devices()[:1])
    for result, data in zip(results, datasets, strict=True):
        assert sl.entry_names(result.model)[0] == "host_t0"
        alone = sl.get_values(fit_curve(named(-2.0), data).model)
        np.testing.assert_allclose(sl.get_values(result.model)["host_t0"], alone["host_t0"], rtol=1e-3)


def test_shared_parameters_keep_each_blends_own_tokens():
    models = [pair(-2.0), pair(-1.0)]
    datasets = [Data(pair(-2.5)(TIMES)), Data(pair(-0.5)(TIMES))]
    results = fit_many(models, datasets, max_steps=300, devices=jax.local_devices()[:1])
    for model, result, data in zip(models, results, datasets, strict=True):
        # one free width per blend, with the token of that blend's model (as `sl.fit` returns it)
        assert len(sl.entry_names(result.model)) == 5
        assert result.model.first.width.token == result.model.second.width.token == model.first.width.token
        alone = sl.get_values(fit_curve(model, data).model)
        np.testing.assert_allclose(
            sl.get_values(result.model)["first.width"], alone["first.width"], rtol=1e-3
        )


def test_blends_of_another_structure_are_named():
    models, observations = blends(3)
    one_source, its_observation = small_blend(7, sources=1)
    with pytest.raises(sl.PlateError, match=r"models differ.*blend 0 and blend 3.*sources: length 2 vs 1"):
        fit_many([*models, one_source], [*observations, observations[0]])
    # data of another shape
    bigger = sl.Observation(np.zeros((2, SIZE + 4, SIZE)), psf=PSF)
    with pytest.raises(sl.PlateError, match=r"likelihoods differ.*blend 0 and blend 2.*data: shape"):
        fit_many(models, [observations[0], observations[1], bigger])


def test_bad_arguments_are_clear_errors():
    models, observations = blends(2)
    with pytest.raises(ValueError, match="2 models but 1 likelihoods"):
        fit_many(models, observations[:1])
    with pytest.raises(ValueError, match="no models"):
        fit_many([], [])
    with pytest.raises(TypeError, match="unknown option.*steps"):
        fit_many(models, observations, steps=10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fit_many(models, observations, batch_size=0)

    # a closure over each blend's data cannot be stacked; the same function for all blends can
    def closure(data):
        return lambda scene: -0.5 * jnp.sum((scene() - data) ** 2)

    with pytest.raises(sl.PlateError, match="not an array"):
        fit_many(models, [closure(o.data) for o in observations])

"""Reliability of fit, sample, laplace and fit_many: clear errors for a model with nothing free and for a
start that is not finite, and nothing lost when a run is interrupted (Ctrl-C)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import scarlet_like as sl

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from core_models import light_curve  # noqa: E402

TIMES = jnp.linspace(-10.0, 10.0, 41)
NOISE = 0.01


def simulated(key=1, **truth):
    curve = light_curve(**truth)
    return curve(TIMES) + NOISE * jax.random.normal(jax.random.key(key), TIMES.shape)


class Data(sl.Module):
    """A Gaussian likelihood holding its data as a leaf (so that blends of it can be stacked)."""

    values: jax.Array

    def log_likelihood(self, curve):
        return -0.5 * jnp.sum(((curve(TIMES) - self.values) / NOISE) ** 2)


def nothing_free():
    curve = light_curve()
    return sl.fix(curve, lambda c: (c.t0, c.width, c.peak))


# -- a model with no free parameters ------------------------------------------------------------------

NO_FREE = r"the model \(LightCurve\) has no free parameters.*sl\.free"


def test_fit_of_a_model_with_nothing_free_is_an_error_naming_its_type():
    data = Data(simulated())
    with pytest.raises(ValueError, match="fit: " + NO_FREE):
        sl.fit(nothing_free(), data, progress=False)
    with pytest.raises(ValueError, match="fit: " + NO_FREE):
        sl.fit(nothing_free(), data)
    # under jit too: the size of the flat vector is known while tracing
    with pytest.raises(ValueError, match="fit: " + NO_FREE):
        jax.jit(lambda values: sl.fit(nothing_free(), Data(values), progress=False).x)(data.values)


def test_laplace_of_a_model_with_nothing_free_is_an_error_naming_its_type():
    data = Data(simulated())
    for fit in (True, False):
        with pytest.raises(ValueError, match="laplace: " + NO_FREE):
            sl.laplace(nothing_free(), data, fit=fit)


def test_sample_of_a_model_with_nothing_free_is_an_error_naming_its_type():
    with pytest.raises(
        ValueError,
        match="sample: " + NO_FREE.replace("parameters", "parameters, so there is nothing to sample"),
    ):
        sl.sample(nothing_free(), Data(simulated()), key=jax.random.key(0), num_warmup=10, num_samples=10)


def test_fit_many_of_models_with_nothing_free_is_an_error_naming_their_type():
    with pytest.raises(ValueError, match="fit_many: " + NO_FREE):
        sl.fit_many([nothing_free()] * 2, [Data(simulated(1)), Data(simulated(2))])

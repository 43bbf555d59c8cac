"""Reliability of fit, sample, laplace and fit_many: clear errors for a model with nothing free and for a
start that is not finite, and nothing lost when a run is interrupted (Ctrl-C)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
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


# -- a start where the log density is not finite ------------------------------------------------------


def broken_at_start(data):
    """The likelihood of `data` plus a term that is NaN wherever the peak is positive (everywhere)."""

    def log_likelihood(curve):
        return Data(data).log_likelihood(curve) + jnp.log(-curve.peak)

    return log_likelihood


@pytest.mark.parametrize("progress", [False, True])
def test_fit_called_eagerly_on_a_non_finite_start_raises_naming_the_term(progress):
    with pytest.raises(FloatingPointError, match="not finite at the starting point: likelihood$"):
        sl.fit(light_curve(), broken_at_start(simulated()), progress=progress)


def test_fit_under_jit_on_a_non_finite_start_returns_a_result_flagging_it():
    data = simulated()

    @jax.jit
    def fitted(values):
        return sl.fit(light_curve(), broken_at_start(values), max_steps=50, progress=False)

    result = fitted(data)
    assert int(result.steps) == 1 and not bool(result.converged)
    # the loss alone is NaN, its gradient finite: every entry is flagged
    assert np.asarray(result.nonfinite).tolist() == [True, True, True]
    # the model is the start, untouched
    np.testing.assert_allclose(result.x, sl.LogDensity(light_curve(), Data(data), jacobian=False).x0)


def test_fit_many_flags_the_blend_whose_start_is_not_finite():
    class Broken(sl.Module):
        values: jax.Array
        sign: jax.Array  # -1: the extra term is finite; +1: it is NaN

        def log_likelihood(self, curve):
            return Data(self.values).log_likelihood(curve) + jnp.log(-self.sign * curve.peak)

    data = simulated()
    results = sl.fit_many(
        [light_curve()] * 2, [Broken(data, jnp.asarray(-1.0)), Broken(data, jnp.asarray(1.0))], max_steps=50
    )
    assert not np.any(np.asarray(results[0].nonfinite))
    assert np.all(np.asarray(results[1].nonfinite)) and int(results[1].steps) == 1

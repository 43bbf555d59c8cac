import distrax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl
from scarlet_like.core.priors import DistraxPrior, LogProbPrior, NumpyroPrior, as_prior


def test_numpyro_prior_log_prob_and_sample(key):
    prior = as_prior(nd.Normal(jnp.array([1.0, 2.0]), 0.5).to_event(1))
    assert isinstance(prior, NumpyroPrior)
    value = jnp.array([1.2, 1.9])
    expected = nd.Normal(jnp.array([1.0, 2.0]), 0.5).to_event(1).log_prob(value)
    np.testing.assert_allclose(prior.log_prob(value), expected, rtol=1e-6)
    assert prior.shape == (2,) and prior.event_shape == (2,)
    assert prior.sample(key, (3,)).shape == (3, 2)


def test_numpyro_prior_works_under_vmap_of_stacked_arguments():
    priors = [as_prior(nd.Normal(float(i), 1.0)) for i in range(3)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *priors)
    values = jnp.array([0.5, 0.5, 0.5])
    out = jax.vmap(lambda prior, value: prior.log_prob(value))(stacked, values)
    expected = [nd.Normal(float(i), 1.0).log_prob(0.5) for i in range(3)]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_distrax_prior_matches_numpyro(key):
    prior = as_prior(distrax.Normal(jnp.zeros(3), 2.0))
    assert isinstance(prior, DistraxPrior)
    value = jnp.array([0.1, -0.3, 2.0])
    np.testing.assert_allclose(prior.log_prob(value), jnp.sum(nd.Normal(0.0, 2.0).log_prob(value)), rtol=1e-5)
    assert prior.sample(key).shape == (3,)
    parameter = sl.Parameter(value, prior=distrax.Normal(jnp.zeros(3), 2.0))
    assert parameter.prior.shape == (3,)


def test_anything_with_log_prob():
    class HalfLaplace:
        def log_prob(self, value):
            return jnp.where(value >= 0, -value, -jnp.inf)

    prior = as_prior(HalfLaplace())
    assert isinstance(prior, LogProbPrior)
    np.testing.assert_allclose(prior.log_prob(jnp.array([1.0, 2.0])), -3.0)
    with pytest.raises(TypeError, match="no `sample`"):
        prior.sample(jax.random.key(0))


def test_rejects_non_distributions():
    with pytest.raises(TypeError, match="log_prob"):
        as_prior(3.0)

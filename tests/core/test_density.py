import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from core_models import light_curve

import scarlet_like as sl

TIMES = jnp.linspace(-10.0, 10.0, 21)
DATA = light_curve(t0=-1.0, width=3.0, peak=0.3)(TIMES) + 0.01 * jax.random.normal(
    jax.random.key(1), TIMES.shape
)
SIGMA = 0.01


def log_likelihood(curve):
    return jnp.sum(nd.Normal(curve(TIMES), SIGMA).log_prob(DATA))


def hand_written(x):
    """The same log posterior written out by hand, in unconstrained coordinates."""
    t0, log_width, logit_peak = x
    width = jnp.exp(log_width)
    peak = jax.nn.sigmoid(logit_peak)
    model = peak * jnp.exp(-0.5 * ((TIMES - t0) / width) ** 2)
    loglike = jnp.sum(-0.5 * ((DATA - model) / SIGMA) ** 2 - jnp.log(SIGMA) - 0.5 * jnp.log(2 * jnp.pi))
    log_prior = nd.Normal(0.0, 5.0).log_prob(t0) + nd.LogNormal(0.0, 1.0).log_prob(width)
    # interval(0, 1) carries no prior (flat on the interval)
    log_jacobian = log_width + jnp.log(peak) + jnp.log1p(-peak)
    return loglike, log_prior, log_jacobian


@pytest.mark.parametrize("x", [None, jnp.array([0.3, 0.2, -0.5]), jnp.array([-1.0, 1.1, 0.4])])
def test_matches_hand_written_log_posterior(x):
    density = sl.LogDensity(light_curve(), log_likelihood)
    x = density.x0 if x is None else x
    loglike, log_prior, log_jacobian = hand_written(x)
    np.testing.assert_allclose(density.log_likelihood(x), loglike, rtol=1e-5)
    np.testing.assert_allclose(density.log_prior(x), log_prior, rtol=1e-5)
    np.testing.assert_allclose(density.log_jacobian(x), log_jacobian, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(density(x), loglike + log_prior + log_jacobian, rtol=1e-5)
    map_density = sl.LogDensity(light_curve(), log_likelihood, jacobian=False)
    np.testing.assert_allclose(map_density(x), loglike + log_prior, rtol=1e-5)
    grad_ours = jax.grad(density)(x)
    grad_hand = jax.grad(lambda x: sum(hand_written(x)))(x)
    np.testing.assert_allclose(grad_ours, grad_hand, rtol=1e-4, atol=1e-3)


def test_attributes():
    density = sl.LogDensity(light_curve(), log_likelihood)
    assert density.names == ("t0", "width", "peak")
    np.testing.assert_allclose(density.x0, [-2.0, np.log(2.5), np.log(0.2 / 0.8)], rtol=1e-5)
    assert density.size == 3
    np.testing.assert_allclose(sl.resolve(density.model(density.x0)).width, 2.5, rtol=1e-6)
    terms = density.terms(density.x0)
    assert set(terms) == {
        "likelihood",
        "prior: t0",
        "prior: width",
        "jacobian: t0",
        "jacobian: width",
        "jacobian: peak",
    }
    np.testing.assert_allclose(sum(terms.values()), density(density.x0), rtol=1e-5)


def test_traced_once_for_many_calls():
    traces = []

    def counting_likelihood(curve):
        traces.append(1)
        return log_likelihood(curve)

    density = sl.LogDensity(light_curve(), counting_likelihood)
    traces.clear()  # construction checks the output shape once
    value_and_grad = jax.jit(jax.value_and_grad(density))
    for i in range(50):
        value, grad = value_and_grad(density.x0 + 0.01 * i)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert len(traces) == 1


def test_vmap_over_many_points():
    density = sl.LogDensity(light_curve(), log_likelihood)
    xs = density.x0[None] + 0.1 * jax.random.normal(jax.random.key(0), (8, 3))
    batched = jax.jit(jax.vmap(jax.value_and_grad(density)))(xs)
    one_by_one = [density(x) for x in xs]
    np.testing.assert_allclose(batched[0], one_by_one, rtol=1e-5)


def test_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        times = jnp.asarray(TIMES, dtype=jnp.float64)
        data = jnp.asarray(DATA, dtype=jnp.float64)

        def loglike64(curve):
            return jnp.sum(nd.Normal(curve(times), SIGMA).log_prob(data))

        density = sl.LogDensity(light_curve(), loglike64)
        assert density.x0.dtype == jnp.float64
        x = np.asarray(density.x0) + np.array([0.2, 0.1, -0.3])
        f = lambda x: float(density(jnp.asarray(x)))  # noqa: E731
        step = 1e-6
        numeric = [(f(x + step * e) - f(x - step * e)) / (2 * step) for e in np.eye(3)]
        np.testing.assert_allclose(jax.grad(density)(jnp.asarray(x)), numeric, rtol=1e-5, atol=1e-3)


def test_likelihood_objects_and_lists():
    class Data:
        def log_likelihood(self, curve):
            return log_likelihood(curve)

    single = sl.LogDensity(light_curve(), log_likelihood)
    double = sl.LogDensity(light_curve(), [Data(), log_likelihood])
    np.testing.assert_allclose(
        double.log_likelihood(double.x0), 2 * single.log_likelihood(single.x0), rtol=1e-6
    )


def test_likelihood_must_be_scalar():
    with pytest.raises(ValueError, match=r"scalar.*\(21,\)"):
        sl.LogDensity(light_curve(), lambda curve: curve(TIMES))
    with pytest.raises(TypeError, match="callable"):
        sl.LogDensity(light_curve(), 3.0)


class Stretch:
    """A likelihood term whose class evaluates all its terms at once, and records how it was asked."""

    calls: list = []

    def __init__(self, scale):
        self.scale = scale

    def log_likelihood(self, curve):
        return self.scale * log_likelihood(curve)

    @classmethod
    def log_likelihood_of_many(cls, terms, curve):
        cls.calls.append(tuple(term.scale for term in terms))
        return sum(term.scale for term in terms) * log_likelihood(curve)


class Flat(Stretch):
    @classmethod
    def log_likelihood_of_many(cls, terms, curve):
        return jnp.zeros(len(terms))  # one value per term: not what the protocol asks


def test_terms_of_a_class_with_log_likelihood_of_many_are_evaluated_together():
    Stretch.calls.clear()
    single = sl.LogDensity(light_curve(), log_likelihood)
    mixed = sl.LogDensity(light_curve(), [Stretch(1.0), log_likelihood, Stretch(2.0), Stretch(0.5)])
    Stretch.calls.clear()
    value = mixed.log_likelihood(mixed.x0)
    # one call for the three terms of the class, in their order; the callable on its own
    assert Stretch.calls == [(1.0, 2.0, 0.5)]
    np.testing.assert_allclose(value, 4.5 * single.log_likelihood(single.x0), rtol=1e-6)
    with pytest.raises(ValueError, match=r"scalar log-likelihood, got shape \(2,\) from Flat"):
        sl.LogDensity(light_curve(), [Flat(1.0), Flat(2.0)])

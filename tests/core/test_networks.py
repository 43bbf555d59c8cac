"""Network priors: a flow's log density or a score, with the network's weights as data."""

import logging
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl
from scarlet_like.core import has_log_density

flowjax_flows = pytest.importorskip("flowjax.flows")
flowjax_distributions = pytest.importorskip("flowjax.distributions")

SIZE = 6


def _flow(seed: int):
    return flowjax_flows.coupling_flow(
        jax.random.key(seed),
        base_dist=flowjax_distributions.Normal(jnp.zeros(SIZE)),
        flow_layers=2,
        nn_width=8,
    )


class GaussianScore(eqx.Module):
    """The score of a Normal with diagonal covariance: `-(u - mean) / variance`."""

    mean: jax.Array
    variance: jax.Array

    def __call__(self, u):
        return -(u - self.mean) / self.variance


class Model(sl.Module):
    x: sl.Parameter

    def __call__(self):
        return self.x


DATA = jnp.linspace(-1.0, 1.0, SIZE)


def _likelihood(model):
    return -0.5 * jnp.sum(((model.x - DATA) / 0.5) ** 2)


def test_flow_prior_is_the_flows_own_log_prob():
    flow = _flow(0)
    prior = sl.FlowPrior(flow, (SIZE,))
    values = jax.random.normal(jax.random.key(1), (4, SIZE))
    # jitted: op by op, flowjax's layers took 19 s here
    log_probs = eqx.filter_jit(lambda density, x: jax.vmap(density.log_prob)(x))
    np.testing.assert_allclose(log_probs(prior, values), log_probs(flow, values), rtol=1e-6)
    gradients = eqx.filter_jit(lambda density, x: jax.vmap(jax.grad(density.log_prob))(x))
    np.testing.assert_allclose(gradients(prior, values), gradients(flow, values), rtol=1e-5, atol=1e-6)


def test_weights_are_leaves_not_static_and_never_free():
    flow = _flow(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Equinox's "A JAX array is being set as static!" included
        model = Model(sl.Parameter(jnp.zeros(SIZE), prior=sl.FlowPrior(flow, (SIZE,))))
        density = sl.LogDensity(model, _likelihood)
    weights = [leaf for leaf in jax.tree_util.tree_leaves(flow) if eqx.is_array(leaf)]
    leaves = jax.tree_util.tree_leaves(model)
    assert len(leaves) == 1 + len(weights)  # the value, then every weight
    assert density.size == SIZE  # the weights are not entries of the flat vector
    np.testing.assert_allclose(density.log_prior(density.x0), flow.log_prob(jnp.zeros(SIZE)), rtol=1e-6)


def test_a_bare_network_as_prior_warns_that_it_is_held_static():
    # what the wrappers fix: a flowjax distribution given as it is becomes static metadata
    with pytest.warns(UserWarning, match="static"):
        Model(sl.Parameter(jnp.zeros(SIZE), prior=_flow(0)))


def test_score_prior_has_the_given_gradient_and_says_its_value_is_unknown():
    mean = jnp.linspace(-0.5, 0.5, SIZE)
    variance = jnp.linspace(0.5, 2.0, SIZE)
    prior = sl.ScorePrior(GaussianScore(mean, variance), (SIZE,))
    assert not has_log_density(prior) and has_log_density(sl.FlowPrior(_flow(0), (SIZE,)))
    value = jnp.linspace(1.0, -2.0, SIZE)
    assert float(prior.log_prob(value)) == 0.0
    analytic = -(value - mean) / variance
    np.testing.assert_allclose(jax.grad(prior.log_prob)(value), analytic, rtol=1e-6)
    # the rule is a JVP: forward mode and Hessians (as the Laplace approximation takes them) work
    np.testing.assert_allclose(jax.jacfwd(prior.log_prob)(value), analytic, rtol=1e-6)
    np.testing.assert_allclose(jax.hessian(prior.log_prob)(value), jnp.diag(-1 / variance), rtol=1e-6)


def test_score_prior_gradient_goes_through_the_preprocessing():
    class Doubled(eqx.Module):
        def __call__(self, value):
            return 2.0 * value

    prior = sl.ScorePrior(GaussianScore(jnp.zeros(SIZE), jnp.ones(SIZE)), (SIZE,), preprocess=Doubled())
    value = jnp.linspace(-1.0, 1.0, SIZE)
    # log p(2 v) = -(2 v)^2 / 2 + c: the gradient in v is -4 v
    np.testing.assert_allclose(jax.grad(prior.log_prob)(value), -4.0 * value, rtol=1e-6)


def test_fit_with_a_score_prior_finds_the_posterior_mode():
    # Normal likelihood (sigma 0.5 around DATA) times Normal prior (mean 0, sigma 1): the mode is
    # DATA * 1 / (1 + 0.25)
    prior = sl.ScorePrior(GaussianScore(jnp.zeros(SIZE), jnp.ones(SIZE)), (SIZE,))
    fitted = sl.fit(Model(sl.Parameter(jnp.zeros(SIZE), prior=prior)), _likelihood, progress=False)
    np.testing.assert_allclose(fitted.model.x.value, DATA / 1.25, atol=1e-3)


def test_sample_refuses_a_score_prior_and_names_the_parameter():
    prior = sl.ScorePrior(GaussianScore(jnp.zeros(SIZE), jnp.ones(SIZE)), (SIZE,))
    with pytest.raises(ValueError, match=r"prior of x is a score .*sl.FlowPrior"):
        sl.sample(Model(sl.Parameter(jnp.zeros(SIZE), prior=prior)), _likelihood, key=jax.random.key(0))


def test_evidence_refuses_a_score_prior():
    prior = sl.ScorePrior(GaussianScore(jnp.zeros(SIZE), jnp.ones(SIZE)), (SIZE,))
    with pytest.raises(ValueError, match=r"evidence: the prior of x is a score"):
        sl.evidence(Model(sl.Parameter(jnp.zeros(SIZE), prior=prior)), _likelihood, n_data=SIZE)


def test_flow_prior_strength_scales_the_flows_log_density():
    flow = _flow(0)
    value = jnp.linspace(-1.0, 1.0, SIZE)
    tempered = sl.FlowPrior(flow, (SIZE,), strength=0.5)
    np.testing.assert_allclose(tempered.log_prob(value), 0.5 * flow.log_prob(value), rtol=1e-6)
    with pytest.raises(ValueError, match="FlowPrior: `strength` must be a positive number"):
        sl.FlowPrior(flow, (SIZE,), strength=0.0)


def test_sum_prior_adds_its_terms_and_says_what_they_say():
    flow = _flow(0)
    normal = nd.Normal(jnp.zeros(SIZE), 2.0).to_event(1)
    total = sl.SumPrior(sl.FlowPrior(flow, (SIZE,)), normal)
    value = jnp.linspace(-1.0, 1.0, SIZE)
    np.testing.assert_allclose(
        total.log_prob(value), flow.log_prob(value) + normal.log_prob(value), rtol=1e-6
    )
    assert has_log_density(total) and total.shape == (SIZE,)
    score = sl.ScorePrior(GaussianScore(jnp.zeros(SIZE), jnp.ones(SIZE)), (SIZE,))
    assert not has_log_density(sl.SumPrior(score, normal))  # so sl.sample refuses it too
    with pytest.raises(ValueError, match="SumPrior: give one prior or more"):
        sl.SumPrior()


def test_network_prior_rejects_what_is_not_a_network():
    with pytest.raises(TypeError, match="Equinox module"):
        sl.FlowPrior(lambda x: x, (SIZE,))
    with pytest.raises(TypeError, match="no `log_prob`.*ScorePrior"):
        sl.FlowPrior(GaussianScore(jnp.zeros(SIZE), jnp.ones(SIZE)), (SIZE,))


@pytest.mark.filterwarnings("ignore::scarlet_like.FitWarning")
def test_fit_compiles_once_and_new_weights_compile_nothing(caplog):
    def model(seed):
        return Model(sl.Parameter(jnp.zeros(SIZE), prior=sl.FlowPrior(_flow(seed), (SIZE,))))

    first = sl.fit(model(0), _likelihood, max_steps=30, progress=False)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        second = sl.fit(model(1), _likelihood, max_steps=30, progress=False)
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []
    # and the new weights were used: another prior, another optimum
    assert float(jnp.max(jnp.abs(first.model.x.value - second.model.x.value))) > 1e-3


def test_save_and_load_keep_the_weights(tmp_path):
    model = Model(sl.Parameter(jnp.zeros(SIZE), prior=sl.FlowPrior(_flow(3), (SIZE,))))
    sl.save(tmp_path / "model.eqx", model)
    like = Model(sl.Parameter(jnp.ones(SIZE), prior=sl.FlowPrior(_flow(4), (SIZE,))))
    loaded = sl.load(tmp_path / "model.eqx", like)
    value = jnp.linspace(-1.0, 1.0, SIZE)
    np.testing.assert_allclose(loaded.x.prior.log_prob(value), model.x.prior.log_prob(value), rtol=1e-6)
    assert float(loaded.x.prior.log_prob(value)) != float(like.x.prior.log_prob(value))


@eqx.filter_jit
def _value_and_grad(density, x):
    return jax.value_and_grad(density)(x)


def test_a_density_with_new_weights_compiles_nothing(caplog):
    # what sl.sample and sl.fit rely on, cheaply: their compiled steps take the LogDensity (its Parameter
    # identities numbered) as an argument of an eqx.filter_jit, and under new weights its static part is
    # the same
    def density(seed):
        model = Model(sl.Parameter(jnp.zeros(SIZE), prior=sl.FlowPrior(_flow(seed), (SIZE,))))
        return sl.canonical_tokens(sl.LogDensity(model, _likelihood))[0]  # as sl.fit and sl.sample do

    first, second = density(0), density(1)
    value, _ = _value_and_grad(first, first.x0)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        again, gradient = _value_and_grad(second, second.x0)
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []
    assert float(value) != float(again) and np.all(np.isfinite(gradient))  # and the new weights were used


@pytest.mark.slow  # two NUTS runs, 28 s: the first compiles the sampler (see the cheap check above)
@pytest.mark.filterwarnings("ignore::scarlet_like.ImproperPriorWarning")
def test_sampling_with_new_weights_compiles_nothing(caplog):
    def model(seed):
        return Model(sl.Parameter(jnp.zeros(SIZE), prior=sl.FlowPrior(_flow(seed), (SIZE,))))

    options = {"num_warmup": 10, "num_samples": 10, "num_chains": 1, "progress": False}
    first = sl.sample(model(0), _likelihood, key=jax.random.key(0), **options)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        second = sl.sample(model(1), _likelihood, key=jax.random.key(0), **options)
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []
    assert not np.allclose(first.samples, second.samples)  # the same key: the prior made the difference

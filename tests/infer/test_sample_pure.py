"""sl.sample: compiled once for models rebuilt with new sharing tokens; with progress=False, a pure JAX
computation that runs under jit and vmap."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl

Y = jnp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = jnp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


class Schools(sl.Module):
    mu: sl.Parameter
    tau: sl.Parameter
    theta: sl.Parameter


def centred_schools():
    """mu and tau appear twice (as fields and in theta's prior): shared by identity, so every build gives
    them fresh sharing tokens."""
    mu = sl.Parameter(0.0, prior=nd.Normal(0.0, 5.0))
    tau = sl.Parameter(3.0, constraint=sl.constraints.positive(), prior=nd.HalfCauchy(5.0))
    theta = sl.Parameter(jnp.zeros(8), prior=sl.HierarchicalPrior(nd.Normal, mu, tau))
    return Schools(mu=mu, tau=tau, theta=theta)


class Scores(sl.Module):
    values: jax.Array

    def log_likelihood(self, schools):
        return jnp.sum(nd.Normal(schools.theta, SIGMA).log_prob(self.values))


class Compilations(logging.Handler):
    """Names of the functions `jax.log_compiles` reports compiling."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.names = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names.append(message.split()[1])


def test_rebuilt_hierarchical_model_does_not_recompile():
    options = dict(num_warmup=60, num_samples=40, num_chains=2, progress=False)
    first_model, rebuilt = centred_schools(), centred_schools()
    tokens = lambda model: {model.mu.token, model.tau.token}  # noqa: E731
    assert tokens(rebuilt).isdisjoint(tokens(first_model))  # the premise: new tokens
    counter = Compilations()
    logger = logging.getLogger("jax")
    logger.addHandler(counter)
    try:
        with jax.log_compiles():
            sl.sample(first_model, Scores(Y), key=jax.random.key(0), **options)
            first, counter.names = counter.names, []
            posterior = sl.sample(rebuilt, Scores(Y[::-1]), key=jax.random.key(1), **options)
    finally:
        logger.removeHandler(counter)
    sampler = lambda names: [name for name in names if "_advance" in name or "_start" in name]  # noqa: E731
    assert sampler(first), first  # the counter does see the sampler compiling
    assert not sampler(counter.names), counter.names
    # the posterior maps draws back to models with the rebuilt model's own tokens, not canonical ones
    model = posterior.model_at(1, 3)
    assert tokens(model) == tokens(rebuilt)
    in_prior = {argument.token for argument in model.theta.prior.args}
    assert in_prior == tokens(rebuilt)
    assert posterior.values["theta"].shape == (2, 40, 8)


TIMES = jnp.linspace(-1.0, 1.0, 12)


class Line(sl.Module):
    coefficients: sl.Parameter


class Data(sl.Module):
    values: jax.Array

    def log_likelihood(self, line):
        c = line.coefficients
        return jnp.sum(nd.Normal(c[0] + c[1] * TIMES, 0.4).log_prob(self.values))


def line():
    return Line(sl.Parameter(jnp.zeros(2), prior=nd.Normal(0.0, 1.5)))


DATA = 0.5 - TIMES + 0.4 * jax.random.normal(jax.random.key(1), TIMES.shape)


def analytic_mean(data):
    design = np.stack([np.ones(12), np.asarray(TIMES)], axis=1).astype(np.float64)
    precision = design.T @ design / 0.16 + np.eye(2) / 1.5**2
    return np.linalg.solve(precision, design.T @ np.asarray(data, np.float64) / 0.16)


@pytest.mark.filterwarnings("ignore:Out-of-support values")  # numpyro, on the NaN data
def test_pure_mode_runs_under_jit_and_vmap():
    options = dict(num_warmup=150, num_samples=200, num_chains=2, progress=False)
    eager = sl.sample(line(), Data(DATA), key=jax.random.key(0), **options)

    @jax.jit
    def run(key, data):
        return sl.sample(line(), Data(data), key=key, **options)

    jitted = run(jax.random.key(0), DATA)
    assert isinstance(jitted, sl.Posterior)
    # the same steps as the run driven from Python (in stretches), so the same draws up to rounding
    np.testing.assert_allclose(jitted.samples, eager.samples, atol=1e-3)
    np.testing.assert_allclose(jitted.values["coefficients"].mean(axis=(0, 1)), analytic_mean(DATA), atol=0.1)
    # nothing to raise an error from under `jit`: a start where the density is not finite gives NaN draws
    broken = run(jax.random.key(0), jnp.full_like(DATA, jnp.nan))
    assert np.all(np.isnan(broken.samples)) and not np.any(broken.num_integration_steps)

    # vmapped over keys and data sets: one posterior per pair, each right for its data
    datasets = jnp.stack([DATA, DATA + 1.0, DATA - TIMES])
    keys = jax.random.split(jax.random.key(2), 3)
    means = jax.jit(jax.vmap(lambda key, data: run(key, data).values["coefficients"].mean(axis=(0, 1))))(
        keys, datasets
    )
    assert means.shape == (3, 2)
    for mean, data in zip(np.asarray(means), datasets, strict=True):
        np.testing.assert_allclose(mean, analytic_mean(data), atol=0.1)

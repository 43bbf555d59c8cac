"""sl.sample_prior: draws match the priors, hierarchies drawn parents first, vmap over keys, plates."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl


class Population(sl.Module):
    theta: sl.Parameter  # first: drawn after mu and tau all the same
    mu: sl.Parameter
    tau: sl.Parameter
    offset: sl.Parameter  # fixed


def population():
    # named: each is first met inside theta's prior, and would otherwise be named after that spot
    mu = sl.Parameter(0.0, prior=nd.Normal(1.0, 2.0), name="mu")
    tau = sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.HalfNormal(1.0), name="tau")
    theta = sl.Parameter(jnp.zeros(6), prior=sl.HierarchicalPrior(nd.Normal, mu, tau))
    return Population(
        theta=theta, mu=mu, tau=tau, offset=sl.Parameter(3.0, fixed=True, prior=nd.Normal(0.0, 1.0))
    )


# One instance for the tests below: a model's sharing tokens are part of what `jit` compiles for.
POPULATION = population()


def test_moments_of_2000_draws_match_the_priors():
    n = 2000
    draws = sl.sample_prior(POPULATION, jax.random.key(0), n=n)
    values = {k: np.asarray(v, np.float64) for k, v in sl.get_values(draws).items()}
    assert list(values) == ["theta", "mu", "tau"]  # theta comes first in the model...
    assert values["theta"].shape == (n, 6)
    tau_mean = np.sqrt(2 / np.pi)
    expected = {  # name: (mean, sd)
        "mu": (1.0, 2.0),
        "tau": (tau_mean, np.sqrt(1 - tau_mean**2)),
        "theta": (1.0, np.sqrt(4.0 + 1.0)),  # var = var(mu) + E[tau^2]
    }
    for name, (mean, sd) in expected.items():
        draw = values[name]
        assert np.all(np.abs(draw.mean(axis=0) - mean) < 4 * sd / np.sqrt(n)), name
        np.testing.assert_allclose(draw.std(axis=0), sd, rtol=0.08, err_msg=name)
    # ... yet each theta is drawn around the mu and tau of its own draw
    spread = (values["theta"] - values["mu"][:, None]) / values["tau"][:, None]
    np.testing.assert_allclose(spread.mean(), 0.0, atol=0.05)
    np.testing.assert_allclose(np.mean(spread**2), 1.0, rtol=0.05)
    # fixed parameters keep their value (with the leading axis of the draws)
    np.testing.assert_array_equal(draws.offset.value, np.full(n, 3.0))
    assert np.all(values["tau"] > 0)


def test_vmap_over_keys_and_jit():
    model = POPULATION
    keys = jax.random.split(jax.random.key(0), 2000)
    by_vmap = jax.vmap(lambda key: sl.sample_prior(model, key))(keys)
    by_n = sl.sample_prior(model, jax.random.key(0), n=2000)
    for a, b in zip(jax.tree_util.tree_leaves(by_vmap), jax.tree_util.tree_leaves(by_n), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    one = sl.sample_prior(model, keys[3])
    np.testing.assert_allclose(sl.get_values(one)["theta"], sl.get_values(by_n)["theta"][3], rtol=1e-6)
    # and under jit
    jitted = jax.jit(lambda key: sl.get_values(sl.sample_prior(model, key))["theta"])(keys[3])
    np.testing.assert_allclose(jitted, sl.get_values(one)["theta"], rtol=1e-6)


def test_missing_priors_and_supports_are_named():
    class Two(sl.Module):
        a: sl.Parameter
        b: sl.Parameter
        c: sl.Parameter

    model = Two(a=sl.Parameter(0.0), b=sl.Parameter(1.0, prior=nd.Normal(0.0, 1.0)), c=sl.Parameter(2.0))
    with pytest.raises(ValueError, match="no prior to draw from: a, c"):
        sl.sample_prior(model, jax.random.key(0))
    outside = Two(
        a=sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.Normal(0.0, 1.0)),
        b=sl.Parameter(1.0, prior=nd.Normal(0.0, 1.0)),
        c=sl.Parameter(1.0, prior=nd.Normal(0.0, 1.0)),
    )
    with pytest.raises(ValueError, match="constraint of a"):
        sl.sample_prior(outside, jax.random.key(0), n=50)


class Blob(sl.Module):
    center: sl.Parameter
    flux: sl.Parameter


def test_plates_draw_each_member_from_its_own_prior():
    members = [
        Blob(
            center=sl.Parameter(jnp.array([c, c]), prior=nd.Normal(jnp.array([c, c]), 0.1).to_event(1)),
            flux=sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.0, 0.1)),
        )
        for c in (0.0, 10.0, 20.0)
    ]
    plate = sl.stack(members)
    draws = sl.get_values(sl.sample_prior(plate, jax.random.key(3), n=400))
    centers = np.asarray(next(v for k, v in draws.items() if k.endswith("center")))
    assert centers.shape == (400, 3, 2)
    np.testing.assert_allclose(centers.mean(axis=0), [[0, 0], [10, 10], [20, 20]], atol=0.03)
    np.testing.assert_allclose(centers.std(axis=0), 0.1, rtol=0.15)
    # members are independent draws
    assert abs(np.corrcoef(centers[:, 0, 0], centers[:, 1, 0])[0, 1]) < 0.2

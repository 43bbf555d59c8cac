"""Shared parameters, derived values, hierarchical priors and meta attachments."""

import copy

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from core_models import LightCurve, Line, light_curve

import scarlet_like as sl


class Pair(sl.Module):
    first: object
    second: object


def test_shared_parameter_is_one_entry_everywhere():
    shared = sl.Parameter(1.5, constraint=sl.constraints.positive())
    model = Pair(
        first=Line(slope=shared, intercept=sl.Parameter(0.0)), second=Line(slope=shared, intercept=1.0)
    )
    assert sl.entry_names(model) == ("first.slope", "first.intercept")
    density = sl.LogDensity(
        model, lambda m: -((m.first(1.0) - 3.0) ** 2) - (m.second(1.0) - 3.0) ** 2, jacobian=False
    )
    x = density.x0 + 0.3
    resolved = sl.resolve(density.model(x))
    assert float(resolved.first.slope) == float(resolved.second.slope)
    # the gradient sees both uses of the one parameter
    grad = jax.grad(density)(density.x0)
    slope = 1.5
    expected = (-2 * (slope - 3.0) - 2 * (slope + 1.0 - 3.0)) * slope  # d/du with slope = exp(u)
    np.testing.assert_allclose(grad[0], expected, rtol=1e-5)


def test_shared_module_is_shared():
    curve = light_curve()
    model = Pair(first=curve, second=curve)
    assert sl.entry_names(model) == ("first.t0", "first.width", "first.peak")


def test_sharing_survives_tree_at_copies_and_save_load(tmp_path):
    shared = sl.Parameter(2.0)
    model = Pair(first=Line(slope=shared, intercept=0.0), second=Line(slope=shared, intercept=1.0))
    # tree surgery on a freshly built model (no framework call yet)
    edited = eqx.tree_at(lambda m: m.first.intercept, model, 0.5)
    assert sl.ravel(edited)[0].shape == (1,)
    assert sl.ravel(copy.deepcopy(model))[0].shape == (1,)
    assert sl.ravel(copy.copy(model))[0].shape == (1,)
    # changing one spot's value directly: model code sees the first spot's value everywhere
    changed = eqx.tree_at(lambda m: m.first.slope.value, edited, jnp.array(5.0))
    resolved = sl.resolve(changed)
    assert float(resolved.first.slope) == float(resolved.second.slope) == 5.0
    # set_values changes every spot
    updated = sl.set_values(model, {"first.slope": 3.0})
    assert float(updated.second.slope.value) == 3.0
    # save/load keeps the identity (it is part of the structure of `like`)
    sl.save(tmp_path / "m.eqx", updated)
    loaded = sl.load(tmp_path / "m.eqx", like=model)
    assert sl.ravel(loaded)[0].shape == (1,)
    assert float(loaded.second.slope.value) == 3.0


def test_equal_floats_never_merge():
    value = 1.0
    model = Pair(first=sl.Parameter(value), second=sl.Parameter(value))
    assert sl.ravel(model)[0].shape == (2,)
    same = jnp.ones(())
    model = Pair(first=sl.Parameter(same), second=sl.Parameter(same))
    assert sl.ravel(model)[0].shape == (2,)


def test_models_built_the_same_way_have_the_same_canonical_structure():
    from scarlet_like.core import canonical_tokens

    def build():
        return Pair(first=light_curve(), second=Line(slope=sl.Parameter(1.0), intercept=sl.Parameter(2.0)))

    first, second = build(), build()
    # every Parameter has its own identity from birth: separate builds never merge by accident ...
    assert jax.tree_util.tree_structure(first) != jax.tree_util.tree_structure(second)
    # ... and compiled code, which sees the identities numbered by first appearance, is shared
    assert jax.tree_util.tree_structure(canonical_tokens(first)[0]) == jax.tree_util.tree_structure(
        canonical_tokens(second)[0]
    )


def test_derived_values():
    curve = light_curve(t0=0.0, width=2.0, peak=0.5)
    fluxes = [sl.Derived(lambda c, t=t: c(t), curve, name=f"flux_at_{t}") for t in (0.0, 2.0)]
    model = Pair(first=curve, second=fluxes)
    assert sl.entry_names(model) == ("first.t0", "first.width", "first.peak")
    resolved = sl.resolve(model)
    np.testing.assert_allclose(resolved.second[0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(resolved.second[1], 0.5 * np.exp(-0.5), rtol=1e-6)
    density = sl.LogDensity(model, lambda m: -((m.second[1] - 0.1) ** 2))
    assert np.all(np.isfinite(jax.grad(density)(density.x0)))


def test_chains_of_derived_values():
    base = sl.Parameter(2.0)
    doubled = sl.Derived(lambda v: 2 * v, base)
    squared = sl.Derived(lambda v: v**2, doubled)
    model = Pair(first=base, second=squared)
    assert float(sl.resolve(model).second) == 16.0
    assert sl.entry_names(model) == ("first",)


def test_module_methods_see_derived_values():
    curve = light_curve(t0=0.0, width=2.0, peak=0.5)
    model = LightCurve(t0=sl.Derived(lambda c: c + 1.0, sl.Parameter(0.0)), width=2.0, peak=curve.peak)
    # t0 = 0 + 1, so at t = 1 the curve is at its peak
    np.testing.assert_allclose(model(jnp.array(1.0)), 0.5, rtol=1e-6)


def test_derived_failure_names_it():
    model = Pair(
        first=sl.Parameter(jnp.ones(3)),
        second=sl.Derived(lambda v: v @ jnp.ones(2), sl.Parameter(jnp.ones(3)), name="bad_dot"),
    )
    with pytest.raises(sl.DerivedError, match=r"'bad_dot' at 'second' failed.*\(3,\)"):
        sl.resolve(model)


def test_cycles_are_rejected_with_their_nodes_named():
    # A Derived's inputs exist before it, so a model tree cannot hold a cycle; derived functions that
    # resolve other models they refer to (links through closures) can, and must fail clearly.
    links = {}
    a = sl.Derived(lambda p: p + sl.resolve(links["b"]), sl.Parameter(1.0), name="a")
    b = sl.Derived(lambda p: 2 * sl.resolve(links["a"]), sl.Parameter(2.0), name="b")
    links.update(a=a, b=b)
    with pytest.raises(sl.DerivedError, match="cycle: a -> b -> a"):
        sl.resolve(Pair(first=a, second=b))
    # the same kind of link without a cycle works
    c = sl.Derived(lambda p: p + sl.resolve(links["d"]), sl.Parameter(1.0), name="c")
    links["d"] = sl.Derived(lambda p: 2 * p, sl.Parameter(2.0), name="d")
    assert float(sl.resolve(c)) == 5.0


def test_hierarchical_prior_is_exact():
    mu = sl.Parameter(0.5, prior=nd.Normal(0.0, 5.0))
    tau = sl.Parameter(2.0, constraint=sl.constraints.positive(), prior=nd.HalfCauchy(5.0))
    theta = sl.Parameter(jnp.array([1.0, -1.0, 3.0]), prior=sl.HierarchicalPrior(nd.Normal, mu, tau))
    model = Pair(first=Pair(first=mu, second=tau), second=theta)
    density = sl.LogDensity(model, lambda m: jnp.zeros(()))
    assert density.names == ("first.first", "first.second", "second[0]", "second[1]", "second[2]")
    x = density.x0 + jnp.array([0.1, -0.2, 0.3, 0.0, -0.1])
    mu_x, log_tau, theta_x = x[0], x[1], x[2:]
    expected = (
        nd.Normal(0.0, 5.0).log_prob(mu_x)
        + nd.HalfCauchy(5.0).log_prob(jnp.exp(log_tau))
        + jnp.sum(nd.Normal(mu_x, jnp.exp(log_tau)).log_prob(theta_x))
        + log_tau
    )
    np.testing.assert_allclose(density(x), expected, rtol=1e-5)


def test_fixed_observed_node_of_a_hierarchy_counts():
    mu = sl.Parameter(0.5)
    observed = sl.Parameter(jnp.array([1.0, 2.0]), prior=sl.HierarchicalPrior(nd.Normal, mu, 1.0), fixed=True)
    density = sl.LogDensity(Pair(first=mu, second=observed), lambda m: jnp.zeros(()))
    np.testing.assert_allclose(
        density(jnp.array([0.7])), jnp.sum(nd.Normal(0.7, 1.0).log_prob(jnp.array([1.0, 2.0]))), rtol=1e-6
    )


def test_meta_attachment_is_outside_the_parameter_space():
    reference = light_curve()
    model = Pair(first=Line(slope=sl.Parameter(1.0), intercept=0.0), second=sl.Meta(reference))
    assert sl.entry_names(model) == ("first.slope",)
    assert sl.resolve(model).second.content is reference
    assert jax.jit(lambda m: m.first(2.0))(model) == 2.0


def test_models_with_sharing_built_the_same_way_have_one_canonical_structure():
    from scarlet_like.core import canonical_tokens

    def build():
        shared = sl.Parameter(2.0)
        return Pair(first=Line(slope=shared, intercept=0.0), second=Line(slope=shared, intercept=1.0))

    first, second = build(), build()
    # unique sharing identities per build (never merged by accident) ...
    assert first.first.slope.token != second.first.slope.token
    # ... one structure once numbered by first appearance, and the way back restores them
    canonical, restore = canonical_tokens(first)
    assert jax.tree_util.tree_structure(canonical) == jax.tree_util.tree_structure(
        canonical_tokens(second)[0]
    )
    assert restore(canonical).first.slope.token == first.first.slope.token
    assert sl.ravel(canonical)[0].shape == (1,)

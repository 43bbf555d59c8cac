import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from core_models import Line, light_curve

import scarlet_like as sl


class Pair(sl.Module):
    first: object
    second: object


def blend():
    return Pair(
        first=light_curve(),
        second=Pair(
            first=sl.Parameter(jnp.array([[0.1, 0.2], [0.3, -0.4]]), constraint=sl.constraints.unit_disk()),
            second=sl.Parameter(jnp.array([0.2, 0.3, 0.5]), constraint=sl.constraints.simplex()),
        ),
    )


def assert_same_model(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-6)


def test_partition_combine_round_trip():
    model = blend()
    free, rest = sl.partition(model)
    # one entry per free parameter, by name; simplex (3,) -> (2,) unconstrained, others unchanged
    assert {name: value.shape for name, value in free.items()} == {
        "first.t0": (),
        "first.width": (),
        "first.peak": (),
        "second.first": (2, 2),
        "second.second": (2,),
    }
    np.testing.assert_allclose(free["first.width"], np.log(2.5), rtol=1e-6)
    assert_same_model(sl.combine(free, rest), model)


def test_combine_is_differentiable_and_jittable():
    free, rest = sl.partition(light_curve())
    loss = lambda free: sl.resolve(sl.combine(free, rest))(jnp.array(0.0))  # noqa: E731
    grads = jax.jit(jax.grad(loss))(free)
    assert set(grads) == {"t0", "width", "peak"}
    assert all(np.isfinite(g) for g in grads.values())


def test_ravel_round_trip_and_names():
    model = blend()
    x, unravel = sl.ravel(model)
    assert x.shape == (9,)
    assert_same_model(unravel(x), model)
    assert sl.entry_names(model) == (
        "first.t0",
        "first.width",
        "first.peak",
        "second.first[0, 0]",
        "second.first[0, 1]",
        "second.first[1, 0]",
        "second.first[1, 1]",
        "second.second[0]",
        "second.second[1]",
    )
    with pytest.raises(ValueError, match="shape"):
        unravel(jnp.zeros(4))


def test_unravel_is_traced_once():
    traces = []
    x, unravel = sl.ravel(blend())

    @jax.jit
    def total(x):
        traces.append(1)
        return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(sl.resolve(unravel(x))))

    for shift in range(5):
        total(x + 0.01 * shift)
    assert len(traces) == 1


def test_ravel_and_unravel_outside_jit_run_one_program_each_with_the_traced_values(caplog):
    # shapes no other test uses: every program this model needs is new to the process
    model = Pair(
        first=sl.Parameter(jnp.full((7, 3), 2.0), constraint=sl.constraints.positive()),
        second=Pair(
            first=sl.Parameter(jnp.linspace(0.6, 5.0, 11), constraint=sl.constraints.interval(0.5, 6.0)),
            second=sl.Parameter(jnp.full((5, 2), 0.1), constraint=sl.constraints.unit_disk()),
        ),
    )
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        x, unravel = sl.ravel(model)
    moved = x + 0.25
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        back = unravel(moved)
    compiled = [r.getMessage().split()[1] for r in caplog.records if "Compiling" in r.getMessage()]
    # one program for the inverse maps and one for the forward maps, not a few per parameter
    assert compiled == ["jit(_compiled_maps)"] * 2, compiled
    traced_x = jax.jit(lambda model: sl.ravel(model)[0])(model)
    np.testing.assert_array_equal(x, traced_x)
    traced_back = jax.jit(unravel)(moved)
    for eager, traced in zip(
        jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(traced_back), strict=True
    ):
        np.testing.assert_array_equal(eager, traced)


def test_get_and_set_values_round_trip():
    model = blend()
    values = sl.get_values(model)
    assert list(values) == ["first.t0", "first.width", "first.peak", "second.first", "second.second"]
    np.testing.assert_allclose(values["first.width"], 2.5)
    assert_same_model(sl.set_values(model, values), model)

    changed = sl.set_values(model, {"first.width": 4.0})
    assert float(sl.get_values(changed)["first.width"]) == 4.0
    assert float(sl.get_values(model)["first.width"]) == 2.5  # nothing mutated

    flat = jnp.concatenate([jnp.ravel(v) for v in values.values()])
    assert flat.shape == (10,)  # constrained sizes: the simplex counts 3
    assert_same_model(sl.set_values(model, flat * 1.0), model)


def test_set_values_errors():
    model = blend()
    with pytest.raises(KeyError, match=r"'first.widht'.*did you mean 'first.width'"):
        sl.set_values(model, {"first.widht": 1.0})
    with pytest.raises(ValueError, match="10 constrained entries"):
        sl.set_values(model, jnp.zeros(9))
    with pytest.raises(ValueError, match=r"'first.width' has shape \(\)"):
        sl.set_values(model, {"first.width": jnp.ones(2)})
    with pytest.raises(sl.ParameterError, match="'first.width'.*positive"):
        sl.set_values(model, {"first.width": -1.0})


def test_get_values_of_every_parameter_fixed_or_free():
    # a simulation's truth is all fixed: free_only=False reads it under the names a fit's values have
    truth = sl.fix(light_curve(t0=1.0, width=3.0, peak=0.4), ["t0", "width", "peak"])
    assert sl.get_values(truth) == {}
    every = sl.get_values(truth, free_only=False)
    assert list(every) == ["t0", "width", "peak"]
    np.testing.assert_allclose([float(every[name]) for name in every], [1.0, 3.0, 0.4], rtol=1e-6)
    # a truth-vs-fit table is one line: the same keys on both sides
    fitted = sl.get_values(light_curve())
    assert {name: (float(every[name]), float(fitted[name])) for name in fitted}["width"] == (3.0, 2.5)
    # mixed: fixed entries sit where they are in the model, free ones as get_values gives them
    mixed = sl.fix(blend(), "second.first")
    assert list(sl.get_values(mixed, free_only=False)) == [
        "first.t0",
        "first.width",
        "first.peak",
        "second.first",
        "second.second",
    ]
    assert "second.first" not in sl.get_values(mixed)


def test_fix_and_free():
    model = light_curve()
    fixed = sl.fix(model, lambda m: m.t0)
    assert list(sl.get_values(fixed)) == ["width", "peak"]
    assert sl.ravel(fixed)[0].shape == (2,)
    assert list(sl.get_values(sl.free(fixed, "t0"))) == ["t0", "width", "peak"]
    # a whole sub-model, and names with prefixes
    nested = blend()
    assert list(sl.get_values(sl.fix(nested, lambda m: m.first))) == ["second.first", "second.second"]
    assert list(sl.get_values(sl.fix(nested, "second"))) == ["first.t0", "first.width", "first.peak"]
    assert list(sl.get_values(sl.fix(nested, ["first.t0", "second.second"]))) == [
        "first.width",
        "first.peak",
        "second.first",
    ]
    # fixed values stay in the model
    np.testing.assert_allclose(sl.resolve(fixed).t0, -2.0)
    with pytest.raises(KeyError, match="no parameter named 'nope'"):
        sl.fix(model, "nope")
    with pytest.raises(sl.ParameterError, match="selected no Parameter"):
        sl.fix(Pair(first=model, second=jnp.ones(2)), lambda m: m.second)


def test_fixed_parameter_is_not_free():
    model = Line(slope=sl.Parameter(2.0, fixed=True), intercept=sl.Parameter(1.0))
    assert sl.entry_names(model) == ("intercept",)
    free, rest = sl.partition(model)
    assert list(free) == ["intercept"]
    assert_same_model(sl.combine(free, rest), model)


def test_resolve_replaces_parameters_by_values():
    resolved = sl.resolve(light_curve())
    assert isinstance(resolved.t0, jax.Array)
    assert not any(
        isinstance(leaf, sl.Parameter)
        for leaf in jax.tree_util.tree_leaves(resolved, is_leaf=sl.is_parameter)
    )


def test_same_parameter_object_twice_is_one_entry():
    shared = sl.Parameter(1.5, constraint=sl.constraints.positive())
    model = Line(slope=shared, intercept=shared)
    x, unravel = sl.ravel(model)
    assert x.shape == (1,)
    back = sl.resolve(unravel(jnp.array([0.0])))
    assert float(back.slope) == float(back.intercept) == 1.0
    # the sharing survives tree surgery on the rebuilt model
    rebuilt = eqx.tree_at(lambda m: m.intercept.value, unravel(x), jnp.array(1.5))
    assert sl.ravel(rebuilt)[0].shape == (1,)


def test_equal_values_in_different_parameters_stay_different():
    model = Line(slope=sl.Parameter(1.0), intercept=sl.Parameter(1.0))
    assert sl.ravel(model)[0].shape == (2,)


def test_user_names_and_duplicates():
    model = Line(slope=sl.Parameter(1.0, name="a"), intercept=sl.Parameter(2.0, name="b"))
    assert sl.entry_names(model) == ("a", "b")
    # caught as soon as the module is built
    with pytest.raises(sl.ParameterError, match="named 'a'"):
        Line(slope=sl.Parameter(1.0, name="a"), intercept=sl.Parameter(2.0, name="a"))
    with pytest.raises(sl.ParameterError, match="named 'a'"):
        sl.ravel([sl.Parameter(1.0, name="a"), sl.Parameter(2.0, name="a")])


def test_plain_containers_and_priors_kept():
    model = {"line": Line(slope=sl.Parameter(1.0, prior=nd.Normal(0.0, 1.0)), intercept=0.5)}
    x, unravel = sl.ravel(model)
    assert sl.entry_names(model) == ("['line'].slope",)
    assert unravel(x)["line"].slope.prior is not None
    assert unravel(x)["line"].intercept == 0.5

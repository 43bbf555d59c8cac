import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl
from scarlet_like.core import canonical_tokens


def test_value_becomes_strong_float_array():
    for value in (1.5, 2, [1.0, 2.0], np.arange(3), np.float64(0.5)):
        parameter = sl.Parameter(value)
        assert isinstance(parameter.value, jax.Array)
        assert jnp.issubdtype(parameter.value.dtype, jnp.floating)
        assert not parameter.value.weak_type


def test_new_python_floats_do_not_recompile():
    traces = []

    @jax.jit
    def evaluate(parameter):
        traces.append(1)
        return parameter.value * 2

    # each Parameter has its own identity (static metadata): compiled code sees them canonically numbered
    for value in (1.0, 2.0, 3.5, 7):
        evaluate(canonical_tokens(sl.Parameter(value, constraint=sl.constraints.positive()))[0])
    assert len(traces) == 1


def test_metadata_is_static_and_value_is_the_leaf():
    parameter = sl.Parameter(
        1.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.0, 1.0), name="r_half"
    )
    leaves = jax.tree_util.tree_leaves(parameter)
    # the value, then the prior's numeric arguments; nothing else is traced
    assert leaves[0] is parameter.value
    assert len(leaves) == 1 + len(parameter.prior.arguments)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert parameter.name == "r_half" and parameter.fixed is False
    assert "r_half" in repr(parameter) and "positive" in repr(parameter)


def test_same_prior_form_with_different_numbers_shares_structure():
    a = sl.Parameter(jnp.zeros(2), prior=nd.Normal(jnp.zeros(2), 0.5).to_event(1))
    b = sl.Parameter(jnp.ones(2), prior=nd.Normal(jnp.ones(2), 0.5).to_event(1))
    assert jax.tree_util.tree_structure(canonical_tokens(a)[0]) == jax.tree_util.tree_structure(
        canonical_tokens(b)[0]
    )


def test_unconstrained_value():
    parameter = sl.Parameter(2.0, constraint=sl.constraints.positive())
    np.testing.assert_allclose(parameter.unconstrained(), np.log(2.0), rtol=1e-6)


@pytest.mark.parametrize(
    ("value", "constraint", "message"),
    [
        (-1.0, sl.constraints.positive(), "outside the support of positive"),
        (7.0, sl.constraints.interval(0.5, 6.0), "outside the support of interval"),
        (jnp.array([0.8, 0.8]), sl.constraints.unit_disk(), "outside the support of unit_disk"),
        (jnp.array([2.0, 1.0]), sl.constraints.ordered(), "outside the support of ordered"),
        # a subnormal float is above 0, but XLA on CPU flushes it to zero: the message says why
        (1e-45, sl.constraints.positive(), r"positive\(\); values below 1.18e-38 in magnitude count as 0"),
    ],
)
def test_value_outside_support_is_named(value, constraint, message):
    with pytest.raises(sl.ParameterError, match=message) as info:
        sl.Parameter(value, constraint=constraint, name="r_half")
    assert "'r_half'" in str(info.value)


def test_nan_initial_value():
    with pytest.raises(sl.ParameterError, match=r"'flux'.*not finite at index \(1,\)"):
        sl.Parameter(jnp.array([1.0, jnp.nan]), name="flux")
    # without a name, the error waits for the path: here the list's position
    with pytest.raises(sl.ParameterError, match=r"^\[1\]: initial value is not finite"):
        sl.get_values([sl.Parameter(1.0), sl.Parameter(np.inf)])


def test_prior_event_shape_mismatch():
    with pytest.raises(sl.ParameterError, match=r"'center'.*event shape \(3,\).*\(2,\)"):
        sl.Parameter(jnp.zeros(2), prior=nd.Normal(jnp.zeros(3), 1.0).to_event(1), name="center")
    with pytest.raises(sl.ParameterError, match=r"^\['x'\]: prior .* does not match"):
        sl.partition({"x": sl.Parameter(jnp.zeros(2), prior=nd.Normal(jnp.zeros(3), 1.0))})
    # a scalar prior applies to every element, and a matching event shape is fine
    sl.Parameter(jnp.zeros((4, 2)), prior=nd.Normal(0.0, 1.0))
    sl.Parameter(jnp.zeros((4, 2)), prior=nd.Normal(jnp.zeros(2), 1.0).to_event(1))


def test_constraint_shape_is_checked():
    with pytest.raises(sl.ParameterError, match="'g'"):
        sl.Parameter(jnp.zeros(3), constraint=sl.constraints.unit_disk(), name="g")


def test_bad_types(unchecked):
    with pytest.raises(TypeError):
        sl.Parameter(1.0, prior=object())
    with pytest.raises(TypeError):
        sl.Parameter(1.0, constraint="positive")
    with unchecked(), pytest.raises(sl.ParameterError):
        sl.Parameter(sl.Parameter(1.0))


def test_numpyro_constraint_accepted():
    from numpyro.distributions import constraints

    parameter = sl.Parameter(0.5, constraint=constraints.unit_interval)
    np.testing.assert_allclose(parameter.constraint.forward(parameter.unconstrained()), 0.5, rtol=1e-6)


class Curve(sl.Module):
    t0: sl.Parameter
    width: sl.Parameter


class Pair(sl.Module):
    first: Curve
    second: Curve


def test_errors_of_unnamed_parameters_name_their_path_in_the_model():
    positive = sl.constraints.positive()
    # a Parameter cannot name itself: it says nothing until a model holds it ...
    bad = sl.Parameter(jnp.array([1.0, -2.0, 3.0]), constraint=positive)
    assert "outside the support" in bad.problem
    # ... and the module built around it names the path, the value and the fix
    with pytest.raises(sl.ParameterError) as info:
        Curve(t0=sl.Parameter(0.0), width=bad)
    message = str(info.value)
    assert message.startswith("Curve.width: initial value [1, -2, 3] is outside the support of positive()")
    assert "start it inside the support" in message
    with pytest.raises(sl.ParameterError, match=r"^Curve.t0: prior .* does not match .* \(2,\).*expand"):
        Curve(t0=sl.Parameter(jnp.zeros(2), prior=nd.Normal(jnp.zeros(3), 1.0)), width=1.0)
    # a model walked by the framework names it by the path users see in `get_values`
    with pytest.raises(sl.ParameterError, match=r"^\['second'\]\['width'\]: initial value is not finite"):
        sl.ravel({"first": sl.Parameter(1.0), "second": {"width": sl.Parameter(np.inf)}})


def test_a_bad_value_replaced_before_the_model_is_built_is_no_error():
    bad = sl.Parameter(-1.0, constraint=sl.constraints.positive())
    mended = eqx.tree_at(lambda p: p.value, bad, jnp.asarray(2.0))
    model = Pair(first=Curve(t0=sl.Parameter(0.0), width=mended), second=Curve(t0=0.0, width=1.0))
    assert float(sl.get_values(model)["first.width"]) == 2.0

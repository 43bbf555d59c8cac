"""Tests of `scarlet_like.core.constraints`.

Numerical checks run in float64 (inside `jax.enable_x64(True)`) so that tolerances can be
tight; support and dtype checks also run in the default float32.
"""

import functools

import distrax
import equinox as eqx
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions.constraints as numpyro_constraints
import numpyro.distributions.transforms as numpyro_transforms
import pytest
from hypothesis import given, settings

from scarlet_like.core import constraints as c

FAST = settings(max_examples=25, deadline=None)

# Name -> (constraint, constrained shapes to test).
ELEMENTWISE_SHAPES = [(), (3,), (2, 3)]
PER_ELEMENT_SHAPES = [(3,), (2, 3)]
CASES = {
    "real": (c.real(), ELEMENTWISE_SHAPES),
    "positive": (c.positive(), ELEMENTWISE_SHAPES),
    "greater_than": (c.greater_than(1.5), ELEMENTWISE_SHAPES),
    "less_than": (c.less_than(-2.0), ELEMENTWISE_SHAPES),
    "interval": (c.interval(0.5, 6.0), ELEMENTWISE_SHAPES),
    "interval_per_element": (
        c.interval([0.0, 1.0, -3.0], [1.0, 3.0, -2.5]),
        PER_ELEMENT_SHAPES,
    ),
    "greater_than_per_element": (c.greater_than([0.0, 10.0, -5.0]), [(2, 3)]),
    "unit_disk": (c.unit_disk(), [(2,), (4, 2)]),
    "disk": (c.disk([1.0, -2.0], 3.0), [(2,), (4, 2)]),
    "disk_per_vector": (c.disk([[0.0, 0.0], [1.0, 5.0], [-2.0, 2.0]], [0.5, 2.0, 4.0]), [(3, 2)]),
    "simplex": (c.simplex(), [(4,), (3, 4)]),
    "ordered": (c.ordered(), [(4,), (3, 4)]),
    "monotonic": (c.monotonic(), [(5, 5), (2, 3, 4)]),
    "numpyro_interval": (
        c.as_constraint(numpyro_constraints.interval(-1.0, 2.0)),
        ELEMENTWISE_SHAPES,
    ),
    "numpyro_simplex": (c.as_constraint(numpyro_constraints.simplex), [(4,), (3, 4)]),
    "numpyro_transform_affine": (
        c.as_constraint(numpyro_transforms.AffineTransform(1.0, -2.5)),
        [(), (2, 3)],
    ),
    "numpyro_transform_stick_breaking": (
        c.as_constraint(numpyro_transforms.StickBreakingTransform()),
        [(3, 4)],
    ),
    "distrax_sigmoid": (c.as_constraint(distrax.Sigmoid()), [(), (2, 3)]),
}
BUILT_IN = [
    "real",
    "positive",
    "greater_than",
    "less_than",
    "interval",
    "interval_per_element",
    "greater_than_per_element",
    "unit_disk",
    "disk",
    "disk_per_vector",
    "simplex",
    "ordered",
    "monotonic",
]


def _params(names, all_shapes):
    params = []
    for name in names:
        constraint, shapes = CASES[name]
        for shape in shapes if all_shapes else shapes[-1:]:
            params.append(pytest.param(constraint, shape, id=f"{name}-{shape}"))
    return params


# Round trips and Jacobians: every shape for the built-in constraints, one for the adapters
# (their maps are numpyro's and distrax's own; what is tested is the plumbing).
ROUND_TRIP_PARAMS = _params(BUILT_IN, all_shapes=True) + _params(
    [name for name in CASES if name not in BUILT_IN], all_shapes=False
)
ONE_SHAPE_PARAMS = _params(CASES, all_shapes=False)

FINITE_DIFFERENCE_STEP = 1e-5


def draw_unconstrained(data, constraint, shape, bound=5.0):
    unconstrained_shape = constraint.unconstrained_shape(shape)
    elements = st.floats(-bound, bound, allow_nan=False, allow_subnormal=False)
    return data.draw(hnp.arrays(np.float64, unconstrained_shape, elements=elements))


def to_numpy(tree):
    # Call inside the x64 context: outside it, numpy's calls on JAX arrays run in float32.
    return jax.tree.map(np.asarray, tree)


def drops_last_coordinate(constraint, unconstrained_shape):
    return constraint.constrained_shape(unconstrained_shape) != tuple(unconstrained_shape)


def extreme_patterns(shape):
    size = int(np.prod(shape))
    alternating = np.where(np.arange(size) % 2 == 0, 30.0, -30.0).reshape(shape)
    return np.stack([np.full(shape, 30.0), np.full(shape, -30.0), alternating, -alternating])


def fast_jit(function):
    # On small CPU test programs, XLA's optimisation passes take longer than they save; op by
    # op evaluation is slower still, as it compiles every primitive for every shape and dtype.
    return jax.jit(function, compiler_options={"xla_backend_optimization_level": 0})


def summarise_each(constraint):
    """Maps, check and log-det of each array along a leading batch axis, through `vmap`."""

    def evaluate(unconstrained):
        constrained = constraint.forward(unconstrained)
        return dict(
            constrained=constrained,
            inside=constraint.check(constrained),
            back=constraint.inverse(constrained),
            log_det=constraint.log_abs_det_jacobian(unconstrained),
        )

    return jax.vmap(evaluate)


@functools.cache
def compiled_extremes(constraint):
    return fast_jit(summarise_each(constraint))


# The shapes on which the transformation and extreme-input tests run; the programs for the
# other shapes leave those parts out, to compile faster.
FULL_CHECK_SHAPES = {
    (constraint, constraint.unconstrained_shape(shape))
    for constraint, shapes in CASES.values()
    for shape in shapes[-1:]
}


@functools.cache
def compiled_checks(constraint, unconstrained_shape):
    """One program (per constraint and shape) computing everything the float64 tests need:
    round trips, the log-det and the points for its finite differences and, on
    `FULL_CHECK_SHAPES`, gradients and the results for each array of a batch through `vmap`
    (the batch holds the input itself, then extreme inputs)."""
    size = int(np.prod(unconstrained_shape))
    offsets = (FINITE_DIFFERENCE_STEP * np.eye(size)).reshape((size,) + unconstrained_shape)
    full = (constraint, unconstrained_shape) in FULL_CHECK_SHAPES
    # Distinct weights, so that the gradient is not trivially zero for the simplex.
    constrained_shape = constraint.constrained_shape(unconstrained_shape)
    weights = np.arange(1.0, np.prod(constrained_shape) + 1.0).reshape(constrained_shape)

    def evaluate(unconstrained, batch):
        constrained = constraint.forward(unconstrained)
        back = constraint.inverse(constrained)
        # Constraints act independently along leading axes, so the round trip and all the
        # shifted points for central differences go through `forward` as one batch.
        stacked = jnp.concatenate([back[None], unconstrained[None] + offsets, unconstrained[None] - offsets])
        stacked_outputs = constraint.forward(stacked)
        results = dict(
            constrained=constrained,
            back=back,
            again=stacked_outputs[0],
            inside=constraint.check(constrained),
            log_det=constraint.log_abs_det_jacobian(unconstrained),
            shifted_outputs=stacked_outputs[1:],
        )
        if full:
            results.update(
                grad_log_det=jax.grad(constraint.log_abs_det_jacobian)(unconstrained),
                grad_forward=jax.grad(lambda u: jnp.sum(weights * constraint.forward(u)))(unconstrained),
                grad_inverse=jax.grad(lambda x: jnp.sum(constraint.inverse(x)))(constrained),
                each=summarise_each(constraint)(batch),
            )
        return results

    return fast_jit(evaluate)


def run_float64_checks(constraint, unconstrained):
    unconstrained = np.asarray(unconstrained, dtype=np.float64)
    batch = np.concatenate([unconstrained[None], extreme_patterns(unconstrained.shape)])
    with jax.enable_x64(True):
        program = compiled_checks(constraint, unconstrained.shape)
        return to_numpy(program(jnp.asarray(unconstrained), jnp.asarray(batch)))


def numerical_log_abs_det(constraint, unconstrained_shape, shifted_outputs):
    """log|det J| of the flattened forward map from central differences, in float64 numpy.

    For maps adding one coordinate (the simplex), the last output coordinate is dropped.
    """
    size = int(np.prod(unconstrained_shape))
    outputs = np.asarray(shifted_outputs, dtype=np.float64)
    if drops_last_coordinate(constraint, unconstrained_shape):
        outputs = outputs[..., :-1]
    outputs = outputs.reshape(2 * size, -1)
    jacobian = (outputs[:size] - outputs[size:]).T / (2 * FINITE_DIFFERENCE_STEP)
    sign, log_abs_det = np.linalg.slogdet(jacobian)
    assert sign != 0
    return log_abs_det


# --------------------------------------------------------------------------------------
# Bijectivity and Jacobians
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("constraint, shape", ROUND_TRIP_PARAMS)
@FAST
@given(data=st.data())
def test_round_trips(constraint, shape, data):
    unconstrained = draw_unconstrained(data, constraint, shape)
    result = run_float64_checks(constraint, unconstrained)
    constrained = result["constrained"]
    assert constrained.shape == tuple(shape)
    assert constrained.dtype == np.float64
    assert result["inside"]
    np.testing.assert_allclose(result["back"], unconstrained, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(result["again"], constrained, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("constraint, shape", ROUND_TRIP_PARAMS)
@FAST
@given(data=st.data())
def test_log_abs_det_jacobian_matches_finite_differences(constraint, shape, data):
    unconstrained = draw_unconstrained(data, constraint, shape)
    result = run_float64_checks(constraint, unconstrained)
    log_det = result["log_det"]
    assert log_det.shape == ()
    assert log_det.dtype == np.float64
    expected = numerical_log_abs_det(constraint, unconstrained.shape, result["shifted_outputs"])
    np.testing.assert_allclose(log_det, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("constraint, shape", ONE_SHAPE_PARAMS)
def test_jit_vmap_grad(constraint, shape):
    # Everything here runs inside `jax.jit`.
    unconstrained_shape = constraint.unconstrained_shape(shape)
    size = int(np.prod(unconstrained_shape))
    u = np.linspace(-2.0, 1.5, size).reshape(unconstrained_shape)
    result = run_float64_checks(constraint, u)

    for name in ("grad_log_det", "grad_forward", "grad_inverse"):
        assert result[name].dtype == np.float64
        assert np.all(np.isfinite(result[name])), (name, result[name])
    # (The log-det may be constant, as for real() or affine maps.)
    assert np.any(result["grad_forward"] != 0)
    assert np.any(result["grad_inverse"] != 0)
    # Through `vmap`, the first array of the batch gives what it gives alone.
    first = {name: value[0] for name, value in result["each"].items()}
    np.testing.assert_allclose(first["constrained"], result["constrained"], rtol=1e-14)
    np.testing.assert_allclose(first["back"], result["back"], rtol=1e-14)
    np.testing.assert_allclose(first["log_det"], result["log_det"], rtol=1e-14)
    assert first["inside"] == result["inside"]


def test_simplex_log_det_uses_first_coordinates():
    # A hand-worked case: K = 2, y = (sigmoid(u), 1 - sigmoid(u)), dy_0/du = s (1 - s).
    s = 1.0 / (1.0 + np.exp(-0.3))
    result = run_float64_checks(c.simplex(), [0.3])
    np.testing.assert_allclose(result["log_det"], np.log(s * (1 - s)), rtol=1e-12)
    np.testing.assert_allclose(result["constrained"], [s, 1 - s], rtol=1e-14)


# --------------------------------------------------------------------------------------
# Support and dtypes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("constraint, shape", ONE_SHAPE_PARAMS)
def test_extreme_inputs_stay_inside_support_and_keep_dtype(constraint, shape, x64):
    unconstrained_shape = constraint.unconstrained_shape(shape)
    if x64:
        dtype = np.float64
        each = run_float64_checks(constraint, np.zeros(unconstrained_shape))["each"]
        result = {name: value[1:] for name, value in each.items()}
    else:
        dtype = np.float32
        patterns = jnp.asarray(extreme_patterns(unconstrained_shape), dtype=dtype)
        result = to_numpy(compiled_extremes(constraint)(patterns))
    assert result["constrained"].dtype == dtype
    assert result["back"].dtype == dtype
    assert result["log_det"].dtype == dtype
    assert result["inside"].dtype == np.bool_
    assert not np.any(np.isnan(result["constrained"]))
    if isinstance(constraint, c.DistraxBijector):
        return  # distrax's sigmoid rounds onto the boundary at +-30; not ours to fix
    assert np.all(result["inside"]), result["constrained"]
    assert np.all(np.isfinite(result["back"]))
    assert np.all(np.isfinite(result["log_det"]))


def test_ordered_ties_are_broken_in_float32():
    # exp(-30) is far below the float spacing at 30: a plain cumulative sum would tie.
    x = np.asarray(fast_jit(c.ordered().forward)(jnp.asarray([30.0, -30.0, -30.0, 5.0])))
    assert x.dtype == np.float32
    assert np.all(np.diff(x) > 0)
    assert x[0] == 30.0
    assert x[3] == np.float32(30.0 + np.exp(5.0))


@pytest.mark.parametrize(
    "constraint, value",
    [
        (c.real(), [0.0, np.nan]),
        (c.real(), [np.inf]),
        (c.positive(), [1.0, -1.0]),
        (c.positive(), [0.0]),
        (c.positive(), [np.nan]),
        (c.positive(), [np.inf]),
        (c.greater_than(1.5), [1.5]),
        (c.greater_than(1.5), [2.0, 1.0]),
        (c.less_than(-2.0), [-2.0]),
        (c.less_than(-2.0), [0.0]),
        (c.interval(0.5, 6.0), [0.5]),
        (c.interval(0.5, 6.0), [6.0]),
        (c.interval(0.5, 6.0), [1.0, 7.0]),
        (c.interval(0.5, 6.0), [np.nan]),
        # Inside the first element's bounds, not the second's.
        (c.interval([0.0, 1.0], [1.0, 3.0]), [0.5, 0.5]),
        (c.unit_disk(), [0.6, 0.8]),
        (c.unit_disk(), [[0.1, 0.1], [1.2, 0.0]]),
        (c.unit_disk(), [np.nan, 0.0]),
        (c.simplex(), [0.2, 0.3, 0.4]),
        (c.simplex(), [0.5, 0.5, 0.0]),
        (c.simplex(), [1.2, -0.2]),
        (c.simplex(), [np.nan, 1.0]),
        (c.ordered(), [1.0, 3.0, 2.0]),
        (c.ordered(), [1.0, 1.0, 2.0]),
        (c.ordered(), [[1.0, 2.0], [2.0, -1.0]]),
        (c.ordered(), [-np.inf, 0.0]),
        # brighter one step away from the centre (1, 1) than at it; a zero; a NaN
        (c.monotonic(), [[0.1, 0.1, 0.1], [0.1, 1.0, 1.5], [0.1, 0.1, 0.1]]),
        (c.monotonic(), [[0.1, 0.1, 0.1], [0.1, 1.0, 0.0], [0.1, 0.1, 0.1]]),
        (c.monotonic(), [[0.1, 0.1, np.nan], [0.1, 1.0, 0.5], [0.1, 0.1, 0.1]]),
        # a 5 x 5 image rising two steps out, along the diagonal path (0, 0) -> (1, 1) -> centre
        (
            c.monotonic(),
            np.pad([[0.5, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 0.5]], 1, constant_values=0.4)
            + np.eye(5)[0][:, None] * np.eye(5)[0][None, :] * 0.2,
        ),
        # numpyro's interval is closed; the boundary is still rejected (infinite inverse).
        (c.as_constraint(numpyro_constraints.interval(0.0, 1.0)), [1.0]),
        (c.as_constraint(numpyro_constraints.interval(0.0, 1.0)), [2.0]),
        (c.as_constraint(numpyro_constraints.positive), [-1.0]),
        (c.as_constraint(numpyro_transforms.ExpTransform()), [-1.0]),
        (c.as_constraint(distrax.Sigmoid()), [1.5]),
        (c.as_constraint(distrax.Sigmoid()), [0.0]),
    ],
    ids=repr,
)
def test_check_rejects_values_outside_support(constraint, value):
    assert not bool(constraint.check(jnp.asarray(value)))


@pytest.mark.parametrize(
    "constraint, value",
    [
        (c.real(), [-1e30, 0.0]),
        (c.positive(), [1e-30, 3.0]),
        (c.interval(0.5, 6.0), [0.51, 5.99]),
        (c.interval([0.0, 1.0], [1.0, 3.0]), [0.5, 2.5]),
        (c.unit_disk(), [[0.0, 0.0], [0.59, -0.8]]),
        (c.simplex(), [0.2, 0.3, 0.5]),
        (c.simplex(), [[0.1] * 10, [0.5] + [0.5 / 9] * 9]),
        (c.ordered(), [-1.0, 0.0, 1e-3]),
        # ties are monotonic
        (c.monotonic(), np.pad([[0.5, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 0.5]], 1, constant_values=0.4)),
        (c.as_constraint(numpyro_constraints.interval(0.0, 1.0)), [0.999]),
        (c.as_constraint(distrax.Sigmoid()), [0.25]),
    ],
    ids=repr,
)
def test_check_accepts_values_inside_support(constraint, value):
    assert bool(constraint.check(jnp.asarray(value)))


# --------------------------------------------------------------------------------------
# Unit disk
# --------------------------------------------------------------------------------------


def test_unit_disk_at_origin():
    disk = c.unit_disk()

    @fast_jit
    def at_origin(u):
        return dict(
            forward=disk.forward(u),
            inverse=disk.inverse(u),
            log_det=disk.log_abs_det_jacobian(u),
            jacobian_forward=jax.jacfwd(disk.forward)(u),
            jacobian_inverse=jax.jacrev(disk.inverse)(u),
            grad_log_det=jax.grad(disk.log_abs_det_jacobian)(u),
        )

    result = to_numpy(at_origin(jnp.zeros(2)))
    np.testing.assert_array_equal(result["forward"], [0.0, 0.0])
    np.testing.assert_array_equal(result["inverse"], [0.0, 0.0])
    assert result["log_det"] == 0.0
    np.testing.assert_array_equal(result["jacobian_forward"], np.eye(2))
    np.testing.assert_array_equal(result["jacobian_inverse"], np.eye(2))
    np.testing.assert_array_equal(result["grad_log_det"], [0.0, 0.0])
    for value in result.values():
        assert np.all(np.isfinite(value))


def test_unit_disk_is_identity_to_first_order():
    small = np.array([[1e-4, -2e-4], [3e-3, 0.0], [1e-8, 1e-8], [0.0, -5e-2]])
    result = run_float64_checks(c.unit_disk(), small)
    # tanh(r)/r = 1 - r^2/3 + ..., so the deviation is of third order in r (up to rounding).
    squared_radius = np.sum(small**2, axis=-1, keepdims=True)
    deviation = np.abs(result["constrained"] - small)
    bound = np.abs(small) * squared_radius / 3 * 1.001 + 2 * np.spacing(np.abs(small))
    assert np.all(deviation <= bound), (deviation, bound)


def test_unit_disk_series_joins_exact_formula_smoothly():
    # Either side of the switch to the Taylor series, values must agree with the exact maps.
    for radius in (0.999e-3, 1.001e-3, 0.5e-3, 2e-3):
        u = np.array([radius / np.sqrt(2), -radius / np.sqrt(2)])
        result = run_float64_checks(c.unit_disk(), u)
        np.testing.assert_allclose(np.linalg.norm(result["constrained"]), np.tanh(radius), rtol=1e-15)
        log_det = np.log(1 - np.tanh(radius) ** 2) + np.log(np.tanh(radius) / radius)
        np.testing.assert_allclose(result["log_det"], log_det, rtol=1e-9)
        np.testing.assert_allclose(result["back"], u, rtol=1e-14)


# Components tiny enough to map to subnormals are left out: XLA on CPU flushes those to zero.
_ELLIPTICITY_COMPONENTS = st.one_of(st.just(0.0), st.floats(1e-100, 5.0), st.floats(-5.0, -1e-100))


@FAST
@given(u=hnp.arrays(np.float64, (4, 2), elements=_ELLIPTICITY_COMPONENTS))
def test_unit_disk_preserves_direction(u):
    g = run_float64_checks(c.unit_disk(), u)["constrained"]
    assert np.all(np.sign(g) == np.sign(u))
    # Radial map: g is a non-negative multiple of u.
    np.testing.assert_allclose(g[:, 0] * u[:, 1] - g[:, 1] * u[:, 0], 0.0, atol=1e-12)
    assert np.all(np.sum(g * u, axis=-1) >= 0)
    assert np.all(np.linalg.norm(g, axis=-1) < 1)


def test_unit_disk_needs_last_axis_of_two():
    disk = c.unit_disk()
    for action in (
        lambda: disk.unconstrained_shape((3,)),
        lambda: disk.constrained_shape((4, 3)),
        lambda: disk.check(jnp.zeros(3)),
        lambda: disk.forward(jnp.zeros((4, 3))),
        lambda: disk.inverse(jnp.zeros(1)),
        lambda: disk.log_abs_det_jacobian(jnp.zeros(())),
    ):
        with pytest.raises(ValueError, match="unit_disk"):
            action()


# --------------------------------------------------------------------------------------
# Shapes and validation
# --------------------------------------------------------------------------------------


def test_shapes():
    assert c.positive().unconstrained_shape((2, 3)) == (2, 3)
    assert c.simplex().unconstrained_shape((3, 4)) == (3, 3)
    assert c.simplex().constrained_shape((3, 3)) == (3, 4)
    # Shapes of the actual maps, without compiling them.
    assert jax.eval_shape(c.simplex().forward, jnp.zeros((5, 2))).shape == (5, 3)
    assert jax.eval_shape(c.simplex().inverse, jnp.zeros((5, 3))).shape == (5, 2)
    assert jax.eval_shape(c.simplex().log_abs_det_jacobian, jnp.zeros((5, 2))).shape == ()
    assert c.ordered().unconstrained_shape((4,)) == (4,)
    assert c.unit_disk().constrained_shape((4, 2)) == (4, 2)
    stick = c.as_constraint(numpyro_transforms.StickBreakingTransform())
    assert stick.unconstrained_shape((3, 4)) == (3, 3)
    assert stick.constrained_shape((3, 3)) == (3, 4)
    with pytest.raises(ValueError):
        c.simplex().unconstrained_shape(())
    with pytest.raises(ValueError):
        c.ordered().check(jnp.asarray(1.0))


def test_event_dims():
    assert c.real().event_dim == 0
    assert c.interval(0.0, 1.0).event_dim == 0
    assert c.unit_disk().event_dim == 1
    assert c.simplex().event_dim == 1
    assert c.ordered().event_dim == 1
    assert c.monotonic().event_dim == 2
    assert c.as_constraint(numpyro_constraints.positive).event_dim == 0
    assert c.as_constraint(numpyro_constraints.simplex).event_dim == 1
    assert c.as_constraint(numpyro_transforms.StickBreakingTransform()).event_dim == 1
    assert c.as_constraint(distrax.Sigmoid()).event_dim == 0


@pytest.mark.parametrize(
    "build",
    [
        lambda: c.interval(2.0, 1.0),
        lambda: c.interval(1.0, 1.0),
        lambda: c.interval([0.0, 2.0], [1.0, 1.0]),
        lambda: c.interval([0.0, 1.0], [1.0, 2.0, 3.0]),
        lambda: c.interval(0.0, np.nan),
        lambda: c.interval(0.0, np.inf),
        lambda: c.greater_than(np.nan),
        lambda: c.greater_than(-np.inf),
        lambda: c.less_than(np.inf),
        lambda: c.greater_than([]),
    ],
)
def test_bad_bounds_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


def test_per_element_bounds_must_fit_parameter_shape():
    bounded = c.interval([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])
    assert bounded.unconstrained_shape((5, 3)) == (5, 3)
    for shape in [(), (2,), (3, 2)]:
        with pytest.raises(ValueError, match="broadcast"):
            bounded.unconstrained_shape(shape)
    with pytest.raises(ValueError, match="broadcast"):
        bounded.forward(jnp.zeros(()))


def test_bounds_not_distinct_in_float32_raise():
    narrow = c.interval(1.0, 1.0 + 1e-12)
    with pytest.raises(ValueError, match="float32"):
        narrow.forward(jnp.zeros(()))
    with jax.enable_x64(True):
        assert bool(narrow.check(narrow.forward(jnp.zeros((), dtype=jnp.float64))))


def test_traced_bounds_are_rejected():
    @jax.jit
    def build(lower):
        return c.greater_than(lower).forward(lower)

    with pytest.raises(TypeError, match="concrete"):
        build(jnp.asarray(1.0))


# --------------------------------------------------------------------------------------
# Equality, hashing and use as static metadata
# --------------------------------------------------------------------------------------


def test_equal_when_built_the_same_way():
    pairs = [
        (c.real(), c.real()),
        (c.positive(), c.positive()),
        (c.greater_than(1.0), c.greater_than(1)),
        (c.less_than(np.float32(0.5)), c.less_than(0.5)),
        (c.interval(0.5, 6.0), c.interval(0.5, 6.0)),
        (c.interval(0.5, 6), c.interval(np.asarray(0.5), jnp.asarray(6.0))),
        (c.interval([0.0, 1.0], (2.0, 3.0)), c.interval(np.asarray([0.0, 1.0]), [2, 3])),
        (c.unit_disk(), c.unit_disk()),
        (c.disk([1.0, 2.0], 3.0), c.disk(np.asarray([1, 2]), 3)),
        (c.simplex(), c.simplex()),
        (c.ordered(), c.ordered()),
        (c.interval(0.5, 6.0), c.Interval(0.5, 6.0)),
        (
            c.as_constraint(numpyro_constraints.interval(0.0, 1.0)),
            c.as_constraint(numpyro_constraints.interval(0.0, 1.0)),
        ),
        (
            c.as_constraint(numpyro_constraints.positive),
            c.as_constraint(numpyro_constraints.positive),
        ),
    ]
    for first, second in pairs:
        assert first is not second
        assert first == second, (first, second)
        assert hash(first) == hash(second), (first, second)


def test_unequal_when_built_differently():
    distinct = [
        c.real(),
        c.positive(),
        c.greater_than(0.0),
        c.greater_than(1.0),
        c.less_than(1.0),
        c.interval(0.5, 6.0),
        c.interval(0.5, 7.0),
        c.interval(0.4, 6.0),
        c.interval([0.5], [6.0]),
        c.interval([0.0, 1.0], [2.0, 3.0]),
        c.interval([0.0, 1.0], [2.0, 4.0]),
        c.unit_disk(),
        c.disk([0.0, 0.0], 1.0),
        c.disk([0.0, 0.0], 2.0),
        c.disk([1.0, 0.0], 1.0),
        c.simplex(),
        c.ordered(),
        c.as_constraint(numpyro_constraints.interval(0.0, 1.0)),
        c.as_constraint(numpyro_constraints.interval(0.0, 2.0)),
        c.as_constraint(numpyro_constraints.greater_than_eq(0.0)),
    ]
    for i, first in enumerate(distinct):
        for j, second in enumerate(distinct):
            assert (first == second) == (i == j), (first, second)
    assert len(set(distinct)) == len(distinct)


def test_transform_and_bijector_adapters_compare_by_identity():
    exp = numpyro_transforms.ExpTransform()
    assert c.as_constraint(exp) == c.as_constraint(exp)
    assert hash(c.as_constraint(exp)) == hash(c.as_constraint(exp))
    assert c.as_constraint(exp) != c.as_constraint(numpyro_transforms.ExpTransform())
    sigmoid = distrax.Sigmoid()
    assert c.as_constraint(sigmoid) == c.as_constraint(sigmoid)
    assert hash(c.as_constraint(sigmoid)) == hash(c.as_constraint(sigmoid))
    assert c.as_constraint(sigmoid) != c.as_constraint(distrax.Sigmoid())


def test_constraints_are_immutable():
    bounded = c.interval(0.5, 6.0)
    with pytest.raises(AttributeError):
        bounded.lower = 0.0


def test_repr():
    assert repr(c.real()) == "real()"
    assert repr(c.positive()) == "positive()"
    assert str(c.greater_than(1)) == "greater_than(1.0)"
    assert repr(c.less_than(-2.0)) == "less_than(-2.0)"
    assert repr(c.interval(0.5, 6.0)) == "interval(0.5, 6.0)"
    assert repr(c.interval([0, 1], [2, 3])) == "interval([0.0, 1.0], [2.0, 3.0])"
    assert repr(c.unit_disk()) == "unit_disk()"
    assert repr(c.simplex()) == "simplex()"
    assert repr(c.ordered()) == "ordered()"
    assert repr(c.monotonic()) == "monotonic()"
    assert "Interval" in repr(c.as_constraint(numpyro_constraints.interval(0.0, 1.0)))
    assert "ExpTransform" in repr(c.as_constraint(numpyro_transforms.ExpTransform()))
    assert "Sigmoid" in repr(c.as_constraint(distrax.Sigmoid()))


class _Parameter(eqx.Module):
    value: jax.Array
    constraint: c.Constraint = eqx.field(static=True)


@pytest.mark.parametrize(
    "build",
    [
        lambda: c.interval(0.5, 6.0),
        lambda: c.interval([0.5, 1.0, 2.0], [6.0, 2.0, 3.0]),
        lambda: c.greater_than(1.0),
        lambda: c.positive(),
        lambda: c.as_constraint(numpyro_constraints.interval(0.0, 1.0)),
    ],
)
def test_equal_static_constraints_share_compiled_code(build):
    traces = 0

    @eqx.filter_jit
    def constrained_value(parameter):
        nonlocal traces
        traces += 1
        return parameter.constraint.forward(parameter.value)

    first = constrained_value(_Parameter(jnp.zeros(3), build()))
    second = constrained_value(_Parameter(jnp.ones(3), build()))
    assert traces == 1
    assert not np.array_equal(np.asarray(first), np.asarray(second))
    # A different constraint is a different program.
    constrained_value(_Parameter(jnp.zeros(3), c.interval(0.5, 7.0)))
    assert traces == 2


def test_unit_disk_static_field_shares_compiled_code():
    traces = 0

    @eqx.filter_jit
    def constrained_value(parameter):
        nonlocal traces
        traces += 1
        return parameter.constraint.forward(parameter.value)

    constrained_value(_Parameter(jnp.zeros((4, 2)), c.unit_disk()))
    constrained_value(_Parameter(jnp.ones((4, 2)), c.unit_disk()))
    assert traces == 1


# --------------------------------------------------------------------------------------
# as_constraint
# --------------------------------------------------------------------------------------


def test_as_constraint_dispatch():
    assert c.as_constraint(None) == c.real()
    bounded = c.interval(0.0, 1.0)
    assert c.as_constraint(bounded) is bounded

    wrapped = c.as_constraint(numpyro_constraints.positive)
    assert isinstance(wrapped, c.NumpyroConstraint)
    assert isinstance(wrapped, c.Constraint)
    np.testing.assert_allclose(np.asarray(wrapped.forward(jnp.asarray([0.0, 1.0]))), [1.0, np.e])

    exp = numpyro_transforms.ExpTransform()
    wrapped = c.as_constraint(exp)
    assert isinstance(wrapped, c.NumpyroTransform)
    assert wrapped.transform is exp

    sigmoid = distrax.Sigmoid()
    wrapped = c.as_constraint(sigmoid)
    assert isinstance(wrapped, c.DistraxBijector)
    assert wrapped.bijector is sigmoid
    np.testing.assert_allclose(float(wrapped.forward(jnp.asarray(0.0))), 0.5)


@pytest.mark.parametrize("bad", ["positive", 3.0, object(), [0.0, 1.0], c.Interval])
def test_as_constraint_rejects_other_objects(bad):
    with pytest.raises(TypeError, match=type(bad).__name__) as info:
        c.as_constraint(bad)
    assert "numpyro constraint" in str(info.value)


def test_numpyro_constraint_without_bijection_is_rejected():
    with pytest.raises(TypeError, match="biject_to"):
        c.as_constraint(numpyro_constraints.boolean)


def test_unit_disk_transform_is_registered_with_numpyro():
    transform = numpyro_transforms.biject_to(c.unit_disk_support)
    assert isinstance(transform, c.UnitDiskTransform)
    g = transform(jnp.asarray([3.0, 4.0]))
    np.testing.assert_allclose(float(jnp.linalg.norm(g)), np.tanh(5.0), rtol=1e-6)


# --------------------------------------------------------------------------------------
# Gradients against closed forms
# --------------------------------------------------------------------------------------


def test_gradients_match_closed_forms():
    # d/du interval(a, b).forward = (b - a) s (1 - s): clipping into the open support must not
    # disturb gradients away from the boundary.
    s = 1.0 / (1.0 + np.exp(-0.7))
    result = run_float64_checks(c.interval(0.5, 6.0), np.full((2, 3), 0.7))
    # The program differentiates sum_i (i + 1) x_i.
    weights = np.arange(1.0, 7.0).reshape(2, 3)
    np.testing.assert_allclose(result["grad_forward"], weights * 5.5 * s * (1 - s), rtol=1e-14)
    # Ordered: x_i = u_0 + sum_{j=1..i} exp(u_j), and the program differentiates
    # sum_i (i + 1) x_i, so its gradient is (sum_{i >= j} (i + 1)) exp(u_j) for j >= 1.
    # Here the first of three rows, whose weights are 1, 2, 3, 4.
    u = np.zeros((3, 4))
    u[0] = [0.0, -1.0, 0.5, 0.2]
    result = run_float64_checks(c.ordered(), u)
    expected = np.array([10.0, 9 * np.exp(-1.0), 7 * np.exp(0.5), 4 * np.exp(0.2)])
    np.testing.assert_allclose(result["grad_forward"][0], expected, rtol=1e-14)
    np.testing.assert_allclose(result["grad_log_det"], np.tile([0.0, 1.0, 1.0, 1.0], (3, 1)))


def test_float_array_is_the_one_conversion_to_floats():
    default = jnp.asarray(0.0).dtype
    assert c.float_array(3).dtype == default and c.float_array([1, 2]).dtype == default
    assert c.float_array(np.array([True])).dtype == default
    assert c.float_array(np.float16(1.5)).dtype == jnp.float16  # a floating dtype is kept
    assert c.float_array(jnp.asarray(1j)).dtype == jnp.asarray(1j).dtype  # and a complex one
    assert c.float_array(0.5).weak_type and not c.float_array(0.5, strong=True).weak_type
    seen = []

    @jax.jit
    def traced(x):
        seen.append(c.float_array(x, strong=True).dtype)
        return x

    traced(jnp.arange(3))
    assert seen == [default]  # an integer tracer is converted too


def test_disk_names_bad_bounds_and_keeps_within_its_radius():
    with pytest.raises(ValueError, match="radius must be positive"):
        c.disk([0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="last axis of size 2"):
        c.disk([0.0, 0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="must be finite"):
        c.disk([0.0, np.inf], 1.0)
    with pytest.raises(ValueError, match="does not fit the parameter shape"):
        c.disk([[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0]).forward(jnp.zeros((3, 2)))
    disk = c.disk([[10.0, -5.0], [0.0, 0.0]], [2.0, 0.5])
    u = jnp.asarray([[30.0, 40.0], [0.1, 0.0]])
    x = disk.forward(u)
    distance = np.linalg.norm(np.asarray(x) - [[10.0, -5.0], [0.0, 0.0]], axis=-1)
    np.testing.assert_allclose(distance, [2.0, 0.5 * np.tanh(0.1)], rtol=1e-5)
    np.testing.assert_array_equal(disk.at_bound(u, jnp.zeros_like(u)), [[True, True], [False, False]])
    assert repr(disk) == "disk([[10.0, -5.0], [0.0, 0.0]], [2.0, 0.5])"


def test_monotonic_project_is_the_largest_monotonic_image_below():
    values = np.random.default_rng(3).uniform(0.1, 1.0, (7, 9))
    projected = np.asarray(c.monotonic().project(values))
    assert bool(c.monotonic().check(projected)) and not bool(c.monotonic().check(values))
    # lowering every pixel to its parent until nothing changes gives the same image
    tree = c._image_tree(7, 9)
    expected = values.ravel().copy()
    for _ in range(10):
        expected = np.minimum(expected, expected[tree.parents])
    np.testing.assert_allclose(projected.ravel(), expected, rtol=1e-6)
    # a monotonic image is its own projection
    np.testing.assert_array_equal(np.asarray(c.monotonic().project(projected)), projected)


def test_monotonic_paths_lead_to_the_centre():
    tree = c._image_tree(5, 6)
    assert tree.center == 2 * 6 + 3 and tree.parents[tree.center] == tree.center
    # from a corner: diagonally, then along the row, one step at a time
    path = [int(i) for i in tree.paths[0] if i < 30]
    assert path == [0, 7, 14]  # (0, 0) -> (1, 1) -> (2, 2), then the centre (2, 3)
    with pytest.raises(ValueError, match="two last axes"):
        c.monotonic().forward(jnp.zeros(4))

"""The strong-Wolfe line search: optax's zoom search step for step, from one evaluation site."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import scarlet_like as sl
from scarlet_like.infer import wolfe_line_search


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def log_barrier(x):
    # not finite beyond x = 1: long steps land outside the domain; at the optimum rounding makes the
    # searches fail (all 20 trials) and fall back to their best step
    return jnp.sum(50.0 * x**2) - jnp.sum(jnp.log1p(-x))


def path(optimizer, objective, x, steps):
    value_and_grad = optax.value_and_grad_from_state(objective)

    @jax.jit
    def step(x, state):
        value, grad = value_and_grad(x, state=state)
        updates, state = optimizer.update(grad, state, x, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(x, updates), state

    state = optimizer.init(x)
    points, trials = [], []
    for _ in range(steps):
        x, state = step(x, state)
        points.append(x)
        trials.append(int(optax.tree_utils.tree_get(state, "trials", -1)))
    return np.stack(points), trials


@pytest.mark.parametrize(
    "objective, start",
    [
        (rosenbrock, [-1.2, 1.0, -0.5, 1.5]),
        (log_barrier, [0.9, -3.0, 0.5]),
    ],
)
def test_l_bfgs_takes_the_same_path_as_with_optaxs_zoom_search(objective, start):
    # same algorithm and settings: the same steps, to rounding (x64 so that rounding stays small; optax
    # mixes its integer counters with floats)
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        start = jnp.asarray(start, jnp.float64)
        ours, our_trials = path(optax.lbfgs(linesearch=wolfe_line_search()), objective, start, 100)
        theirs, _ = path(optax.lbfgs(), objective, start, 100)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
        # the searches did work: some took more than one trial, and found the optimum
        assert max(our_trials) > 1
        assert float(jnp.max(jnp.abs(jax.grad(objective)(ours[-1])))) < 1e-6


def test_an_accepted_step_meets_both_wolfe_conditions():
    # a badly scaled quadratic, searched along the negative gradient: the unit step is far too long
    scales = jnp.array([1.0, 30.0, 900.0])
    objective = lambda x: 0.5 * jnp.sum(scales * x**2)  # noqa: E731
    x = jnp.array([1.0, -0.5, 0.2])
    value, grad = jax.value_and_grad(objective)(x)
    search = wolfe_line_search(decrease=1e-4, curvature=0.9, approximate=None)
    updates, state = search.update(-grad, search.init(x), x, value=value, grad=grad, value_fn=objective)
    step = float(state.learning_rate)
    slope0 = float(jnp.vdot(grad, -grad))
    new_value, new_grad = jax.value_and_grad(objective)(x + updates)
    assert 0.0 < step < 1.0
    assert float(new_value) <= float(value) + 1e-4 * step * slope0
    assert abs(float(jnp.vdot(new_grad, -grad))) <= 0.9 * abs(slope0)
    # what it keeps for the next step is the objective at the point it chose
    np.testing.assert_allclose(state.value, new_value, rtol=1e-6)
    np.testing.assert_allclose(state.grad, new_grad, rtol=1e-5)
    assert int(state.info.trials) > 1 and float(state.info.decrease_error) == 0.0


def traces_of_objective(optimizer):
    count = {"traces": 0}

    def objective(x):
        count["traces"] += 1
        return rosenbrock(x)

    x = jnp.array([-1.2, 1.0, 0.5])
    state = optimizer.init(x)
    jax.make_jaxpr(lambda x, s: optimizer.update(x, s, x, value=1.0, grad=x, value_fn=objective))(x, state)
    return count["traces"]


def test_the_search_evaluates_the_objective_in_one_place():
    # optax's zoom search evaluates it in both branches of a cond: two copies in the compiled program
    assert traces_of_objective(optax.lbfgs()) == 2
    assert traces_of_objective(optax.lbfgs(linesearch=wolfe_line_search())) == 1


TRACES = {"density": 0}


class Counted(sl.Module):
    values: jax.Array

    def log_likelihood(self, model):
        TRACES["density"] += 1
        return -0.5 * jnp.sum((model.level - self.values) ** 2)


class Level(sl.Module):
    level: sl.Parameter


def test_a_fit_step_holds_the_density_once_and_a_new_stretch_once():
    # the step reads the loss and gradient at its point from the optimizer's state (the line search's,
    # or the curvature's at a stretch's start): no further copy of the density's gradient is traced
    density = sl.LogDensity(Level(sl.Parameter(jnp.zeros(3))), Counted(jnp.arange(3.0)), jacobian=False)
    loop = sl.FitLoop(density)
    state = loop.init()
    TRACES["density"] = 0
    jax.make_jaxpr(loop.advance)(state)
    assert TRACES["density"] == 1
    TRACES["density"] = 0
    jax.make_jaxpr(loop.restart)(state)
    assert TRACES["density"] == 1
    # and the fit still finds the optimum
    fitted = sl.fit(Level(sl.Parameter(jnp.zeros(3))), Counted(jnp.arange(3.0)), progress=False)
    np.testing.assert_allclose(fitted.model.level.value, jnp.arange(3.0), atol=1e-4)
    assert bool(fitted.converged)


@pytest.mark.parametrize(
    "settings, message",
    [({"decrease": 0.9, "curvature": 0.5}, "decrease < curvature"), ({"max_trials": 0}, "max_trials")],
)
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        wolfe_line_search(**settings)

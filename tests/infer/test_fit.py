"""sl.fit: untuned convergence, compile-once, NaN guard, pure-JAX mode."""

import logging
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import scarlet_like as sl

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from core_models import LightCurve, light_curve  # noqa: E402

TIMES = jnp.linspace(-10.0, 10.0, 41)
NOISE = 0.01


def simulated(key=1, **truth):
    curve = light_curve(**truth)
    return curve(TIMES) + NOISE * jax.random.normal(jax.random.key(key), TIMES.shape)


def gaussian_likelihood(data):
    def log_likelihood(curve):
        return -0.5 * jnp.sum(((curve(TIMES) - data) / NOISE) ** 2)

    return log_likelihood


class Data(sl.Module):
    """A likelihood object holding its data as a leaf: new data, same compiled fit."""

    values: jax.Array

    def log_likelihood(self, curve):
        return -0.5 * jnp.sum(((curve(TIMES) - self.values) / NOISE) ** 2)


def test_fit_recovers_the_truth_untuned():
    data = simulated(t0=-1.0, width=3.0, peak=0.3)
    result = sl.fit(light_curve(), gaussian_likelihood(data), progress=False)
    values = sl.get_values(result.model)
    # within 4 sigma of the truth (Laplace sigmas of this data set: 0.044, 0.015 * 3, 0.018 * 0.3)
    for name, truth, tolerance in (("t0", -1.0, 0.18), ("width", 3.0, 0.18), ("peak", 0.3, 0.025)):
        assert abs(float(values[name]) - truth) < tolerance, name
    # and at the mode: the gradient of the MAP density vanishes there
    density = sl.LogDensity(light_curve(), gaussian_likelihood(data), jacobian=False)
    assert float(jnp.max(jnp.abs(jax.grad(density)(result.x)))) < 1e-2
    assert bool(result.converged)
    steps = int(result.steps)
    assert 0 < steps < 2000
    assert np.all(np.isfinite(result.loss[:steps])) and np.all(np.isnan(result.loss[steps:]))
    assert float(result.loss[steps - 1]) <= float(result.loss[0])


def test_second_fit_does_not_recompile(caplog):
    first = Data(simulated(key=1, t0=-1.0, width=3.0, peak=0.3))
    second = Data(simulated(key=2, t0=0.5, width=2.0, peak=0.5))
    sl.fit(light_curve(), first, max_steps=200, progress=True)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        result = sl.fit(light_curve(), second, max_steps=200, progress=True)
    compiles = [r for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == [], [r.getMessage() for r in compiles]
    values = sl.get_values(result.model)
    np.testing.assert_allclose([values["t0"], values["width"], values["peak"]], [0.5, 2.0, 0.5], atol=0.1)


@pytest.mark.parametrize("optimizer", [None, optax.adam(0.05)], ids=["lbfgs", "adam"])
@pytest.mark.parametrize("progress", [False, True])
@pytest.mark.filterwarnings("ignore::scarlet_like.FitWarning")  # 100 steps of adam do not converge
def test_no_recompilation_without_progress_bar_or_with_any_optimizer(caplog, progress, optimizer):
    # `progress=False` called eagerly (as `sl.laplace` does) and user optimizers compile once too
    first = Data(simulated(key=1, t0=-1.0, width=3.0, peak=0.3))
    second = Data(simulated(key=2, t0=0.5, width=2.0, peak=0.5))
    sl.fit(light_curve(), first, max_steps=100, progress=progress, optimizer=optimizer)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        sl.fit(light_curve(), second, max_steps=100, progress=progress, optimizer=optimizer)
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []


def test_pure_mode_jits_and_vmaps():
    datasets = jnp.stack([simulated(key=k, t0=t0, width=2.5, peak=0.4) for k, t0 in ((1, -1.0), (2, 1.0))])

    @jax.jit
    def fit_all(datasets):
        return jax.vmap(lambda values: sl.fit(light_curve(), Data(values), max_steps=300, progress=False))(
            datasets
        )

    results = fit_all(datasets)
    t0 = results.model.t0.value
    np.testing.assert_allclose(t0, [-1.0, 1.0], atol=0.15)
    # each member of the vmapped fit equals the fit done alone
    alone = sl.fit(light_curve(), Data(datasets[1]), max_steps=300, progress=False)
    np.testing.assert_allclose(t0[1], alone.model.t0.value, rtol=1e-4)
    assert results.loss.shape == (2, 300)


def test_nan_guard_names_the_parameter_and_keeps_the_best_state():
    data = simulated(t0=-1.0, width=3.0, peak=0.3)

    def fragile(curve):
        # a model that breaks down once t0 passes -1.5 on its way to the truth
        penalty = jnp.where(curve.t0 > -1.5, jnp.sqrt(-1.0 - 0.0 * curve.t0), 0.0)
        return gaussian_likelihood(data)(curve) + penalty

    start = light_curve(t0=-3.0)
    with pytest.warns(RuntimeWarning, match="non-finite gradient or value for t0"):
        result = sl.fit(start, fragile, progress=True)
    assert not bool(result.converged)
    assert bool(result.nonfinite[0])
    values = sl.get_values(result.model)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in values.values())
    assert float(values["t0"]) <= -1.5


def test_a_step_far_uphill_ends_the_stretch_and_the_best_point_is_returned():
    # An optimizer that, like a line search giving up, throws the fit far uphill: at the fourth step
    # of every stretch it adds 50 (in the preconditioned coordinates: 50 standard deviations).
    def kick(updates, count, params=None):
        jump = jnp.where(count == 3, 50.0, 0.0)
        return jax.tree_util.tree_map(lambda u: u + jump, updates), count + 1

    kicking = optax.chain(
        optax.adam(0.1), optax.GradientTransformation(lambda _: jnp.zeros((), jnp.int32), kick)
    )
    data = simulated(t0=-1.0, width=3.0, peak=0.3)
    likelihood = gaussian_likelihood(data)
    result = sl.fit(light_curve(), likelihood, optimizer=kicking, max_steps=600, progress=False)
    history = np.asarray(result.loss)
    taken = history[: int(result.steps)]
    best_so_far = np.minimum.accumulate(taken)
    assert np.sum(taken > 10 * best_so_far) > 5  # the kicks happened, again and again
    # the result is the best point evaluated, not where the last kick left the optimizer
    density = sl.LogDensity(light_curve(), likelihood, jacobian=False)
    np.testing.assert_allclose(-float(density(result.x)), np.nanmin(taken), rtol=1e-6)
    values = sl.get_values(result.model)
    assert abs(float(values["t0"]) + 1.0) < 0.1 and abs(float(values["width"]) - 3.0) < 0.1


def test_non_finite_start_is_an_error_naming_the_term():
    data = simulated(t0=-1.0, width=3.0, peak=0.3)
    with pytest.raises(FloatingPointError, match="likelihood"):
        sl.fit(light_curve(), lambda curve: gaussian_likelihood(data)(curve) + jnp.log(-curve.peak))


def test_fluxes_from_one_to_a_hundred_thousand():
    """A scene whose source fluxes span five decades converges untuned."""
    psf = sl.GaussianPSF(1.5)
    frame = sl.Frame((1, 48, 48), psf=sl.GaussianPSF(0.8))
    truth = [((12.0, 14.0), 1e5, 2.0), ((30.0, 33.0), 1e2, 3.0), ((36.0, 12.0), 1.0, 1.5)]
    with sl.Scene(frame) as true_scene:
        for center, flux, sigma in truth:
            sl.Source(jnp.asarray(center), jnp.array([flux]), sl.GaussianMorphology(sigma))
    noise = 0.002
    clean = sl.Observation(np.zeros((1, 48, 48)), psf=psf).render(true_scene)
    data = clean + noise * jax.random.normal(jax.random.key(3), clean.shape)
    observation = sl.Observation(data, weights=np.full(data.shape, 1 / noise**2), psf=psf)
    with sl.Scene(frame) as scene:
        for center, flux, sigma in truth:
            sl.Source(
                sl.Parameter(jnp.asarray(center) + 0.3),
                sl.Parameter(jnp.array([flux * 0.5]), constraint=sl.constraints.positive()),
                sl.GaussianMorphology(sl.Parameter(sigma * 1.3, constraint=sl.constraints.positive())),
            )
    result = sl.fit(scene, observation, progress=False)
    fluxes = [float(v[0]) for k, v in sl.get_values(result.model).items() if k.endswith("spectrum")]
    np.testing.assert_allclose(fluxes, [flux for _, flux, _ in truth], rtol=0.05)
    assert float(observation.goodness_of_fit(result.model)) < 1.2


def test_model_argument_types():
    with pytest.raises(TypeError):
        sl.fit(LightCurve(t0=sl.Parameter(0.0), width=1.0, peak=1.0), 3.0)


def test_models_with_shared_parameters_rebuilt_do_not_recompile(caplog):
    """Sharing tokens are unique per build; the fit compiles for their canonical numbering."""

    def build(t0):
        shared = sl.Parameter(2.5, constraint=sl.constraints.positive())
        return [
            LightCurve(
                t0=sl.Parameter(t0),
                width=shared,
                peak=sl.Parameter(0.3, constraint=sl.constraints.positive()),
            ),
            LightCurve(
                t0=sl.Parameter(t0 + 1.0),
                width=shared,
                peak=sl.Parameter(0.3, constraint=sl.constraints.positive()),
            ),
        ]

    def likelihood(curves):
        return -0.5 * jnp.sum(((curves[0](TIMES) + curves[1](TIMES) - 0.2) / NOISE) ** 2)

    first = sl.fit(build(-1.0), likelihood, max_steps=50)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        second = sl.fit(build(-2.0), likelihood, max_steps=50)
    compiles = [r for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []
    # the returned models keep their own (unique) sharing, one width for both curves
    assert len(sl.entry_names(second.model)) == len(sl.entry_names(first.model)) == 5
    tokens = {curve.width.token for curve in second.model}
    assert len(tokens) == 1 and not next(iter(tokens)).startswith("#")


def test_any_optax_optimizer_runs_preconditioned():
    import optax

    data = simulated(t0=-1.0, width=3.0, peak=0.3)
    result = sl.fit(
        light_curve(), gaussian_likelihood(data), optimizer=optax.adam(0.1), max_steps=1500, progress=False
    )
    values = sl.get_values(result.model)
    assert abs(float(values["t0"]) + 1.0) < 0.2 and abs(float(values["width"]) - 3.0) < 0.2


def test_stretches_leave_room_for_stalls():
    from scarlet_like.infer.optimize import _loop_options

    # 100 steps per stretch by default; stalled stretches end early, so up to one per 5 steps may run
    options = _loop_options(None, 1000, 1e-7, None)
    assert (options["max_stretches"], options["stretch_steps"]) == (200, 100)
    options = _loop_options(None, 500, 1e-7, 10)
    assert (options["max_stretches"], options["stretch_steps"]) == (100, 50)
    options = _loop_options(None, 3, 1e-7, None)
    assert (options["max_stretches"], options["stretch_steps"]) == (1, 3)
    # a fit that converges quickly stops long before the stretches run out
    data = simulated(t0=-1.0, width=3.0, peak=0.3)
    result = sl.fit(light_curve(), gaussian_likelihood(data), max_steps=400, chunks=2, progress=False)
    assert bool(result.converged) and int(result.steps) < 400

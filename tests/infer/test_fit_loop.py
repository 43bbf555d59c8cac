"""The one fit loop: `FitLoop` by hand, the honest report of a result, and what `sl.fit` warns."""

import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import optax
import pytest

import scarlet_like as sl
from scarlet_like.infer.fit_loop import _gradient_and_scales, _keeps_value_and_grad

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from core_models import light_curve  # noqa: E402

TIMES = jnp.linspace(-10.0, 10.0, 41)
NOISE = 0.01


class Data(sl.Module):
    values: jax.Array

    def log_likelihood(self, curve):
        return -0.5 * jnp.sum(((curve(TIMES) - self.values) / NOISE) ** 2)


def data(key=1):
    curve = light_curve(t0=-1.0, width=3.0, peak=0.3)
    return Data(curve(TIMES) + NOISE * jax.random.normal(jax.random.key(key), TIMES.shape))


def test_stepping_the_loop_by_hand_is_the_fit():
    likelihood = data()
    density = sl.LogDensity(light_curve(), likelihood, jacobian=False)
    loop = sl.FitLoop(density, max_steps=300)
    step = jax.jit(loop.step)
    state = loop.init(jax.random.key(0))
    while not bool(loop.finished(state)):
        state = step(state)
    by_hand = loop.result(state)
    fitted = sl.fit(light_curve(), likelihood, max_steps=300, progress=False)
    assert int(by_hand.steps) == int(fitted.steps)
    np.testing.assert_allclose(by_hand.x, fitted.x, rtol=1e-5)
    assert bool(by_hand.converged)
    # the reported gradient is that of the loss at x, in units of the scales: small at the optimum
    assert float(by_hand.gradient) < 0.1
    assert not bool(jnp.any(by_hand.at_bounds))


def test_a_users_lbfgs_takes_the_same_path_as_the_default():
    # L-BFGS keeps the line search's value and gradient in its state; the loop uses them for any
    # optimizer that does, not only for the default object
    assert _keeps_value_and_grad(optax.lbfgs().init(jnp.zeros(3)))
    assert not _keeps_value_and_grad(optax.adam(0.1).init(jnp.zeros(3)))
    likelihood = data()
    default = sl.fit(light_curve(), likelihood, max_steps=300, progress=False)
    own = sl.fit(light_curve(), likelihood, max_steps=300, progress=False, optimizer=optax.lbfgs())
    assert int(own.steps) == int(default.steps)
    np.testing.assert_array_equal(own.x, default.x)


def blob_scene(sigma):
    frame = sl.Frame((1, 25, 25), psf=sl.GaussianPSF(0.7))
    with sl.Scene(frame) as scene:
        sl.Source(
            sl.Parameter(jnp.array([12.0, 12.0])),
            sl.Parameter(jnp.array([50.0]), constraint=sl.constraints.positive()),
            sl.GaussianMorphology(sl.Parameter(sigma, constraint=sl.constraints.positive())),
        )
    return scene


@pytest.mark.parametrize("progress", [pytest.param(True, marks=pytest.mark.slow), False])
def test_a_size_collapsing_to_zero_is_reported_and_named(progress):
    # the data hold a star (a PSF); a Gaussian galaxy fitted to it shrinks towards sigma = 0: the
    # optimizer converges there in unconstrained space, and the result says the size is at its bound
    psf = sl.GaussianPSF(1.2)
    frame = sl.Frame((1, 25, 25), psf=sl.GaussianPSF(0.7))
    with sl.Scene(frame) as star:
        sl.PointSource(jnp.array([12.0, 12.0]), jnp.array([50.0]))
    # The likelihood flattens as sigma^2 near 0, so where the fit stops depends on the noise and on
    # rounding: noise 0.01 ended at sigma 6e-5 on one CPU and 4.8e-4 on another (noise 0.05 at 1.9e-4,
    # 2.2e-4 and 6.5e-4): all well below 1e-3 of the start (2e-3), where a bound is reported.
    noise = 0.01
    clean = sl.Observation(np.zeros((1, 25, 25)), psf=psf).render(star)
    observed = clean + noise * jax.random.normal(jax.random.key(2), clean.shape)
    observation = sl.Observation(observed, weights=np.full(observed.shape, 1 / noise**2), psf=psf)
    with pytest.warns(
        sl.FitWarning, match=r"at a bound of their constraint: sources\[0\]\.morphology\.sigma"
    ):
        result = sl.fit(blob_scene(2.0), observation, max_steps=1000, progress=progress)
    names = np.asarray(sl.LogDensity(blob_scene(2.0), observation).names)
    assert list(names[np.asarray(result.at_bounds)]) == ["sources[0].morphology.sigma"]
    assert float(sl.get_values(result.model)["sources[0].morphology.sigma"]) < 2e-3
    # a galaxy fitted to a galaxy does not warn
    noise = 0.05
    with sl.Scene(frame) as galaxy:
        sl.Source(jnp.array([12.0, 12.0]), jnp.array([50.0]), sl.GaussianMorphology(1.5))
    clean = sl.Observation(np.zeros((1, 25, 25)), psf=psf).render(galaxy)
    observed = clean + noise * jax.random.normal(jax.random.key(2), clean.shape)
    observation = sl.Observation(observed, weights=np.full(observed.shape, 1 / noise**2), psf=psf)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sl.FitWarning)
        result = sl.fit(blob_scene(2.0), observation, max_steps=1000, progress=False)
    assert not bool(jnp.any(result.at_bounds))


def test_bounds_of_intervals_and_the_unit_disk():
    interval = sl.constraints.interval(0.5, 6.0)
    values = jnp.array([0.5004, 0.6, 5.9, 5.9996])
    flags = interval.at_bound(interval.inverse(values), interval.inverse(jnp.full(4, 2.0)))
    np.testing.assert_array_equal(flags, [True, False, False, True])
    disk = sl.constraints.unit_disk()
    g = jnp.array([[0.3, 0.2], [0.9995, 0.0]])
    np.testing.assert_array_equal(
        disk.at_bound(disk.inverse(g), disk.inverse(g * 0)), [[False] * 2, [True] * 2]
    )
    positive = sl.constraints.positive()
    start = positive.inverse(jnp.array([2.0, 2.0]))
    np.testing.assert_array_equal(
        positive.at_bound(positive.inverse(jnp.array([1e-5, 0.01])), start), [True, False]
    )
    assert interval.bounded and disk.bounded and not positive.bounded and not sl.constraints.real().bounded
    # the two-sided bounds are where the maps flatten out; a positive value's exp map does not
    np.testing.assert_array_equal(
        interval.flat_at_bound(interval.inverse(values)), [True, False, False, True]
    )
    np.testing.assert_array_equal(disk.flat_at_bound(disk.inverse(g)), [[False] * 2, [True] * 2])
    assert not jnp.any(positive.flat_at_bound(positive.inverse(jnp.array([1e-30, 2.0]))))
    # measured from the start, a one-sided bound traps an entry that has vanished (1e-6 of its start)
    np.testing.assert_array_equal(
        positive.flat_at_bound(positive.inverse(jnp.array([1e-25, 1e-5])), start), [True, False]
    )
    below = sl.constraints.less_than(1.0)
    np.testing.assert_array_equal(
        below.flat_at_bound(below.inverse(jnp.array([1.0 - 1e-7, 0.9])), below.inverse(jnp.zeros(2))),
        [True, False],
    )


def trapped_model_and_likelihood():
    """`b` in (0, 1) is pulled hard towards 1 while `a` is near its start and towards 0.3 once `a` has
    moved: the fit's first steps overshoot `b` into its lower bound, where its logistic map is flat."""
    model = {
        "a": sl.Parameter(jnp.array(0.0)),
        "b": sl.Parameter(jnp.array(0.5), constraint=sl.constraints.interval(0.0, 1.0)),
    }

    def log_likelihood(values, xp=jnp):
        a, b = values["a"], values["b"]
        return -(1e9 * xp.exp(-5 * a) * (b - 1) ** 2 + 10 * (b - 0.3) ** 2 + (a - 3) ** 2)

    return model, log_likelihood


def _lowest_optimum(log_likelihood, name, a_starts, other_starts, other_bounds):
    """The optimum of `{"a": ., name: .}` in float64, the lowest of scipy's L-BFGS-B from a grid of
    starts (`a` within (-5, 10))."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    negative = lambda p: -log_likelihood({"a": p[0], name: p[1]}, xp=np)  # noqa: E731
    return min(
        (
            scipy_optimize.minimize(negative, [a, other], bounds=[(-5, 10), other_bounds], method="L-BFGS-B")
            for a in a_starts
            for other in other_starts
        ),
        key=lambda found: found.fun,
    )


def test_entries_trapped_at_a_flat_bound_are_released_and_the_fit_reaches_the_optimum():
    model, log_likelihood = trapped_model_and_likelihood()
    loop = sl.FitLoop(sl.LogDensity(model, log_likelihood, jacobian=False), max_steps=500)
    state = sl.infer.run(loop.restart, loop.advance, loop.can_step, loop.stretch_over, loop.init(), 500)
    # the first run converged with b at its bound (u far below -100): b was sent back to its start once
    np.testing.assert_array_equal(state.released, [False, True])
    assert float(state.kept_loss) > float(state.best_loss) + 1.0
    result = sl.fit(model, log_likelihood, progress=False)
    assert bool(result.converged) and not np.any(np.asarray(result.at_bounds))
    # the optimum, in float64 from many starts
    optimum = _lowest_optimum(log_likelihood, "b", np.linspace(0, 6, 7), (0.1, 0.5, 0.9), (0, 1))
    values = sl.get_values(result.model)
    np.testing.assert_allclose([values["['a']"], values["['b']"]], optimum.x, atol=1e-3)


def test_an_entry_vanished_at_a_one_sided_bound_is_released_and_the_fit_reaches_the_optimum():
    # `f` > 0 is pushed to 0 with an infinite slope while `a` is near its start: it goes to 1e-17,
    # where nothing brings it back (a galaxy's fluxes in the HSC demo went to 1e-25 this way)
    model = {
        "a": sl.Parameter(jnp.array(0.0)),
        "f": sl.Parameter(jnp.array(1.0), constraint=sl.constraints.positive()),
    }

    def log_likelihood(values, xp=jnp):
        a, f = values["a"], values["f"]
        return -(1e9 * xp.exp(-5 * a) * xp.sqrt(f) + 10 * (f - 2) ** 2 + (a - 3) ** 2)

    loop = sl.FitLoop(sl.LogDensity(model, log_likelihood, jacobian=False), max_steps=500)
    state = sl.infer.run(loop.restart, loop.advance, loop.can_step, loop.stretch_over, loop.init(), 500)
    np.testing.assert_array_equal(state.released, [False, True])
    np.testing.assert_allclose(float(state.kept_loss), 40.0, rtol=1e-3)  # the trap: f = 0, a = 3
    result = sl.fit(model, log_likelihood, progress=False)
    assert bool(result.converged)
    optimum = _lowest_optimum(log_likelihood, "f", np.linspace(0, 8, 9), (0.5, 1.0, 2.0), (0, 10))
    values = sl.get_values(result.model)
    np.testing.assert_allclose([values["['a']"], values["['f']"]], optimum.x, atol=1e-2)


def test_a_released_start_where_the_density_is_not_finite_is_given_up():
    # the same trap, with the log density NaN where b is back at its start once a has moved: the fit
    # gives that start up and returns the optimum it had, converged, with nothing flagged non-finite
    model, trapped = trapped_model_and_likelihood()

    def log_likelihood(values):
        hole = (jnp.abs(values["b"] - 0.5) < 0.05) & (values["a"] > 2.0)
        return jnp.where(hole, jnp.nan, trapped(values))

    loop = sl.FitLoop(sl.LogDensity(model, log_likelihood, jacobian=False), max_steps=500)
    state = sl.infer.run(loop.restart, loop.advance, loop.can_step, loop.stretch_over, loop.init(), 500)
    assert bool(state.released[1]) and np.all(np.isfinite(np.asarray(state.scales)))
    result = loop.result(state)
    assert bool(result.converged) and not np.any(np.asarray(result.nonfinite))
    assert np.isfinite(float(log_likelihood(sl.resolve(result.model))))
    np.testing.assert_array_equal(result.at_bounds, [False, True])


@pytest.mark.parametrize("progress", [pytest.param(False, marks=pytest.mark.slow), True])
def test_running_out_of_steps_far_from_the_optimum_warns_and_a_missing_source_shows_in_chi2(progress):
    psf = sl.GaussianPSF(1.2)
    frame = sl.Frame((1, 25, 25), psf=sl.GaussianPSF(0.7))
    with sl.Scene(frame) as pair:
        sl.Source(jnp.array([12.0, 12.0]), jnp.array([50.0]), sl.GaussianMorphology(1.5))
        sl.Source(jnp.array([4.0, 19.0]), jnp.array([40.0]), sl.GaussianMorphology(1.5))
    noise = 0.05
    clean = sl.Observation(np.zeros((1, 25, 25)), psf=psf).render(pair)
    observed = clean + noise * jax.random.normal(jax.random.key(2), clean.shape)
    observation = sl.Observation(observed, weights=np.full(observed.shape, 1 / noise**2), psf=psf)
    with pytest.warns(sl.FitWarning, match="did not converge in 3 steps") as caught:
        sl.fit(blob_scene(3.0), observation, max_steps=3, progress=progress)
    # only one of the two sources is modelled: the chi^2 says so
    assert any("chi^2 per data value" in str(w.message) for w in caught)


def test_several_starts_find_the_optimum_one_start_misses(caplog):
    # a narrow bump far from the start: from t0 = -6 the fit settles on a flat baseline (the peak
    # shrinks to nothing), while scattered starts land near the bump and climb it. The width is held:
    # free, it can grow until the curve reaches the bump, on some CPUs (Intel, not AMD, with the same
    # packages), which makes the single start's failure a matter of rounding
    truth = light_curve(t0=5.0, width=0.8, peak=0.3)
    observed = Data(truth(TIMES) + NOISE * jax.random.normal(jax.random.key(4), TIMES.shape))
    start = sl.fix(light_curve(t0=-6.0, width=0.8, peak=0.2), ["width"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sl.FitWarning)
        alone = sl.fit(start, observed, max_steps=300, progress=False)
        found = sl.fit_starts(start, observed, starts=12, scatter=4.0, max_steps=300, progress=False)
    assert abs(float(alone.model.t0.value) - 5.0) > 3.0
    assert abs(float(found.best.model.t0.value) - 5.0) < 0.1
    assert found.losses.shape == (12,) and found.values["t0"].shape == (12,)
    assert float(found.losses[found.best_index]) < -float(
        sl.LogDensity(start, observed, jacobian=False)(alone.x)
    )
    assert found.best_index != 0 and found.distinct() >= 2
    # start 0 is the model itself: its fit is the fit alone
    np.testing.assert_allclose(found.results[0].x, alone.x, rtol=1e-4, atol=1e-4)
    # the best model keeps the identities of the model it started from
    assert found.best.model.t0.token == start.t0.token
    # a second call, same structure: nothing compiles
    import logging

    with caplog.at_level(logging.WARNING), jax.log_compiles(), warnings.catch_warnings():
        warnings.simplefilter("ignore", sl.FitWarning)
        again = sl.fix(light_curve(t0=-5.0), ["width"])
        sl.fit_starts(again, observed, starts=12, scatter=4.0, max_steps=300, progress=False)
    assert [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()] == []


def test_starts_given_as_models_must_match():
    observed = data()
    with pytest.raises(ValueError, match="start 1 has other free parameters"):
        sl.fit_starts(light_curve(), observed, starts=[light_curve(), sl.fix(light_curve(), "width")])


SMALL_FRAME = sl.Frame((1, 25, 25), psf=sl.GaussianPSF(0.7))


def observed_galaxy_at(center) -> sl.Observation:
    """A Gaussian galaxy (sigma 1.5, flux 50) at `center` on a 25 x 25 frame, PSF sigma 1.2, noise 0.05."""
    psf, noise = sl.GaussianPSF(1.2), 0.05
    with sl.Scene(SMALL_FRAME) as truth:
        sl.Source(jnp.asarray(center), jnp.array([50.0]), sl.GaussianMorphology(1.5))
    clean = sl.Observation(np.zeros((1, 25, 25)), psf=psf).render(truth)
    data = clean + noise * jax.random.normal(jax.random.key(4), clean.shape)
    return sl.Observation(data, weights=np.full(data.shape, 1 / noise**2), psf=psf)


def test_a_value_pulled_far_from_its_normal_prior_is_reported_and_named():
    # a galaxy 6 px from where its centre's prior (1 px wide) says it is: the bright data win, and the
    # fit says the centre ended 6 standard deviations from its prior
    def scene_with_prior():
        detection = jnp.array([12.0, 12.0])
        with sl.Scene(SMALL_FRAME) as scene:
            sl.Source(
                sl.Parameter(detection, prior=nd.Normal(detection, 1.0).to_event(1)),
                sl.Parameter(jnp.array([50.0]), constraint=sl.constraints.positive()),
                sl.GaussianMorphology(sl.Parameter(1.5, constraint=sl.constraints.positive())),
            )
        return scene

    with pytest.warns(
        sl.FitWarning, match=r"Normal prior: sources\[0\]\.center = \[1[12]\.\d+, 18\."
    ) as caught:
        result = sl.fit(scene_with_prior(), observed_galaxy_at([12.0, 18.0]), max_steps=300, progress=False)
    assert "(prior centre [12.0, 12.0], 6.0" in str(caught[0].message)
    assert float(sl.get_values(result.model)["sources[0].center"][1]) == pytest.approx(18.0, abs=0.1)
    # two standard deviations away is not reported
    with warnings.catch_warnings():
        warnings.simplefilter("error", sl.FitWarning)
        sl.fit(scene_with_prior(), observed_galaxy_at([12.0, 14.0]), max_steps=300, progress=False)


def test_a_source_pushed_off_the_frame_is_reported_and_named():
    # a source of fixed flux where the data hold nothing: the fit moves it off the frame, where its
    # light no longer lands on the data (and where, far enough, it would wrap around)
    observation = observed_galaxy_at([12.0, 12.0])
    with sl.Scene(SMALL_FRAME) as scene:
        sl.Source(
            sl.Parameter(jnp.array([12.0, 12.0])),
            sl.Parameter(jnp.array([50.0]), constraint=sl.constraints.positive()),
            sl.GaussianMorphology(1.5),
        )
        sl.Source(sl.Parameter(jnp.array([2.0, 3.0])), jnp.array([20.0]), sl.GaussianMorphology(1.0))
    with pytest.warns(sl.FitWarning, match=r"centred off the model frame: sources\[1\]\.center = ") as caught:
        result = sl.fit(scene, observation, max_steps=300, progress=False)
    assert "sources[0]" not in str([w.message for w in caught if "off the model frame" in str(w.message)])
    assert not SMALL_FRAME.contains(sl.get_values(result.model)["sources[1].center"])


def stablehlo_lines(function, *args):
    return jax.jit(function).lower(*args).as_text().count("\n")


def test_a_stretch_measures_the_curvature_by_differences_of_the_gradient():
    # the scales a fit uses equal those of exact Hessian-vector products to a few per cent, and the
    # program that measures them holds the gradient's code only
    density = sl.LogDensity(light_curve(), data(), jacobian=False)
    x = density.x0 + 0.3
    exact = sl.preconditioner(density, x)
    value, gradient, scales = _gradient_and_scales(density, x, None, exact)
    np.testing.assert_allclose(value, -density(x), rtol=1e-6)
    np.testing.assert_allclose(gradient, jax.grad(lambda v: -density(v))(x), rtol=1e-5)
    np.testing.assert_allclose(scales, exact, rtol=0.005)
    # from unit lengths (a fit's first stretch) too, less closely
    np.testing.assert_allclose(_gradient_and_scales(density, x, None, jnp.ones_like(x))[2], exact, rtol=0.05)
    # the program of a stretch's start, on a scene (where the model's code, not the loop's, is most of it)
    scene = blob_scene(1.0)
    density = sl.LogDensity(scene, observed_galaxy_at([12.0, 12.0]), jacobian=False)
    loop = sl.FitLoop(density)
    restart = stablehlo_lines(loop.restart, loop.init())
    products = stablehlo_lines(lambda v: sl.preconditioner(density, v), density.x0)
    plain = stablehlo_lines(jax.grad(lambda v: -density(v)), density.x0)
    print(f"StableHLO lines: restart {restart}, exact products {products}, gradient {plain}")
    assert restart < products


def test_a_result_reports_the_gradient_at_its_best_point_mid_fit():
    # the result takes the gradient from the step that reached the best point: it must be the gradient
    # there, in the stretch's scaled coordinates, also far from the optimum
    density = sl.LogDensity(light_curve(), data(), jacobian=False)
    loop = sl.FitLoop(density, max_steps=300, stretch_steps=4)
    step = jax.jit(loop.step)
    state = loop.init(jax.random.key(0))
    for _ in range(6):  # into the second stretch
        state = step(state)
    result = loop.result(state)
    direct = jax.grad(lambda v: -density(v))(state.best_x) * state.scales
    assert float(result.gradient) > 1.0
    np.testing.assert_allclose(float(result.gradient), float(jnp.max(jnp.abs(direct))), rtol=1e-4)

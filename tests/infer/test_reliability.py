"""Reliability of fit, sample, laplace and fit_many: clear errors for a model with nothing free and for a
start that is not finite, and nothing lost when a run is interrupted (Ctrl-C)."""

import importlib
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from core_models import light_curve  # noqa: E402

TIMES = jnp.linspace(-10.0, 10.0, 41)
NOISE = 0.01


def simulated(key=1, **truth):
    curve = light_curve(**truth)
    return curve(TIMES) + NOISE * jax.random.normal(jax.random.key(key), TIMES.shape)


class Data(sl.Module):
    """A Gaussian likelihood holding its data as a leaf (so that blends of it can be stacked)."""

    values: jax.Array

    def log_likelihood(self, curve):
        return -0.5 * jnp.sum(((curve(TIMES) - self.values) / NOISE) ** 2)


def nothing_free():
    curve = light_curve()
    return sl.fix(curve, lambda c: (c.t0, c.width, c.peak))


# -- a model with no free parameters ------------------------------------------------------------------

NO_FREE = r"the model \(LightCurve\) has no free parameters.*sl\.free"


def test_fit_of_a_model_with_nothing_free_is_an_error_naming_its_type():
    data = Data(simulated())
    with pytest.raises(ValueError, match="fit: " + NO_FREE):
        sl.fit(nothing_free(), data, progress=False)
    with pytest.raises(ValueError, match="fit: " + NO_FREE):
        sl.fit(nothing_free(), data)
    # under jit too: the size of the flat vector is known while tracing
    with pytest.raises(ValueError, match="fit: " + NO_FREE):
        jax.jit(lambda values: sl.fit(nothing_free(), Data(values), progress=False).x)(data.values)


def test_laplace_of_a_model_with_nothing_free_is_an_error_naming_its_type():
    data = Data(simulated())
    for fit in (True, False):
        with pytest.raises(ValueError, match="laplace: " + NO_FREE):
            sl.laplace(nothing_free(), data, fit=fit)


def test_sample_of_a_model_with_nothing_free_is_an_error_naming_its_type():
    with pytest.raises(
        ValueError,
        match="sample: " + NO_FREE.replace("parameters", "parameters, so there is nothing to sample"),
    ):
        sl.sample(nothing_free(), Data(simulated()), key=jax.random.key(0), num_warmup=10, num_samples=10)


def test_fit_many_of_models_with_nothing_free_is_an_error_naming_their_type():
    with pytest.raises(ValueError, match="fit_many: " + NO_FREE):
        sl.fit_many([nothing_free()] * 2, [Data(simulated(1)), Data(simulated(2))])


# -- a start where the log density is not finite ------------------------------------------------------


def broken_at_start(data):
    """The likelihood of `data` plus a term that is NaN wherever the peak is positive (everywhere)."""

    def log_likelihood(curve):
        return Data(data).log_likelihood(curve) + jnp.log(-curve.peak)

    return log_likelihood


@pytest.mark.parametrize("progress", [False, True])
def test_fit_called_eagerly_on_a_non_finite_start_raises_naming_the_term(progress):
    with pytest.raises(FloatingPointError, match="not finite at the starting point: likelihood$"):
        sl.fit(light_curve(), broken_at_start(simulated()), progress=progress)


def test_fit_under_jit_on_a_non_finite_start_returns_a_result_flagging_it():
    data = simulated()

    @jax.jit
    def fitted(values):
        return sl.fit(light_curve(), broken_at_start(values), max_steps=50, progress=False)

    result = fitted(data)
    assert int(result.steps) == 1 and not bool(result.converged)
    # the loss alone is NaN, its gradient finite: every entry is flagged
    assert np.asarray(result.nonfinite).tolist() == [True, True, True]
    # the model is the start, untouched
    np.testing.assert_allclose(result.x, sl.LogDensity(light_curve(), Data(data), jacobian=False).x0)


def test_fit_many_flags_the_blend_whose_start_is_not_finite():
    class Broken(sl.Module):
        values: jax.Array
        sign: jax.Array  # -1: the extra term is finite; +1: it is NaN

        def log_likelihood(self, curve):
            return Data(self.values).log_likelihood(curve) + jnp.log(-self.sign * curve.peak)

    data = simulated()
    results = sl.fit_many(
        [light_curve()] * 2, [Broken(data, jnp.asarray(-1.0)), Broken(data, jnp.asarray(1.0))], max_steps=50
    )
    assert not np.any(np.asarray(results[0].nonfinite))
    assert np.all(np.asarray(results[1].nonfinite)) and int(results[1].steps) == 1


# -- Ctrl-C -------------------------------------------------------------------------------------------


def interrupt_after(monkeypatch, module_name, function_name, calls):
    """Make `module.function` raise `KeyboardInterrupt` (as Ctrl-C does) when called once more after
    `calls` calls that run as usual; returns the list of calls made."""
    module = importlib.import_module(module_name)
    original = getattr(module, function_name)
    made = []

    def interrupted(*args, **kwargs):
        made.append(None)
        if len(made) > calls:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(module, function_name, interrupted)
    return made


def test_fit_interrupted_returns_the_best_model_so_far_flagged(monkeypatch):
    data = Data(simulated(t0=-1.0, width=3.0, peak=0.3))
    interrupt_after(monkeypatch, "scarlet_like.infer.optimize", "_fit_segment", calls=2)
    # five steps a stretch: far from converged after two (this fit converges in about 20 steps in
    # stretches of 10)
    with pytest.warns(sl.FitWarning, match=r"interrupted \(KeyboardInterrupt\) after 10 steps"):
        result = sl.fit(light_curve(), data, max_steps=500, chunks=100, progress=True)
    assert bool(result.interrupted) and not bool(result.converged)
    assert int(result.steps) == 10
    # the best point evaluated: its loss is the lowest of the steps taken
    history = np.asarray(result.loss)[:10]
    density = sl.LogDensity(light_curve(), data, jacobian=False)
    np.testing.assert_allclose(-float(density(result.x)), np.nanmin(history), rtol=1e-6)
    assert np.allclose(sl.resolve(result.model)(TIMES), sl.resolve(density.model(result.x))(TIMES))


def test_fit_not_interrupted_is_not_flagged():
    result = sl.fit(
        light_curve(), Data(simulated(t0=-1.0, width=3.0, peak=0.3)), max_steps=300, progress=False
    )
    assert not bool(result.interrupted) and bool(result.converged)


SAMPLER = "scarlet_like.infer.sample"


def sample_light_curve(num_warmup: int, num_chains: int, progress: bool) -> sl.Posterior:
    """NUTS on the light curve: `num_warmup` steps, then draws up to 60 steps in all, in 6 chunks."""
    return sl.sample(
        light_curve(),
        Data(simulated()),
        key=jax.random.key(0),
        num_warmup=num_warmup,
        num_samples=60 - num_warmup,
        num_chains=num_chains,
        chunks=6,
        progress=progress,
    )


def test_sample_interrupted_returns_the_draws_so_far_flagged(monkeypatch):
    # 20 warmup and 40 draws in chunks of 10 steps: interrupted after 4 chunks, 20 draws are kept
    interrupt_after(monkeypatch, SAMPLER, "_advance", calls=4)
    with pytest.warns(RuntimeWarning, match=r"interrupted \(KeyboardInterrupt\) after 20 of 40 draws"):
        posterior = sample_light_curve(num_warmup=20, num_chains=2, progress=True)
    assert posterior.interrupted
    assert posterior.samples.shape == (2, 20, 3) and posterior.log_density.shape == (2, 20)
    assert np.all(np.isfinite(np.asarray(posterior.samples)))
    assert np.all(np.isfinite(np.asarray(posterior.step_size)))
    summary = posterior.summary()
    assert "2 chains x 20 draws" in summary and "interrupted" in summary
    assert np.all(np.isfinite([row["mean"] for row in posterior.summary(as_dict=True).values()]))


def test_sample_interrupted_during_warmup_raises_again(monkeypatch):
    interrupt_after(monkeypatch, SAMPLER, "_advance", calls=1)
    with pytest.warns(RuntimeWarning, match="before any draw was kept"), pytest.raises(KeyboardInterrupt):
        sample_light_curve(num_warmup=20, num_chains=2, progress=False)


@pytest.mark.slow
def test_interrupted_posterior_keeps_its_flag_when_saved(tmp_path, monkeypatch):
    interrupt_after(monkeypatch, SAMPLER, "_advance", calls=3)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        posterior = sample_light_curve(num_warmup=10, num_chains=1, progress=False)
    posterior.save(tmp_path / "draws.npz")
    loaded = sl.Posterior.load(tmp_path / "draws.npz", like=light_curve())
    assert loaded.interrupted and loaded.samples.shape == (1, 20, 3)


def blends(count):
    return [light_curve()] * count, [Data(simulated(key)) for key in range(count)]


@pytest.mark.parametrize("unstack_results", [True, False])
def test_fit_many_interrupted_returns_the_finished_blends(monkeypatch, unstack_results):
    interrupt_after(monkeypatch, "scarlet_like.infer.batch", "_fit_batch", calls=2)
    models, likelihoods = blends(6)
    with pytest.warns(sl.FitWarning, match="first 4 of 6 blends"):
        results = sl.fit_many(
            models, likelihoods, batch_size=2, max_steps=300, progress=True, unstack_results=unstack_results
        )
    if unstack_results:
        assert len(results) == 4
        fitted = [results[i].model for i in range(4)]
    else:
        assert results.steps.shape == (4,) and results.model.size == 4
        fitted = sl.unstack(results.model)
    alone = sl.fit(models[3], likelihoods[3], max_steps=300, progress=False)
    np.testing.assert_allclose(sl.get_values(fitted[3])["t0"], sl.get_values(alone.model)["t0"], rtol=1e-3)


def test_fit_many_interrupted_before_a_batch_is_done_raises_again(monkeypatch):
    interrupt_after(monkeypatch, "scarlet_like.infer.batch", "_fit_batch", calls=0)
    with pytest.warns(sl.FitWarning, match="nothing to return"), pytest.raises(KeyboardInterrupt):
        sl.fit_many(*blends(2), max_steps=300)


class AdaptingCurve(sl.Module):
    """A light curve with an `adapted` method, as scenes have: `fit` drives it a stretch at a time."""

    t0: sl.Parameter
    width: sl.Parameter
    peak: sl.Parameter

    def __call__(self, t):
        return self.peak * jnp.exp(-0.5 * ((t - self.t0) / self.width) ** 2)

    @sl.keep_parameters
    def adapted(self):
        return self


def test_laplace_interrupted_while_fitting_the_mode_raises_again(monkeypatch):
    curve = light_curve()
    adapting = AdaptingCurve(curve.t0, curve.width, curve.peak)
    interrupt_after(monkeypatch, "scarlet_like.infer.optimize", "_fit_segment", calls=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sl.FitWarning)  # the fit's "returning the best model" is not shown
        with pytest.raises(KeyboardInterrupt, match="laplace: interrupted while fitting the mode"):
            sl.laplace(adapting, Data(simulated()))


@pytest.mark.slow
def test_fit_starts_interrupted_returns_the_best_of_the_starts_fitted(monkeypatch):
    # with a bar on a CPU, the starts are fitted one per compiled call: interrupted after two
    interrupt_after(monkeypatch, "scarlet_like.infer.batch", "_fit_batch", calls=2)
    data = Data(simulated(t0=-1.0, width=3.0, peak=0.3))
    with pytest.warns(sl.FitWarning, match=r"fit_starts was interrupted \(KeyboardInterrupt\) after 2 of 4"):
        found = sl.fit_starts(light_curve(), data, starts=4, max_steps=300, progress=True)
    assert len(found.results) == 2 and found.losses.shape == (2,) and found.best_index in (0, 1)
    assert abs(float(sl.get_values(found.best.model)["t0"]) + 1.0) < 0.1

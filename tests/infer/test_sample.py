"""sl.sample: NUTS against analytic posteriors, through every constraint, compile-once, saving, checks of
the input, numpyro interop, sharded chains."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from blackjax.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS
from scipy import stats

import scarlet_like as sl
from scarlet_like.core import canonical_tokens

TIMES = jnp.linspace(-1.0, 1.0, 12)
NOISE = 0.4
PRIOR_SCALE = 1.5
WARMUP, DRAWS, CHAINS = 300, 500, 4


class Polynomial(sl.Module):
    coefficients: sl.Parameter  # (3,): constant, linear, quadratic

    def __call__(self, t):
        return self.coefficients[0] + self.coefficients[1] * t + self.coefficients[2] * t**2


class Data(sl.Module):
    """A Gaussian likelihood holding its data as a leaf: new data, same compiled sampler."""

    values: jax.Array

    def log_likelihood(self, curve):
        return jnp.sum(nd.Normal(curve(TIMES), NOISE).log_prob(self.values))


def polynomial():
    return Polynomial(sl.Parameter(jnp.zeros(3), prior=nd.Normal(0.0, PRIOR_SCALE)))


def simulated(key):
    truth = jnp.array([0.5, -1.0, 0.8])
    return Polynomial(truth)(TIMES) + NOISE * jax.random.normal(jax.random.key(key), TIMES.shape)


def analytic_posterior(data):
    """Mean and covariance of the conjugate Gaussian posterior of the coefficients."""
    design = np.stack([np.ones(12), np.asarray(TIMES), np.asarray(TIMES) ** 2], axis=1).astype(np.float64)
    precision = design.T @ design / NOISE**2 + np.eye(3) / PRIOR_SCALE**2
    covariance = np.linalg.inv(precision)
    return covariance @ design.T @ np.asarray(data, np.float64) / NOISE**2, covariance


@pytest.fixture(scope="module")
def linear():
    data = simulated(1)
    posterior = sl.sample(
        polynomial(), Data(data), key=jax.random.key(0), num_warmup=WARMUP, num_samples=DRAWS, progress=False
    )
    return data, posterior


def test_reproduces_the_analytic_gaussian_posterior(linear):
    data, posterior = linear
    mean, covariance = analytic_posterior(data)
    draws = np.asarray(posterior.values["coefficients"], np.float64)
    assert draws.shape == (CHAINS, DRAWS, 3)
    assert posterior.samples.shape == (CHAINS, DRAWS, 3)
    table = posterior.summary(as_dict=True)
    for i in range(3):
        row = table[f"coefficients[{i}]"]
        sd = np.sqrt(covariance[i, i])
        assert abs(row["mean"] - mean[i]) < 4 * sd / np.sqrt(row["ess_bulk"]), (i, row, mean[i])
        assert abs(row["sd"] / sd - 1) < 0.1, (i, row["sd"], sd)
        assert row["ess_bulk"] > 500 and row["ess_tail"] > 300
        assert 0.99 < row["r_hat"] < 1.02
    # the covariances too (the quadratic and constant terms are strongly anti-correlated), each within
    # 4 standard errors of the draws' own estimate: the error of a covariance of draws is set by the
    # effective sample size of the products (x_i - m_i)(x_j - m_j), lower than that of the draws (here
    # 700-1200 against about 2000), so a fixed 10 % failed by chance (13 % on one CPU, 2.6 standard
    # errors); over six seeds the largest of the six entries' errors was 0.9-2.6 standard errors
    centred = draws - draws.reshape(-1, 3).mean(axis=0)
    products = (centred[..., :, None] * centred[..., None, :]).reshape(CHAINS, DRAWS, 9)
    ess = np.asarray(effective_sample_size(products), np.float64).reshape(3, 3)
    empirical = products.reshape(-1, 3, 3).mean(axis=0)
    standard_error = products.reshape(-1, 3, 3).std(axis=0) / np.sqrt(ess)
    assert np.all(np.abs(empirical - covariance) < 4 * standard_error), (
        empirical,
        covariance,
        standard_error,
    )
    assert int(posterior.divergences.sum()) == 0
    assert posterior.divergences.shape == (CHAINS, DRAWS)
    # the log density recorded is that of the draws
    density = sl.LogDensity(polynomial(), Data(data))
    np.testing.assert_allclose(
        posterior.log_density[1, :5], jax.jit(jax.vmap(density))(posterior.samples[1, :5]), rtol=1e-5
    )


def test_summary_table_and_model_at(linear):
    _, posterior = linear
    text = posterior.summary()
    for name in ("coefficients[0]", "coefficients[1]", "coefficients[2]", "ess_bulk", "r_hat"):
        assert name in text
    assert "4 chains x 500 draws" in text and "0 divergences" in text
    assert posterior.names == ("coefficients[0]", "coefficients[1]", "coefficients[2]")
    assert posterior.parameter_names == ("coefficients",)
    model = posterior.model_at(2, 7)
    np.testing.assert_array_equal(
        sl.get_values(model)["coefficients"], posterior.values["coefficients"][2, 7]
    )
    assert np.all(np.asarray(posterior.bfmi()) > 0.3)


def test_save_and_load_round_trip_exactly(linear, tmp_path):
    _, posterior = linear
    path = tmp_path / "posterior.npz"
    posterior.save(path)
    loaded = sl.Posterior.load(path, polynomial())
    for a, b in zip(jax.tree_util.tree_leaves(posterior), jax.tree_util.tree_leaves(loaded), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    # `like` is a model built anew: its Parameters have identities of their own, so the structures
    # agree once identities are numbered canonically
    canonical = lambda tree: jax.tree_util.tree_structure(canonical_tokens(tree)[0])  # noqa: E731
    assert canonical(posterior) == canonical(loaded)
    assert loaded.summary() == posterior.summary()
    other = Polynomial(sl.Parameter(jnp.zeros(4), prior=nd.Normal(0.0, 1.0)))
    with pytest.raises(ValueError, match="coefficients"):
        sl.Posterior.load(path, other)


def test_to_arviz(linear, monkeypatch):
    _, posterior = linear
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "arviz", None)  # as if not installed
        with pytest.raises(ImportError, match="pip install arviz"):
            posterior.to_arviz()
    arviz = pytest.importorskip("arviz")
    data = posterior.to_arviz()
    assert isinstance(data, arviz.InferenceData)
    assert data.posterior["coefficients"].shape == (CHAINS, DRAWS, 3)
    assert int(data.sample_stats["diverging"].sum()) == 0


def test_second_sample_does_not_recompile(linear, caplog):
    # a new data set of the same shapes: the chunk of steps (and the start) are reused as compiled
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        posterior = sl.sample(
            polynomial(), Data(simulated(2)), key=jax.random.key(5), num_warmup=WARMUP, num_samples=DRAWS
        )
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not [m for m in compiles if "_advance" in m or "_start" in m], compiles
    mean, _ = analytic_posterior(simulated(2))
    np.testing.assert_allclose(posterior.values["coefficients"].mean(axis=(0, 1)), mean, atol=0.1)


def test_a_first_call_compiles_one_program_of_the_sampler(caplog):
    # The chains' keys and blank states are made inside the compiled stretch of steps (as small programs
    # of their own they took 0.8 s of a 10 s first call on eight schools), and every stretch of a call,
    # the first included, runs the same program. New shapes (37 draws): none of it is compiled yet.
    data = Data(simulated(3))
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        posterior = sl.sample(
            polynomial(), data, key=jax.random.key(7), num_warmup=30, num_samples=37, chunks=4, progress=False
        )
    compiles = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("Compiling")]
    assert compiles.count("jit(_advance)") == 1, compiles
    assert not [name for name in compiles if "split" in name or "_blank" in name], compiles
    assert np.isfinite(np.asarray(posterior.samples)).all()


def test_sampling_a_fitted_model_compiles_one_program_of_the_sampler(caplog):
    # `sl.fit`'s programs are stored ones (`scarlet_like/_programs.py`): their results must be arrays
    # as `jit` returns them (not committed to a device), or the first stretch, run with the fitted
    # model's arrays, and the next ones, run with the sampler's own, are two programs (24 s more for
    # the quickstart's `sl.sample`)
    fitted = sl.fit(polynomial(), Data(simulated(4)), max_steps=20, progress=False).model
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        posterior = sl.sample(
            fitted,
            Data(simulated(4)),
            key=jax.random.key(8),
            num_warmup=20,
            num_samples=23,
            chunks=3,
            progress=False,
        )
    compiles = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("Compiling")]
    assert compiles.count("jit(_advance)") == 1, compiles
    assert np.isfinite(np.asarray(posterior.samples)).all()


def test_starts_where_asked(linear):
    data, _ = linear
    mean, covariance = analytic_posterior(data)
    # one start per chain, used as given: draws of the posterior itself
    starts = jnp.asarray(np.random.default_rng(0).multivariate_normal(mean, covariance, CHAINS), jnp.float32)
    posterior = sl.sample(
        polynomial(),
        Data(data),
        key=jax.random.key(3),
        init=starts,
        num_warmup=WARMUP,
        num_samples=DRAWS,
        progress=False,
    )
    np.testing.assert_allclose(posterior.values["coefficients"].mean(axis=(0, 1)), mean, atol=0.1)
    # a model as the start
    start = Polynomial(sl.Parameter(jnp.asarray(mean, jnp.float32), prior=nd.Normal(0.0, PRIOR_SCALE)))
    posterior = sl.sample(
        polynomial(),
        Data(data),
        key=jax.random.key(3),
        init=start,
        num_warmup=WARMUP,
        num_samples=DRAWS,
        progress=False,
    )
    np.testing.assert_allclose(posterior.values["coefficients"].mean(axis=(0, 1)), mean, atol=0.1)
    with pytest.raises(ValueError, match="init"):
        sl.sample(polynomial(), Data(data), key=jax.random.key(3), init=jnp.zeros(5))
    with pytest.raises(ValueError, match="coefficients"):
        sl.sample(
            polynomial(), Data(data), key=jax.random.key(3), init=Polynomial(sl.Parameter(jnp.zeros(2)))
        )


class Shapes(sl.Module):
    scale: sl.Parameter
    fraction: sl.Parameter
    width: sl.Parameter
    shear: sl.Parameter
    weights: sl.Parameter


def test_prior_only_sampling_reproduces_the_priors_through_every_constraint():
    """With no data the posterior is the prior: this checks each constraint's log|det J|."""
    model = Shapes(
        scale=sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.3, 0.5)),
        fraction=sl.Parameter(0.3, constraint=sl.constraints.interval(0.0, 1.0), prior=nd.Beta(2.0, 5.0)),
        width=sl.Parameter(2.0, constraint=sl.constraints.interval(1.0, 3.0)),  # no prior: uniform on (1, 3)
        shear=sl.Parameter(
            jnp.array([0.1, -0.2]), constraint=sl.constraints.unit_disk()
        ),  # uniform on the disk
        # no prior: uniform on the simplex
        weights=sl.Parameter(jnp.array([0.2, 0.3, 0.5]), constraint=sl.constraints.simplex()),
    )
    posterior = sl.sample(
        model,
        lambda m: jnp.zeros(()),
        key=jax.random.key(2),
        num_warmup=WARMUP,
        num_samples=DRAWS,
        progress=False,
    )
    values = {k: np.asarray(v, np.float64) for k, v in posterior.values.items()}
    table = posterior.summary(as_dict=True)

    def check(name, draws, distribution):
        # moments within Monte-Carlo error, and the whole distribution by a KS test on draws thinned to
        # about one per effective sample
        ess = min(table[name]["ess_bulk"], table[name]["ess_tail"])
        assert ess > 300, (name, ess)
        assert abs(draws.mean() - distribution.mean()) < 4.5 * distribution.std() / np.sqrt(ess), name
        assert abs(draws.std() / distribution.std() - 1) < 0.1, name
        thinned = draws.reshape(-1)[:: max(1, int(draws.size / ess))]
        assert stats.kstest(thinned, distribution.cdf).pvalue > 1e-3, name

    check("scale", values["scale"], stats.lognorm(s=0.5, scale=np.exp(0.3)))
    check("fraction", values["fraction"], stats.beta(2, 5))
    check("width", values["width"], stats.uniform(1.0, 2.0))
    # uniform on the disk: the squared radius is uniform on (0, 1), the angle uniform
    radius2 = np.sum(values["shear"] ** 2, axis=-1)
    assert radius2.max() < 1.0
    table["radius2"] = {k: table["shear[0]"][k] for k in ("ess_bulk", "ess_tail")}
    check("radius2", radius2, stats.uniform(0.0, 1.0))
    angle = np.arctan2(values["shear"][..., 1], values["shear"][..., 0])
    assert stats.kstest(angle.reshape(-1)[::10], stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
    np.testing.assert_allclose(values["weights"].sum(axis=-1), 1.0, rtol=1e-5)
    for i in range(3):
        check(f"weights[{i}]", values["weights"][..., i], stats.beta(1.0, 2.0))


def test_improper_direction_warns_naming_the_parameters():
    model = Shapes(
        scale=sl.Parameter(1.0, constraint=sl.constraints.positive()),
        fraction=sl.Parameter(0.3, constraint=sl.constraints.interval(0.0, 1.0)),
        width=sl.Parameter(2.0),
        shear=sl.Parameter(jnp.zeros(2), constraint=sl.constraints.unit_disk()),
        weights=sl.Parameter(
            jnp.array([2.0, 3.0]), constraint=sl.constraints.greater_than(1.0), prior=nd.Normal(2.0, 1.0)
        ),
    )
    # turned into an error to stop before any compilation
    with warnings.catch_warnings():
        warnings.simplefilter("error", sl.ImproperPriorWarning)
        with pytest.raises(sl.ImproperPriorWarning, match="scale, width") as caught:
            sl.sample(model, lambda m: jnp.zeros(()), key=jax.random.key(0))
    assert "fraction" not in str(caught.value) and "shear" not in str(caught.value)
    assert "weights" not in str(caught.value)
    assert issubclass(sl.ImproperPriorWarning, UserWarning)


@pytest.mark.filterwarnings("ignore:Out-of-support values")  # numpyro, on the NaN data
def test_non_finite_start_is_an_error_naming_the_terms(linear):
    broken = Data(jnp.full(TIMES.shape, jnp.nan))  # same shapes as in `linear`: nothing new to compile
    with pytest.raises(FloatingPointError, match="not finite at the starting point: likelihood$"):
        sl.sample(polynomial(), broken, key=jax.random.key(0), num_warmup=WARMUP, num_samples=DRAWS)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_samples"):
        sl.sample(polynomial(), Data(simulated(1)), key=jax.random.key(0), num_samples=0)
    with pytest.raises(ValueError, match="target_acceptance"):
        sl.sample(polynomial(), Data(simulated(1)), key=jax.random.key(0), target_acceptance=1.5)
    with pytest.raises(ValueError, match="scalar"):
        sl.sample(polynomial(), lambda curve: curve(TIMES), key=jax.random.key(0))


def test_numpyro_nuts_on_the_same_density_agrees(linear):
    data, posterior = linear
    density = sl.LogDensity(polynomial(), Data(data))
    with jax.numpy_dtype_promotion("standard"):
        mcmc = MCMC(
            NUTS(potential_fn=lambda x: -density(x)), num_warmup=300, num_samples=1500, progress_bar=False
        )
        mcmc.run(jax.random.key(4), init_params=density.x0)
    draws = mcmc.get_samples()
    assert draws.shape == (1500, 3)
    theirs = np.asarray(jax.vmap(lambda x: sl.get_values(density.model(x))["coefficients"])(draws))
    ours = np.asarray(posterior.values["coefficients"]).reshape(-1, 3)
    _, covariance = analytic_posterior(data)
    sd = np.sqrt(np.diag(covariance))
    # both are within a few Monte-Carlo errors of each other (at most ~1500 effective draws each)
    assert np.all(np.abs(theirs.mean(axis=0) - ours.mean(axis=0)) < 4 * sd * np.sqrt(2 / 1000))
    np.testing.assert_allclose(theirs.std(axis=0), ours.std(axis=0), rtol=0.1)


class Line(sl.Module):
    coefficients: sl.Parameter


def line_problem():
    """A straight line through 12 noisy points, with a Normal prior: the problem sampled on 4 devices
    (in a subprocess, which imports this) and on this process's one."""
    times = jnp.linspace(-1.0, 1.0, 12)
    data = 0.5 - times + 0.4 * jax.random.normal(jax.random.key(1), times.shape)
    model = Line(sl.Parameter(jnp.zeros(2), prior=nd.Normal(0.0, 1.5)))

    def log_likelihood(line):
        return jnp.sum(nd.Normal(line.coefficients[0] + line.coefficients[1] * times, 0.4).log_prob(data))

    return model, log_likelihood, times, data


SHARDED = textwrap.dedent(
    """
    import json, sys, jax, jax.numpy as jnp, numpy as np
    import scarlet_like as sl
    sys.path.insert(0, sys.argv[1])
    from test_sample import line_problem
    assert len(jax.devices()) == 4
    model, log_likelihood, times, data = line_problem()
    posterior = sl.sample(model, log_likelihood, key=jax.random.key(0), num_warmup=200, num_samples=300,
                          num_chains=4, progress=False)
    assert len(posterior.samples.sharding.device_set) == 4, posterior.samples.sharding
    design = np.stack([np.ones(12), np.asarray(times)], axis=1)
    covariance = np.linalg.inv(design.T @ design / 0.16 + np.eye(2) / 1.5**2)
    mean = covariance @ design.T @ np.asarray(data) / 0.16
    table = posterior.summary(as_dict=True)
    for i in range(2):
        row = table[f"coefficients[{i}]"]
        assert abs(row["mean"] - mean[i]) < 4 * row["mcse"] + 1e-3, (row, mean)
        assert abs(row["sd"] / np.sqrt(covariance[i, i]) - 1) < 0.15, row
        assert row["r_hat"] < 1.05, row
    # chains on different devices are different chains
    assert len({float(posterior.samples[c, -1, 0]) for c in range(4)}) == 4
    # the pure mode under `jit`: the same chains on the same devices, the same draws
    jitted = jax.jit(lambda key: sl.sample(model, log_likelihood, key=key, num_warmup=200, num_samples=300,
                                           num_chains=4, progress=False))(jax.random.key(0))
    assert len(jitted.samples.sharding.device_set) == 4, jitted.samples.sharding
    np.testing.assert_allclose(jitted.samples, posterior.samples, atol=1e-3)
    # one chain after the other on each device: the draws the test compares with one device's
    sequential = sl.sample(model, log_likelihood, key=jax.random.key(0), num_warmup=200, num_samples=300,
                           num_chains=4, progress=False, chain_method="sequential")
    assert len(sequential.samples.sharding.device_set) == 4, sequential.samples.sharding
    print(json.dumps(np.asarray(sequential.samples).tolist()))
    print("ok")
    """
)


@pytest.fixture(scope="module", autouse=True)
def sharded_run(request):
    """A separate process with 4 host devices, started with this module so that it runs alongside the
    other tests (when its test is selected)."""
    if not any(item.name == "test_chains_sharded_over_devices" for item in request.session.items):
        yield None
        return
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    process = subprocess.Popen(
        [sys.executable, "-c", SHARDED, os.path.dirname(__file__)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_chains_sharded_over_devices(sharded_run):
    stdout, stderr = sharded_run.communicate(timeout=600)
    assert sharded_run.returncode == 0 and stdout.strip().endswith("ok"), stderr[-3000:]
    # Same key, same draws to the bit on 4 devices and on this process's one, with sequential chains.
    # (Vectorized chains differ in the last bits after a few warmup steps, then entirely: measured
    # 1e-6 after 10 steps.)
    sharded = np.asarray(json.loads(stdout.strip().splitlines()[-2]), np.float32)
    model, log_likelihood, _, _ = line_problem()
    here = sl.sample(
        model,
        log_likelihood,
        key=jax.random.key(0),
        num_warmup=200,
        num_samples=300,
        num_chains=4,
        progress=False,
        chain_method="sequential",
    )
    assert len(here.samples.sharding.device_set) == 1
    np.testing.assert_array_equal(np.asarray(here.samples), sharded)


def test_chain_method_is_checked(unchecked):
    # the runtime type check refuses it first in the tests; users without it get the package's error
    with unchecked(), pytest.raises(ValueError, match="chain_method"):
        sl.sample(polynomial(), lambda model: 0.0, key=jax.random.key(0), chain_method="parallel")


class Location(sl.Module):
    mu: sl.Parameter
    sigma: sl.Parameter


class Observed(sl.Module):
    values: jax.Array

    def log_likelihood(self, model):
        return jnp.sum(nd.Normal(model.mu, model.sigma).log_prob(self.values))


@pytest.mark.slow
def test_simulation_based_calibration():
    """Draw a truth from the prior, data from the truth, a posterior from the data: the rank of the truth
    among (nearly independent) posterior draws is uniform when the sampler and every density term are
    right (Talts et al. 2018)."""
    model = Location(
        mu=sl.Parameter(0.0, prior=nd.Normal(0.0, 1.0)),
        sigma=sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.0, 0.5)),
    )
    replications, kept, bins = 400, 99, 10
    truths = sl.get_values(sl.sample_prior(model, jax.random.key(0), n=replications))
    keys = jax.random.split(jax.random.key(1), replications)
    ranks = {"mu": [], "sigma": []}
    for i in range(replications):
        mu, sigma = float(truths["mu"][i]), float(truths["sigma"][i])
        data = mu + sigma * jax.random.normal(keys[i], (8,))
        posterior = sl.sample(
            model, Observed(data), key=keys[i], num_warmup=200, num_samples=200, num_chains=2, progress=False
        )
        for name, truth in (("mu", mu), ("sigma", sigma)):
            # thinned to about one draw per effective sample
            draws = np.asarray(posterior.values[name]).reshape(-1)[::4][:kept]
            ranks[name].append(int(np.sum(draws < truth)))
    for name, values in ranks.items():
        counts = np.bincount(np.asarray(values) * bins // (kept + 1), minlength=bins)
        assert stats.chisquare(counts).pvalue > 1e-3, (name, counts)


# ------------------------------------------------------------------------------------------------
# Dense mass matrices, and starting from a Laplace approximation
# ------------------------------------------------------------------------------------------------

# A posterior known exactly: a Gaussian likelihood with correlations up to 0.95 and scales over three
# decades, times independent Normal priors (conjugate: the posterior is the Gaussian below).
SCALES = np.array([0.01, 1.0, 5.0])
CORRELATION = np.array([[1.0, 0.95, -0.6], [0.95, 1.0, -0.7], [-0.6, -0.7, 1.0]])
LIKELIHOOD_COVARIANCE = CORRELATION * np.outer(SCALES, SCALES)
PRIOR_SD = 10.0


class Vector(sl.Module):
    x: sl.Parameter


class Correlated(sl.Module):
    """`x` measured once with correlated Gaussian errors; the measurement is a leaf (new data, same code)."""

    measured: jax.Array

    def log_likelihood(self, model):
        covariance = jnp.asarray(LIKELIHOOD_COVARIANCE, jnp.float32)
        return nd.MultivariateNormal(self.measured, covariance).log_prob(model.x)


def vector():
    return Vector(sl.Parameter(jnp.zeros(3), prior=nd.Normal(0.0, PRIOR_SD)))


def correlated_posterior(measured):
    precision = np.linalg.inv(LIKELIHOOD_COVARIANCE) + np.eye(3) / PRIOR_SD**2
    covariance = np.linalg.inv(precision)
    return covariance @ np.linalg.solve(LIKELIHOOD_COVARIANCE, np.asarray(measured, np.float64)), covariance


MEASURED = jnp.array([0.3, -1.0, 2.0])


def check_correlated(posterior, measured):
    mean, covariance = correlated_posterior(measured)
    draws = np.asarray(posterior.samples, np.float64).reshape(-1, 3)
    table = posterior.summary(as_dict=True)
    sd = np.sqrt(np.diag(covariance))
    for i in range(3):
        row = table[f"x[{i}]"]
        assert abs(row["mean"] - mean[i]) < 4 * row["mcse"], (i, row, mean[i])
        assert abs(row["sd"] / sd[i] - 1) < 0.1, (i, row["sd"], sd[i])
        assert row["r_hat"] < 1.02, row
    empirical = np.corrcoef(draws.T)
    np.testing.assert_allclose(empirical, covariance / np.outer(sd, sd), atol=0.05)
    return table


def min_ess_per_gradient(posterior):
    table = posterior.summary(as_dict=True)
    return min(row["ess_bulk"] for row in table.values()) / posterior.gradient_evaluations()


def test_dense_mass_matrix_samples_a_correlated_gaussian_exactly_and_compiles_once(caplog):
    options = dict(num_warmup=200, num_samples=500, progress=False)
    dense = sl.sample(vector(), Correlated(MEASURED), key=jax.random.key(0), mass_matrix="dense", **options)
    check_correlated(dense, MEASURED)
    assert dense.inverse_mass_matrix.shape == (CHAINS, 3, 3)
    # the cost of the run: every leapfrog step of warmup and sampling
    warmup = np.asarray(dense.warmup_integration_steps)
    assert warmup.shape == (CHAINS,) and np.all(warmup >= 200)  # at least one leapfrog step per step
    total = int(warmup.sum()) + int(np.asarray(dense.num_integration_steps).sum())
    assert dense.gradient_evaluations() == total
    assert f"{total} gradient evaluations" in dense.summary()
    # the adapted matrix is the posterior covariance, correlations included (within the noise of the
    # last window's 50 draws per chain: 0.5-1.3 times the variances for single chains, measured)
    _, covariance = correlated_posterior(MEASURED)
    sd = np.sqrt(np.diag(covariance))
    adapted = np.asarray(dense.inverse_mass_matrix, np.float64).mean(axis=0) / np.outer(sd, sd)
    np.testing.assert_allclose(adapted, covariance / np.outer(sd, sd), atol=0.3)
    # what it is for: a diagonal mass matrix leaves the correlations to the trajectories
    diagonal = sl.sample(
        vector(), Correlated(MEASURED), key=jax.random.key(0), mass_matrix="diagonal", **options
    )
    assert diagonal.inverse_mass_matrix.shape == (CHAINS, 3)
    check_correlated(diagonal, MEASURED)
    assert min_ess_per_gradient(dense) > 2 * min_ess_per_gradient(diagonal)
    # new data of the same shapes: the same compiled steps
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        again = sl.sample(
            vector(), Correlated(-MEASURED), key=jax.random.key(1), mass_matrix="dense", **options
        )
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not [m for m in compiles if "_advance" in m], compiles
    check_correlated(again, -MEASURED)


def test_starting_from_a_laplace_approximation():
    approximation = sl.laplace(vector(), Correlated(MEASURED))
    # its covariance is the posterior's (the posterior is Gaussian): with it as the mass matrix and
    # chains starting at draws of it, a short warmup is enough (fewer than 20 steps: the step size only,
    # the mass matrix stays)
    posterior = sl.sample(
        vector(),
        Correlated(MEASURED),
        key=jax.random.key(3),
        init=approximation,
        num_warmup=15,
        num_samples=500,
        progress=False,
        mass_matrix="dense",
    )
    check_correlated(posterior, MEASURED)
    np.testing.assert_allclose(posterior.inverse_mass_matrix[0], approximation.covariance, rtol=1e-5)
    # a diagonal mass matrix takes the approximation's variances
    diagonal = sl.sample(
        vector(),
        Correlated(MEASURED),
        key=jax.random.key(3),
        init=approximation,
        num_warmup=15,
        num_samples=500,
        progress=False,
        mass_matrix="diagonal",
    )
    np.testing.assert_allclose(
        diagonal.inverse_mass_matrix[0], np.diag(np.asarray(approximation.covariance)), rtol=1e-5
    )
    other = sl.laplace(polynomial(), Data(simulated(1)))
    with pytest.raises(ValueError, match="Laplace approximation.*coefficients"):
        sl.sample(vector(), Correlated(MEASURED), key=jax.random.key(3), init=other)


def test_dense_mass_matrices_are_made_safely_positive_definite():
    from scarlet_like.infer.sample import _well_conditioned

    scales = jnp.array([1e-3, 1.0, 30.0])
    indefinite = jnp.array([[1.0, 0.99, 0.9], [0.99, 1.0, 0.99], [0.9, 0.99, 1.0]]) * jnp.outer(
        scales, scales
    )
    assert np.linalg.eigvalsh(np.asarray(indefinite, np.float64)).min() < 0  # the premise
    fixed = np.asarray(_well_conditioned(indefinite, jnp.diag(scales**2)), np.float64)
    np.testing.assert_allclose(np.diag(fixed), np.asarray(scales, np.float64) ** 2, rtol=0.05)
    correlation = fixed / np.outer(np.sqrt(np.diag(fixed)), np.sqrt(np.diag(fixed)))
    assert np.linalg.eigvalsh(correlation).min() > 0.5e-3
    np.linalg.cholesky(np.linalg.inv(fixed))  # what NUTS needs of it
    # not finite: the fallback
    broken = indefinite.at[0, 1].set(jnp.nan)
    np.testing.assert_allclose(_well_conditioned(broken, jnp.diag(scales**2)), jnp.diag(scales**2), rtol=1e-5)


@pytest.mark.parametrize("entries, dense", [(100, True), (101, False)])
def test_automatic_mass_matrix_is_dense_up_to_a_hundred_entries(entries, dense):
    # the demo's blend (69 entries) mixes 16x faster per second with a dense matrix than a diagonal one
    model = Vector(sl.Parameter(jnp.zeros(entries), prior=nd.Normal(0.0, 1.0)))
    posterior = sl.sample(
        model,
        lambda model: 0.0,
        num_warmup=0,
        num_samples=2,
        num_chains=1,
        key=jax.random.key(0),
        progress=False,
    )
    expected = (1, entries, entries) if dense else (1, entries)
    assert posterior.inverse_mass_matrix.shape == expected


def test_mass_matrix_is_checked(unchecked):
    with unchecked(), pytest.raises(ValueError, match="mass_matrix"):
        sl.sample(polynomial(), Data(simulated(1)), key=jax.random.key(0), mass_matrix="full")

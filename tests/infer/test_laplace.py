"""sl.laplace: exact on a Gaussian posterior, the delta method through constraints, and NUTS on a scene."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl

TIMES = jnp.linspace(0.0, 2.0, 10)  # correlated slope and intercept
NOISE = 0.3


class Line(sl.Module):
    coefficients: sl.Parameter

    def __call__(self, t):
        return self.coefficients[0] + self.coefficients[1] * t


DATA = 0.4 - 0.7 * TIMES + NOISE * jax.random.normal(jax.random.key(0), TIMES.shape)


def line_likelihood(line):
    return jnp.sum(nd.Normal(line(TIMES), NOISE).log_prob(DATA))


def test_exact_for_a_gaussian_posterior():
    design = np.stack([np.ones(10), np.asarray(TIMES)], axis=1)
    precision = design.T @ design / NOISE**2 + np.eye(2) / 4.0
    covariance = np.linalg.inv(precision)
    mean = covariance @ design.T @ np.asarray(DATA, np.float64) / NOISE**2
    # at the mode already (the fit is exercised on the scene below)
    model = Line(sl.Parameter(jnp.asarray(mean, jnp.float32), prior=nd.Normal(0.0, 2.0)))
    approximation = sl.laplace(model, line_likelihood, fit=False)
    assert approximation.mode is model
    np.testing.assert_allclose(approximation.x, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(approximation.covariance, covariance, rtol=1e-3)
    np.testing.assert_allclose(approximation.std["coefficients"], np.sqrt(np.diag(covariance)), rtol=1e-3)
    np.testing.assert_allclose(sl.get_values(approximation.mode)["coefficients"], mean, rtol=1e-4, atol=1e-5)
    assert approximation.names == ("coefficients[0]", "coefficients[1]")

    # draws: flat vectors, or one model holding them all
    flat = approximation.sample(jax.random.key(1), 4000, flat=True)
    assert flat.shape == (4000, 2)
    np.testing.assert_allclose(np.cov(np.asarray(flat).T), covariance, rtol=0.1)
    models = approximation.sample(jax.random.key(1), 4000)
    np.testing.assert_allclose(sl.get_values(models)["coefficients"], flat, rtol=1e-6)


class Constrained(sl.Module):
    flux: sl.Parameter
    fraction: sl.Parameter
    weights: sl.Parameter


OBSERVED = {"flux": 2.5, "fraction": 0.7, "weights": jnp.array([0.2, 0.5, 0.3])}


def constrained_likelihood(model):
    return (
        nd.Normal(model.flux, 0.4).log_prob(OBSERVED["flux"])
        + nd.Normal(model.fraction, 0.1).log_prob(OBSERVED["fraction"])
        + jnp.sum(nd.Normal(model.weights, 0.05).log_prob(OBSERVED["weights"]))
    )


def by_hand(values):
    """The same log posterior in constrained coordinates: flux, fraction, and the first two weights."""
    flux, fraction, w0, w1 = values
    weights = jnp.stack([w0, w1, 1.0 - w0 - w1])
    model = Constrained(flux=flux, fraction=fraction, weights=weights)
    prior = nd.LogNormal(0.5, 1.0).log_prob(flux) + nd.Dirichlet(jnp.array([3.0, 4.0, 3.0])).log_prob(weights)
    return constrained_likelihood(model) + prior


def test_delta_method_gives_the_constrained_laplace_widths():
    """A Gaussian in unconstrained space at the constrained mode, with the MAP Hessian, carried back by
    the delta method, is the usual Laplace approximation in the constrained values."""
    model = Constrained(
        flux=sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.5, 1.0)),
        fraction=sl.Parameter(0.5, constraint=sl.constraints.interval(0.0, 1.0)),
        weights=sl.Parameter(
            jnp.full(3, 1 / 3),
            constraint=sl.constraints.simplex(),
            prior=nd.Dirichlet(jnp.array([3.0, 4.0, 3.0])),
        ),
    )
    # the mode of the constrained posterior, by Newton's method on the hand-written density
    gradient, hessian = jax.jit(jax.grad(by_hand)), jax.jit(jax.hessian(by_hand))
    point = jnp.array([2.0, 0.7, 0.25, 0.45])
    for _ in range(20):
        point = point - jnp.linalg.solve(hessian(point), gradient(point))
    assert float(jnp.max(jnp.abs(gradient(point)))) < 1e-2
    weights = jnp.stack([point[2], point[3], 1.0 - point[2] - point[3]])
    at_mode = sl.set_values(model, {"flux": point[0], "fraction": point[1], "weights": weights})
    approximation = sl.laplace(at_mode, constrained_likelihood, fit=False)
    covariance = np.linalg.inv(-np.asarray(hessian(point), np.float64))
    last = np.array([-1.0, -1.0])  # the third weight is 1 - w0 - w1
    expected = {
        "flux": np.sqrt(covariance[0, 0]),
        "fraction": np.sqrt(covariance[1, 1]),
        "weights": np.sqrt([covariance[2, 2], covariance[3, 3], last @ covariance[2:, 2:] @ last]),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(approximation.std[name], value, rtol=2e-3, err_msg=name)
    assert list(approximation.std) == ["flux", "fraction", "weights"]
    assert approximation.covariance.shape == (4, 4)  # the simplex has two unconstrained entries
    # draws respect the constraints
    draws = sl.get_values(approximation.sample(jax.random.key(0), 500))
    assert np.all(draws["flux"] > 0) and np.all((draws["fraction"] > 0) & (draws["fraction"] < 1))
    np.testing.assert_allclose(draws["weights"].sum(axis=-1), 1.0, rtol=1e-5)


def test_a_flat_direction_is_an_error_naming_it():
    class Two(sl.Module):
        used: sl.Parameter
        unused: sl.Parameter

    model = Two(used=sl.Parameter(0.4, prior=nd.Normal(0.0, 1.0)), unused=sl.Parameter(1.0))
    with pytest.raises(ValueError, match="unused") as caught:
        sl.laplace(model, lambda m: nd.Normal(m.used, 0.1).log_prob(0.4), fit=False)
    assert "used," not in str(caught.value)


# 37 s; the default suite checks Laplace against exact Gaussian posteriors and NUTS against numpyro
@pytest.mark.slow
def test_nuts_and_laplace_agree_on_a_scene():
    """A Gaussian source at good signal-to-noise: the posterior is close to Gaussian, and NUTS and Laplace
    give the same widths."""
    psf = sl.GaussianPSF(1.5)
    frame = sl.Frame((1, 12, 12), psf=sl.GaussianPSF(0.8))
    # The data: a round Gaussian of flux 150 (the source's width and the PSF's added in quadrature) on
    # pixel centres, plus unit noise. The model need not reproduce them exactly for this comparison.
    rows, columns = np.mgrid[0:12, 0:12]
    width2 = 1.5**2 + 1.5**2
    clean = 150.0 * np.exp(-((rows - 5.5) ** 2 + (columns - 6.2) ** 2) / (2 * width2)) / (2 * np.pi * width2)
    data = clean[None] + np.random.default_rng(3).normal(size=(1, 12, 12))
    observation = sl.Observation(data, weights=np.ones(data.shape), psf=psf)
    with sl.Scene(frame) as scene:
        sl.Source(
            sl.Parameter(jnp.array([5.0, 6.5]), prior=nd.Normal(jnp.array([5.5, 6.2]), 2.0).to_event(1)),
            sl.Parameter(jnp.array([100.0]), constraint=sl.constraints.positive()),
            sl.GaussianMorphology(
                sl.Parameter(2.0, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.5, 1.0))
            ),
        )
    approximation = sl.laplace(scene, observation)  # fits first
    mode = sl.get_values(approximation.mode)
    assert abs(float(mode["sources[0].spectrum"][0]) - 150.0) < 40.0
    with pytest.warns(sl.ImproperPriorWarning, match="spectrum"):
        posterior = sl.sample(
            approximation.mode,
            observation,
            key=jax.random.key(0),
            num_warmup=150,
            num_samples=250,
            num_chains=2,
            progress=False,
        )
    table = posterior.summary(as_dict=True)
    ratios = {}
    for name, std in approximation.std.items():
        elements = [name] if std.shape == () else [f"{name}[{i}]" for i in range(std.size)]
        for element, width in zip(elements, np.ravel(std), strict=True):
            ratios[element] = table[element]["sd"] / float(width)
            assert table[element]["r_hat"] < 1.05, element
    assert len(ratios) == 4
    assert all(0.8 < ratio < 1.2 for ratio in ratios.values()), ratios

"""sl.evidence: the Laplace evidence is exact for a linear-Gaussian model; BIC and model choice."""

import math

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl
from scarlet_like.infer.evidence import bic

TIMES = np.linspace(-1.0, 1.0, 12)
NOISE = 0.2
PRIOR_SD = 2.0


class Polynomial(sl.Module):
    coefficients: sl.Parameter

    def __call__(self, t):
        powers = jnp.stack([t**k for k in range(self.coefficients.shape[0])], axis=-1)
        return powers @ self.coefficients


def data(seed=0):
    truth = 0.5 - 1.2 * TIMES  # a straight line
    return truth + NOISE * np.random.default_rng(seed).normal(size=TIMES.shape)


def likelihood_of(y):
    t, y = jnp.asarray(TIMES, jnp.float32), jnp.asarray(y, jnp.float32)
    return lambda model: jnp.sum(nd.Normal(model(t), NOISE).log_prob(y))


def closed_form(y, degree):
    """log p(y) for y = A w + noise, w ~ N(0, PRIOR_SD^2 I): y ~ N(0, NOISE^2 I + PRIOR_SD^2 A A^T)."""
    design = np.stack([TIMES**k for k in range(degree + 1)], axis=1)
    covariance = NOISE**2 * np.eye(len(TIMES)) + PRIOR_SD**2 * design @ design.T
    sign, log_det = np.linalg.slogdet(covariance)
    return -0.5 * (y @ np.linalg.solve(covariance, y) + log_det + len(y) * math.log(2 * math.pi))


def posterior_mode(y, degree):
    design = np.stack([TIMES**k for k in range(degree + 1)], axis=1)
    precision = design.T @ design / NOISE**2 + np.eye(degree + 1) / PRIOR_SD**2
    return np.linalg.solve(precision, design.T @ y / NOISE**2)


def model_at(values, constraint=None):
    values = jnp.asarray(values, jnp.float32)
    prior = nd.Normal(jnp.zeros(values.shape[0]), PRIOR_SD).to_event(1)
    return Polynomial(sl.Parameter(values, prior=prior, constraint=constraint))


@pytest.mark.parametrize("degree", [1, 2])
def test_laplace_evidence_is_exact_for_a_linear_gaussian_model(degree):
    y = data()
    result = sl.evidence(model_at(posterior_mode(y, degree)), likelihood_of(y), n_data=len(y))
    assert result.error is None and result.n_free == degree + 1 and result.improper == ()
    assert result.log_evidence == pytest.approx(closed_form(y, degree), abs=2e-3)
    assert result.bic == pytest.approx(-2 * result.log_likelihood + (degree + 1) * math.log(len(y)), rel=1e-6)


def test_the_constraints_jacobian_is_accounted_for():
    # The same posterior, the parameters now through a nonlinear bijection (exp of u, shifted):
    # the evidence is a property of the model, not of the coordinates the fit runs in.
    y = data(1)
    mode = posterior_mode(y, 1)
    plain = sl.evidence(model_at(mode), likelihood_of(y))
    bounded = sl.evidence(model_at(mode, sl.constraints.greater_than(-50.0)), likelihood_of(y))
    assert bounded.log_evidence == pytest.approx(plain.log_evidence, abs=5e-3)
    assert bounded.log_evidence == pytest.approx(closed_form(y, 1), abs=5e-3)


def test_evidence_and_bic_prefer_the_true_degree_after_a_fit():
    y = data(2)
    scores = {}
    for degree in (1, 3):
        fitted = sl.fit(model_at(np.zeros(degree + 1)), likelihood_of(y), progress=False).model
        scores[degree] = sl.evidence(fitted, likelihood_of(y), n_data=len(y))
        assert scores[degree].log_evidence == pytest.approx(closed_form(y, degree), abs=0.02)
    assert scores[1].log_evidence > scores[3].log_evidence
    assert scores[1].bic < scores[3].bic
    # the larger model fits at least as well: it is the penalty that decides
    assert scores[3].log_likelihood >= scores[1].log_likelihood - 1e-3


def test_a_flat_direction_gives_nan_evidence_and_a_reason_and_improper_names():
    y = data()
    model = Polynomial(sl.Parameter(jnp.zeros(2)))  # no prior
    # the likelihood sees only the sum of the two coefficients: one direction is flat
    flat = lambda m: -0.5 * (m.coefficients[0] + m.coefficients[1] - jnp.asarray(y[0], jnp.float32)) ** 2
    result = sl.evidence(model, flat)
    assert math.isnan(result.log_evidence) and "curved" in result.error
    assert result.improper == ("coefficients",)
    assert math.isnan(result.bic)
    with pytest.raises(ValueError, match="n_data"):
        bic(0.0, 2, 0)


def test_no_free_parameter():
    y = data()
    fixed = Polynomial(jnp.asarray([0.5, -1.2], jnp.float32))
    result = sl.evidence(fixed, likelihood_of(y), n_data=len(y))
    expected = float(likelihood_of(y)(fixed))
    assert result.n_free == 0 and result.log_evidence == pytest.approx(expected, rel=1e-6)
    assert result.bic == pytest.approx(-2 * expected, rel=1e-6)

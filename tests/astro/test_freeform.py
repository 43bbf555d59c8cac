import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scarlet_like.astro.freeform import starlet_transform


def test_starlet_reconstructs_exactly():
    image = jax.random.normal(jax.random.PRNGKey(0), (31, 37), dtype=jnp.float32)
    coefficients, coarse = starlet_transform(image, scales=3)
    assert coefficients.shape == (3, 31, 37)
    np.testing.assert_allclose(coefficients.sum(0) + coarse, image, atol=1e-5)


def test_starlet_constant_image_has_zero_coefficients():
    # The B3 kernel sums to 1 and edges are mirrored: a flat image is all coarse, no detail.
    image = jnp.full((20, 20), 3.0, dtype=jnp.float32)
    coefficients, coarse = starlet_transform(image, scales=2)
    np.testing.assert_allclose(coefficients, 0.0, atol=1e-6)
    np.testing.assert_allclose(coarse, 3.0, atol=1e-6)


def test_starlet_rejects_too_many_scales():
    with pytest.raises(ValueError, match="fewer scales"):
        starlet_transform(jnp.zeros((8, 8), dtype=jnp.float32), scales=3)


def test_symmetry_prior_gradient_and_ordering():
    from scarlet_like.astro.freeform import SymmetryPrior

    y, x = np.mgrid[-7:8, -7:8]
    galaxy = np.exp(-(x**2 + 2 * y**2) / 8.0)
    prior = SymmetryPrior((15, 15), strength=2.0)
    ugly = galaxy.copy()
    ugly[2:5, 9:12] += 0.5  # a lopsided blob
    assert prior.log_prob(jnp.asarray(galaxy)) > prior.log_prob(jnp.asarray(ugly)) + 1.0
    # gradient against central finite differences, in float64 via numpy evaluation of the same formula
    grad = np.asarray(jax.grad(prior.log_prob)(jnp.asarray(ugly, dtype=jnp.float32)))
    h = 1e-3
    for index in [(3, 10), (11, 4), (7, 7), (0, 14)]:
        plus, minus = ugly.copy(), ugly.copy()
        plus[index] += h
        minus[index] -= h
        up, down = float(prior.log_prob(jnp.asarray(plus))), float(prior.log_prob(jnp.asarray(minus)))
        numeric = (up - down) / (2 * h)
        np.testing.assert_allclose(grad[index], numeric, rtol=2e-2, atol=2e-2)


def test_starlet_sparsity_prior_gradient_and_ordering():
    from scarlet_like.astro.freeform import StarletSparsityPrior

    y, x = np.mgrid[-7:8, -7:8]
    galaxy = np.exp(-(x**2 + y**2) / 8.0)
    noisy = galaxy + 0.1 * np.asarray(jax.random.normal(jax.random.PRNGKey(1), (15, 15)))
    prior = StarletSparsityPrior((15, 15), strength=1.0, scales=2)
    assert prior.log_prob(jnp.asarray(galaxy)) > prior.log_prob(jnp.asarray(noisy)) + 1.0
    grad = np.asarray(jax.grad(prior.log_prob)(jnp.asarray(noisy, dtype=jnp.float32)))
    h = 1e-3
    for index in [(3, 10), (11, 4), (7, 7), (0, 14)]:
        plus, minus = noisy.copy(), noisy.copy()
        plus[index] += h
        minus[index] -= h
        up, down = float(prior.log_prob(jnp.asarray(plus))), float(prior.log_prob(jnp.asarray(minus)))
        np.testing.assert_allclose(grad[index], (up - down) / (2 * h), rtol=3e-2, atol=3e-2)


def test_monotonicity_prior_gradient_and_ordering():
    from scarlet_like.astro.freeform import MonotonicityPrior

    y, x = np.mgrid[-7:8, -7:8]
    galaxy = np.exp(-(x**2 + y**2) / 8.0)
    ugly = galaxy.copy()
    ugly[1:4, 10:13] += 0.5  # an outer bump: brightness rises going outward
    prior = MonotonicityPrior((15, 15), strength=1.0, scale=0.05)
    assert prior.log_prob(jnp.asarray(galaxy)) > prior.log_prob(jnp.asarray(ugly)) + 0.3
    grad = np.asarray(jax.grad(prior.log_prob)(jnp.asarray(ugly, dtype=jnp.float32)))
    h = 1e-3
    for index in [(3, 10), (2, 12), (7, 7), (0, 14)]:
        plus, minus = ugly.copy(), ugly.copy()
        plus[index] += h
        minus[index] -= h
        up, down = float(prior.log_prob(jnp.asarray(plus))), float(prior.log_prob(jnp.asarray(minus)))
        np.testing.assert_allclose(grad[index], (up - down) / (2 * h), rtol=3e-2, atol=3e-2)

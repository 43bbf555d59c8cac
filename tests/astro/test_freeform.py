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

"""Strict settings for the whole test suite.

Strict dtype promotion turns silent float32/float64 and int/float mixing into errors, so the package is
tested against the strictest mode a user can switch on.
"""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(0)

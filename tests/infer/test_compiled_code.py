"""The guard that keeps compiled code within the system's limit on memory mappings."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.infer import compiled_code


def _model():
    return {"mu": sl.Parameter(jnp.zeros(2))}


def _likelihood(model):
    return -0.5 * jnp.sum((model["mu"] - jnp.asarray([1.0, 2.0])) ** 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_memory_maps_are_counted_against_the_system_limit():
    used, limit = compiled_code.memory_maps()
    assert 0 < used < limit
    before = used
    # a function never seen compiles, and its code takes mappings of its own
    jax.jit(lambda x: jnp.sin(x) * 3.0 + jnp.cos(x) ** 7)(jnp.arange(17.0)).block_until_ready()
    assert compiled_code.memory_maps()[0] > before


def test_a_fit_near_the_limit_clears_the_caches_says_so_and_still_fits(monkeypatch):
    traces = []

    @jax.jit
    def traced(x):
        traces.append(1)
        return x + 1.0

    traced(jnp.zeros(3))
    traced(jnp.zeros(3))
    assert len(traces) == 1
    monkeypatch.setattr(compiled_code, "memory_maps", lambda: (50_000, 65_530))
    with pytest.warns(RuntimeWarning, match=r"fit: this process holds 50000 memory mappings, 76% .*cleared"):
        result = sl.fit(_model(), _likelihood, progress=False)
    np.testing.assert_allclose(result.model["mu"].value, [1.0, 2.0], atol=1e-4)
    traced(jnp.zeros(3))
    assert len(traces) == 2  # compiled again: the cache is gone

    # below the share, and inside a caller's jit, nothing is cleared
    monkeypatch.setattr(compiled_code, "memory_maps", lambda: (30_000, 65_530))
    assert not compiled_code.release_if_near_limit("fit")
    monkeypatch.setattr(compiled_code, "memory_maps", lambda: (60_000, 65_530))
    inside = jax.jit(lambda x: jnp.asarray(compiled_code.release_if_near_limit("fit", x)))(jnp.zeros(2))
    assert not bool(inside)
    traced(jnp.zeros(3))
    assert len(traces) == 2
    monkeypatch.setattr(compiled_code, "memory_maps", lambda: None)  # a system that does not tell
    assert not compiled_code.release_if_near_limit("fit")

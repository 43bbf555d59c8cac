import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_models import light_curve

import scarlet_like as sl


def test_save_load_is_exact(tmp_path):
    model = light_curve(t0=0.123456789, width=1.0 / 3.0, peak=0.7)
    model = sl.set_values(model, {"t0": jnp.array(np.nextafter(np.float32(0.1), np.float32(1)))})
    path = tmp_path / "model.eqx"
    sl.save(path, model)
    loaded = sl.load(path, like=light_curve())
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(loaded), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.width.constraint == model.width.constraint
    assert sl.get_values(loaded).keys() == sl.get_values(model).keys()


def test_load_into_a_different_model_names_the_leaf(tmp_path):
    path = tmp_path / "model.eqx"
    sl.save(path, light_curve())
    other = light_curve()
    other = sl.Parameter(jnp.zeros(3))
    with pytest.raises(ValueError, match="leaf 0 differs"):
        sl.load(path, like=other)


def test_load_rejects_foreign_files(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a file written by scarlet_like.save"):
        sl.load(path, like=light_curve())

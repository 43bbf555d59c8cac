import json
import re

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_models import curve_and_peak, light_curve, population, shared_intercept
from hypothesis import given, settings

import scarlet_like as sl
from scarlet_like.core import canonical_tokens


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


# -- every kind of model round-trips exactly ----------------------------------------------------------


def assert_same_values(saved, loaded):
    """Every array leaf equal bit for bit, same dtype; the same named values and log density."""
    a_leaves, a_def = jax.tree_util.tree_flatten(saved)
    b_leaves, b_def = jax.tree_util.tree_flatten(loaded)
    assert len(a_leaves) == len(b_leaves)
    for a, b in zip(a_leaves, b_leaves, strict=True):
        if eqx.is_array(a):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    saved_values, loaded_values = sl.get_values(saved), sl.get_values(loaded)
    assert saved_values.keys() == loaded_values.keys()
    for name in saved_values:
        np.testing.assert_array_equal(saved_values[name], loaded_values[name])
    # `like` is built anew: its Parameters have identities of their own, so the structures agree once
    # identities are numbered canonically (which also checks that what was shared is shared)
    canonical = lambda tree: jax.tree_util.tree_structure(canonical_tokens(tree)[0])  # noqa: E731
    assert canonical(saved) == canonical(loaded)


ODD = np.nextafter(np.float32(0.1), np.float32(1))  # a value that a decimal round trip would not keep

MODELS = {
    "shared": (lambda: shared_intercept((1.0 / 3.0, ODD), intercept=-ODD), shared_intercept),
    "derived": (lambda: curve_and_peak(t0=ODD, width=1.0 / 3.0), curve_and_peak),
    "plate_and_hierarchical": (lambda: population((ODD, -2.5, 1.0 / 7.0), mu=0.3, tau=ODD), population),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_models_round_trip_exactly(tmp_path, kind):
    build, like = MODELS[kind]
    model = build()
    path = tmp_path / f"{kind}.eqx"
    sl.save(path, model)
    loaded = sl.load(path, like=like())
    assert_same_values(model, loaded)
    x, _ = sl.ravel(model)
    y, _ = sl.ravel(loaded)
    np.testing.assert_array_equal(x, y)
    assert sl.LogDensity(loaded, lambda m: 0.0)(y) == sl.LogDensity(model, lambda m: 0.0)(x)


def test_a_shared_parameter_stays_shared_after_loading(tmp_path):
    path = tmp_path / "shared.eqx"
    sl.save(path, shared_intercept(intercept=0.25))
    loaded = sl.load(path, like=shared_intercept())
    assert list(sl.get_values(loaded)).count("first.intercept") == 1
    changed = sl.set_values(loaded, {"first.intercept": jnp.asarray(7.0)})
    assert float(changed.second.intercept.value) == 7.0


def test_derived_values_are_recomputed_from_the_loaded_inputs(tmp_path):
    path = tmp_path / "derived.eqx"
    model = curve_and_peak(t0=0.5, width=2.0)
    sl.save(path, model)
    loaded = sl.load(path, like=curve_and_peak())
    np.testing.assert_array_equal(sl.resolve(loaded).peak, sl.resolve(model).peak)


# -- the version that wrote a file --------------------------------------------------------------------


def rewrite_header(path, drop=(), **changes):
    """Alter the JSON header of a file written by `sl.save` (as another version would have written it):
    set `changes`, remove the keys in `drop`. Returns the new header."""
    raw = path.read_bytes()
    start = len(b"scarlet_like-model\n") + 8
    size = int.from_bytes(raw[start - 8 : start], "little")
    header = json.loads(raw[start : start + size])
    header.update(changes)
    for key in drop:
        del header[key]
    encoded = json.dumps(header).encode()
    path.write_bytes(raw[: start - 8] + len(encoded).to_bytes(8, "little") + encoded + raw[start + size :])
    return header


def test_the_file_records_the_version_that_wrote_it(tmp_path):
    path = tmp_path / "model.eqx"
    sl.save(path, light_curve())
    header = rewrite_header(path)
    assert header["version"] == sl.__version__ == sl.package_version()
    assert header["type"] == "LightCurve"


def test_a_file_from_another_version_loads_when_its_layout_fits(tmp_path):
    path = tmp_path / "model.eqx"
    model = light_curve(t0=ODD)
    sl.save(path, model)
    rewrite_header(path, version="0.0.1")
    assert_same_values(model, sl.load(path, like=light_curve()))


def test_a_file_from_another_version_that_does_not_fit_names_both_versions(tmp_path):
    path = tmp_path / "model.eqx"
    sl.save(path, light_curve())
    rewrite_header(path, version="0.0.1")
    both = rf"written by scarlet_like 0\.0\.1; this is {re.escape(sl.__version__)}"
    with pytest.raises(ValueError, match=r"leaf 0 differs.*" + both):
        sl.load(path, like=shared_intercept())
    rewrite_header(path, version="9.0", format=2)
    with pytest.raises(
        ValueError,
        match=rf"format 2, written by scarlet_like 9\.0; this scarlet_like \({re.escape(sl.__version__)}\)",
    ):
        sl.load(path, like=light_curve())


def test_a_file_from_before_versions_were_recorded_still_loads(tmp_path):
    path = tmp_path / "model.eqx"
    model = light_curve(t0=ODD)
    sl.save(path, model)
    rewrite_header(path, drop=("version", "type"))
    assert_same_values(model, sl.load(path, like=light_curve()))
    with pytest.raises(ValueError, match=r"written by scarlet_like unrecorded"):
        sl.load(path, like=shared_intercept())


FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
TINY = float(np.finfo(np.float32).tiny)


@settings(max_examples=30, deadline=None)
@given(
    t0=FLOAT32,
    # constrained values start at the smallest normal float: XLA on CPU flushes subnormals to zero, so
    # that positive() and interval(0, 1) see them as 0, outside their support
    width=st.floats(width=32, min_value=TINY, allow_infinity=False),
    peak=st.floats(width=32, min_value=TINY, max_value=1.0, exclude_max=True),
)
def test_any_float32_value_round_trips_bit_for_bit(tmp_path_factory, t0, width, peak):
    # -0.0, subnormals (for t0) and the largest floats included: compared as bits, not as numbers
    path = tmp_path_factory.mktemp("fuzz") / "model.eqx"
    model = light_curve(t0=t0, width=width, peak=peak)
    sl.save(path, model)
    loaded = sl.load(path, like=light_curve())
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(loaded), strict=True):
        np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


_SAVE_OR_LOAD = """
import sys, numpy as np, numpyro.distributions as nd
import scarlet_like as sl
prior = nd.Normal(np.array([0.5, 1.5]), np.array([2.0])).to_event(1)
model = sl.Parameter(np.array([1.0, 2.0], np.float32), prior=prior)
if sys.argv[1] == "save":
    sl.save(sys.argv[2], model)
elif sys.argv[1] == "pickle":
    import pickle
    with open(sys.argv[2], "wb") as file:
        pickle.dump(model, file)
else:
    if sys.argv[1] == "unpickle":
        import pickle
        with open(sys.argv[2], "rb") as file:
            loaded = pickle.load(file)
    else:
        loaded = sl.load(sys.argv[2], model)
    distribution = loaded.prior.distribution
    print(np.asarray(distribution.base_dist.loc).tolist(), np.asarray(distribution.base_dist.scale).tolist(),
          distribution.reinterpreted_batch_ndims)
"""


def _with_hash_seed(seed: int, *arguments: str) -> str:
    """Run `_SAVE_OR_LOAD` in a fresh Python process with this string-hashing seed; its output."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", _SAVE_OR_LOAD, *arguments],
        env={**os.environ, "PYTHONHASHSEED": str(seed), "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_model_saved_by_one_process_loads_in_another(tmp_path):
    # numpyro flattens a distribution's fields in the order of a set of their names, which string
    # hashing changes from process to process: 'loc' before 'scale' under one hash seed, after under
    # another. The prior's arguments are held sorted by name, so the file is the same for both.
    path = str(tmp_path / "model.eqx")
    # hash seed 0 flattens numpyro's Normal as (scale, loc), seed 1 as (loc, scale)
    _with_hash_seed(0, "save", path)
    assert _with_hash_seed(1, "load", path) == "[0.5, 1.5] [2.0] 1"


@pytest.mark.slow
def test_a_model_pickled_by_one_process_unpickles_in_another(tmp_path):
    # how Dask and multiprocessing ship a model to a worker; a pickled treedef unflattens numpyro's
    # fields in the unpickling process's order, which swapped loc and scale (and the aux fields)
    path = str(tmp_path / "model.pkl")
    _with_hash_seed(0, "pickle", path)
    assert _with_hash_seed(1, "unpickle", path) == "[0.5, 1.5] [2.0] 1"


def test_prior_arguments_do_not_depend_on_the_flattening_order(monkeypatch):
    import numpyro.distributions as nd

    build = lambda: sl.priors.NumpyroPrior(nd.Normal(jnp.array([0.5, 1.5]), jnp.array([2.0])).to_event(1))  # noqa: E731
    expected = [np.asarray(a).tolist() for a in build().arguments]
    fields = nd.Normal.gather_pytree_data_fields.__func__
    monkeypatch.setattr(nd.Normal, "gather_pytree_data_fields", classmethod(lambda cls: fields(cls)[::-1]))
    reordered = build()
    assert [np.asarray(a).tolist() for a in reordered.arguments] == expected == [[0.5, 1.5], [2.0]]
    assert np.asarray(reordered.distribution.base_dist.scale).tolist() == [2.0]

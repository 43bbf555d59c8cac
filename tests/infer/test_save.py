"""Saving and loading what inference returns: a FitResult and a Posterior of a model with a plate, a
hierarchical prior and shared parameters round-trip exactly, and record the version that wrote them."""

import json
import re
import sys
import warnings
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.core import canonical_tokens

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from core_models import population  # noqa: E402

FLUXES = jnp.array([0.3, -0.4, 1.2])


def log_likelihood(model):
    """The fluxes of the population's members, measured with unit noise."""
    return -0.5 * jnp.sum((model.blobs.members.flux - FLUXES) ** 2)


def assert_equal_trees(saved, loaded):
    for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(loaded), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    canonical = lambda tree: jax.tree_util.tree_structure(canonical_tokens(tree)[0])  # noqa: E731
    assert canonical(saved) == canonical(loaded)


@pytest.fixture(scope="module")
def fitted():
    # a short fit: what matters is that every field is saved, not where it stopped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sl.FitWarning)
        return sl.fit(population(), log_likelihood, max_steps=50, progress=False)


@pytest.fixture(scope="module")
def posterior():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sl.ImproperPriorWarning)
        return sl.sample(
            population(),
            log_likelihood,
            key=jax.random.key(0),
            num_warmup=30,
            num_samples=20,
            num_chains=2,
            progress=False,
        )


def test_fit_result_round_trips_exactly(fitted, tmp_path):
    path = tmp_path / "fit.eqx"
    fitted.save(path)
    # from the model alone: the diagnostics' shapes are in the file
    loaded = sl.FitResult.load(path, like=population())
    assert isinstance(loaded, sl.FitResult)
    assert_equal_trees(fitted, loaded)
    # or from a FitResult of the same structure, and through sl.save / sl.load
    sl.save(path, fitted)
    assert_equal_trees(fitted, sl.load(path, like=loaded))


def test_loading_a_fit_result_as_a_model_says_what_the_file_holds(fitted, tmp_path):
    path = tmp_path / "fit.eqx"
    fitted.save(path)
    with pytest.raises(ValueError, match="the file holds a FitResult, `like` is a Population"):
        sl.load(path, like=population())
    sl.save(path, population())
    with pytest.raises(ValueError, match="holds no FitResult"):
        sl.FitResult.load(path, like=population())


def test_posterior_of_a_plate_with_a_hierarchical_prior_round_trips_exactly(posterior, tmp_path):
    path = tmp_path / "posterior.npz"
    posterior.save(path)
    loaded = sl.Posterior.load(path, like=population())
    assert_equal_trees(posterior, loaded)
    assert loaded.summary() == posterior.summary()
    assert_equal_trees(posterior.model_at(1, 5), loaded.model_at(1, 5))


def rewrite_posterior_header(path, **changes):
    with np.load(path) as file:
        arrays = {name: file[name] for name in file.files}
    header = json.loads(arrays["header"].tobytes().decode())
    header.update(changes)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return header


def test_posterior_file_records_its_version_and_names_both_when_it_does_not_fit(posterior, tmp_path):
    path = tmp_path / "posterior.npz"
    posterior.save(path)
    assert zipfile.is_zipfile(path)
    assert rewrite_posterior_header(path)["version"] == sl.__version__
    rewrite_posterior_header(path, version="0.0.1")
    assert_equal_trees(posterior, sl.Posterior.load(path, like=population()))  # same layout: loads
    both = rf"written by scarlet_like 0\.0\.1; this is {re.escape(sl.__version__)}"
    with pytest.raises(ValueError, match=r"does not have the saved free parameters.*" + both):
        sl.Posterior.load(path, like=population(fluxes=(1.0, 2.0)))
    rewrite_posterior_header(path, format=2)
    with pytest.raises(ValueError, match=r"format 2, written by scarlet_like 0\.0\.1; this scarlet_like"):
        sl.Posterior.load(path, like=population())

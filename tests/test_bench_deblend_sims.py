"""The simulated blends of `benchmarks/bench_deblend.py`: reproducible, and their truth adds up."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("galsim")

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "deblend_sims.py"


@pytest.fixture(scope="module")
def sims():
    spec = importlib.util.spec_from_file_location("deblend_sims", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("deblend_sims", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_blends_are_reproducible_and_shared_between_psf_sets(sims):
    first, again = sims.simulate_blend(3, seed=5), sims.simulate_blend(3, seed=5)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.fluxes, again.fluxes)
    single = sims.simulate_blend(3, seed=5, psf="single")
    # the same objects and noise, another PSF: positions and total light agree, the images do not
    assert single.kinds == first.kinds and single.shape == first.shape
    np.testing.assert_allclose(single.centers, first.centers, atol=0.05)
    # (the images are float32: the same noise up to their rounding)
    np.testing.assert_allclose(single.images - single.noiseless, first.images - first.noiseless, atol=1e-3)
    assert not np.allclose(single.psfs, first.psfs)
    assert not np.array_equal(sims.simulate_blend(3, seed=6).images, first.images)


@pytest.mark.parametrize("index", [0, 1])
def test_truth_adds_up_to_the_noiseless_blend(sims, index):
    blend = sims.simulate_blend(index)
    peak = blend.noiseless.max()
    # the isolated renders (truth) drawn one by one against the whole scene drawn at once
    assert np.max(np.abs(blend.isolated.sum(axis=0) - blend.noiseless)) < 1e-3 * peak
    np.testing.assert_allclose(blend.fluxes, blend.isolated.sum(axis=(-2, -1)))
    # each object's light is where its truth says: the first moment of its isolated image
    for image, center in zip(blend.isolated, blend.centers, strict=True):
        total = image.sum(axis=0)
        y, x = np.indices(total.shape)
        np.testing.assert_allclose([(total * y).sum() / total.sum(), (total * x).sum() / total.sum()], center)
    # and close to where it was placed (the bulge's offset and the knots move it by < 1.5 px)
    placed = np.array([c["position"] for c in blend.components])
    assert np.max(np.hypot(*(blend.centers - placed).T)) < 1.5
    # the noise has the stated variance, the PSF images are normalised and centred
    residual = blend.images - blend.noiseless
    np.testing.assert_allclose(residual.var(axis=(-2, -1)), blend.variance, rtol=0.1)
    np.testing.assert_allclose(blend.psfs.sum(axis=(-2, -1)), 1.0, rtol=1e-6)
    y, x = np.indices(blend.psfs.shape[-2:])
    middle = (blend.psfs.shape[-1] - 1) / 2
    assert np.allclose((blend.psfs * y).sum(axis=(-2, -1)), middle, atol=0.02)
    assert np.allclose((blend.psfs * x).sum(axis=(-2, -1)), middle, atol=0.02)

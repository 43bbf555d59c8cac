"""Several observations of one channel (epochs, exposures), each with its own PSF and noise, in one
likelihood: the frame has the channel once, and every observation of it constrains the same entry of
the scene's spectra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl

TRUTH = {"center": (12.4, 11.7), "flux": 60.0, "sigma": 1.5}


def scene(frame, center, flux, sigma):
    with sl.Scene(frame) as scene:
        sl.Source(
            sl.Parameter(jnp.asarray(center)),
            sl.Parameter(jnp.array([flux]), constraint=sl.constraints.positive()),
            sl.GaussianMorphology(sl.Parameter(sigma, constraint=sl.constraints.positive())),
        )
    return scene


@pytest.fixture(scope="module")
def epochs():
    """Two exposures in F814W, a sharp one and a blurred one, with noise of their own."""
    truth = scene(sl.Frame((1, 24, 24), channels=("F814W",)), **TRUTH)
    keys = jax.random.split(jax.random.key(3))
    sharp = sl.simulate(truth, keys[0], noise=0.5, psf=sl.GaussianPSF(1.0), name="epoch 1")
    blurred = sl.simulate(truth, keys[1], noise=0.5, psf=sl.GaussianPSF(2.2), name="epoch 2")
    return sharp, blurred


def test_one_channel_in_two_observations_makes_one_spectrum_entry(epochs):
    sharp, blurred = epochs
    frame = sl.Frame.from_observations([sharp, blurred])
    assert frame.channels == ("F814W",) and frame.shape == (1, 24, 24)
    start = scene(frame, (12.0, 12.0), 40.0, 1.2)
    density = sl.LogDensity(start, [sharp, blurred])
    assert "sources[0].spectrum[0]" in density.names and len(density.names) == 4
    # the likelihood of both is the sum of each one's, each seen through its own PSF
    joint = density.log_likelihood(density.x0)
    alone = sharp.log_likelihood(start) + blurred.log_likelihood(start)
    np.testing.assert_allclose(joint, alone, rtol=1e-6)
    assert not np.allclose(sharp.render(start), blurred.render(start), atol=1e-3)


# three Laplace approximations of three likelihoods (a fit and a Hessian compiled each): 60-70 s on 2 cores;
# epochs fitted together are also in the default suite's test_epoch_stacks.py and test_transients.py
@pytest.mark.slow
def test_two_epochs_of_one_band_measure_the_flux_better_than_either(epochs):
    sharp, blurred = epochs
    frame = sl.Frame.from_observations([sharp, blurred])
    start = scene(frame, (12.0, 12.0), 40.0, 1.2)
    name = "sources[0].spectrum"
    fluxes, sds = {}, {}
    for label, likelihood in (("sharp", sharp), ("blurred", blurred), ("both", [sharp, blurred])):
        approximation = sl.laplace(start, likelihood)
        fluxes[label] = float(sl.get_values(approximation.mode)[name][0])
        sds[label] = float(approximation.std[name][0])
        # each estimate is where the noise allows
        assert abs(fluxes[label] - TRUTH["flux"]) < 4 * sds[label], (label, fluxes, sds)
    # measured: 4.1 (sharp), 8.0 (blurred), 3.5 (both); inverse variances adding up would give 3.7
    information = 1 / sds["sharp"] ** 2 + 1 / sds["blurred"] ** 2
    assert sds["both"] < min(sds["sharp"], sds["blurred"])
    assert sds["both"] < 1.1 * information**-0.5, sds

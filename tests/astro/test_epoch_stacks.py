"""Epochs of one shape in one likelihood are stacked and rendered by one program.

`sl.LogDensity(scene, observations)` (and so `sl.fit`, `sl.sample`, `sl.laplace`) evaluates the
observations that can share a program (same data and PSF shapes, channels, grid, time or none) as one
stack, through `Observation.log_likelihood_of_many`: the compiled program does not grow with their
number. Each observation keeps its own WCS, PSF width, time, mask and noise, and the value is the sum
of their own log-likelihoods.
"""

import logging

import equinox as eqx
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from astropy.wcs import WCS

import scarlet_like as sl
from scarlet_like.astro.observation import _epoch_arrays
from scarlet_like.astro.render import common_grid

FRAME = sl.Frame((1, 25, 25), channels=("r",))
POSITIVE = sl.constraints.positive()


class Burst(sl.Module):
    t0: sl.Parameter
    width: sl.Parameter
    peak: sl.Parameter

    def __call__(self, time):
        return self.peak * jnp.exp(-0.5 * ((time - self.t0) / self.width) ** 2)


class OneByOne(eqx.Module):
    """The observations' own `log_likelihood`, one after the other: what stacking must agree with."""

    observations: tuple

    def __call__(self, scene):
        values = [observation.log_likelihood(scene) for observation in self.observations]
        return sum(values[1:], start=values[0])


def supernova_on_host(frame=FRAME, curve=None):
    curve = curve or Burst(
        sl.Parameter(11.0),
        sl.Parameter(2.5, constraint=POSITIVE),
        sl.Parameter(jnp.array([80.0] * frame.shape[0])),
    )
    with sl.Scene(frame) as scene:
        sl.Source(
            sl.Parameter(jnp.array([12.6, 12.1]), prior=nd.Normal(12.0, 2.0).expand([2]).to_event(1)),
            sl.Parameter(jnp.full(frame.shape[0], 300.0), constraint=POSITIVE),
            sl.GaussianMorphology(sl.Parameter(1.8, constraint=POSITIVE), (0.2, -0.1)),
        )
        sl.PointSource(sl.Parameter(jnp.array([14.0, 10.3])), curve)
    return scene


def nights(count, frame=FRAME, seed=0, **options):
    """`count` nights, each with its own PSF width (0.9 to 2.2 px: FFT grids of several paddings and
    aliased copies), time, noise level and data."""
    rng = np.random.default_rng(seed)
    return [
        sl.Observation(
            rng.normal(size=frame.shape) + 1.0,
            weights=rng.uniform(2.0, 5.0),
            psf=sl.GaussianPSF(float(rng.uniform(0.9, 2.2))),
            channels=frame.channels,
            time=float(3 * index),
            name=f"night {index}",
            **options,
        )
        for index in range(count)
    ]


def celestial_wcs(shape, scale_arcsec, center=(150.1, 2.2), rotation_deg=0.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(center)
    height, width = shape
    wcs.wcs.crpix = [(width + 1) / 2, (height + 1) / 2]
    scale = scale_arcsec / 3600
    angle = np.deg2rad(rotation_deg)
    wcs.wcs.cd = scale * np.array([[-np.cos(angle), np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return wcs


def ffts(function, *args):
    """The number of inverse FFTs in the program of `function`: one per render of a stack or of an
    observation (counted in its jaxpr, a loop's body once)."""

    def count(jaxpr):
        total = 0
        for equation in jaxpr.eqns:
            total += equation.primitive.name == "fft"
            for value in equation.params.values():
                for inner in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(inner, jax.extend.core.ClosedJaxpr):
                        total += count(inner.jaxpr)
                    elif isinstance(inner, jax.extend.core.Jaxpr):
                        total += count(inner)
        return total

    return count(jax.make_jaxpr(function)(*args).jaxpr)


@eqx.filter_jit
def epochs_gradient(density, x):
    return jax.value_and_grad(density)(x)


@eqx.filter_jit
def value_at(density, x):
    return density(x)


def test_stacked_epochs_give_the_sum_of_their_own_log_likelihoods():
    """Different PSF widths (paddings, aliased copies), times, noise and masks in one stack."""
    epochs = nights(5)
    mask = np.zeros(FRAME.shape, bool)
    mask[0, 3:9, 4:12] = True
    epochs[2] = eqx.tree_at(
        lambda o: o.weights, epochs[2], jnp.where(jnp.asarray(mask), 0.0, epochs[2].weights)
    )
    assert len({(o.grid.padded, o.grid.aliases) for o in epochs}) > 1  # what the stack has to reconcile
    scene = supernova_on_host()
    stacked = sl.LogDensity(scene, epochs)
    alone = sl.LogDensity(scene, OneByOne(tuple(epochs)))
    value, gradient = epochs_gradient(stacked, stacked.x0)
    expected, reference = epochs_gradient(alone, alone.x0)
    np.testing.assert_allclose(value, expected, rtol=2e-6)
    np.testing.assert_allclose(gradient, reference, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(reference))))
    # one render for the five nights
    assert ffts(stacked, stacked.x0) == 1 and ffts(alone, alone.x0) == 5
    # chi^2 too (what sl.fit's warnings look at)
    chi2 = eqx.filter_jit(sl.Observation.chi2_of_many)(tuple(epochs), scene)
    np.testing.assert_allclose(
        chi2, eqx.filter_jit(lambda e, s: sum(o.chi2(s) for o in e))(epochs, scene), rtol=2e-6
    )


def test_epochs_through_different_wcss_and_groups_of_different_shapes():
    """Observations on WCSs of their own (shifted, rescaled, rotated) stack when they have one shape;
    one of two channels and another size is evaluated on its own."""
    shape = (30, 30)
    frame_wcs = celestial_wcs(shape, 0.2)
    frame = sl.Frame((2, *shape), channels=("g", "r"), wcs=frame_wcs)
    rng = np.random.default_rng(3)

    def observation(name, channels, size, wcs, sigma, time, scale=1.0):
        return sl.Observation(
            scale * (rng.normal(size=(len(channels), *size)) + 0.5),
            weights=4.0,
            psf=sl.GaussianPSF(sigma),
            channels=channels,
            wcs=wcs,
            name=name,
            time=time,
        )

    offsets = [(0.0, 0.0), (0.3e-5, -0.2e-5), (-0.4e-5, 0.1e-5)]
    likelihood = [
        # r-band epochs of 26x26 pixels, each shifted a little on the sky, sharp or blurred
        *[
            observation(
                f"r {i}", ("r",), (26, 26), celestial_wcs((26, 26), 0.21, (150.1 + dy, 2.2 + dx)), s, t
            )
            for i, ((dy, dx), s, t) in enumerate(zip(offsets, (1.0, 1.6, 2.1), (0.0, 4.0, 9.0), strict=True))
        ],
        # rotated epochs
        *[
            observation(
                f"rotated {i}", ("r",), (26, 26), celestial_wcs((26, 26), 0.2, rotation_deg=angle), 1.2, t
            )
            for i, (angle, t) in enumerate(((20.0, 1.0), (21.0, 5.0)))
        ],
        # alone: two channels, another size
        observation("gr", ("g", "r"), (20, 20), celestial_wcs((20, 20), 0.3), 1.1, 3.0),
    ]
    curve = Burst(
        sl.Parameter(4.0), sl.Parameter(3.0, constraint=POSITIVE), sl.Parameter(jnp.array([50.0, 80.0]))
    )
    scene = supernova_on_host(frame, curve)
    stacked = sl.LogDensity(scene, likelihood)
    alone = sl.LogDensity(scene, OneByOne(tuple(likelihood)))
    np.testing.assert_allclose(value_at(stacked, stacked.x0), value_at(alone, alone.x0), rtol=2e-6)
    # the five r epochs are one stack (their maps, numerically never exactly diagonal, are data), the
    # g and r observation another
    assert ffts(stacked, stacked.x0) == 2 and ffts(alone, alone.x0) == 6
    # the maps differ, and matter: the r epochs see the scene at places of their own
    renders = [np.asarray(o.render(scene)) for o in likelihood[:3]]
    assert np.abs(renders[0] - renders[1]).max() > 0.05 * np.abs(renders[0]).max()


def test_jitted_density_over_three_and_eight_epochs_compiles_one_render(caplog):
    scene = supernova_on_host()
    epochs = {count: nights(count, seed=count) for count in (3, 8)}
    # the eight nights again with other data: the same program
    again = [eqx.tree_at(lambda o: o.data, o, o.data + 0.5) for o in epochs[8]]
    likelihoods = (epochs[3], epochs[8], again)
    densities = [sl.LogDensity(scene, likelihood) for likelihood in likelihoods]
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        values = [epochs_gradient(d, d.x0) for d in densities]
    compiled = [
        r.getMessage()
        for r in caplog.records
        if "Compiling" in r.getMessage() and "epochs_gradient" in r.getMessage()
    ]
    assert len(compiled) == 2, compiled  # once for three epochs, once for eight
    for density, likelihood, (value, _) in zip(densities, likelihoods, values, strict=True):
        # the program holds one render, whatever the number of epochs
        assert ffts(density, density.x0) == 1
        alone = sl.LogDensity(scene, OneByOne(tuple(likelihood)))
        assert ffts(alone, alone.x0) == len(likelihood)
        np.testing.assert_allclose(value, value_at(alone, alone.x0), rtol=2e-6)


@pytest.mark.slow
def test_many_epochs_go_in_chunks_of_equal_size(monkeypatch):
    """Past `EPOCH_CHUNK_BYTES`, the stack is evaluated in equal chunks (the last filled up with epochs
    of weight zero): the same value, one render in the program."""
    from scarlet_like.astro import observation

    epochs = nights(5, frame=sl.Frame((1, 16, 16), channels=("r",)))
    scene = supernova_on_host(sl.Frame((1, 16, 16), channels=("r",)))
    stacked = sl.LogDensity(scene, epochs)
    alone = sl.LogDensity(scene, OneByOne(tuple(epochs)))
    grid = common_grid([o.grid for o in epochs])  # what the stack is rendered on
    # room for two epochs' Fourier images per chunk: three chunks, one blank epoch
    monkeypatch.setattr(
        observation, "EPOCH_CHUNK_BYTES", 2 * 8 * len(grid.aliases) * grid.padded[0] * grid.kx.shape[1]
    )
    value, gradient = epochs_gradient(stacked, stacked.x0)
    expected, reference = epochs_gradient(alone, alone.x0)
    np.testing.assert_allclose(value, expected, rtol=2e-6)
    np.testing.assert_allclose(gradient, reference, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(reference))))
    assert "length=3" in str(jax.make_jaxpr(stacked)(stacked.x0)) and ffts(stacked, stacked.x0) == 1


def test_boxes_and_masks_in_a_stack():
    """Sources drawn in boxes of their own (boxes=True), on epochs whose PSFs make boxes of one size."""
    epochs = [
        sl.Observation(
            np.random.default_rng(index).normal(size=FRAME.shape),
            psf=sl.GaussianPSF(0.9 + 0.02 * index),  # boxes of one size: 8 px of PSF
            mask=np.arange(25)[None, None, :] < 2 * index,
            channels=FRAME.channels,
            time=float(index),
            boxes=True,
            name=f"boxed {index}",
        )
        for index in range(4)
    ]
    with sl.Scene(FRAME) as scene:
        sl.Source(
            sl.Parameter(jnp.array([12.0, 11.0])),
            sl.Parameter(jnp.array([100.0])),
            sl.GaussianMorphology(sl.Parameter(1.5, constraint=POSITIVE)),
            box=8,
        )
        sl.PointSource(sl.Parameter(jnp.array([6.0, 16.0])), Burst(2.0, 1.0, jnp.array([40.0])))
    stacked = sl.LogDensity(scene, epochs)
    alone = sl.LogDensity(scene, OneByOne(tuple(epochs)))
    np.testing.assert_allclose(value_at(stacked, stacked.x0), value_at(alone, alone.x0), rtol=2e-6)
    assert ffts(alone, alone.x0) == 4 * ffts(stacked, stacked.x0) == 8  # a box and the grid, once


def test_a_bad_observation_in_a_stack_is_named():
    epochs = nights(5)
    epochs[3] = sl.Observation(
        np.zeros(FRAME.shape), psf=sl.GaussianPSF(1.0), channels=FRAME.channels, name="night 3, no time"
    )
    with pytest.raises(sl.ObservationError, match="Observation 'night 3, no time' has no time"):
        sl.LogDensity(supernova_on_host(), epochs)
    wrong = nights(3)
    wrong[1] = sl.Observation(np.zeros((1, 25, 25)), channels=("i",), time=3.0, name="night 1 in i")
    with pytest.raises(sl.FrameError, match=r"Observation 'night 1 in i': channel\(s\) \['i'\] are not in"):
        sl.LogDensity(supernova_on_host(), wrong)


def test_stacked_arrays_are_what_differs_between_epochs():
    """The stack takes every array an observation holds but its grid's (derived from the PSF)."""
    night = nights(1)[0]
    held = {id(leaf) for leaf in jax.tree_util.tree_leaves(night)}
    stacked = {id(leaf) for leaf in jax.tree_util.tree_leaves(_epoch_arrays(night))}
    grid = {id(leaf) for leaf in jax.tree_util.tree_leaves(night.grid) if leaf is not night.psf.sigma}
    assert stacked | grid == held


def test_a_subclass_that_renders_otherwise_keeps_its_own_method():
    class Brighter(sl.Observation):
        def render(self, scene):
            return 2.0 * super().render(scene)

    epochs = [
        Brighter(np.ones(FRAME.shape), psf=sl.GaussianPSF(1.5), channels=FRAME.channels, time=t, name=f"n{t}")
        for t in (0.0, 1.0)
    ]
    scene = supernova_on_host()
    density = sl.LogDensity(scene, epochs)
    expected = sum(float(o.log_likelihood(scene)) for o in epochs)
    np.testing.assert_allclose(density.log_likelihood(density.x0), expected, rtol=1e-6)

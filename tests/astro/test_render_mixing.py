"""The renderer's mixing of source transforms into bands (`render._mix_spectra`).

It replaces `einsum("kc,kahw->cahw", spectra, shapes)` by real matrix products for speed (see its
docstring); these tests hold it to the `einsum` in value and in every mode of differentiation, and check
that forward-mode differentiation still goes through a whole scene.
"""

import jax
import jax.numpy as jnp
import numpy as np

import scarlet_like as sl
from scarlet_like.astro import render


def _complex(rng: np.random.Generator, shape: tuple[int, ...]) -> jax.Array:
    parts = rng.normal(size=(2, *shape))
    return jax.lax.complex(jnp.asarray(parts[0], jnp.float32), jnp.asarray(parts[1], jnp.float32))


def _inputs(seed: int = 0):
    """Spectra `(K, C)` and source transforms `(K, A, Hp, Wr)`."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(0.5, 2.0, (3, 4)), jnp.float32), _complex(rng, (3, 2, 5, 6))


def _einsum(spectra, shapes):
    return jnp.einsum("kc,kahw->cahw", spectra.astype(shapes.dtype), shapes)


def test_mix_spectra_is_the_einsum():
    spectra, shapes = _inputs()
    mixed = render._mix_spectra(spectra, shapes)
    assert mixed.shape == (4, 2, 5, 6) and mixed.dtype == jnp.complex64
    np.testing.assert_allclose(mixed, _einsum(spectra, shapes), rtol=1e-5, atol=1e-6)


def test_mix_spectra_derivatives_are_the_einsums():
    spectra, shapes = _inputs(1)
    tangents = _inputs(2)
    cotangent = _complex(np.random.default_rng(3), (4, 2, 5, 6))  # (C, A, Hp, Wr)
    (_, ours), (_, theirs) = (jax.jvp(f, (spectra, shapes), tangents) for f in (render._mix_spectra, _einsum))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    ours = jax.vjp(render._mix_spectra, spectra, shapes)[1](cotangent)
    theirs = jax.vjp(_einsum, spectra, shapes)[1](cotangent)
    assert ours[0].dtype == jnp.float32 and ours[1].dtype == jnp.complex64
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)


def test_forward_mode_goes_through_a_scene():
    """`jacfwd` of a log-likelihood (forward mode through the renderer) equals its gradient."""
    rng = np.random.default_rng(4)
    obs = sl.Observation(
        rng.normal(0.0, 0.1, (2, 24, 24)).astype(np.float32),
        weights=np.full((2, 24, 24), 100.0, np.float32),
        psf=sl.GaussianPSF(np.array([1.2, 1.4], np.float32)),
    )
    positive = sl.constraints.positive()
    with sl.Scene(sl.Frame.from_observations(obs)) as scene:
        sl.Source(
            sl.Parameter(np.array([11.3, 12.6])),
            sl.Parameter(np.array([1.0, 2.0]), constraint=positive),
            sl.SersicMorphology(sl.Parameter(2.2, constraint=sl.constraints.interval(0.5, 6.0)), 2.0),
        )
        sl.Source(
            sl.Parameter(np.array([6.0, 15.0])),
            sl.Parameter(np.array([0.5, 0.3]), constraint=positive),
            sl.GaussianMorphology(sl.Parameter(1.5, constraint=positive), (0.1, 0.0)),
        )
    density = sl.LogDensity(scene, obs, jacobian=False)
    forward = jax.jit(jax.jacfwd(density))(density.x0)
    reverse = jax.jit(jax.grad(density))(density.x0)
    np.testing.assert_allclose(forward, reverse, rtol=1e-3, atol=1e-3 * float(jnp.max(jnp.abs(reverse))))

"""The renderer's private fast paths: spectra mixing (`_mix_spectra`), phases (`_phase`) and the
separable transform of pixel images (`image_fourier`).

Each replaces a one-line expression (a complex `einsum`, a 2-D complex exponential) by matrix products
that XLA:CPU compiles to a faster gradient (see their docstrings); these tests hold them to the
expressions they replace, in value and in every mode of differentiation, and check that forward-mode
differentiation still goes through a whole scene.
"""

import jax
import jax.numpy as jnp
import numpy as np

import scarlet_like as sl
from scarlet_like.astro import render
from scarlet_like.astro.psf import image_fourier, phasor


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


def _frequency_grid(aliases: int = 3, height: int = 12, width: int = 7):
    """`(A, Hp, 1)` and `(A, 1, Wr)` frequencies with aliased copies, as `render` builds them."""
    shifts = 2.0 * np.pi * np.arange(aliases)[:, None, None]
    ky = 2.0 * np.pi * np.fft.fftfreq(height)[None, :, None] + shifts
    kx = 2.0 * np.pi * np.fft.rfftfreq(2 * width - 2)[None, None, :] - shifts
    return ky, kx


def _two_dimensional_phase(ky, kx, center):
    return phasor(ky * center[0] + kx * center[1])


def test_phase_is_the_two_dimensional_phase():
    ky, kx = _frequency_grid()
    for center in ([0.0, 0.0], [12.3, -4.7], [250.6, 97.1]):
        with jax.enable_x64(True):
            args = (jnp.asarray(ky), jnp.asarray(kx), jnp.asarray(center))
            phase = render._phase(*args)
            assert phase.shape == (3, 12, 7) and phase.dtype == jnp.complex128
            np.testing.assert_allclose(phase, _two_dimensional_phase(*args), rtol=0.0, atol=1e-12)
        # float32: both round their angles, by up to 6e-8 |k c| radians
        args = tuple(jnp.asarray(x, jnp.float32) for x in (ky, kx, center))
        phase = render._phase(*args)
        assert phase.dtype == jnp.complex64
        angle_rounding = 6e-8 * (np.abs(ky).max() * abs(center[0]) + np.abs(kx).max() * abs(center[1]))
        np.testing.assert_allclose(
            phase, _two_dimensional_phase(*args), rtol=0.0, atol=2.0 * angle_rounding + 1e-6
        )


def test_phase_derivatives_are_those_of_the_two_dimensional_phase():
    ky, kx = _frequency_grid()
    with jax.enable_x64(True):
        ky, kx = jnp.asarray(ky), jnp.asarray(kx)
        weights = _complex(np.random.default_rng(5), (3, 12, 7)).astype(jnp.complex128)

        def loss(phase):
            return lambda center: jnp.sum(jnp.real(weights * phase(ky, kx, center)))

        center = jnp.array([12.3, -4.7])
        for derivative in (jax.grad, jax.jacfwd, jax.hessian):
            # jitted: op by op, the Hessians alone took 15 s
            np.testing.assert_allclose(
                jax.jit(derivative(loss(render._phase)))(center),
                jax.jit(derivative(loss(_two_dimensional_phase)))(center),
                rtol=1e-10,
                atol=1e-10,
            )


def test_sources_summed_in_chunks_give_the_same_image_and_gradient(monkeypatch):
    # 11 Sersic sources in chunks of 3 (a scan over 4 chunks, the last with one blank source) against all
    # at once
    rng = np.random.default_rng(3)
    obs = sl.Observation(
        np.zeros((2, 24, 24), np.float32), psf=sl.GaussianPSF(np.array([1.0, 1.3], np.float32))
    )
    with sl.Scene(sl.Frame.from_observations(obs)) as scene:
        for _ in range(11):
            sl.Source(
                sl.Parameter(rng.uniform(4.0, 20.0, 2)),
                sl.Parameter(rng.uniform(1.0, 3.0, 2), constraint=sl.constraints.positive()),
                sl.SersicMorphology(
                    sl.Parameter(rng.uniform(1.0, 3.0)), sl.Parameter(rng.uniform(1.0, 2.0)), (0.1, -0.2)
                ),
            )
    data = np.asarray(obs.simulate(scene, jax.random.key(1)))
    density = sl.LogDensity(scene, sl.Observation(data, psf=obs.psf), jacobian=False)

    def image_and_gradient():
        image = jax.jit(lambda x: obs.render(density.model(x)))(density.x0)
        return image, jax.jit(jax.grad(density))(density.x0)

    image, gradient = image_and_gradient()
    frequencies = len(obs.grid.aliases) * obs.grid.padded[0] * obs.grid.kx.shape[1]
    monkeypatch.setattr(render, "CHUNK_BYTES", 3 * 8 * frequencies)
    chunked_image, chunked_gradient = image_and_gradient()
    np.testing.assert_allclose(chunked_image, image, rtol=1e-5, atol=1e-6 * float(jnp.max(image)))
    np.testing.assert_allclose(
        chunked_gradient, gradient, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(gradient)))
    )


def test_pixel_images_transform_separably_on_a_grid_as_at_any_frequencies():
    # On a grid (a column of ky, a row of kx) `image_fourier` takes two matrix products; the direct
    # sum over pixels at every frequency of the broadcast grid is the reference, for a stack of images
    # and leading (alias) axes, in value and gradient.
    rng = np.random.default_rng(3)
    images = jnp.asarray(rng.uniform(0.0, 1.0, (2, 7, 6)), jnp.float32)
    ky = jnp.asarray(rng.uniform(-3, 3, (3, 9, 1)), jnp.float32)
    kx = jnp.asarray(rng.uniform(-3, 3, (1, 1, 5)), jnp.float32)
    full_ky, full_kx = jnp.broadcast_arrays(ky, kx)
    separable = image_fourier(images, ky, kx)
    direct = image_fourier(images, full_ky, full_kx)
    assert separable.shape == direct.shape == (2, 3, 9, 5)
    np.testing.assert_allclose(separable, direct, atol=2e-5)
    y = np.arange(7) - 3.0
    x = np.arange(6) - 2.5
    by_hand = np.einsum(
        "chw,akh,akw->cak",
        np.asarray(images, np.float64),
        np.exp(-1j * np.asarray(full_ky, np.float64).reshape(3, -1)[..., None] * y),
        np.exp(-1j * np.asarray(full_kx, np.float64).reshape(3, -1)[..., None] * x),
    ).reshape(2, 3, 9, 5)
    np.testing.assert_allclose(separable, by_hand, atol=2e-5)

    def loss(images, ky, kx):
        return jnp.sum(jnp.abs(image_fourier(images, ky, kx)) ** 2)

    np.testing.assert_allclose(
        jax.grad(loss)(images, ky, kx), jax.grad(loss)(images, full_ky, full_kx), rtol=1e-4, atol=1e-4
    )

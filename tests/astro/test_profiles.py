"""Fourier-space profiles against GalSim (transforms and drawn images) and closed forms.

GalSim orders coordinates `(x, y)`, scarlet_like `(y, x)`: `obj.kValue(kx, ky)` is compared with
`*_ft(ky, kx, ...)`, and `image.array[row, column]` is already `(y, x)`.
"""

import math

import galsim
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from scarlet_like.astro import profiles

SHEARS = [(0.0, 0.0), (0.3, 0.0), (0.0, -0.4), (0.25, 0.35), (-0.5, 0.2)]
PSF_SIGMA = 1.5


def _random_frequencies(seed: int, count: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Uniform in the disk |k| <= pi, plus a few far beyond the Nyquist frequency and k = 0."""
    rng = np.random.default_rng(seed)
    radius = math.pi * np.sqrt(rng.uniform(size=count))
    angle = rng.uniform(0.0, 2.0 * math.pi, size=count)
    radius = np.concatenate([radius, [0.0, 5.0, 8.0, 12.0]])
    angle = np.concatenate([angle, [0.0, 0.3, 2.0, 4.0]])
    return radius * np.sin(angle), radius * np.cos(angle)


def _galsim_k_values(obj: galsim.GSObject, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    values = np.array([obj.kValue(float(x), float(y)) for y, x in zip(ky, kx, strict=True)])
    assert np.max(np.abs(values.imag)) < 1e-12
    return values.real


# --------------------------------------------------------------------------------------
# Shear and pixel
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("g1, g2", SHEARS)
def test_shear_matrix_is_galsim_shear_in_yx_order(g1, g2):
    expected_xy = galsim.Shear(g1=g1, g2=g2).getMatrix()
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    matrix = np.asarray(profiles.shear_matrix(g1, g2))
    np.testing.assert_allclose(matrix, swap @ expected_xy @ swap, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.det(matrix), 1.0, rtol=1e-6)


def test_shear_matrix_broadcasts():
    matrices = profiles.shear_matrix(jnp.array([0.1, 0.2, -0.3]), 0.05)
    assert matrices.shape == (3, 2, 2)
    assert matrices.dtype == jnp.float32


def test_pixel_ft_matches_galsim_pixel():
    ky, kx = _random_frequencies(1)
    expected = _galsim_k_values(galsim.Pixel(scale=1.0), ky, kx)
    np.testing.assert_allclose(profiles.pixel_ft(ky, kx), expected, atol=1e-6)
    assert profiles.pixel_ft(0.0, 0.0) == 1.0
    np.testing.assert_allclose(profiles.pixel_ft(2.0 * math.pi, 0.3), 0.0, atol=1e-7)


# --------------------------------------------------------------------------------------
# Transforms against GalSim
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("g1, g2", SHEARS)
def test_gaussian_ft_matches_galsim(g1, g2):
    ky, kx = _random_frequencies(2)
    for sigma in (0.7, 1.5, 4.0):
        expected = _galsim_k_values(galsim.Gaussian(sigma=sigma).shear(g1=g1, g2=g2), ky, kx)
        actual = profiles.gaussian_ft(ky, kx, sigma, g1, g2)
        assert actual.dtype == jnp.float32
        np.testing.assert_allclose(actual, expected, atol=1e-6)


@pytest.mark.parametrize("n", [0.5, 0.8, 1.0, 1.5, 2.5, 4.0, 5.5])
def test_sersic_ft_matches_galsim(n):
    ky, kx = _random_frequencies(3)
    worst = 0.0
    for r_half in (1.0, 2.0, 5.0):
        for g1, g2 in SHEARS[:4]:
            galsim_profile = galsim.Sersic(n, half_light_radius=r_half).shear(g1=g1, g2=g2)
            expected = _galsim_k_values(galsim_profile, ky, kx)
            actual = np.asarray(profiles.sersic_ft(ky, kx, n, r_half, g1, g2))
            worst = max(worst, np.max(np.abs(actual - expected)))
    assert worst <= 1e-4


def test_sersic_ft_closed_forms_across_scales():
    """n = 1/2 is a Gaussian and n = 1 an exponential disk, from q far below to far above the table."""
    q = np.geomspace(1e-6, 1e6, 400)
    with jax.enable_x64(True):
        zeros = jnp.zeros_like(q)
        r_half = 1.7
        gaussian_sigma = r_half / math.sqrt(2.0 * math.log(2.0))
        gaussian = np.exp(-0.5 * (gaussian_sigma * q / r_half) ** 2)
        np.testing.assert_allclose(profiles.sersic_ft(zeros, q / r_half, 0.5, r_half), gaussian, atol=1e-6)
        scale_length = 1.0 / special.gammaincinv(2.0, 0.5)
        exponential = (1.0 + (q * scale_length) ** 2) ** -1.5
        actual = np.asarray(profiles.sersic_ft(q / r_half, zeros, 1.0, r_half))
        np.testing.assert_allclose(actual, exponential, atol=1e-6)
        # Relative accuracy in the far tail too, where the power-law continuation takes over.
        np.testing.assert_allclose(actual[q > 1e3], exponential[q > 1e3], rtol=1e-4)


def test_sersic_ft_at_zero_frequency_is_unit_flux():
    ft = profiles.sersic_ft(0.0, 0.0, jnp.array([0.5, 1.0, 3.0, 6.2]), 2.0, 0.3, 0.1)
    np.testing.assert_array_equal(ft, 1.0)


def test_dtypes():
    ky, kx = _random_frequencies(4, count=8)
    assert profiles.sersic_ft(ky.astype(np.float32), kx.astype(np.float32), 2.0, 3.0).dtype == jnp.float32
    assert profiles.sersic_ft(0, 1, 2, 3).dtype == jnp.float32
    with jax.enable_x64(True):
        assert profiles.sersic_ft(ky, kx, 2.0, 3.0, 0.1, 0.2).dtype == jnp.float64
        assert profiles.gaussian_ft(ky, kx, 2.0, 0.1, 0.2).dtype == jnp.float64
        assert profiles.pixel_ft(ky, kx).dtype == jnp.float64


# --------------------------------------------------------------------------------------
# Real-space images against GalSim's drawImage
# --------------------------------------------------------------------------------------


def _render(profile_ft, center_yx: tuple[float, float], size: int = 64, padded: int = 128) -> np.ndarray:
    """Pixel values of `profile * PSF`, integrated over unit pixels whose centres are at integer (y, x).

    The transform is sampled on the rfft grid of a `padded` square and inverse-FFT'd; padding keeps the
    periodic copies of the profile (the FFT wraps around) far from the `size` x `size` stamp.
    """
    ky = 2.0 * np.pi * np.fft.fftfreq(padded)[:, None]
    kx = 2.0 * np.pi * np.fft.rfftfreq(padded)[None, :]
    transform = profile_ft(ky, kx) * profiles.gaussian_ft(ky, kx, PSF_SIGMA) * profiles.pixel_ft(ky, kx)
    # The phase exp(-i k.c) moves the profile from the origin to pixel position c.
    phase = np.exp(-1j * (ky * center_yx[0] + kx * center_yx[1]))
    return np.fft.irfft2(np.asarray(transform, dtype=np.float64) * phase, s=(padded, padded))[:size, :size]


def _galsim_image(profile: galsim.GSObject, offset_xy: tuple[float, float], size: int = 64) -> np.ndarray:
    convolved = galsim.Convolve(profile, galsim.Gaussian(sigma=PSF_SIGMA))
    return convolved.drawImage(nx=size, ny=size, scale=1.0, offset=offset_xy).array


def _galsim_offset_to_center(offset_xy: tuple[float, float], size: int = 64) -> tuple[float, float]:
    """GalSim puts the profile at the image's true centre plus `offset`.

    For an image of `size` pixels with GalSim's 1-indexed bounds [1, size], the true centre is at
    (size + 1) / 2, i.e. (size - 1) / 2 in 0-indexed array coordinates where pixel centres are integers
    (31.5 for 64: between two pixels for even sizes). `offset` is `(dx, dy)` in GalSim's (x, y) order.
    """
    return ((size - 1) / 2 + offset_xy[1], (size - 1) / 2 + offset_xy[0])


@pytest.mark.parametrize(
    "name, galsim_profile, profile_ft, tolerance",
    [
        (
            "gaussian",
            galsim.Gaussian(sigma=2.0).shear(g1=0.2, g2=-0.1),
            lambda ky, kx: profiles.gaussian_ft(ky, kx, 2.0, 0.2, -0.1),
            1e-3,
        ),
        (
            "sersic-1",
            galsim.Sersic(1.0, half_light_radius=3.0).shear(g1=0.2, g2=-0.1),
            lambda ky, kx: profiles.sersic_ft(ky, kx, 1.0, 3.0, 0.2, -0.1),
            1e-3,
        ),
        (
            "sersic-4",
            galsim.Sersic(4.0, half_light_radius=3.0).shear(g1=-0.15, g2=0.25),
            lambda ky, kx: profiles.sersic_ft(ky, kx, 4.0, 3.0, -0.15, 0.25),
            1e-3,
        ),
    ],
)
def test_rendered_image_matches_galsim_draw_image(name, galsim_profile, profile_ft, tolerance):
    offset_xy = (0.37, -0.21)
    expected = _galsim_image(galsim_profile, offset_xy)
    actual = _render(profile_ft, _galsim_offset_to_center(offset_xy))
    assert np.max(np.abs(actual - expected)) <= tolerance * expected.max(), name
    # Both images hold (almost) all of the flux.
    np.testing.assert_allclose(actual.sum(), expected.sum(), rtol=5e-3)


def _second_moments(image: np.ndarray) -> tuple[float, float, float]:
    rows, columns = np.indices(image.shape)
    weights = image / image.sum()
    mean_y, mean_x = (weights * rows).sum(), (weights * columns).sum()
    yy = (weights * (rows - mean_y) ** 2).sum()
    xx = (weights * (columns - mean_x) ** 2).sum()
    xy = (weights * (rows - mean_y) * (columns - mean_x)).sum()
    return yy, xx, xy


@pytest.mark.parametrize("g1, g2", [(0.3, 0.0), (0.0, 0.3)])
def test_shear_direction_matches_galsim(g1, g2):
    """g1 > 0 widens along x (columns), g2 > 0 along the diagonal x = y (positive x-y covariance)."""
    offset_xy = (0.0, 0.0)
    ours = _second_moments(_render(lambda ky, kx: profiles.sersic_ft(ky, kx, 1.5, 4.0, g1, g2), (31.5, 31.5)))
    theirs = _second_moments(
        _galsim_image(galsim.Sersic(1.5, half_light_radius=4.0).shear(g1=g1, g2=g2), offset_xy)
    )
    np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=2e-3)
    yy, xx, xy = ours
    if g1 > 0:
        assert xx > 1.5 * yy and abs(xy) < 1e-3
    else:
        assert xy > 0.5 and abs(xx - yy) < 1e-3


# --------------------------------------------------------------------------------------
# Gradients and transformations
# --------------------------------------------------------------------------------------


@jax.jit
def _weighted_sersic_power(parameters, ky, kx):
    weights = jnp.linspace(-1.0, 2.0, ky.size, dtype=ky.dtype)
    return jnp.sum(weights * profiles.sersic_ft(ky, kx, *parameters) ** 2)


_weighted_sersic_power_gradient = jax.jit(jax.grad(_weighted_sersic_power))


@pytest.mark.parametrize("params", [(1.3, 2.5, 0.2, -0.1), (3.7, 1.2, -0.3, 0.25), (0.62, 4.0, 0.05, 0.4)])
def test_sersic_ft_gradients_match_finite_differences(params):
    """Gradients with respect to (n, r_half, g1, g2) against central differences, in float64."""
    ky, kx = _random_frequencies(5, count=40)
    with jax.enable_x64(True):
        ky, kx = jnp.asarray(ky), jnp.asarray(kx)
        parameters = jnp.asarray(params)
        gradient = np.asarray(_weighted_sersic_power_gradient(parameters, ky, kx))
        assert np.all(np.isfinite(gradient))
        step = 1e-5
        shifts = step * jnp.eye(4)
        finite_difference = [
            (
                _weighted_sersic_power(parameters + shift, ky, kx)
                - _weighted_sersic_power(parameters - shift, ky, kx)
            )
            / (2.0 * step)
            for shift in shifts
        ]
        np.testing.assert_allclose(gradient, finite_difference, rtol=1e-3, atol=1e-9)


def test_gradients_are_finite_at_zero_frequency_and_table_edges():
    k = jnp.array([0.0, 1e-7, 1.0, 1e5])

    def total(p):
        sersic = profiles.sersic_ft(k, 0.5 * k, p[0], p[1], p[2], p[3])
        return jnp.sum(sersic + profiles.gaussian_ft(k, 0.5 * k, p[1], p[2], p[3]) * profiles.pixel_ft(k, k))

    gradient = jax.jit(jax.grad(total))(jnp.array([2.0, 3.0, 0.1, -0.2]))
    assert np.all(np.isfinite(np.asarray(gradient)))
    assert np.all(np.asarray(gradient) != 0.0)


def test_vmap_over_sources_matches_broadcasting():
    ky, kx = _random_frequencies(6, count=20)
    n = jnp.array([0.7, 2.0, 4.5])
    r_half = jnp.array([1.0, 2.5, 3.0])
    g1 = jnp.array([0.1, -0.2, 0.0])
    g2 = jnp.array([0.0, 0.3, -0.1])
    mapped = jax.jit(jax.vmap(profiles.sersic_ft, in_axes=(None, None, 0, 0, 0, 0)))(
        ky, kx, n, r_half, g1, g2
    )
    broadcast = profiles.sersic_ft(ky[None], kx[None], n[:, None], r_half[:, None], g1[:, None], g2[:, None])
    np.testing.assert_allclose(mapped, broadcast, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------
# One n per call: the per-source spline in log q and its JVP rule
# --------------------------------------------------------------------------------------

# (n, r_half, g1, g2); n spans the table, the last one sits on its upper edge
SERSIC_PARAMETERS = [
    (1.3, 2.5, 0.2, -0.1),
    (3.7, 1.2, -0.3, 0.25),
    (0.62, 4.0, 0.05, 0.4),
    (6.2, 0.9, 0.1, 0.0),
]


def _frequencies_across_the_table(seed: int, count: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Random frequencies, plus ones putting q below (k = 0, 1e-6) and above (1e5) the table."""
    ky, kx = _random_frequencies(seed, count)
    return np.concatenate([ky, [0.0, 1e-6, 3e4]]), np.concatenate([kx, [0.0, 0.0, 1e5]])


def _sersic_loss(parameters, ky, kx, batched):
    """A weighted sum of `sersic_ft`; `batched` passes n as shape (1,), which takes the general lookup."""
    n, r_half, g1, g2 = parameters
    if batched:
        n = jnp.reshape(n, (1,))
    weights = jnp.linspace(-1.0, 2.0, ky.size, dtype=ky.dtype)
    return jnp.sum(weights * profiles.sersic_ft(ky, kx, n, r_half, g1, g2))


@pytest.mark.parametrize("params", SERSIC_PARAMETERS)
def test_scalar_n_path_matches_the_general_lookup(params):
    ky, kx = _frequencies_across_the_table(7)
    n, r_half, g1, g2 = params
    scalar = np.asarray(profiles.sersic_ft(ky, kx, n, r_half, g1, g2))
    general = np.asarray(profiles.sersic_ft(ky, kx, np.array([n]), r_half, g1, g2))
    assert scalar.dtype == np.float32
    np.testing.assert_allclose(scalar, general, rtol=0.0, atol=3e-7)


@pytest.mark.parametrize("params", SERSIC_PARAMETERS)
def test_scalar_n_path_derivatives_match_the_general_lookup(params):
    """Gradient and Hessian in (n, r_half, g1, g2), in float64, against the broadcasting table lookup."""
    ky, kx = _frequencies_across_the_table(8)
    with jax.enable_x64(True):
        ky, kx, parameters = jnp.asarray(ky), jnp.asarray(kx), jnp.asarray(params)
        for derivative in (jax.grad, jax.hessian):
            scalar = np.asarray(derivative(_sersic_loss)(parameters, ky, kx, False))
            general = np.asarray(derivative(_sersic_loss)(parameters, ky, kx, True))
            assert np.all(np.isfinite(scalar))
            np.testing.assert_allclose(scalar, general, rtol=1e-9, atol=1e-9 * np.max(np.abs(general)))


def _derivatives_with_n_or_k_held_fixed(ky, kx, batched: bool) -> list:
    as_n = (lambda n: jnp.reshape(n, (1,))) if batched else (lambda n: n)

    def by_size(r_half):  # n held fixed
        return jnp.sum(profiles.sersic_ft(ky, kx, as_n(jnp.asarray(2.3)), r_half, 0.1, -0.2) ** 2)

    def by_index(n):  # k, r_half and g held fixed
        return jnp.sum(profiles.sersic_ft(0.7, 0.2, as_n(n), 2.0, 0.1, -0.2))

    x = jnp.asarray(2.0)
    return [derivative(f)(x) for f in (by_size, by_index) for derivative in (jax.grad, jax.hessian)]


@pytest.mark.slow
def test_scalar_n_path_with_n_or_k_held_fixed():
    """The JVP rule skips the n derivative when n has no tangent (and the k one when only n moves)."""
    ky, kx = _frequencies_across_the_table(9)
    with jax.enable_x64(True):
        ky, kx = jnp.asarray(ky), jnp.asarray(kx)
        np.testing.assert_allclose(
            _derivatives_with_n_or_k_held_fixed(ky, kx, batched=False),
            _derivatives_with_n_or_k_held_fixed(ky, kx, batched=True),
            rtol=1e-10,
        )


@pytest.mark.slow
def test_sersic_spline_jvp_matches_finite_differences():
    """The custom JVP of the per-source spline, and the second derivatives through it (float64)."""
    rng = np.random.default_rng(10)
    with jax.enable_x64(True):
        # grid positions: n anywhere in the table, q across it (knots and both ends included)
        q_positions = jnp.asarray(np.concatenate([rng.uniform(0.0, 320.0, 50), [0.0, 1.0, 160.0, 320.0]]))
        weights = jnp.asarray(rng.normal(size=q_positions.size))

        def spline(n_position, q_shift):
            return profiles._sersic_spline(n_position, q_positions + q_shift)

        def total(point):
            return jnp.sum(weights * spline(point[0], point[1]))

        step = 1e-5
        for n_position in (0.0, 3.3, 47.5, 98.2, 99.0):
            point = jnp.array([n_position, 0.0])
            for direction in jnp.eye(2):
                _, tangent = jax.jvp(lambda p: spline(p[0], p[1]), (point,), (direction,))
                central = (spline(*(point + step * direction)) - spline(*(point - step * direction))) / (
                    2.0 * step
                )
                # one-sided at the table's ends, where the spline stops
                if n_position == 0.0 and direction[0] == 1.0:
                    central = (spline(*(point + step * direction)) - spline(*point)) / step
                np.testing.assert_allclose(tangent, central, rtol=1e-4, atol=1e-7)
            if 0.0 < n_position < 99.0:
                hessian = jax.hessian(total)(point)
                gradient = jax.grad(total)
                columns = [
                    (gradient(point + step * e) - gradient(point - step * e)) / (2 * step) for e in jnp.eye(2)
                ]
                np.testing.assert_allclose(hessian, jnp.stack(columns, axis=1), rtol=1e-4, atol=1e-6)

"""`sl.SpergelMorphology` against GalSim's `Spergel`, and its half-light factor and gradients.

Placement in GalSim follows `tests/astro/test_render.py` (`_galsim_image`): a source at scarlet_like's
`(y, x)` is drawn with `offset = (x - (W - 1) / 2, y - (H - 1) / 2)`.

Measured max |ours - GalSim| / peak (float32, Gaussian PSF sigma 1.2, 48 x 48, r_half 3), round / sheared
(0.25, -0.15): nu -0.6: 3.7e-5 / 3.6e-5, nu 0.5: 2.2e-6 / 2.8e-6, nu 2: 3.6e-7 / 4.8e-7; asserted 1e-3.
"""

from __future__ import annotations

import equinox as eqx
import galsim
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.astro import profiles

SIZE = 48
CENTER = (23.3, 24.8)
TOLERANCE = 1e-3  # of the peak


@eqx.filter_jit
def _render(observation, scene):
    return observation.render(scene)


def _galsim_image(profile, center):
    y, x = center
    offset = (x - (SIZE - 1) / 2, y - (SIZE - 1) / 2)
    return profile.drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=offset, method="auto").array.astype(
        np.float64
    )


@pytest.mark.parametrize("nu", [-0.6, 0.5, 2.0])
@pytest.mark.parametrize("shear", [(0.0, 0.0), (0.25, -0.15)])
def test_matches_galsim_spergel(nu, shear):
    observation = sl.Observation(data=np.zeros((1, SIZE, SIZE)), psf=sl.GaussianPSF(1.2))
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        sl.Source(CENTER, [10.0], sl.SpergelMorphology(nu, 3.0, shear))
    ours = np.asarray(_render(observation, sl.resolve(scene)), dtype=np.float64)[0]
    profile = galsim.Spergel(nu, half_light_radius=3.0).shear(g1=shear[0], g2=shear[1]).withFlux(10.0)
    reference = _galsim_image(galsim.Convolve(profile, galsim.Gaussian(sigma=1.2)), CENTER)
    error = np.max(np.abs(ours - reference)) / reference.max()
    assert error < TOLERANCE, error


def test_half_light_factor_between_table_nodes():
    # midpoints between nodes are where the interpolation is worst
    nodes = np.linspace(profiles.SPERGEL_NU_MIN, profiles.SPERGEL_NU_MAX, 971)
    middles = 0.5 * (nodes[:-1] + nodes[1:])[::13]
    exact = np.array([profiles._spergel_root(nu) for nu in middles])
    ours = np.asarray(profiles.spergel_half_light_factor(jnp.asarray(middles, jnp.float32)), np.float64)
    assert np.max(np.abs(ours / exact - 1)) < 1e-6  # float32; 4.6e-8 in float64
    # and GalSim's own scale radius
    for nu in (-0.85, -0.3, 1.0, 4.0):
        expected = 1.0 / galsim.Spergel(nu, half_light_radius=1.0).scale_radius
        assert float(profiles.spergel_half_light_factor(nu)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("nu", [-0.7, 0.3, 2.5])
def test_gradient_in_nu_matches_finite_differences(nu):
    ky, kx = jnp.asarray([0.3, 0.7, 1.5]), jnp.asarray([-0.2, 0.4, 0.1])

    def total(nu):
        return jnp.sum(profiles.spergel_ft(ky, kx, nu, 2.5, 0.1, -0.2))

    gradient = float(jax.grad(total)(jnp.float32(nu)))
    step = 1e-3
    numeric = (np.sum(_ft64(ky, kx, nu + step)) - np.sum(_ft64(ky, kx, nu - step))) / (2 * step)
    assert gradient == pytest.approx(numeric, rel=2e-3, abs=1e-5)
    factor_gradient = float(jax.grad(profiles.spergel_half_light_factor)(jnp.float32(nu)))
    exact = (profiles._spergel_root(nu + 1e-4) - profiles._spergel_root(nu - 1e-4)) / 2e-4
    assert factor_gradient == pytest.approx(exact, rel=1e-4)


def _ft64(ky, kx, nu):
    """The transform in float64 numpy, from GalSim's scale radius."""
    r_c = galsim.Spergel(nu, half_light_radius=2.5).scale_radius
    shear = galsim.Shear(g1=0.1, g2=-0.2)
    values = []
    for y, x in zip(np.asarray(ky), np.asarray(kx), strict=True):
        values.append(galsim.Spergel(nu, scale_radius=r_c).shear(shear).kValue(float(x), float(y)).real)
    return np.array(values)


def test_extent_reaches_the_level():
    from scipy import special

    morphology = sl.SpergelMorphology(0.5, 3.0)
    radius = morphology.extent(1e-3)
    r_c = galsim.Spergel(0.5, half_light_radius=3.0).scale_radius

    def brightness(r):
        return (r / r_c) ** 0.5 * special.kv(0.5, r / r_c)

    assert brightness(radius) / brightness(3.0) == pytest.approx(1e-3, rel=1e-6)
    sheared = sl.SpergelMorphology(0.5, 3.0, (0.3, 0.0)).extent(1e-3)
    assert sheared == pytest.approx(radius * np.sqrt(1.3 / 0.7), rel=1e-7)

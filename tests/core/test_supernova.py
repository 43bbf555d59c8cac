"""The supernova light-curve problem: one galaxy in five epochs, a supernova whose position is shared
and whose flux in each epoch is derived from one light curve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_models import LightCurve, map_fit, pixel_grid

import scarlet_like as sl

TIMES = (-6.0, -3.0, 0.0, 3.0, 6.0)
SIZE = 50
PSF_SIGMA = 1.5


class Gaussian2D(sl.Module):
    center: sl.Parameter
    sigma: sl.Parameter
    flux: sl.Parameter

    def __call__(self, grid):
        squared = jnp.sum((grid - self.center[:, None, None]) ** 2, axis=0)
        return self.flux * jnp.exp(-0.5 * squared / self.sigma**2) / (2 * jnp.pi * self.sigma**2)


class PointSource(sl.Module):
    center: sl.Parameter
    flux: sl.Derived

    def __call__(self, grid):
        squared = jnp.sum((grid - self.center[:, None, None]) ** 2, axis=0)
        return self.flux * jnp.exp(-0.5 * squared / PSF_SIGMA**2) / (2 * jnp.pi * PSF_SIGMA**2)


class Epoch(sl.Module):
    galaxy: Gaussian2D
    supernova: PointSource

    def __call__(self, grid):
        return self.galaxy(grid) + self.supernova(grid)


class Survey(sl.Module):
    light_curve: LightCurve
    epochs: list

    def __call__(self, grid):
        return jnp.stack([epoch(grid) for epoch in self.epochs])


def flux_at(curve, time):
    return curve(time)


def build(galaxy_center, galaxy_sigma, galaxy_flux, sn_center, t0, width, peak):
    curve = LightCurve(
        t0=sl.Parameter(t0),
        width=sl.Parameter(width, constraint=sl.constraints.positive()),
        peak=sl.Parameter(peak, constraint=sl.constraints.positive()),
    )
    galaxy = Gaussian2D(
        center=sl.Parameter(jnp.asarray(galaxy_center)),
        sigma=sl.Parameter(galaxy_sigma, constraint=sl.constraints.positive()),
        flux=sl.Parameter(galaxy_flux, constraint=sl.constraints.positive()),
    )
    position = sl.Parameter(jnp.asarray(sn_center))
    epochs = [
        Epoch(galaxy=galaxy, supernova=PointSource(center=position, flux=sl.Derived(flux_at, curve, time)))
        for time in TIMES
    ]
    return Survey(light_curve=curve, epochs=epochs)


# slow: the README's example and tutorial 3 (run in CI) fit the same light curve and check it
@pytest.mark.slow
def test_supernova_light_curve_is_recovered():
    truth = dict(t0=-1.0, width=3.0, peak=60.0)
    true_model = build([25.0, 25.0], 4.0, 300.0, [28.0, 21.5], **truth)
    grid = pixel_grid(SIZE, SIZE)
    noise = 0.05
    data = true_model(grid) + noise * jax.random.normal(jax.random.key(11), (len(TIMES), SIZE, SIZE))

    start = build([25.4, 24.6], 3.5, 250.0, [28.4, 21.0], t0=-2.0, width=2.5, peak=40.0)
    names = sl.entry_names(start)
    assert len(names) == 9, names
    assert names == (
        "light_curve.t0",
        "light_curve.width",
        "light_curve.peak",
        "epochs[0].galaxy.center[0]",
        "epochs[0].galaxy.center[1]",
        "epochs[0].galaxy.sigma",
        "epochs[0].galaxy.flux",
        "epochs[0].supernova.center[0]",
        "epochs[0].supernova.center[1]",
    )

    def log_likelihood(survey):
        return -0.5 * jnp.sum(((survey(grid) - data) / noise) ** 2)

    density = sl.LogDensity(start, log_likelihood, jacobian=False)
    x, losses = map_fit(density, steps=300)
    assert losses[-1] < losses[0]
    fitted = density.model(x)
    values = sl.get_values(fitted)

    # Laplace approximation at the mode, in unconstrained coordinates, mapped to the constrained ones.
    covariance = jnp.linalg.inv(-jax.hessian(density)(x))
    sigma_u = np.sqrt(np.diag(covariance))
    sigmas = {
        "t0": sigma_u[0],
        "width": float(values["light_curve.width"]) * sigma_u[1],  # d exp(u)/du = exp(u)
        "peak": float(values["light_curve.peak"]) * sigma_u[2],
    }
    for name, true_value in truth.items():
        error = abs(float(values[f"light_curve.{name}"]) - true_value)
        assert error < 4 * sigmas[name], (name, float(values[f"light_curve.{name}"]), sigmas[name])
        assert sigmas[name] < 0.1 * abs(true_value) + 0.1  # and the data constrain it

    # every epoch sees the same galaxy and the same supernova position, after the fit too
    resolved = sl.resolve(fitted)
    for epoch in resolved.epochs[1:]:
        np.testing.assert_array_equal(epoch.galaxy.center, resolved.epochs[0].galaxy.center)
        np.testing.assert_array_equal(epoch.supernova.center, resolved.epochs[0].supernova.center)
    fluxes = np.array([float(epoch.supernova.flux) for epoch in resolved.epochs])
    expected = [float(resolved.light_curve(jnp.asarray(t))) for t in TIMES]
    np.testing.assert_allclose(fluxes, expected, rtol=1e-6)


def test_surveys_built_the_same_way_stack_and_vmap():
    """Sharing tokens differ between two builds, but stacking puts them in canonical form."""
    first = build([25.0, 25.0], 4.0, 300.0, [28.0, 21.5], t0=-1.0, width=3.0, peak=60.0)
    second = build([20.0, 26.0], 3.0, 200.0, [22.0, 30.0], t0=1.0, width=2.0, peak=30.0)
    plate = sl.stack([first, second])
    grid = pixel_grid(SIZE, SIZE)
    images = plate(grid)
    assert images.shape == (2, len(TIMES), SIZE, SIZE)
    np.testing.assert_allclose(images[0], first(grid), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(images[1], second(grid), rtol=1e-5, atol=1e-6)
    # still 9 free entries per survey, and the sharing inside each survey is kept
    assert sl.ravel(plate)[0].shape == (18,)
    back = sl.unstack(plate)
    assert [len(sl.entry_names(survey)) for survey in back] == [9, 9]

"""Small models and helpers shared by the core tests."""

import jax.numpy as jnp
import numpyro.distributions as nd

import scarlet_like as sl


class LightCurve(sl.Module):
    t0: sl.Parameter
    width: sl.Parameter
    peak: sl.Parameter

    def __call__(self, t):
        return self.peak * jnp.exp(-0.5 * ((t - self.t0) / self.width) ** 2)


class Line(sl.Module):
    slope: sl.Parameter
    intercept: sl.Parameter

    def __call__(self, t):
        return self.slope * t + self.intercept


def light_curve(t0=-2.0, width=2.5, peak=0.2):
    return LightCurve(
        t0=sl.Parameter(t0, prior=nd.Normal(0.0, 5.0)),
        width=sl.Parameter(width, constraint=sl.constraints.positive(), prior=nd.LogNormal(0.0, 1.0)),
        peak=sl.Parameter(peak, constraint=sl.constraints.interval(0.0, 1.0)),
    )


class Blob(sl.Module):
    """A round Gaussian of known total flux on a pixel grid."""

    center: sl.Parameter
    width: sl.Parameter
    flux: object = 1.0

    def __call__(self, grid):
        squared = jnp.sum((grid - self.center[:, None, None]) ** 2, axis=0)
        return self.flux * jnp.exp(-0.5 * squared / self.width**2) / (2 * jnp.pi * self.width**2)


def pixel_grid(height, width):
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=float), jnp.arange(width, dtype=float), indexing="ij")
    return jnp.stack([rows, cols])


def map_fit(density, steps=300):
    """Maximise a log density with L-BFGS (optax), compiled as one scan. Returns the final vector."""
    import jax
    import optax

    optimizer = optax.lbfgs()
    loss = lambda x: -density(x)  # noqa: E731
    value_and_grad = optax.value_and_grad_from_state(loss)

    @jax.jit
    def run(x):
        def step(carry, _):
            x, state = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = optimizer.update(grad, state, x, value=value, grad=grad, value_fn=loss)
            return (optax.apply_updates(x, updates), state), value

        # optax mixes integer counters with floats: run it under JAX's default promotion
        with jax.numpy_dtype_promotion("standard"):
            (x, _), values = jax.lax.scan(step, (x, optimizer.init(x)), None, length=steps)
        return x, values

    return run(density.x0)


# -- models of every kind, for saving and loading ----------------------------------------------------


class TwoLines(sl.Module):
    first: Line
    second: Line


class WithDerived(sl.Module):
    curve: LightCurve
    peak: sl.Derived


class Population(sl.Module):
    blobs: sl.Plate
    mu: sl.Parameter
    tau: sl.Parameter


def shared_intercept(slopes=(1.0, 2.0), intercept=0.5):
    shared = sl.Parameter(intercept, prior=nd.Normal(0.0, 1.0))
    first, second = (Line(slope=sl.Parameter(s), intercept=shared) for s in slopes)
    return TwoLines(first=first, second=second)


def peak_flux(curve):
    return curve(0.0)


def curve_and_peak(t0=-2.0, width=2.5):
    curve = light_curve(t0=t0, width=width)
    return WithDerived(curve=curve, peak=sl.Derived(peak_flux, curve))


def population(fluxes=(0.0, 1.0, 2.0), mu=0.0, tau=1.0):
    mu = sl.Parameter(mu, prior=nd.Normal(0.0, 5.0), name="mu")
    tau = sl.Parameter(tau, constraint=sl.constraints.positive(), name="tau")
    members = [
        Blob(
            center=sl.Parameter(jnp.array([float(i), 2.0])),
            width=sl.Parameter(1.0 + i, constraint=sl.constraints.positive()),
            flux=sl.Parameter(flux, prior=sl.HierarchicalPrior(nd.Normal, mu, tau)),
        )
        for i, flux in enumerate(fluxes)
    ]
    return Population(blobs=sl.stack(members), mu=mu, tau=tau)

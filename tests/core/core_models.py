"""Small models shared by the core tests."""

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

import jax
import jax.numpy as jnp
import numpy as np
from core_models import light_curve

import scarlet_like as sl


class Source(sl.Module):
    spectrum: sl.Parameter
    profile: sl.Module

    def __call__(self):
        return self.spectrum[:, None] * self.profile()[None, :]

    @property
    def total_flux(self):
        return jnp.sum(self.spectrum)

    def _raw(self):
        return self.spectrum

    @sl.core.keep_parameters
    def spectrum_parameter(self):
        return self.spectrum


class Bump(sl.Module):
    width: sl.Parameter

    def __call__(self):
        t = jnp.linspace(-3.0, 3.0, 7)
        return jnp.exp(-0.5 * (t / self.width) ** 2)


def make():
    return Source(
        spectrum=sl.Parameter(jnp.array([1.0, 2.0]), constraint=sl.constraints.positive()),
        profile=Bump(width=sl.Parameter(1.5, constraint=sl.constraints.positive())),
    )


def test_methods_see_plain_arrays():
    source = make()
    image = source()
    assert image.shape == (2, 7)
    np.testing.assert_allclose(image[1], 2.0 * np.exp(-0.5 * (np.linspace(-3, 3, 7) / 1.5) ** 2), rtol=1e-6)
    assert float(source.total_flux) == 3.0
    assert isinstance(source._raw(), sl.Parameter)
    assert isinstance(source.spectrum_parameter(), sl.Parameter)


def test_light_curve_call_and_resolve_agree():
    curve = light_curve()
    t = jnp.linspace(-5.0, 5.0, 11)
    np.testing.assert_allclose(curve(t), sl.resolve(curve)(t), rtol=1e-6)
    np.testing.assert_allclose(curve(jnp.array(-2.0)), 0.2, rtol=1e-6)


def test_methods_work_under_jit_and_grad():
    def loss(source):
        return jnp.sum(source() ** 2)

    grads = jax.grad(loss)(make())
    assert isinstance(grads.spectrum, sl.Parameter)  # gradients share the model's structure
    assert np.all(np.isfinite(grads.spectrum.value))
    assert jax.jit(loss)(make()) > 0

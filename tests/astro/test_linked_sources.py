"""Sources whose fields are derived values (`sl.Derived`) or Parameters shared with other sources.

Every field of a source (centre, spectrum, morphology parameters, components' spectra and offsets)
takes what the core takes anywhere: a plain value, a Parameter (one object in several places is one
free entry) or a value derived from Parameters. These tests build such scenes, check that they
render as the equivalent plain scenes, that shared entries are counted once, and that fits recover
the truth through them.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl

PSF = sl.GaussianPSF(1.0)
FRAME = sl.Frame((2, 24, 24), channels=("g", "r"))


class LightCurve(sl.Module):
    """A Gaussian light curve of one colour: fluxes `peak * exp(-t^2 / 2 width^2) * (1, colour)`."""

    peak: sl.Parameter
    colour: sl.Parameter
    width: sl.Parameter

    def __call__(self, time):
        brightness = self.peak * jnp.exp(-0.5 * (time / self.width) ** 2)
        return brightness * jnp.stack([jnp.ones_like(self.colour), self.colour])


def flux_at(curve, time):
    return curve(time)


def light_curve(peak, colour):
    positive = sl.constraints.positive()
    return LightCurve(
        peak=sl.Parameter(peak, constraint=positive),
        colour=sl.Parameter(colour, constraint=positive),
        width=sl.Parameter(4.0, fixed=True),
    )


def fit(scene, observation, steps=300):
    result = sl.fit(scene, observation, progress=False, max_steps=steps)
    assert bool(result.converged)
    return result.model


def test_every_field_of_a_source_takes_a_derived_value():
    level = sl.Parameter(2.0, constraint=sl.constraints.positive())
    origin = sl.Parameter(jnp.array([10.0, 11.0]))
    double = sl.Derived(lambda a: 2 * a, level, name="double")
    shifted = sl.Derived(lambda c: c + 1.0, origin, name="shifted")
    spectrum = sl.Derived(lambda a: a * jnp.array([1.0, 3.0]), level, name="spectrum")
    offset = sl.Derived(lambda a: jnp.stack([a, -a]) - 2.0, level, name="offset")  # (0, -4)
    with sl.Scene(FRAME) as derived:
        sl.Source(shifted, spectrum, sl.SersicMorphology(1.5, double, sl.Derived(jnp.zeros_like, origin)))
        sl.PointSource(shifted, spectrum)
        sl.MultiComponentSource(
            shifted,
            [
                sl.Component(spectrum, sl.GaussianMorphology(double)),
                sl.Component(spectrum, sl.SpergelMorphology(0.5, double), offset=offset),
            ],
        )
    with sl.Scene(FRAME) as plain:
        sl.Source((11.0, 12.0), jnp.array([2.0, 6.0]), sl.SersicMorphology(1.5, 4.0))
        sl.PointSource((11.0, 12.0), jnp.array([2.0, 6.0]))
        sl.MultiComponentSource(
            (11.0, 12.0),
            [
                sl.Component(jnp.array([2.0, 6.0]), sl.GaussianMorphology(4.0)),
                sl.Component(jnp.array([2.0, 6.0]), sl.SpergelMorphology(0.5, 4.0), offset=(0.0, -4.0)),
            ],
        )
    np.testing.assert_allclose(np.asarray(derived()), np.asarray(plain()), atol=1e-5)
    # no entry of their own: the level (first found in the first source's spectrum) and the origin
    names = sl.LogDensity(derived, lambda model: 0.0).names
    assert sorted(names) == [
        "sources[0].center.inputs[0][0]",
        "sources[0].center.inputs[0][1]",
        "sources[0].spectrum.inputs[0]",
    ]
    np.testing.assert_allclose(np.asarray(sl.measure.flux(derived.sources[2])), [4.0, 12.0])


def test_derived_values_a_source_cannot_start_from_are_named():
    level = sl.Parameter(2.0, constraint=sl.constraints.positive())
    with pytest.raises(
        sl.SceneError, match=r"sources\[1\] \(Source\): spectrum has shape \(3,\).*2 channels"
    ):
        with sl.Scene(FRAME):
            sl.PointSource((5.0, 5.0), jnp.array([1.0, 1.0]))
            sl.Source((8.0, 8.0), sl.Derived(lambda a: a * jnp.ones(3), level), sl.GaussianMorphology(1.0))
    with pytest.raises(
        sl.SceneError, match=r"sources\[0\] \(PointSource\): centred at \(y, x\) = \(42.0, 2.0\)"
    ):
        with sl.Scene(FRAME):
            sl.PointSource(sl.Derived(lambda a: jnp.stack([a * 21, a]), level), jnp.array([1.0, 1.0]))

    def broken(value):
        raise ValueError("no flux before the explosion")

    with pytest.raises(
        sl.SceneError, match=r"sources\[0\] \(PointSource\): spectrum cannot be computed.*explosion"
    ):
        with sl.Scene(FRAME):
            sl.PointSource((5.0, 5.0), sl.Derived(broken, level, name="flux"))
    # the automatic box needs the morphology's extent now: without it, the error asks for a box
    with pytest.raises(sl.SceneError, match=r"sources\[0\] \(Source\): box='auto'.*explosion.*give the box"):
        with sl.Scene(FRAME):
            sl.Source((5.0, 5.0), jnp.array([1.0, 1.0]), sl.GaussianMorphology(sl.Derived(broken, level)))


def test_a_spectrum_derived_from_a_light_curve_renders_and_fits(key):
    def scene(curve, center):
        with sl.Scene(FRAME) as scene:
            sl.Source(
                sl.Parameter(jnp.asarray(center)),
                sl.Derived(flux_at, curve, 2.0),
                sl.GaussianMorphology(sl.Parameter(1.6, constraint=sl.constraints.positive())),
            )
        return scene

    truth = scene(light_curve(50.0, 0.6), (11.3, 12.6))
    fluxes = 50.0 * np.exp(-0.5 * (2.0 / 4.0) ** 2) * np.array([1.0, 0.6])
    with sl.Scene(FRAME) as plain:
        sl.Source((11.3, 12.6), jnp.asarray(fluxes, jnp.float32), sl.GaussianMorphology(1.6))
    np.testing.assert_allclose(np.asarray(truth()), np.asarray(plain()), rtol=1e-5, atol=1e-6)

    observation = sl.simulate(truth, key, noise=1e-3, psf=PSF)
    start = scene(light_curve(30.0, 1.0), (11.0, 12.0))
    assert sl.LogDensity(start, observation).names == (
        "sources[0].center[0]",
        "sources[0].center[1]",
        "sources[0].spectrum.inputs[0].peak",
        "sources[0].spectrum.inputs[0].colour",
        "sources[0].morphology.sigma",
    )
    curve = sl.resolve(fit(start, observation).sources[0].spectrum.inputs[0])
    np.testing.assert_allclose([curve.peak, curve.colour], [50.0, 0.6], rtol=2e-3)


def test_a_centre_derived_from_its_hosts_follows_it(key):
    """A supernova at its host galaxy's centre plus an offset: both fitted, the offset recovered."""

    def scene(host_center, offset):
        host = sl.Parameter(jnp.asarray(host_center))
        with sl.Scene(FRAME) as scene:
            sl.Source(host, jnp.array([40.0, 60.0]), sl.GaussianMorphology(2.0))
            sl.PointSource(
                sl.Derived(jnp.add, host, sl.Parameter(jnp.asarray(offset))), jnp.array([20.0, 10.0])
            )
        return scene

    truth = scene((11.5, 12.3), (2.4, -1.7))
    np.testing.assert_allclose(np.asarray(sl.resolve(truth).sources[1].center), [13.9, 10.6], rtol=1e-6)
    observation = sl.simulate(truth, key, noise=1e-3, psf=PSF)
    start = scene((12.0, 12.0), (2.0, -1.0))
    assert sl.LogDensity(start, observation).names == (
        "sources[0].center[0]",
        "sources[0].center[1]",
        "sources[1].center.inputs[1][0]",
        "sources[1].center.inputs[1][1]",
    )
    fitted = sl.get_values(fit(start, observation))
    np.testing.assert_allclose(fitted["sources[0].center"], [11.5, 12.3], atol=2e-3)
    np.testing.assert_allclose(fitted["sources[1].center.inputs[1]"], [2.4, -1.7], atol=2e-3)


def _two_galaxies(sigma_0, sigma_1):
    with sl.Scene(FRAME) as scene:
        sl.Source((8.0, 8.0), jnp.array([30.0, 20.0]), sl.GaussianMorphology(sigma_0))
        sl.Source((15.0, 16.0), jnp.array([10.0, 25.0]), sl.GaussianMorphology(sigma_1))
    return scene


def test_two_sources_sharing_a_morphology_parameter_fit_as_one(key):
    positive = sl.constraints.positive()
    truth_sigma = sl.Parameter(1.8, constraint=positive)
    truth = _two_galaxies(truth_sigma, truth_sigma)
    observation = sl.simulate(truth, key, noise=1e-3, psf=PSF)

    shared = sl.Parameter(1.2, constraint=positive)
    start = _two_galaxies(shared, shared)
    density = sl.LogDensity(start, observation)
    assert density.names == ("sources[0].morphology.sigma",)  # counted once
    # its gradient is the sum of the gradients of two separate widths at the same values
    apart = _two_galaxies(sl.Parameter(1.2, constraint=positive), sl.Parameter(1.2, constraint=positive))
    separate = sl.LogDensity(apart, observation)
    assert separate.names == ("sources[0].morphology.sigma", "sources[1].morphology.sigma")
    gradient = jax.grad(density)(density.x0)
    np.testing.assert_allclose(gradient, jnp.sum(jax.grad(separate)(separate.x0)), rtol=1e-4)

    model = fit(start, observation)
    assert model.sources[0].morphology.sigma.token == model.sources[1].morphology.sigma.token
    fitted = sl.resolve(model)
    widths = [float(source.morphology.sigma) for source in fitted.sources]
    assert widths[0] == widths[1]  # moved together
    np.testing.assert_allclose(widths[0], 1.8, rtol=1e-3)


def test_a_galaxy_and_its_nucleus_share_one_centre(key):
    def scene(center):
        center = sl.Parameter(jnp.asarray(center))
        with sl.Scene(FRAME) as scene:
            sl.Source(center, jnp.array([40.0, 60.0]), sl.SersicMorphology(1.0, 2.5, (0.1, -0.2)))
            sl.PointSource(center, sl.Parameter(jnp.array([5.0, 5.0]), constraint=sl.constraints.positive()))
        return scene

    truth = eqx.tree_at(
        lambda s: s.sources[1].spectrum, scene((12.3, 11.6)), sl.Parameter(jnp.array([15.0, 8.0]))
    )
    observation = sl.simulate(truth, key, noise=1e-3, psf=PSF)
    start = scene((12.0, 12.0))
    assert sl.LogDensity(start, observation).names == (
        "sources[0].center[0]",
        "sources[0].center[1]",
        "sources[1].spectrum[0]",
        "sources[1].spectrum[1]",
    )
    model = fit(start, observation)
    fitted = sl.resolve(model)
    np.testing.assert_array_equal(np.asarray(fitted.sources[0].center), np.asarray(fitted.sources[1].center))
    np.testing.assert_allclose(np.asarray(fitted.sources[0].center), [12.3, 11.6], atol=2e-3)
    np.testing.assert_allclose(np.asarray(fitted.sources[1].spectrum), [15.0, 8.0], rtol=5e-3)


def test_start_helpers_take_a_shared_or_derived_centre(key):
    truth = _two_galaxies(1.5, 1.5)
    observation = sl.simulate(truth, key, noise=1e-3, psf=PSF)
    host = sl.Parameter(jnp.array([8.0, 8.0]))
    plain = np.asarray(sl.init.pixel_spectrum(observation, (8.0, 8.0)))
    np.testing.assert_array_equal(np.asarray(sl.init.pixel_spectrum(observation, host)), plain)
    moved = sl.Derived(jnp.add, host, jnp.array([7.0, 8.0]))
    np.testing.assert_array_equal(
        np.asarray(sl.init.pixel_spectrum(observation, moved, frame=FRAME)),
        np.asarray(sl.init.pixel_spectrum(observation, (15.0, 16.0))),
    )
    np.testing.assert_array_equal(FRAME.to_pixel(moved), [15.0, 16.0])


def test_sharing_is_built_at_construction_and_survives_tree_at():
    """Copies of one Parameter stay one entry after `eqx.tree_at`; new objects made per epoch do not
    (the duplication users met: a light curve made anew for each epoch's `tree_at`)."""
    like = lambda model: 0.0  # noqa: E731
    center = sl.Parameter(jnp.array([12.0, 12.0]))
    with sl.Scene(FRAME) as base:
        sl.Source(center, sl.Parameter(jnp.array([20.0, 30.0])), sl.SersicMorphology(1.5, sl.Parameter(3.0)))
        sl.PointSource(center, sl.Parameter(jnp.array([5.0, 5.0])))
    assert len(sl.LogDensity(base, like).names) == 2 + 2 + 1 + 2  # centre, spectra, r_half

    curve = light_curve(10.0, 0.7)
    epochs = [
        eqx.tree_at(lambda s: s.sources[1].spectrum, base, sl.Derived(flux_at, curve, t)) for t in (-2.0, 3.0)
    ]
    assert len(sl.LogDensity(epochs, like).names) == 2 + 2 + 1 + 2  # the curve's peak and colour, once
    made_anew = [
        eqx.tree_at(lambda s: s.sources[1].spectrum, base, sl.Derived(flux_at, light_curve(10.0, 0.7), t))
        for t in (-2.0, 3.0)
    ]
    assert len(sl.LogDensity(made_anew, like).names) == 2 + 2 + 1 + 2 + 2  # one curve per epoch

"""Epochs with times, and a source whose flux changes between them: a supernova on a static host.

Each observation carries the time of its exposure; a source's spectrum may be a module called with
that time (a light curve, or `sl.PerEpochSpectrum`, a flux free per epoch). The host galaxy is one
source shared by every epoch; the supernova is a point source whose flux follows its light curve.
The epochs are seen through PSFs of different widths, as a survey's nights are.
"""

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl

FRAME = sl.Frame((1, 25, 25), channels=("r",))
TIMES = 3.0 * np.arange(10)  # days since the first epoch
SIGMAS = np.random.default_rng(4).uniform(0.9, 2.2, TIMES.size)  # the PSF's width on each night
NOISE = 0.5
HOST = {"center": (12.3, 11.8), "flux": 400.0, "sigma": 2.0}
SUPERNOVA = {"center": (14.2, 10.1), "t0": 13.6, "width": 3.4, "peak": 120.0}
POSITIVE = sl.constraints.positive()


class GaussianBurst(sl.Module):
    """A light curve: `peak * exp(-(t - t0)^2 / 2 width^2)`, in each channel."""

    t0: sl.Parameter
    width: sl.Parameter
    peak: sl.Parameter

    def __call__(self, time):
        return self.peak * jnp.exp(-0.5 * ((time - self.t0) / self.width) ** 2)


def true_flux(time):
    return SUPERNOVA["peak"] * np.exp(-0.5 * ((np.asarray(time) - SUPERNOVA["t0"]) / SUPERNOVA["width"]) ** 2)


def truth():
    curve = GaussianBurst(SUPERNOVA["t0"], SUPERNOVA["width"], jnp.array([SUPERNOVA["peak"]]))
    with sl.Scene(FRAME) as scene:
        sl.Source(
            HOST["center"], jnp.array([HOST["flux"]]), sl.GaussianMorphology(HOST["sigma"], (0.2, -0.1))
        )
        sl.PointSource(SUPERNOVA["center"], curve)
    return scene


@jax.jit
def _simulated(night, scene, key):
    return night.simulate(scene, key)


@jax.jit
def _rendered(night, scene):
    return night.render(scene)


def epochs(key=7, times=TIMES, sigmas=SIGMAS):
    """One observation per night: the truth seen through that night's PSF, at its time, with noise.

    What `sl.simulate(truth(), key, noise=NOISE, psf=..., time=...)` gives, compiled: rendered
    eagerly, one operation at a time, ten nights take 14 s.
    """
    keys = jax.random.split(jax.random.key(key), len(times))
    nights = []
    for i, (k, sigma, time) in enumerate(zip(keys, sigmas, times, strict=True)):
        night = sl.Observation(
            np.zeros(FRAME.shape),
            weights=NOISE**-2,
            psf=sl.GaussianPSF(float(sigma)),
            channels=FRAME.channels,
            time=float(time),
            name=f"night {i}",
        )
        nights.append(eqx.tree_at(lambda o: o.data, night, _simulated(night, truth(), k)))
    return nights


def model(transient_spectrum):
    """Host and supernova with free positions, host flux and size, and the supernova's spectrum."""
    host = jnp.array(HOST["center"]) + 0.4
    near = jnp.array(SUPERNOVA["center"]) - 0.3
    with sl.Scene(FRAME) as scene:
        sl.Source(
            sl.Parameter(host, prior=nd.Normal(host, 2.0).to_event(1)),
            sl.Parameter(
                jnp.array([300.0]),
                constraint=POSITIVE,
                prior=nd.LogNormal(jnp.log(jnp.array([300.0])), 2.0).to_event(1),
            ),
            sl.GaussianMorphology(
                sl.Parameter(1.5, constraint=POSITIVE, prior=nd.LogNormal(0.0, 1.0)), (0.2, -0.1)
            ),
        )
        sl.PointSource(sl.Parameter(near, prior=nd.Normal(near, 2.0).to_event(1)), transient_spectrum)
    return scene


def light_curve(t0=11.0, width=2.5, peak=80.0):
    return GaussianBurst(
        t0=sl.Parameter(t0, prior=nd.Normal(12.0, 10.0)),
        width=sl.Parameter(width, constraint=POSITIVE, prior=nd.LogNormal(jnp.log(3.0), 1.0)),
        peak=sl.Parameter(
            jnp.array([peak]),
            constraint=POSITIVE,
            prior=nd.LogNormal(jnp.log(jnp.array([100.0])), 2.0).to_event(1),
        ),
    )


@pytest.fixture(scope="module")
def nights():
    return epochs()


def within(value, truth, sd, sigmas=3.0):
    return abs(float(value) - truth) < sigmas * float(sd)


@pytest.mark.slow  # fit and Hessian over ten epochs (one stack): about 30 s of CPU to compile
def test_light_curve_of_a_supernova_on_its_host_is_recovered(nights):
    fitted = sl.fit(model(light_curve()), nights, progress=False)
    assert bool(fitted.converged)
    laplace = sl.laplace(fitted.model, nights, fit=False)
    values, sd = sl.get_values(laplace.mode), laplace.std
    t0, width = float(values["sources[1].spectrum.t0"]), float(values["sources[1].spectrum.width"])
    # measured: t0 13.72 +- 0.08 (truth 13.6), width 3.43 +- 0.08 (3.4), peak 119.0 +- 2.5 (120), host
    # 400.8 +- 2.3 (400)
    assert abs(t0 / SUPERNOVA["t0"] - 1) < 0.03 and abs(width / SUPERNOVA["width"] - 1) < 0.03, values
    for name, true in (("t0", SUPERNOVA["t0"]), ("width", SUPERNOVA["width"]), ("peak", SUPERNOVA["peak"])):
        entry = f"sources[1].spectrum.{name}"
        assert within(np.ravel(values[entry])[0], true, np.ravel(sd[entry])[0]), (name, values, sd)
    # the host keeps its own light (none of it goes to the supernova, or comes from it)
    assert within(values["sources[0].spectrum"][0], HOST["flux"], sd["sources[0].spectrum"][0]), values
    assert np.all(
        np.abs(np.asarray(values["sources[1].center"]) - SUPERNOVA["center"]) < 3 * sd["sources[1].center"]
    )


@pytest.mark.slow  # as above
def test_fluxes_free_per_epoch_follow_the_light_curve(nights):
    fluxes = sl.Parameter(jnp.zeros((TIMES.size, 1)))  # no constraint: a flux may come out at zero
    fitted = sl.fit(model(sl.PerEpochSpectrum(TIMES, fluxes)), nights, progress=False)
    assert bool(fitted.converged)
    laplace = sl.laplace(fitted.model, nights, fit=False)
    values, sd = sl.get_values(laplace.mode), laplace.std
    measured = np.asarray(values["sources[1].spectrum.fluxes"])[:, 0]
    errors = np.asarray(sd["sources[1].spectrum.fluxes"])[:, 0]
    expected = true_flux(TIMES)
    assert np.all(np.abs(measured - expected) < 3 * errors), (measured, expected, errors)
    # far from the peak the supernova is not there, and no light of the host is taken for it
    far = expected < 0.01 * SUPERNOVA["peak"]  # measured: 3.7 +- 4.3, 0.1 +- 3.3, -1.1 +- 3.4 (truth < 1)
    assert far.sum() >= 3 and np.all(np.abs(measured[far]) < 3 * errors[far]), (measured[far], errors[far])
    assert within(values["sources[0].spectrum"][0], HOST["flux"], sd["sources[0].spectrum"][0]), values


@pytest.mark.slow  # NUTS over ten epochs: a few minutes
def test_nuts_posterior_of_the_light_curve_covers_the_truth(nights):
    fitted = sl.fit(model(light_curve()), nights, progress=False)
    posterior = sl.sample(
        fitted.model,
        nights,
        num_warmup=150,
        num_samples=150,
        num_chains=2,
        key=jax.random.key(1),
        progress=False,
    )
    table = posterior.summary(as_dict=True)
    for name in ("t0", "width"):
        row = table[f"sources[1].spectrum.{name}"]
        assert abs(row["mean"] - SUPERNOVA[name]) < 3 * row["sd"], (name, row)
        assert row["r_hat"] < 1.05, (name, row)
    # measured (90 s): t0 13.72 +- 0.075, width 3.43 +- 0.070 (truth 13.6, 3.4); R-hat 1.02, no divergence
    assert int(posterior.divergences.sum()) == 0


def test_five_epochs_fitted_twice_compile_the_fit_once(caplog):
    """New data on nights with the same PSFs, at other times, run in the program compiled for the first.

    The supernova alone on a small frame, to keep the test short (the five nights are one stack, one
    render in the compiled fit).
    """
    frame = sl.Frame((1, 15, 15), channels=("r",))
    times, sigmas = TIMES[2:7], SIGMAS[2:7]  # the five nights around the peak

    def supernova(curve):
        with sl.Scene(frame) as scene:
            sl.PointSource(sl.Parameter(jnp.array([7.2, 6.9])), curve)
        return scene

    truth = supernova(GaussianBurst(SUPERNOVA["t0"], SUPERNOVA["width"], jnp.array([SUPERNOVA["peak"]])))
    results = []
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        for key, shift in ((11, 0.0), (12, 0.5)):  # times are values of the observations, not constants
            keys = jax.random.split(jax.random.key(key), len(times))
            nights = [
                sl.simulate(
                    truth,
                    k,
                    noise=NOISE,
                    psf=sl.GaussianPSF(float(s)),
                    time=float(t + shift),
                    name=f"night {i}",
                )
                for i, (k, s, t) in enumerate(zip(keys, sigmas, times, strict=True))
            ]
            results.append(sl.fit(supernova(light_curve()), nights, progress=False))
    compiled = [
        r.getMessage()
        for r in caplog.records
        if "Compiling" in r.getMessage() and "_fit_segment" in r.getMessage()
    ]
    assert len(compiled) == 1, compiled
    for result in results:
        values = sl.get_values(result.model)
        # measured: t0 13.68 and 13.60, width 3.55 and 3.36 (truth 13.6, 3.4): five nights are enough
        assert abs(float(values["sources[0].spectrum.t0"]) / SUPERNOVA["t0"] - 1) < 0.02, values
        assert abs(float(values["sources[0].spectrum.width"]) / SUPERNOVA["width"] - 1) < 0.08, values


def test_each_observation_renders_the_light_curve_at_its_own_time(nights):
    night = nights[4]
    flux = true_flux(TIMES[4])
    with sl.Scene(FRAME) as static:  # the same scene with the supernova's flux of that night
        sl.Source(
            HOST["center"], jnp.array([HOST["flux"]]), sl.GaussianMorphology(HOST["sigma"], (0.2, -0.1))
        )
        sl.PointSource(SUPERNOVA["center"], jnp.array([flux], dtype=jnp.float32))
    np.testing.assert_allclose(night.render(truth()), night.render(static), atol=1e-4 * flux)
    np.testing.assert_allclose(truth()(time=TIMES[4]), static(), atol=1e-4 * flux)
    # the model frame's image changes with the time, the host's light does not
    assert float(jnp.sum(truth()(time=0.0))) == pytest.approx(HOST["flux"] + true_flux(0.0), rel=1e-3)
    assert "time=12" in repr(night) and "'night 4'" in repr(night)


def test_like_transients_stacked_in_the_log_density_are_each_at_their_time():
    """Two supernovae with light curves of one kind become one plate in `LogDensity`; each epoch
    evaluates both curves at its time there, as when the observations render the scene one by one."""
    frame = sl.Frame((1, 16, 16))
    with sl.Scene(frame) as scene:
        sl.PointSource((5.0, 5.0), light_curve(t0=2.0, width=1.0, peak=50.0))
        sl.PointSource((10.0, 11.0), light_curve(t0=5.0, width=3.0, peak=30.0))
        sl.PointSource((4.0, 12.0), sl.PerEpochSpectrum([0.0, 4.0], sl.Parameter(jnp.array([[3.0], [9.0]]))))
    nights = [
        sl.Observation(np.ones((1, 16, 16)), psf=sl.GaussianPSF(1.2), time=t, name=f"t={t}")
        for t in (0.0, 4.0)
    ]
    density = sl.LogDensity(scene, nights)
    alone = jax.jit(lambda scene, nights: sum(night.log_likelihood(scene) for night in nights))(scene, nights)
    joint = eqx.filter_jit(lambda density, x: density.log_likelihood(x))(density, density.x0)
    np.testing.assert_allclose(joint, alone, rtol=1e-6)
    fluxes = [jnp.sum(_rendered(night, scene)) for night in nights]
    expected = [
        50 * np.exp(-0.5 * ((t - 2.0) / 1.0) ** 2) + 30 * np.exp(-0.5 * ((t - 5.0) / 3.0) ** 2)
        for t in (0.0, 4.0)
    ]
    np.testing.assert_allclose(fluxes, np.add(expected, [3.0, 9.0]), rtol=1e-3)


def test_per_epoch_spectrum_picks_the_row_of_its_time():
    spectrum = sl.PerEpochSpectrum([0.0, 2.5, 7.0], jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_array_equal(spectrum(2.5), [3.0, 4.0])
    np.testing.assert_array_equal(jax.jit(spectrum.__call__)(jnp.float32(7.0)), [5.0, 6.0])
    with pytest.raises(Exception, match="matches none of the epochs"):
        jax.block_until_ready(jax.jit(spectrum.__call__)(jnp.float32(1.0)))
    with pytest.raises(ValueError, match=r"one row for each of the 3 times, got shape \(2, 2\)"):
        sl.PerEpochSpectrum([0.0, 2.5, 7.0], jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="2.5 and 2.5 are within twice the tolerance"):
        sl.PerEpochSpectrum([0.0, 2.5, 2.5], jnp.ones((3, 2)))


def test_observation_without_a_time_is_named_with_the_source():
    night = sl.Observation(
        np.zeros(FRAME.shape), psf=sl.GaussianPSF(1.0), channels=FRAME.channels, name="r, night 3"
    )
    expected = (
        r"Observation 'r, night 3' has no time, but sources\[1\] \(PointSource\) has a spectrum that depends "
        r"on time \(GaussianBurst\).*time=t"
    )
    with pytest.raises(sl.ObservationError, match=expected):
        night.render(truth())
    # before anything is compiled, by whatever takes the observations as a likelihood
    with pytest.raises(sl.ObservationError, match=expected):
        sl.fit(model(light_curve()), [epochs(times=TIMES[:1], sigmas=SIGMAS[:1])[0], night], progress=False)
    with pytest.raises(sl.ObservationError, match=expected):
        sl.LogDensity(model(light_curve()), [night])
    with pytest.raises(sl.ObservationError, match=expected):
        sl.sample(
            model(light_curve()), night, num_warmup=5, num_samples=5, key=jax.random.key(0), progress=False
        )
    # a flux free per epoch needs the times as much
    per_epoch = model(sl.PerEpochSpectrum(TIMES, jnp.zeros((TIMES.size, 1))))
    with pytest.raises(
        sl.ObservationError, match=r"'r, night 3' has no time, but sources\[1\].*PerEpochSpectrum"
    ):
        sl.LogDensity(per_epoch, [night])
    with pytest.raises(
        sl.SceneError,
        match=r"sources\[1\] \(PointSource\) has a spectrum that depends on time.*scene\(time=t\)",
    ):
        truth()()


def test_time_dependent_sources_are_listed_alike_from_the_stacked_layout():
    """`LogDensity` computes with like sources stacked into plates; the sources whose spectrum depends
    on time are found once per plate there (not once per source, while tracing), at their list
    positions as in the scene."""
    from scarlet_like.astro.spectrum import time_dependent_sources
    from scarlet_like.core import Stacked, stacked_lists

    with sl.Scene(FRAME) as scene:
        for k in range(5):
            if k % 2:
                sl.PointSource((10.0 + k, 10.0), GaussianBurst(2.0, 1.0, jnp.array([50.0 + k])))
            else:
                sl.Source((10.0, 10.0 + k), jnp.array([100.0]), sl.GaussianMorphology(1.5))
    stacked = stacked_lists(scene).sources
    assert isinstance(stacked, Stacked) and len(stacked.parts) == 2
    expected = [("sources[1] (PointSource)", "GaussianBurst"), ("sources[3] (PointSource)", "GaussianBurst")]
    assert time_dependent_sources(scene.sources) == expected
    assert time_dependent_sources(stacked) == expected


class TwoColours(sl.Module):
    peak: sl.Parameter

    def __call__(self, time):
        return self.peak * jnp.array([1.0, 0.5]) * jnp.exp(-(time**2))


class Branching(sl.Module):
    peak: sl.Parameter

    def __call__(self, time):
        return self.peak if time > 0 else 0.0 * self.peak


def test_time_dependent_spectra_of_the_wrong_shape_or_not_traceable_are_named():
    with pytest.raises(
        sl.SceneError,
        match=r"sources\[0\] \(PointSource\): its spectrum \(TwoColours\) returns shape \(2,\).*frame has 1 "
        r"channels.*must return shape \(1,\)",
    ):
        with sl.Scene(FRAME):
            sl.PointSource((10.0, 10.0), TwoColours(sl.Parameter(jnp.array([5.0]))))
    with pytest.raises(
        sl.SceneError,
        match=r"sources\[1\] \(Source\): its spectrum \(Branching\) depends on time, but calling it with a "
        r"time failed",
    ):
        with sl.Scene(FRAME):
            sl.PointSource((10.0, 10.0), jnp.array([1.0]))
            sl.Source((12.0, 12.0), Branching(sl.Parameter(jnp.array([5.0]))), sl.GaussianMorphology(1.0))


def test_bad_times_and_components_are_refused(unchecked):
    for bad in (float("nan"), np.array([1.0, 2.0]), "tuesday"):
        with pytest.raises(
            sl.ObservationError, match="Observation 'night': time must be one finite real number"
        ):
            with unchecked():
                sl.Observation(np.zeros((1, 8, 8)), name="night", time=bad)
    with pytest.raises(sl.SceneError, match="spectrum is a GaussianMorphology, a module without a `__call__"):
        with sl.Scene(FRAME):
            sl.PointSource((10.0, 10.0), sl.GaussianMorphology(1.0))
    with pytest.raises(sl.SceneError, match="Component: the spectrum \\(GaussianBurst\\) depends on time"):
        with unchecked():
            sl.Component(light_curve(), sl.GaussianMorphology(1.0))


def test_docs_example_runs(docs_section):
    header = (
        "import jax\nimport jax.numpy as jnp\nimport numpyro.distributions as nd\nimport scarlet_like as sl\n"
    )
    namespace = docs_section("astro.md", "Epochs and transients", header)
    nights, scene = namespace["nights"], namespace["scene"]
    assert [float(night.time) for night in nights] == namespace["times"]
    assert (
        repr(nights[2]) == "Observation('night 2', 1 channel ('r',) of 25x25 pixels, psf=GaussianPSF, time=8)"
    )
    assert float(scene(time=12.0).sum()) == pytest.approx(500.0, rel=2e-3)
    names = sl.LogDensity(scene, nights).names
    assert names[-3:] == (
        "sources[1].spectrum.t0",
        "sources[1].spectrum.width",
        "sources[1].spectrum.peak[0]",
    )
    # the light curve read back and drawn, the nights marked on it
    axis = namespace["figure"].axes[0]
    assert len(axis.lines[1].get_xdata()) == len(nights)


def test_measured_flux_of_a_transient_is_its_light_curve_at_the_times_asked():
    scene = truth()
    supernova, host = scene.sources[1], scene.sources[0]
    np.testing.assert_allclose(
        np.asarray(sl.measure.flux(supernova, time=TIMES)), true_flux(TIMES)[:, None], rtol=1e-5
    )
    assert sl.measure.flux(supernova, time=13.6).shape == (1,)
    assert sl.measure.flux(supernova, time=np.zeros((2, 3))).shape == (2, 3, 1)
    # a static source: its spectrum at every time
    np.testing.assert_allclose(np.asarray(sl.measure.flux(host, time=TIMES[:4])), [[HOST["flux"]]] * 4)
    np.testing.assert_allclose(np.asarray(sl.measure.flux(host)), [HOST["flux"]])
    with pytest.raises(ValueError, match=r"changes with time.*time=t"):
        sl.measure.flux(supernova)
    # the source alone in the model frame at a time: all its flux (the frame holds it)
    image = sl.measure.source_image(scene, 1, time=SUPERNOVA["t0"])
    np.testing.assert_allclose(float(image.sum()), SUPERNOVA["peak"], rtol=1e-3)

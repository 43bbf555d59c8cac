"""An astrometric offset per observation, `sl.Scene(frame, shifts={name: shift})`, fitted with the rest.

Each epoch's WCS is off by a little (a few tenths of a pixel); a shift is where that observation sees
the scene, in model-frame pixels: a source at `q` appears there at `q + shift`. A free shift is a
Parameter of the model, with a prior, which `sl.fit`, `sl.laplace` and `sl.sample` fit jointly. The
epochs of one shape still render as one stack, their shifts stacked with their data.
"""

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from astropy import units
from astropy.wcs import WCS

# the FFT count of a program: one per render of a stack or of an observation
from test_epoch_stacks import celestial_wcs, ffts

import scarlet_like as sl

FRAME = sl.Frame((2, 25, 25), channels=("g", "r"))
POSITIVE = sl.constraints.positive()
NOISE = 0.4
#: four nights (name, band, PSF sigma in px): two in r, whose pointing is right, and two in g, whose
#: pointings are off by SHIFTS; each band's nights are one stack
NIGHTS = (("r night 0", "r", 1.5), ("r night 1", "r", 1.8), ("g night 0", "g", 1.0), ("g night 1", "g", 1.2))
SHIFTS = {"g night 0": np.array([0.4, -0.3]), "g night 1": np.array([-0.25, 0.35])}
POINT_FLUX = np.array([150.0, 150.0])


def truth(shifts=None, frame=FRAME, box="auto"):
    with sl.Scene(frame, shifts=shifts) as scene:
        sl.Source((12.3, 11.6), jnp.array([200.0, 300.0]), sl.GaussianMorphology(1.6, (0.15, -0.1)), box=box)
        sl.PointSource((6.2, 17.4), jnp.asarray(POINT_FLUX), box=box)
    return scene


def start(shifts=None):
    with sl.Scene(FRAME, shifts=shifts) as scene:
        sl.Source(
            sl.Parameter(jnp.array([12.0, 12.0])),
            sl.Parameter(jnp.array([250.0, 250.0]), constraint=POSITIVE),
            sl.GaussianMorphology(sl.Parameter(1.4, constraint=POSITIVE), (0.15, -0.1)),
        )
        sl.PointSource(
            sl.Parameter(jnp.array([6.0, 17.0])), sl.Parameter(jnp.array([120.0, 120.0]), constraint=POSITIVE)
        )
    return scene


def free_shift():
    return sl.Parameter(jnp.zeros(2), prior=nd.Normal(0.0, 1.0).expand([2]).to_event(1))


def free_shifts():
    return {name: free_shift() for name in SHIFTS}


@pytest.fixture(scope="module")
def nights():
    """The four nights of NIGHTS, simulated from the truth seen through the g nights' shifts."""
    shifted = truth({name: jnp.asarray(shift) for name, shift in SHIFTS.items()})
    keys = jax.random.split(jax.random.key(5), len(NIGHTS))
    made = []
    for key, (name, band, sigma) in zip(keys, NIGHTS, strict=True):
        night = sl.Observation(
            np.zeros((1, *FRAME.shape[1:])),
            weights=NOISE**-2,
            psf=sl.GaussianPSF(sigma),
            channels=(band,),
            name=name,
        )
        made.append(eqx.tree_at(lambda o: o.data, night, night.simulate(shifted, key)))
    return made


def total_chi2(model, observations):
    return sum(float(o.chi2(model)) for o in observations)


def test_a_shift_moves_what_the_observation_sees():
    def moved(shift, frame=FRAME, box="auto"):  # the truth's sources, moved by `shift` in the model frame
        with sl.Scene(frame) as scene:
            sl.Source(
                np.array([12.3, 11.6]) + shift,
                jnp.array([200.0, 300.0]),
                sl.GaussianMorphology(1.6, (0.15, -0.1)),
                box=box,
            )
            sl.PointSource(np.array([6.2, 17.4]) + shift, jnp.asarray(POINT_FLUX), box=box)
        return scene

    shift = SHIFTS["g night 0"]
    night = sl.Observation(np.zeros((1, 25, 25)), psf=sl.GaussianPSF(1.3), channels=("r",), name="n")
    expected = night.render(moved(shift))
    np.testing.assert_allclose(night.render(truth({"n": shift})), expected, atol=1e-4)
    # a shift for another observation leaves this one alone
    np.testing.assert_allclose(night.render(truth({"m": shift})), night.render(truth()), atol=1e-6)
    assert np.abs(np.asarray(expected - night.render(truth()))).max() > 1.0
    # through a WCS of its own (rotated by 30 degrees, 0.25"/px against the frame's 0.2"), the shift is
    # still one in the model frame's pixels
    frame = sl.Frame((2, 25, 25), channels=("g", "r"), wcs=celestial_wcs((25, 25), 0.2))
    tilted = sl.Observation(
        np.zeros((1, 21, 21)),
        psf=sl.GaussianPSF(1.1),
        channels=("g",),
        wcs=celestial_wcs((21, 21), 0.25, rotation_deg=30.0),
        name="n",
    )
    expected = tilted.render(moved(shift, frame))
    np.testing.assert_allclose(tilted.render(truth({"n": shift}, frame)), expected, atol=1e-4)
    assert np.abs(np.asarray(expected - tilted.render(truth(frame=frame)))).max() > 1.0
    # sources drawn in boxes of their own (a large frame) move alike
    large = sl.Frame((2, 80, 80), channels=("g", "r"))
    night = sl.Observation(np.zeros((1, 80, 80)), psf=sl.GaussianPSF(1.3), channels=("r",), name="n")
    assert sl.astro.render_plan(sl.resolve(truth(frame=large, box=16)).sources, night.grid).boxes[0][1]
    expected = night.render(moved(shift, large, box=16))
    np.testing.assert_allclose(night.render(truth({"n": shift}, large, box=16)), expected, atol=1e-4)


@pytest.mark.slow
def test_stacked_nights_with_shifts_give_their_own_sum(nights):
    class OneByOne(eqx.Module):
        observations: tuple

        def __call__(self, scene):
            return sum(o.log_likelihood(scene) for o in self.observations)

    # in each band's stack, a night with a shift and one without; a fixed shift and a free one
    model = start({"r night 1": jnp.array([0.2, 0.1]), "g night 0": free_shift()})
    stacked = sl.LogDensity(model, nights)
    alone = sl.LogDensity(model, OneByOne(tuple(nights)))
    assert stacked.names[-2:] == ("shifts['g night 0'][0]", "shifts['g night 0'][1]")
    x = stacked.x0.at[-2:].set(jnp.array([0.3, -0.2]))
    value = eqx.filter_jit(lambda d, x: jax.value_and_grad(d)(x))
    (v1, g1), (v2, g2) = value(stacked, x), value(alone, x)
    np.testing.assert_allclose(v1, v2, rtol=2e-6)
    np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(g2))))
    assert float(jnp.abs(g1[-2:]).min()) > 1.0  # the data pull on the shift
    # shifted or not, the nights of a band render as one stack: one render per band, not per night
    assert ffts(stacked, x) == 2 and ffts(alone, x) == 4


@pytest.mark.slow
def test_fitting_shifted_nights_again_compiles_the_fit_once(caplog):
    """A second fit on new data of the same shapes runs in the program compiled for the first."""
    frame = sl.Frame((1, 15, 15), channels=("r",))
    shift = SHIFTS["g night 0"]

    def star(center, flux, shifts=None):
        with sl.Scene(frame, shifts=shifts) as scene:
            sl.PointSource(center, flux)
        return scene

    true = star((7.2, 6.9), jnp.array([300.0]), shifts={"night 2": jnp.asarray(shift)})
    results, compiled = [], []
    for seed in (1, 2):
        keys = jax.random.split(jax.random.key(seed), 3)
        nights = [
            sl.simulate(true, key, noise=0.3, psf=sl.GaussianPSF(1.0 + 0.2 * index), name=f"night {index}")
            for index, key in enumerate(keys)
        ]
        model = star(
            sl.Parameter(jnp.array([7.0, 7.0])),
            sl.Parameter(jnp.array([250.0]), constraint=POSITIVE),
            shifts={"night 2": free_shift()},
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING), jax.log_compiles():
            results.append(sl.fit(model, nights, progress=False))
        compiled.append([r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()])
    assert sum("_fit_segment" in message for message in compiled[0]) == 1, compiled[0]
    # the second fit compiles nothing: neither the fit nor its checks (the chi^2 of the result)
    assert compiled[1] == [], compiled[1]
    for result in results:
        assert bool(result.converged)
        # measured: (0.418, -0.288) and (0.414, -0.309)
        np.testing.assert_allclose(sl.get_values(result.model)["shifts['night 2']"], shift, atol=0.04)


@pytest.fixture(scope="module")
def fitted(nights):
    return sl.laplace(start(free_shifts()), nights)


@pytest.mark.slow  # two fits and a Hessian of four nights: about a minute of CPU
def test_fitted_shifts_are_recovered_and_make_the_fluxes_right(nights, fitted):
    model = start(free_shifts())
    assert sl.LogDensity(model, nights).names[-4:] == (
        "shifts['g night 0'][0]",
        "shifts['g night 0'][1]",
        "shifts['g night 1'][0]",
        "shifts['g night 1'][1]",
    )
    values, sd = sl.get_values(fitted.mode), fitted.std
    for name, true in SHIFTS.items():
        shift, error = np.asarray(values[f"shifts['{name}']"]), np.asarray(sd[f"shifts['{name}']"])
        # measured: (0.437, -0.307) +- (0.024, 0.025) and (-0.223, 0.338) +- (0.026, 0.028)
        assert np.all(np.abs(shift - true) < 3 * error), (name, shift, error)
        assert np.all(error < 0.05), (name, error)
    # The point source's g flux: right with the shifts (measured 150.9 +- 1.1 for 150), biased low
    # without them (145.3: 4.2 sigma), as the g nights see it away from where the model puts it;
    # its r flux is right either way. The galaxy, wider than the offsets, loses little.
    flux, flux_error = np.asarray(values["sources[1].spectrum"]), np.asarray(sd["sources[1].spectrum"])
    assert np.all(np.abs(flux - POINT_FLUX) < 3 * flux_error), (flux, flux_error)
    unshifted = sl.fit(start(), nights, progress=False)
    biased = np.asarray(sl.get_values(unshifted.model)["sources[1].spectrum"])
    assert POINT_FLUX[0] - biased[0] > 3 * flux_error[0], (biased, flux_error)
    assert abs(biased[1] - POINT_FLUX[1]) < 3 * flux_error[1], (biased, flux_error)
    # measured: chi^2 4191 without the shifts against 2556 with them, for 2500 pixel values
    worse, better = total_chi2(unshifted.model, nights), total_chi2(fitted.mode, nights)
    assert worse - better > 1000, (worse, better)
    assert better < 1.1 * len(NIGHTS) * 25 * 25


@pytest.mark.slow  # NUTS over four nights: about a minute of CPU
@pytest.mark.filterwarnings("ignore::scarlet_like.ImproperPriorWarning")  # flat priors on the sources
def test_nuts_posterior_of_the_shifts_covers_the_truth(nights, fitted):
    posterior = sl.sample(
        fitted.mode,
        nights,
        num_warmup=100,
        num_samples=100,
        num_chains=2,
        key=jax.random.key(1),
        progress=False,
    )
    table = posterior.summary(as_dict=True)
    for name, true in SHIFTS.items():
        for axis in (0, 1):
            row = table[f"shifts['{name}'][{axis}]"]
            assert abs(row["mean"] - true[axis]) < 3 * row["sd"], (name, axis, row)
            assert row["r_hat"] < 1.1, (name, axis, row)
            # the posterior's width agrees with Laplace's
            laplace_sd = float(np.asarray(fitted.std[f"shifts['{name}']"])[axis])
            assert 0.7 < row["sd"] / laplace_sd < 1.4, (name, axis, row, laplace_sd)
    # measured: (0.439, -0.303) +- (0.023, 0.027) and (-0.222, 0.340) +- (0.025, 0.031), R-hat at most
    # 1.055, no divergence
    assert int(posterior.divergences.sum()) == 0


def test_shifts_that_name_no_observation_or_several_are_named(nights):
    with pytest.raises(
        sl.ObservationError,
        match=r"shift for observation 'g nigth 1'.*observations: 'r night 0', 'r night 1', 'g night 0', "
        r"'g night 1'.*did you mean 'g night 1'",
    ):
        sl.fit(start({"g nigth 1": free_shift()}), nights, progress=False)
    twin = sl.Observation(
        np.asarray(nights[1].data),
        weights=NOISE**-2,
        psf=sl.GaussianPSF(1.8),
        channels=("r",),
        name="r night 0",
    )
    with pytest.raises(
        sl.ObservationError, match=r"observations 0 and 1 of the likelihood are both named 'r night 0'"
    ):
        sl.LogDensity(start({"r night 0": free_shift()}), [nights[0], twin])
    # names alike without a shift are fine
    sl.LogDensity(start({"g night 0": free_shift()}), [nights[0], twin, *nights[2:]])


def test_bad_shifts_are_refused_with_the_observation_named(unchecked):
    with pytest.raises(
        sl.SceneError, match=r"shifts\['g night 1'\]: a shift is \(dy, dx\).*got shape \(3,\)"
    ):
        truth({"g night 1": np.zeros(3)})
    with pytest.raises(sl.SceneError, match=r"shifts\['g night 1'\]: a shift is \(dy, dx\).*got shape \(\)"):
        truth({"g night 1": sl.Parameter(0.0, prior=nd.Normal(0.0, 1.0))})
    with pytest.raises(sl.SceneError, match=r"shifts\['g night 1'\].*no WCS"):
        truth({"g night 1": 0.1 * units.arcsec})
    with pytest.raises(sl.SceneError, match="dict"), unchecked():
        truth([("g night 1", np.zeros(2))])


def test_a_prior_in_arcsec_becomes_one_in_the_frames_pixels():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [13.0, 13.0]
    wcs.wcs.cd = np.array([[-0.2, 0.0], [0.0, 0.2]]) / 3600
    frame = sl.Frame((1, 25, 25), wcs=wcs)
    with sl.Scene(frame, shifts={"hst": 0.05 * units.arcsec}) as scene:
        sl.PointSource((12.0, 12.0), jnp.array([1.0]))
    shift = scene.shifts["hst"]
    assert isinstance(shift, sl.Parameter) and not shift.fixed
    np.testing.assert_array_equal(shift.value, [0.0, 0.0])
    # 0.05" at 0.2"/pixel: a standard deviation of 0.25 pixel on each axis
    for step in ([0.25, 0.0], [0.0, 0.25]):
        drop = shift.prior.log_prob(jnp.zeros(2)) - shift.prior.log_prob(jnp.array(step))
        np.testing.assert_allclose(drop, 0.5, rtol=1e-3)
    # kept by the scenes made from this one
    assert scene.rebox().shifts["hst"].token == shift.token


@pytest.mark.slow
def test_docs_example_runs(docs_section):
    header = (
        "import jax\nimport jax.numpy as jnp\nimport numpyro.distributions as nd\nimport scarlet_like as sl\n"
    )
    namespace = docs_section("astro.md", "Astrometric offsets of epochs", header)
    density = namespace["density"]
    assert density.names[-2:] == ("shifts['night 2'][0]", "shifts['night 2'][1]")
    gain = float(density.log_likelihood(namespace["at_truth"]) - density.log_likelihood(density.x0))
    assert 80 < gain < 115, gain  # what the text says: about +97

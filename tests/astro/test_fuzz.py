"""Fuzzed scenes and observations: any input either raises one of the package's errors, naming what is
wrong, or gives a finite log density with a finite gradient.

Shapes (1-3 channels, 8-24 pixels a side), dtypes (float32, float64, int) and values (NaN, inf,
negative) of the data, weights, mask and PSF images, and the values, constraints and priors of the
parameters are drawn at random. The default budget is small (a few seconds); the `slow` one tries many
more. `TRIED` counts the inputs of each outcome, for the record.
"""

import collections

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from hypothesis import HealthCheck, given, settings

import scarlet_like as sl

#: inputs tried, by outcome ("error: <type>" or "finite"), over the whole module
TRIED: collections.Counter = collections.Counter()

MESSAGES: set = set()
ERRORS = (sl.ObservationError, sl.PSFError, sl.ParameterError, sl.SceneError, sl.FrameError)
NAME = "fuzzed"

DTYPES = st.sampled_from([np.float32, np.float64, np.int32])
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, -1e3])

CONSTRAINTS = {
    "real": lambda: None,
    "positive": sl.constraints.positive,
    "interval": lambda: sl.constraints.interval(0.1, 10.0),
    "greater_than": lambda: sl.constraints.greater_than(0.5),
}
PRIORS = {
    "none": lambda: None,
    "normal": lambda: nd.Normal(1.0, 2.0),
    "half_normal": lambda: nd.HalfNormal(3.0),
    "log_normal": lambda: nd.LogNormal(0.0, 1.0),
    "uniform": lambda: nd.Uniform(0.2, 8.0),
}


@st.composite
def images(draw, shape, *, allow_special=True):
    """An array of `shape` in a random dtype, with moderate values and, sometimes, a few special ones."""
    dtype = draw(DTYPES)
    if np.issubdtype(dtype, np.integer):
        return draw(hnp.arrays(dtype, shape, elements=st.integers(-100, 100)))
    values = draw(
        hnp.arrays(
            dtype, shape, elements=st.floats(-100, 100, width=32, allow_nan=False, allow_infinity=False)
        )
    )
    if allow_special and draw(st.integers(0, 5)) == 0:
        flat = values.reshape(-1)
        for _ in range(draw(st.integers(1, 3))):
            # float64 inputs may also exceed the float32 range that observations are stored in
            special = SPECIAL | st.just(1e39) if dtype == np.float64 else SPECIAL
            flat[draw(st.integers(0, flat.size - 1))] = draw(special)
    return values


@st.composite
def parameter_value(draw, shape=(), low=-20.0, high=20.0):
    """A parameter's value: moderate (mostly above `low`), or now and then special (NaN, inf, negative,
    zero)."""
    low, high = draw(st.sampled_from([(low, high)] * 3 + [(-20.0, 20.0)]))
    value = draw(
        hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, allow_infinity=False))
    )
    if draw(st.integers(0, 5)) == 0:
        value.reshape(-1)[0] = draw(SPECIAL)
    return value


@st.composite
def inputs(draw):
    channels = draw(st.integers(1, 3))
    height, width = draw(st.integers(8, 24)), draw(st.integers(8, 24))
    shape = (channels, height, width)
    data = draw(images(shape))
    weights_shape = draw(st.sampled_from([None, shape, (channels, 1, 1), (1, height, width)]))
    weights = None if weights_shape is None else np.abs(draw(images(weights_shape)))
    if weights is not None and draw(st.integers(0, 5)) == 0:
        weights = draw(images(weights_shape))  # negative and special values too
    mask = None
    if draw(st.booleans()):
        mask = draw(hnp.arrays(np.bool_, shape))
    psf_kind = draw(st.sampled_from(["none", "gaussian", "array"]))
    psf = None
    if psf_kind == "gaussian":
        psf = ("gaussian", draw(st.sampled_from([0.7, 1.5, 0.0, -1.0, np.nan, 1e300, 2e3, 1e-50])))
    elif psf_kind == "array":
        psf_channels = draw(st.sampled_from([1, channels, channels + 1]))
        side = draw(st.integers(3, 9))
        psf_images = draw(images((psf_channels, side, side)))
        if draw(st.integers(0, 3)) > 0:  # mostly a proper, positive PSF
            psf_images = np.abs(psf_images) + 1
        psf = ("array", psf_images)
    return {
        "data": data,
        "weights": weights,
        "mask": mask,
        "psf": psf,
        "nominal_center": np.array([height / 2, width / 2]),
        "center": draw(parameter_value((2,), low=-3.0, high=3.0)) + np.array([height / 2, width / 2]),
        "spectrum": draw(parameter_value((draw(st.sampled_from([channels] * 5 + [channels + 1])),), low=0.1)),
        "spectrum_constraint": draw(st.sampled_from(["real", "positive"])),
        "sigma": draw(parameter_value(low=0.6)),
        "sigma_constraint": draw(st.sampled_from(sorted(CONSTRAINTS))),
        "sigma_prior": draw(st.sampled_from(sorted(PRIORS))),
        "spectrum_prior": draw(st.sampled_from(["none", "none", "normal", "half_normal"])),
        "value_dtype": draw(st.sampled_from([np.float64, np.float32, np.int32])),
        "morphology": draw(st.sampled_from(["gaussian", "gaussian", "sersic", "point"])),
        "ellipticity": draw(parameter_value((2,), low=-0.5, high=0.5)),
        "n": draw(parameter_value(low=0.6, high=5.9)),
    }


def as_dtype(value, dtype):
    """`value` in `dtype`; left as it is where an integer dtype cannot hold it (NaN, inf)."""
    if np.issubdtype(dtype, np.integer) and not np.all(np.isfinite(value)):
        return value
    return value.astype(dtype)


def morphology(case):
    """A Gaussian, Sersic or point morphology whose size is the fuzzed `sigma`."""
    size = sl.Parameter(
        as_dtype(case["sigma"], case["value_dtype"]),
        constraint=CONSTRAINTS[case["sigma_constraint"]](),
        prior=PRIORS[case["sigma_prior"]](),
    )
    if case["morphology"] == "gaussian":
        return sl.GaussianMorphology(
            size, ellipticity=sl.Parameter(case["ellipticity"], constraint=sl.constraints.unit_disk())
        )
    if case["morphology"] == "sersic":
        return sl.SersicMorphology(
            sl.Parameter(case["n"], constraint=sl.constraints.interval(0.5, 6.0)), size
        )
    return sl.PointMorphology()


def build(case):
    """The observation and the one-source scene of `case`."""
    psf = case["psf"]
    if psf is not None:
        psf = sl.GaussianPSF(psf[1]) if psf[0] == "gaussian" else sl.ArrayPSF(psf[1])
    obs = sl.Observation(case["data"], weights=case["weights"], mask=case["mask"], psf=psf, name=NAME)
    frame = sl.Frame.from_observations(obs)
    with sl.Scene(frame) as scene:
        sl.Source(
            sl.Parameter(
                case["center"], prior=nd.Normal(jnp.asarray(case["nominal_center"]), 5.0).to_event(1)
            ),
            sl.Parameter(
                as_dtype(case["spectrum"], case["value_dtype"]),
                constraint=CONSTRAINTS[case["spectrum_constraint"]](),
                prior=PRIORS[case["spectrum_prior"]](),
            ),
            morphology(case),
            box=None,
        )
    return scene, obs


#: words of which an error's message must hold at least one, by type: what it is about
CULPRITS = {
    sl.ObservationError: (f"Observation '{NAME}'",),
    sl.PSFError: ("ArrayPSF", "GaussianPSF"),
    sl.ParameterError: ("sources[0].center", "sources[0].spectrum", "sources[0].morphology."),
    sl.SceneError: ("sources[0]",),
    sl.FrameError: (NAME,),
}


def check(case):
    try:
        scene, obs = build(case)
        density = sl.LogDensity(scene, obs)
    except ERRORS as error:
        kind = next(k for k in CULPRITS if isinstance(error, k))
        message = str(error)
        assert any(word in message for word in CULPRITS[kind]), (
            f"{kind.__name__} names none of {CULPRITS[kind]}: {message}"
        )
        TRIED[f"error: {kind.__name__}"] += 1
        MESSAGES.add(message)
        return
    # jitted: one compilation per input instead of one per operation (2 s instead of 13 s)
    value, grad = jax.jit(jax.value_and_grad(density))(density.x0)
    assert np.isfinite(value), f"log density {value} for {case}"
    assert np.all(np.isfinite(grad)), f"gradient {grad} (names {density.names}) for {case}"
    TRIED["finite"] += 1


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_fuzzed_scene_errors_name_the_culprit_or_density_is_finite(case):
    check(case)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_fuzzed_scene_many(case):
    check(case)


# -- what the fuzzing found --------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["data", "weights"])
def test_values_beyond_float32_are_an_error_not_an_infinite_density(what):
    # were checked for being finite in float64, then stored in float32 as inf: a log density of -inf
    values = {"data": np.zeros((1, 9, 10)), "weights": np.ones((1, 9, 10))}
    values[what][0, 3, 4] = 1e39
    with pytest.raises(
        sl.ObservationError, match=rf"Observation '{NAME}': {what} reach 1e\+39, beyond the float32"
    ):
        sl.Observation(values["data"], weights=values["weights"], name=NAME)
    # masked, a huge data value is left out, as a NaN is
    if what == "data":
        sl.Observation(values["data"], mask=values["data"] > 1e38, name=NAME)


@pytest.mark.parametrize("shape", [(1, 0, 5), (0, 5, 5), (5, 0)])
def test_empty_data_is_an_error_naming_the_observation(shape):
    # was accepted, and failed later in the Frame, which did not name the observation
    with pytest.raises(
        sl.ObservationError, match=rf"Observation '{NAME}': data must be \(C, H, W\) with positive"
    ):
        sl.Observation(np.zeros(shape), name=NAME)


@pytest.mark.parametrize("sigma", [1e300, 1e-50])
def test_a_gaussian_psf_whose_width_float32_cannot_hold_is_an_error(sigma):
    # 1e300 passed the float64 check, became inf in float32, and the Observation failed with a bare
    # OverflowError; 1e-50 became 0
    with pytest.raises(sl.PSFError, match=r"GaussianPSF: sigma must be positive and finite \(in float32\)"):
        sl.GaussianPSF(sigma)


def test_a_psf_far_wider_than_any_grid_is_an_error_naming_the_observation():
    # a Gaussian of sigma 1e6 px padded a 9x10 image to an FFT grid of 8 million x 4 million pixels
    with pytest.raises(sl.ObservationError, match=rf"Observation '{NAME}': the PSF is 8000000 pixels wide"):
        sl.Observation(np.zeros((1, 9, 10)), psf=sl.GaussianPSF(1e6), name=NAME)
    # with an explicit margin it is the user's call
    assert sl.Observation(np.zeros((1, 9, 10)), psf=sl.GaussianPSF(1e6), margin=8).shape == (1, 9, 10)


def test_zz_report_counts():
    """Prints how many inputs were tried, by outcome (run with `-s` to see it)."""
    print(f"fuzz inputs tried: {sum(TRIED.values())} {dict(TRIED)}")
    print("\n".join(sorted(MESSAGES)))

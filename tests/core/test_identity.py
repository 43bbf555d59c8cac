"""Parameter identities: given at construction, kept by every pytree operation, never merged by accident,
and numbered canonically wherever compiled code must be shared."""

import copy

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_models import Blob, LightCurve, Line, pixel_grid
from test_supernova import TIMES, PointSource, build, flux_at

import scarlet_like as sl
from scarlet_like.core import canonical_tokens

# light curve (3) + galaxy (4) + supernova position (2), however many epochs use them
SURVEY_ENTRIES = 9


def survey(seed=0):
    rng = np.random.default_rng(seed)
    return build(
        [25.0, 25.0] + rng.uniform(-1, 1, 2), 4.0, 300.0, [28.0, 21.5], t0=-1.0, width=3.0, peak=60.0
    )


def curve_put_in_place_by_tree_at():
    """The light curve inserted into a built survey one epoch at a time: each `tree_at` rebuilds the
    Parameters already in place as new objects (the case that once became independent copies)."""
    model = survey()
    curve = LightCurve(
        t0=sl.Parameter(-2.0),
        width=sl.Parameter(2.5, constraint=sl.constraints.positive()),
        peak=sl.Parameter(40.0, constraint=sl.constraints.positive()),
    )
    model = eqx.tree_at(lambda m: m.light_curve, model, curve)
    for index, time in enumerate(TIMES):
        model = eqx.tree_at(
            lambda m, i=index: m.epochs[i].supernova,
            model,
            PointSource(center=model.epochs[0].supernova.center, flux=sl.Derived(flux_at, curve, time)),
        )
    return model


def test_sharing_survives_every_pytree_operation(tmp_path):
    model = curve_put_in_place_by_tree_at()
    assert len(sl.entry_names(model)) == SURVEY_ENTRIES
    sl.save(tmp_path / "survey.eqx", model)
    rebuilt = {
        "tree_at": eqx.tree_at(lambda m: m.epochs[2].galaxy.flux.value, model, jnp.asarray(310.0)),
        "jax.tree.map": jax.tree.map(lambda leaf: leaf, model),
        "copy": copy.copy(model),
        "deepcopy": copy.deepcopy(model),
        "unstack(stack)": sl.unstack(sl.stack([model, survey(1)]))[0],
        "load": sl.load(tmp_path / "survey.eqx", like=model),
        "combine(partition)": sl.combine(*sl.partition(model)),
    }
    for how, other in rebuilt.items():
        assert len(sl.entry_names(other)) == SURVEY_ENTRIES, how
        assert sl.entry_names(other) == sl.entry_names(model), how
    # a stack keeps the sharing inside each member: 9 entries per survey
    assert sl.ravel(sl.stack([model, survey(1)]))[0].shape == (2 * SURVEY_ENTRIES,)
    # and the flux of every epoch follows the one light curve
    moved = sl.set_values(rebuilt["tree_at"], {"light_curve.peak": 80.0})
    fluxes = [float(epoch.supernova.flux) for epoch in sl.resolve(moved).epochs]
    np.testing.assert_allclose(fluxes, [float(flux_at(sl.resolve(moved).light_curve, t)) for t in TIMES])


def test_unstack_gives_back_the_identities():
    members = [survey(seed) for seed in range(3)]
    back = sl.unstack(sl.stack(members))
    for before, after in zip(members, back, strict=True):
        assert jax.tree_util.tree_structure(before) == jax.tree_util.tree_structure(after)
        for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
            np.testing.assert_array_equal(x, y)


def test_separate_builds_never_merge():
    first, second = survey(0), survey(1)
    assert len(sl.entry_names([first, second])) == 2 * SURVEY_ENTRIES
    # the same model twice is one model
    assert len(sl.entry_names([first, first])) == SURVEY_ENTRIES


def test_walk_changes_nothing():
    shared = sl.Parameter(2.0)
    pair = [Line(slope=shared, intercept=0.0), Line(slope=shared, intercept=1.0)]
    token = shared.token
    assert sl.ravel(pair)[0].shape == (1,)
    assert shared.token == token and pair[1].slope is shared


def test_named_parameters_stack():
    def named(offset):
        return Line(slope=sl.Parameter(1.0 + offset), intercept=sl.Parameter(offset, name="host_flux"))

    plate = sl.stack([named(0.0), named(1.0), named(2.0)])
    assert sl.entry_names(plate) == (
        "[0].slope",
        "[1].slope",
        "[2].slope",
        "host_flux[0]",
        "host_flux[1]",
        "host_flux[2]",
    )
    np.testing.assert_array_equal(sl.get_values(plate)["host_flux"], [0.0, 1.0, 2.0])
    with pytest.raises(sl.ParameterError, match="named 'host_flux'"):
        sl.ravel([named(0.0), named(1.0)])  # two parameters of one model still need two names


class Data(sl.Module):
    """Blob images with Gaussian noise of 0.01."""

    image: jax.Array

    def log_likelihood(self, model):
        return -0.5 * jnp.sum(((model(pixel_grid(16, 16)) - self.image) / 0.01) ** 2)


def blob_fit_problem(seed):
    rng = np.random.default_rng(seed)
    center, width = rng.uniform(5.0, 11.0, 2), rng.uniform(1.5, 2.5)
    image = Blob(center=jnp.asarray(center), width=width, flux=20.0)(pixel_grid(16, 16))
    model = Blob(
        center=sl.Parameter(center + rng.uniform(-0.5, 0.5, 2)),
        width=sl.Parameter(width * 1.2, constraint=sl.constraints.positive()),
        flux=20.0,
    )
    return model, Data(image), np.concatenate([center, [width]])


def test_stacked_models_and_data_vmap_through_fit():
    problems = [blob_fit_problem(seed) for seed in range(3)]
    models = sl.stack([model for model, _, _ in problems])
    data = sl.stack([data for _, data, _ in problems])

    @jax.jit
    def fit_all(models, data):
        return jax.vmap(lambda model, data: sl.fit(model, data, progress=False, max_steps=200))(models, data)

    result = fit_all(models, data)
    assert isinstance(result.model, sl.Plate) and len(result.model) == 3
    fitted = sl.get_values(result.model)
    truth = np.stack([truth for _, _, truth in problems])
    np.testing.assert_allclose(fitted["[:].center"], truth[:, :2], atol=1e-3)
    np.testing.assert_allclose(fitted["[:].width"], truth[:, 2], rtol=1e-3)
    # the same as one fit at a time
    one = sl.fit(problems[1][0], problems[1][1], progress=False, max_steps=200)
    np.testing.assert_allclose(sl.ravel(sl.unstack(result.model)[1])[0], one.x, atol=1e-4)


def test_models_built_the_same_way_compile_once():
    traces = []

    @jax.jit
    def total(model):
        traces.append(1)
        return sum(jnp.sum(value) for value in sl.get_values(model).values())

    for seed in range(3):
        total(canonical_tokens(survey(seed))[0])
    assert len(traces) == 1

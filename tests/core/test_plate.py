"""Plates: stacked sub-models evaluated with vmap, and a population model fitted through them."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from core_models import Blob, map_fit, pixel_grid

import scarlet_like as sl


class Field(sl.Module):
    blobs: sl.Plate

    def __call__(self, grid):
        return jnp.sum(self.blobs(grid), axis=0)


def blobs(n=4, offset=0.0):
    return [
        Blob(
            center=sl.Parameter(jnp.array([5.0 + i, 6.0 + 2 * i]) + offset, prior=nd.Normal(0.0, 30.0)),
            width=sl.Parameter(1.0 + 0.5 * i, constraint=sl.constraints.positive()),
        )
        for i in range(n)
    ]


def test_stack_evaluates_like_the_members():
    members = blobs()
    field = Field(blobs=sl.stack(members))
    grid = pixel_grid(20, 24)
    np.testing.assert_allclose(field(grid), sum(blob(grid) for blob in members), rtol=1e-5, atol=1e-7)
    assert len(field.blobs) == 4
    np.testing.assert_allclose(field.blobs.map(lambda blob: blob.width), [1.0, 1.5, 2.0, 2.5])


def test_stack_unstack_round_trip():
    members = blobs()
    back = sl.unstack(sl.stack(members))
    assert len(back) == 4
    for a, b in zip(members, back, strict=True):
        assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            np.testing.assert_array_equal(x, y)


def test_stack_and_unstack_outside_jit_run_one_program_each_and_inside_jit_are_traced(caplog):
    # seven members: shapes no other test stacks, so every program is new to the process
    members = blobs(7, offset=0.5)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        plate = sl.stack(members)
        back = sl.unstack(plate)
    compiled = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("Compiling")]
    # one program for all the arrays each way, not two or three per array (besides, unless an earlier
    # test made one, JAX's `stage` of a Python float: each Blob's `flux` is made an array as before)
    stacking = sorted(name for name in compiled if name != "jit(stage)")
    assert stacking == ["jit(_split_arrays)", "jit(_stack_groups)"], compiled
    traced_plate = jax.jit(sl.stack)(members)
    traced_back = jax.jit(sl.unstack)(plate)
    for eager, traced in ((plate, traced_plate), (back, traced_back)):
        for x, y in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(traced), strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype and x.weak_type == y.weak_type
    for member, again in zip(members, back, strict=True):
        for x, y in zip(jax.tree_util.tree_leaves(member), jax.tree_util.tree_leaves(again), strict=True):
            np.testing.assert_array_equal(x, y)


def test_names_ravel_and_values_understand_the_plate():
    field = Field(blobs=sl.stack(blobs(3)))
    names = sl.entry_names(field)
    assert names[:2] == ("blobs[0].center[0]", "blobs[0].center[1]")
    assert "blobs[2].center[1]" in names and names[-1] == "blobs[2].width"
    x, unravel = sl.ravel(field)
    assert x.shape == (9,)
    values = sl.get_values(field)
    assert values["blobs[:].center"].shape == (3, 2)
    np.testing.assert_allclose(values["blobs[:].width"], [1.0, 1.5, 2.0])
    moved = sl.set_values(field, {"blobs[:].width": jnp.array([2.0, 2.0, 2.0])})
    np.testing.assert_allclose(sl.resolve(moved).blobs.members.width, [2.0, 2.0, 2.0])
    fixed = sl.fix(field, "blobs[:].center")
    assert sl.entry_names(fixed) == ("blobs[0].width", "blobs[1].width", "blobs[2].width")
    # the prior of each member applies once per member
    density = sl.LogDensity(field, lambda m: jnp.zeros(()), jacobian=False)
    centers = values["blobs[:].center"]
    np.testing.assert_allclose(density(x), jnp.sum(nd.Normal(0.0, 30.0).log_prob(centers)), rtol=1e-6)


def test_one_trace_for_any_number_of_members():
    grid = pixel_grid(16, 16)
    traces = []

    def loglike(field):
        traces.append(1)
        return -jnp.sum(field(grid) ** 2)

    for n in (3, 30):
        density = sl.LogDensity(Field(blobs=sl.stack(blobs(n))), loglike)
        traces.clear()
        jax.jit(density)(density.x0)
        # the member model is traced once, whatever the number of members
        assert len(traces) == 1


def test_stacking_different_models_says_where():
    members = blobs(2)
    other = Blob(center=sl.Parameter(jnp.zeros(2), prior=nd.Normal(0.0, 30.0)), width=sl.Parameter(1.0))
    with pytest.raises(
        sl.PlateError, match=r"model 0 and model 1 differ at width.constraint: positive\(\) vs real\(\)"
    ):
        sl.stack([members[0], other])
    wider = Blob(center=sl.Parameter(jnp.zeros(3), prior=nd.Normal(0.0, 30.0)), width=members[1].width)
    with pytest.raises(sl.PlateError, match=r"center.value: shape \(2,\) vs \(3,\)"):
        sl.stack([members[0], wider])
    with pytest.raises(sl.PlateError, match="no models"):
        sl.stack([])


def test_population_parameters_are_recovered():
    """N blobs whose centres and widths are drawn from population parameters; fit them all jointly."""
    key_centers, key_widths, key_noise = jax.random.split(jax.random.key(7), 3)
    n, size = 24, 48
    true_log_width_mean, true_log_width_scatter = jnp.log(2.0), 0.25
    true_center_mean, true_center_scatter = jnp.array([24.0, 24.0]), 8.0
    centers = true_center_mean[None] + true_center_scatter * jax.random.normal(key_centers, (n, 2))
    widths = jnp.exp(true_log_width_mean + true_log_width_scatter * jax.random.normal(key_widths, (n,)))
    grid = pixel_grid(size, size)
    flux = 400.0
    truth = sum(Blob(center=c, width=w, flux=flux)(grid) for c, w in zip(centers, widths, strict=True))
    noise = 0.5
    data = truth + noise * jax.random.normal(key_noise, truth.shape)

    log_width_mean = sl.Parameter(0.0, prior=nd.Normal(0.0, 3.0))
    log_width_scatter = sl.Parameter(0.5, constraint=sl.constraints.positive(), prior=nd.HalfNormal(2.0))
    center_mean = sl.Parameter(jnp.array([20.0, 20.0]), prior=nd.Normal(24.0, 50.0).expand([2]).to_event(1))
    center_scatter = sl.Parameter(5.0, constraint=sl.constraints.positive(), prior=nd.HalfNormal(20.0))

    class Population(sl.Module):
        log_width_mean: sl.Parameter
        log_width_scatter: sl.Parameter
        center_mean: sl.Parameter
        center_scatter: sl.Parameter
        blobs: sl.Plate

        def __call__(self, grid):
            return jnp.sum(self.blobs(grid), axis=0)

    rng = np.random.default_rng(3)
    members = [
        Blob(
            center=sl.Parameter(
                np.asarray(c) + rng.normal(0, 0.5, 2),
                prior=sl.HierarchicalPrior(member_center_prior, center_mean, center_scatter),
            ),
            width=sl.Parameter(
                float(w) * 1.2,
                constraint=sl.constraints.positive(),
                prior=sl.HierarchicalPrior(nd.LogNormal, log_width_mean, log_width_scatter),
            ),
            flux=flux,
        )
        for c, w in zip(centers, widths, strict=True)
    ]
    model = Population(log_width_mean, log_width_scatter, center_mean, center_scatter, sl.stack(members))
    assert model.blobs.size == n
    assert sl.ravel(model)[0].shape == (1 + 1 + 2 + 1 + 3 * n,)

    density = sl.LogDensity(model, lambda m: -0.5 * jnp.sum(((m(grid) - data) / noise) ** 2), jacobian=False)
    x, _ = map_fit(density, steps=600)
    fitted = sl.get_values(density.model(x))

    # What the population parameters can be known to, from n draws
    mean_error = true_log_width_scatter / np.sqrt(n)
    # at the mode, the population mean is the mean of the members' log widths (the prior is broad)
    assert abs(fitted["log_width_mean"] - np.mean(np.log(fitted["blobs[:].width"]))) < 0.01
    assert abs(fitted["log_width_mean"] - true_log_width_mean) < 3 * mean_error
    assert abs(fitted["log_width_scatter"] - true_log_width_scatter) < 3 * true_log_width_scatter / np.sqrt(
        2 * n
    )
    center_error = true_center_scatter / np.sqrt(n)
    assert np.all(np.abs(fitted["center_mean"] - true_center_mean) < 3 * center_error)
    assert abs(fitted["center_scatter"] - true_center_scatter) < 3 * true_center_scatter / np.sqrt(4 * n)
    np.testing.assert_allclose(fitted["blobs[:].width"], widths, rtol=0.08)
    # members are found too (two nearly coincident blobs may trade places: look at the median)
    assert np.median(np.abs(fitted["blobs[:].center"] - centers)) < 0.2


def member_center_prior(mean, scatter):
    return nd.Normal(mean, scatter).to_event(1)

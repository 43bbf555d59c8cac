"""The stacked layout `LogDensity` computes with: lists of like sub-models held as plates."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from core_models import Blob, pixel_grid

import scarlet_like as sl
from scarlet_like.core.layout import stacked_lists, unstacked_lists
from scarlet_like.core.plate import Plate, Stacked
from scarlet_like.core.tree import ravel

GRID = pixel_grid(12, 12)


class Field(sl.Module):
    """Blobs summed on a grid, compared with data (a Gaussian likelihood, noise 0.002)."""

    blobs: list
    data: jnp.ndarray

    def log_likelihood(self, model):
        image = sum(blob(GRID) for blob in model.blobs)
        return -0.5 * jnp.sum(((image - self.data) / 0.002) ** 2)


def blob(y, x, width=1.5, *, fixed_width=False):
    return Blob(
        center=sl.Parameter(jnp.array([y, x]), prior=nd.Normal(6.0, 4.0).expand([2]).to_event(1)),
        width=sl.Parameter(width, constraint=sl.constraints.positive(), fixed=fixed_width),
    )


class Blobs(sl.Module):
    blobs: list


def data_for(model):
    resolved = sl.resolve(model)
    return sum(b(GRID) for b in resolved.blobs)


def direct_log_density(model, data):
    """The same posterior without the framework's layout: likelihood + priors + Jacobians by hand."""
    resolved = sl.resolve(model)
    total = Field(blobs=[], data=data).log_likelihood(resolved)
    for b in model.blobs:
        if b.center.prior is not None:
            total = total + b.center.prior.log_prob(b.center.value)
        if not b.width.fixed:
            total = total + jnp.log(b.width.value)  # d width / d log width
    return total


def test_like_elements_become_one_plate_and_names_stay():
    model = Blobs(blobs=[blob(3.0, 4.0), blob(8.0, 7.0, fixed_width=True), blob(6.0, 2.0)])
    stacked = stacked_lists(model)
    assert isinstance(stacked.blobs, Stacked)
    plates = [part for part in stacked.blobs.parts if isinstance(part, Plate)]
    assert len(plates) == 1 and plates[0].labels == (0, 2)
    # every entry keeps its name as the model is written; only the order follows the layout
    assert sorted(sl.entry_names(stacked)) == sorted(sl.entry_names(model))
    assert "blobs[2].center[1]" in sl.entry_names(stacked)
    # values by name are the same, whichever layout they are read from
    written, computed = sl.get_values(model), sl.get_values(stacked)
    assert list(written) == [
        "blobs[0].center",
        "blobs[0].width",
        "blobs[1].center",
        "blobs[2].center",
        "blobs[2].width",
    ]
    assert set(written) == set(computed)
    for name in written:
        np.testing.assert_array_equal(written[name], computed[name])
    # reads like the list
    assert len(stacked.blobs) == 3
    np.testing.assert_array_equal(stacked.blobs[2].center.value, [6.0, 2.0])
    back = unstacked_lists(stacked)
    assert isinstance(back.blobs, list)
    for ours, theirs in zip(jax.tree.leaves(back), jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_density_equals_the_direct_computation():
    truth = Blobs(blobs=[blob(3.0, 4.0), blob(8.0, 7.0), blob(6.0, 2.5, 2.0)])
    data = data_for(truth)
    model = Blobs(blobs=[blob(3.3, 4.2), blob(7.5, 7.1, 1.2), blob(6.4, 2.0, 2.4)])
    density = sl.LogDensity(model, Field(blobs=[], data=data))
    assert isinstance(density.unravel(density.x0).blobs, Stacked)
    np.testing.assert_allclose(density(density.x0), direct_log_density(model, data), rtol=1e-5)
    # gradients, matched entry by entry through the names, agree with the list layout's
    x_list, unravel_list = ravel(model)
    list_density = lambda x: direct_log_density(unravel_list(x), data)  # noqa: E731
    by_name = dict(zip(sl.entry_names(model), np.asarray(jax.grad(list_density)(x_list)), strict=True))
    ours = dict(zip(density.names, np.asarray(jax.grad(density)(density.x0)), strict=True))
    assert set(by_name) == set(ours)
    for name, value in by_name.items():
        np.testing.assert_allclose(ours[name], value, rtol=2e-4, atol=1e-4, err_msg=name)
    # and the model comes back as written
    back = density.model(density.x0)
    assert isinstance(back.blobs, list) and len(back.blobs) == 3
    np.testing.assert_allclose(back.blobs[2].width.value, 2.4, rtol=1e-6)


def test_shared_parameters_survive_the_layout():
    width = sl.Parameter(1.5, constraint=sl.constraints.positive())
    population = sl.Parameter(6.0)
    linked = [
        Blob(
            center=sl.Parameter(
                jnp.array([3.0, 4.0]), prior=sl.HierarchicalPrior(nd.Normal, population, 4.0)
            ),
            width=width,
        ),
        Blob(
            center=sl.Parameter(
                jnp.array([8.0, 7.0]), prior=sl.HierarchicalPrior(nd.Normal, population, 4.0)
            ),
            width=width,
        ),
    ]
    loose = [
        Blob(
            center=sl.Parameter(
                jnp.array([6.0, 2.0]), prior=sl.HierarchicalPrior(nd.Normal, population, 4.0)
            ),
            width=sl.Parameter(2.0, constraint=sl.constraints.positive()),
        )
    ]
    model = Blobs(blobs=linked + loose)
    density = sl.LogDensity(model, lambda m: jnp.zeros(()))
    # the shared width and the population mean are one entry each
    assert density.size == len(sl.entry_names(model)) == 2 + 2 + 2 + 1 + 1 + 1
    # named as in the list: the width the stacked blobs share by its first spot, not as a stack
    assert set(density.names) == set(sl.entry_names(model))
    assert "blobs[0].width" in density.names and "blobs[0:2].width" not in density.names
    back = density.model(density.x0 + 0.1)
    parameters = sl.parameters(back)
    assert len(parameters) == len(sl.parameters(model))
    widths = [b.width for b in back.blobs[:2]]
    assert widths[0].token is not None and widths[0].token == widths[1].token
    assert back.blobs[2].width.token != widths[0].token


def test_compiled_program_does_not_grow_with_the_number_of_elements():
    def lowered_size(count):
        rng = np.random.default_rng(0)
        model = Blobs(blobs=[blob(*rng.uniform(2, 10, 2), rng.uniform(1, 2)) for _ in range(count)])
        density = sl.LogDensity(model, lambda m: -0.5 * sum(jnp.sum(b.center**2) for b in m.blobs[:1]))
        text = jax.jit(jax.value_and_grad(density)).lower(density.x0).as_text()
        return len(text.splitlines())

    small, large = lowered_size(4), lowered_size(40)
    assert large < 1.2 * small, (small, large)


@pytest.mark.parametrize("fixed", [False, True])
def test_fit_returns_lists(fixed):
    truth = Blobs(blobs=[blob(3.0, 4.0), blob(8.0, 7.0), blob(6.0, 2.5, 2.0)])
    data = data_for(truth)
    model = Blobs(blobs=[blob(3.3, 4.2), blob(7.5, 7.1, fixed_width=fixed), blob(6.4, 2.0, 2.4)])
    result = sl.fit(model, Field(blobs=[], data=data), progress=False)
    assert isinstance(result.model.blobs, list)
    fitted = sl.get_values(result.model)
    np.testing.assert_allclose(fitted["blobs[2].center"], [6.0, 2.5], atol=1e-3)
    # a list-layout model again: tree surgery works on it
    moved = eqx.tree_at(lambda m: m.blobs[0].center.value, result.model, jnp.array([1.0, 1.0]))
    np.testing.assert_array_equal(sl.get_values(moved)["blobs[0].center"], [1.0, 1.0])

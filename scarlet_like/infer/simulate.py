"""`sl.sample_prior`: models drawn from their priors (prior predictive checks, simulation-based
calibration, mock data sets)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.distributions as numpyro_distributions
from jaxtyping import Array, PRNGKeyArray, PyTree

from ..core import (
    Group,
    Prior,
    Walk,
    canonical_tokens,
    get_values,
    has_parameters,
    is_parameter,
    member_axes,
    parameters,
    walk,
)
from ..core.parameter import known_value

__all__ = ["sample_prior"]


def sample_prior(model: PyTree, key: PRNGKeyArray, n: int | None = None) -> PyTree:
    """Draw every free parameter of a model from its prior.

    **Arguments:**

    - `model`: any model whose free [`scarlet_like.Parameter`][]s all have priors.
    - `key`: a JAX random key.
    - `n`: number of draws; `None` for a single model.

    **Returns:**

    With `n=None`, one model like `model` with new values (fixed parameters and derived values are
    left as they are). This single draw is pure JAX: `jax.vmap(lambda k: sl.sample_prior(model, k))(keys)`
    works, and is what `n=` does. With `n`, one model holding all draws: every array of it has a
    leading axis of length `n` (`sl.get_values(draws)` gives `{name: (n, *shape)}`, and
    `jax.tree.map(lambda a: a[i], draws)` is the i-th model).

    Parameters whose prior depends on other parameters ([`scarlet_like.HierarchicalPrior`][]) are drawn
    after those, from the prior at their drawn values. Raises `ValueError` naming the free parameters
    without a prior, and, when the draws are concrete, naming those whose prior put a draw outside
    the parameter's constraint.
    """
    # compiled for canonically numbered identities: once for any model built the same way
    canonical, restore = canonical_tokens(model)
    if n is not None:
        if int(n) != n or n < 1:
            raise ValueError(f"sample_prior: `n` must be a positive integer, got {n!r}")
        draws = jax.vmap(lambda key: _draw_one(canonical, key))(jax.random.split(key, int(n)))
    else:
        draws = _draw_one(canonical, key)
    draws = restore(draws)
    _check_support(draws)
    return draws


@eqx.filter_jit
def _draw_one(model: PyTree, key: PRNGKeyArray) -> PyTree:
    # compiled as a whole: the many small operations of drawing, one by one, would each compile
    return _draw_model(model, key)


def _draw_model(model: PyTree, key: PRNGKeyArray) -> PyTree:
    tree = walk(model)
    free = [(index, group) for index, group in enumerate(tree.groups) if group.free]
    missing = [group.name for _, group in free if group.parameter.prior is None]
    if missing:
        raise ValueError(
            f"sample_prior: these free parameters have no prior to draw from: {', '.join(missing)}"
        )
    keys = dict(
        zip((group.name for _, group in free), jax.random.split(key, max(len(free), 1)), strict=False)
    )

    # Priors with fixed numbers first, all at once; then priors depending on other parameters, each once
    # the parameters it depends on have their drawn values in the model.
    linked = {
        group.name: _dependencies(tree, group) for _, group in free if has_parameters(group.parameter.prior)
    }
    changes = {
        index: {"value": _draw_value(group, keys[group.name])}
        for index, group in free
        if group.name not in linked
    }
    current = tree.replaced(changes)
    waiting = dict(linked)
    while waiting:
        ready = [name for name, needs in waiting.items() if not needs & waiting.keys()]
        if not ready:
            raise ValueError(
                "sample_prior: the priors of these parameters depend on each other in a cycle: "
                + ", ".join(waiting)
            )
        for name in ready:
            tree = walk(current)
            index = next(i for i, group in enumerate(tree.groups) if group.name == name)
            current = tree.replaced({index: {"value": _draw_value(tree.groups[index], keys[name])}})
            del waiting[name]
    return current


def _dependencies(tree: Walk, group: Group) -> set[str]:
    """Names of the free parameters that `group`'s prior is built from."""
    by_token = {g.token: g.name for g in tree.groups if g.free}
    found = set()
    for leaf in jax.tree_util.tree_leaves(group.parameter.prior, is_leaf=is_parameter):
        if is_parameter(leaf):
            name = by_token.get(leaf.token)
            if name is not None:
                found.add(name)
    return found


def _draw_value(group: Group, key: PRNGKeyArray) -> Array:
    value, prior = known_value(group.parameter), group.parameter.prior
    if prior is None:  # `_draw_model` has named every such parameter already
        raise ValueError(f"sample_prior: '{group.name}' has no prior to draw from")
    with jax.numpy_dtype_promotion("standard"):  # numpyro's samplers mix Python scalars in
        draw = _draw(prior, key, tuple(value.shape), group.shared, group.name)
    return jnp.asarray(draw, dtype=value.dtype)


def _draw(
    prior: Prior, key: PRNGKeyArray, shape: tuple[int, ...], shared: tuple[Any, ...], name: str
) -> Array:
    """A draw of the given shape; in a plate, each member from its own prior (leading axis)."""
    if shared:
        members = jax.random.split(key, shape[0])
        inner = lambda prior, key: _draw(prior, key, shape[1:], shared[1:], name)  # noqa: E731
        return jax.vmap(inner, in_axes=(member_axes(prior, shared[0]), 0))(prior, members)
    prior_shape = prior.shape
    extra = shape if prior_shape is None else shape[: max(len(shape) - len(prior_shape), 0)]
    draw = _sample(prior, key, extra)
    if draw.shape == shape:
        return draw
    # a prior with size-1 axes broadcast against the value: widen the distribution itself
    distribution: Any = getattr(prior, "distribution", None)
    event = tuple(prior.event_shape or ())
    if hasattr(distribution, "expand"):
        draw = distribution.expand(shape[: len(shape) - len(event)]).sample(key)
        if draw.shape == shape:
            return draw
    raise ValueError(f"sample_prior: the prior of '{name}' gives draws of shape {draw.shape}, not {shape}")


def _sample(prior: Prior, key: PRNGKeyArray, sample_shape: tuple[int, ...]) -> Array:
    # straight to numpyro when the prior is a numpyro distribution (the generic path of a hierarchical
    # prior first checks for distrax, a slow import)
    distribution: Any = getattr(prior, "distribution", None)
    if isinstance(distribution, numpyro_distributions.Distribution):
        return distribution.sample(key, sample_shape)
    return prior.sample(key, sample_shape)


def _check_support(draws: PyTree) -> None:
    """Name the parameters whose prior put a draw outside the constraint (only for concrete draws)."""
    values = get_values(draws)
    if any(isinstance(value, jax.core.Tracer) for value in values.values()):
        return
    constraints = {
        name: parameter.constraint for name, parameter in parameters(draws, free_only=True).items()
    }
    outside = [name for name, value in values.items() if not bool(constraints[name].check(value))]
    if outside:
        raise ValueError(
            "sample_prior: the prior put draws outside the constraint of "
            + ", ".join(outside)
            + " (give them a prior whose support lies inside the constraint)"
        )

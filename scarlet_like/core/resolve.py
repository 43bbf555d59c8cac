"""`resolve`: a model with every Parameter replaced by its value and every computed node computed.

The one driver that model methods, likelihoods and priors use to see plain arrays. It knows
Parameters (below it) and, through the small `Resolvable` interface, any node that resolves to
something else: derived values and plates, defined above it, implement it.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from .parameter import is_parameter

__all__ = ["Resolvable", "resolve", "resolve_with", "path_to_name"]


def path_to_name(path: Any) -> str:
    """`(GetAttrKey('sources'), SequenceKey(0), GetAttrKey('center'))` -> `sources[0].center`."""
    return "".join(key_text(key) for key in path).removeprefix(".")


def key_text(key: Any) -> str:
    """One key of a JAX key path as it reads in a name: `.center`, `[0]`, `['line']`."""
    if isinstance(key, jax.tree_util.GetAttrKey):
        return f".{key.name}"
    if isinstance(key, jax.tree_util.SequenceKey):
        return f"[{key.idx}]"
    if isinstance(key, jax.tree_util.DictKey):
        return f"[{key.key!r}]"
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return f"[{key.key}]"
    return str(key)


class Resolvable(eqx.Module):
    """A node of a model that stands for something else once resolved (a derived value, a plate)."""

    @abc.abstractmethod
    def resolved(self, values: Mapping[str, Any], path: str) -> Any:
        """The node with the model's shared values `values` (`{token: value}`) filled in.

        `path` is where the node sits, for error messages.
        """


def _is_node(node: Any) -> bool:
    return is_parameter(node) or isinstance(node, Resolvable)


def first_values(model: PyTree) -> dict[str, Any]:
    """The value of each Parameter identity at its first spot: what every spot of it resolves to."""
    values: dict[str, Any] = {}
    for leaf in jax.tree_util.tree_leaves(model, is_leaf=is_parameter):
        if is_parameter(leaf):
            values.setdefault(leaf.token, leaf.value)
    return values


def resolve(model: PyTree) -> PyTree:
    """Replace every Parameter by its value and every [`scarlet_like.Derived`][] by its result.

    **Arguments:**

    - `model`: any pytree holding Parameters.

    **Returns:**

    The same structure with plain arrays where Parameters and derived values were: what model methods
    see. All spots of a shared parameter get the value of its first spot. Inside a plate, members are
    resolved one by one (`vmap`) and every result is stacked.
    """
    return resolve_with(model, first_values(model))


def resolve_with(tree: PyTree, values: Mapping[str, Any]) -> PyTree:
    """`resolve` with the shared values given (`{token: value}`), as a plate passes them to its members."""

    # a module-level function, not a closure: see `tree._rebuild_tree`
    return jax.tree_util.tree_map_with_path(functools.partial(_resolve_node, values), tree, is_leaf=_is_node)


def _resolve_node(values: Mapping[str, Any], key_path: Any, node: Any) -> Any:
    if is_parameter(node):
        return values.get(node.token, node.value)
    if isinstance(node, Resolvable):
        return node.resolved(values, path_to_name(key_path))
    return node

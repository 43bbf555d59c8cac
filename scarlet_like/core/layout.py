"""The layout the framework computes with: lists of like sub-models stacked into plates.

A scene of K sources written as a list compiles into K copies of every per-source operation
(slicing the flat vector, constraint transforms, priors, and their gradients), and XLA's compile time
grows faster than linearly with their number. `LogDensity` therefore works on the *stacked* layout:
in every list of sub-models, the elements of one structure become one [`scarlet_like.Plate`][] (a
leading axis, `vmap`-ed), held in a [`scarlet_like.core.Stacked`][] that still reads like the
list. Names are unchanged (`sources[3].center`), and results are handed back in the list layout.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from .plate import Plate, Stacked
from .stacking import stack, unstack
from .tree import rename_tokens, walk

__all__ = ["stacked_lists", "unstacked_lists"]


def _is_candidate(node: Any) -> bool:
    return (
        isinstance(node, list)
        and len(node) > 1
        and all(isinstance(element, eqx.Module) and not isinstance(element, Plate) for element in node)
    )


def _structure_key(element: Any, internal: set[str]) -> Any:
    """Equal for elements that stack: same tree (internal sharing numbered in order) and shapes."""
    numbered = [group.token for group in walk(element).groups if group.token in internal]
    canonical = rename_tokens(element, {token: f"#{number}" for number, token in enumerate(numbered)})
    leaves, treedef = jax.tree_util.tree_flatten(canonical)
    return treedef, tuple(
        (getattr(leaf, "shape", ()), str(getattr(leaf, "dtype", type(leaf)))) for leaf in leaves
    )


def _stacked(elements: list[Any], token_counts: Counter[str]) -> list[Any] | Stacked:
    keys: list[Any] = []
    for element in elements:
        own = Counter(spot.parameter.token for spot in walk(element).spots)
        # a token all of whose spots are inside the element is sharing internal to it
        internal = {token for token, count in own.items() if count == token_counts[token]}
        try:
            key = _structure_key(element, internal)
            hash(key)
        except Exception:  # noqa: BLE001 - unhashable static metadata: keep the element on its own
            key = ("alone", len(keys))
        keys.append(key)
    positions: dict[Any, list[int]] = {}
    for position, key in enumerate(keys):
        positions.setdefault(key, []).append(position)
    if all(len(members) == 1 for members in positions.values()):
        return elements
    parts: list[Any] = []
    order: list[tuple[int, int]] = [(-1, -1)] * len(elements)
    for members in positions.values():
        if len(members) == 1:
            order[members[0]] = (len(parts), -1)
            parts.append(elements[members[0]])
            continue
        plate = stack([elements[i] for i in members])
        for index, position in enumerate(members):
            order[position] = (len(parts), index)
        parts.append(plate.with_members(plate.members, labels=tuple(members)))
    return Stacked(parts=tuple(parts), order=tuple(order))


def stacked_lists(model: PyTree) -> PyTree:
    """`model` with every list of like sub-models stored stacked (see the module docstring).

    Elements are stacked together when they have one structure (classes, static fields, constraints,
    prior forms, shapes) and the same parameters shared with the rest of the model (such as population
    parameters, or a spectrum linked between two sources). A list whose elements all differ is left
    as it is.
    """
    token_counts = Counter(spot.parameter.token for spot in walk(model).spots)

    def convert(node: Any) -> Any:
        if _is_candidate(node):
            return _stacked(node, token_counts)
        return node

    return jax.tree_util.tree_map(
        convert, model, is_leaf=lambda node: _is_candidate(node) or isinstance(node, Plate | Stacked)
    )


def unstacked_lists(model: PyTree) -> PyTree:
    """The inverse of [`stacked_lists`][scarlet_like.core.stacked_lists]: plain lists again."""
    return jax.tree_util.tree_map(_as_list, model, is_leaf=lambda node: isinstance(node, Stacked))


def _as_list(node: Any) -> Any:
    """A stacked list's elements as a plain list, each with the identities it had before stacking."""
    if not isinstance(node, Stacked):
        return node
    unstacked = [unstack(part) if isinstance(part, Plate) else [] for part in node.parts]
    return [node.parts[part] if member < 0 else unstacked[part][member] for part, member in node.order]

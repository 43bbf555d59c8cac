"""The layout the framework computes with: lists of like sub-models stacked into plates.

A scene of K sources written as a list compiles into K copies of every per-source operation
(slicing the flat vector, constraint transforms, priors, and their gradients), and XLA's compile time
grows faster than linearly with their number. `LogDensity` therefore works on the *stacked* layout:
in every list of sub-models, the elements of one structure become one [`scarlet_like.Plate`][] (a
leading axis, `vmap`-ed), held in a [`scarlet_like.core.plate.Stacked`][] that still reads like the
list. Names are unchanged (`sources[3].center`), and results are handed back in the list layout.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from .parameter import replace
from .plate import Plate, Stacked, stack
from .tree import walk

__all__ = ["stacked_lists", "unstacked_lists"]


def _is_candidate(node: Any) -> bool:
    return (
        isinstance(node, list)
        and len(node) > 1
        and all(isinstance(element, eqx.Module) and not isinstance(element, Plate) for element in node)
    )


def _structure_key(element: Any, internal: set[str]) -> Any:
    """Equal for elements that stack: same tree (internal sharing numbered in order) and shapes."""
    found = walk(element)
    numbering: dict[str, str] = {}
    for group in found.groups:
        if group.token in internal:
            numbering[group.token] = f"#{len(numbering)}"
    parameters = [
        replace(spot.parameter, token=numbering.get(spot.parameter.token, spot.parameter.token))
        for spot in found.spots
    ]
    canonical = found.rebuild(parameters) if numbering else element
    leaves, treedef = jax.tree_util.tree_flatten(canonical)
    return treedef, tuple(
        (getattr(leaf, "shape", ()), str(getattr(leaf, "dtype", type(leaf)))) for leaf in leaves
    )


def _stacked(elements: list[Any], token_counts: Counter[str]) -> list[Any] | Stacked:
    keys = []
    for element in elements:
        own = Counter(
            spot.parameter.token for spot in walk(element).spots if spot.parameter.token is not None
        )
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
        parts.append(
            Plate(members=plate.members, size=plate.size, shared=plate.shared, labels=tuple(members))
        )
    return Stacked(parts=tuple(parts), order=tuple(order))


def stacked_lists(model: PyTree) -> PyTree:
    """`model` with every list of like sub-models stored stacked (see the module docstring).

    Elements are stacked together when they have one structure (classes, static fields, constraints,
    prior forms, shapes) and the same parameters shared with the rest of the model (such as population
    parameters, or a spectrum linked between two sources). A list whose elements all differ is left
    as it is.
    """
    token_counts = Counter(
        spot.parameter.token for spot in walk(model).spots if spot.parameter.token is not None
    )

    def convert(node: Any) -> Any:
        if _is_candidate(node):
            return _stacked(node, token_counts)
        return node

    return jax.tree_util.tree_map(
        convert, model, is_leaf=lambda node: _is_candidate(node) or isinstance(node, Plate | Stacked)
    )


def unstacked_lists(model: PyTree) -> PyTree:
    """The inverse of [`stacked_lists`][scarlet_like.core.layout.stacked_lists]: plain lists again."""
    return jax.tree_util.tree_map(
        lambda node: node.to_list() if isinstance(node, Stacked) else node,
        model,
        is_leaf=lambda node: isinstance(node, Stacked),
    )

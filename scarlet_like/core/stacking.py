"""Stacking like models into a plate, and back: [`scarlet_like.stack`][], [`scarlet_like.unstack`][]."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from .._programs import stored_jit
from .plate import Plate, PlateError, member_axes
from .tree import rename_tokens, walk

__all__ = ["stack", "unstack"]


def _same_structure(a: PyTree, b: PyTree) -> bool:
    # Held as `Any`: jaxlib has no type stubs, and type checkers take its `PyTreeDef` for a type without
    # an `==`.
    structure: Any = jax.tree_util.tree_structure(a)
    return bool(structure == jax.tree_util.tree_structure(b))


def _describe_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two models differ in structure, static metadata or array shapes (None if nowhere)."""
    here = path or "the model"
    if type(a) is not type(b):
        return f"{here}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, eqx.Module):
        for field in a.__dataclass_fields__.values():
            if field.name == "token":
                continue
            va, vb = getattr(a, field.name, None), getattr(b, field.name, None)
            sub = f"{path}.{field.name}" if path else field.name
            if field.metadata.get("static", False):
                try:
                    same = va == vb
                    same = bool(same)
                except Exception:  # noqa: BLE001 - incomparable objects count as different
                    same = va is vb
                if not same:
                    return f"{sub}: {va!r} vs {vb!r}"
            else:
                found = _describe_difference(va, vb, sub)
                if found:
                    return found
        return None
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return f"{here}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _describe_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return f"{here}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            found = _describe_difference(a[key], b[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if eqx.is_array_like(a) and eqx.is_array_like(b):
        shape_a, shape_b = jnp.shape(a), jnp.shape(b)
        if shape_a != shape_b:
            return f"{here}: shape {shape_a} vs {shape_b}"
        return None
    if not _same_structure(a, b):
        return f"{here}: {a!r} vs {b!r}"
    return None


def _without_identities(tree: PyTree) -> PyTree:
    """Plates inside `tree` forget their members' earlier identities (which differ between models)."""
    return jax.tree_util.tree_map(
        lambda node: node.with_members(node.members, identities=None) if isinstance(node, Plate) else node,
        tree,
        is_leaf=lambda node: isinstance(node, Plate),
    )


def stack(models: Sequence[PyTree]) -> Plate:
    """Stack same-structure models into a [`scarlet_like.Plate`][].

    **Arguments:**

    - `models`: one or more models built the same way (same classes, fields, constraints, prior forms
      and names; array shapes equal). Parameters that are the same Parameter in every model
      (population parameters) stay one shared parameter; all others get a leading axis.

    **Returns:**

    The plate. Raises [`scarlet_like.PlateError`][] naming the first field where two
    models differ. [`scarlet_like.unstack`][] gives the models back, their Parameters' identities
    included.
    """
    models = list(models)
    if not models:
        raise PlateError("stack: got no models")
    walks = [walk(model) for model in models]
    token_sets = [{group.token for group in found.groups} for found in walks]
    shared = frozenset(set.intersection(*token_sets))
    # Each member's own parameters take, position by position, one identity common to all members,
    # so that all members have one tree structure; their own identities are kept for `unstack`.
    own = [tuple(group.token for group in found.groups if group.token not in shared) for found in walks]
    slots = [uuid.uuid4().hex for _ in range(max(len(tokens) for tokens in own))]
    canonical = [
        _without_identities(rename_tokens(model, dict(zip(tokens, slots, strict=False))))
        for model, tokens in zip(models, own, strict=True)
    ]
    first = canonical[0]
    for index, other in enumerate(canonical[1:], start=1):
        difference = _describe_difference(first, other)
        if difference is None and not _same_structure(first, other):
            difference = "tree structure"
        if difference is not None:
            raise PlateError(f"stack: model 0 and model {index} differ at {difference}")

    axes, layout = jax.tree_util.tree_flatten(member_axes(first, shared), is_leaf=lambda x: x is None)
    leaves = [layout.flatten_up_to(model) for model in canonical]  # type: ignore[attr-defined]
    mapped = [position for position, axis in enumerate(axes) if axis is not None]
    groups = [[_as_array(member[position]) for member in leaves] for position in mapped]
    stacked = leaves[0].copy()
    for position, array in zip(mapped, _stacked_groups(groups), strict=True):
        stacked[position] = array
    members = jax.tree_util.tree_unflatten(layout, stacked)
    return Plate(members, size=len(models), shared=shared, identities=tuple(own))


def _as_array(leaf: Any) -> Any:
    return leaf if eqx.is_array(leaf) else jnp.asarray(leaf)


def _stack_groups(groups: list[list[Array]]) -> list[Array]:
    """Each group of same-shaped arrays stacked on a new leading axis."""
    return [jnp.stack(group) for group in groups]


def _split_arrays(arrays: list[Array], size: int) -> list[list[Array]]:
    """Every member's slice of each stacked array: the inverse of `_stack_groups`."""
    return [[array[index] for array in arrays] for index in range(size)]


# One program for all of a plate's arrays, kept between processes: op by op, stacking and unstacking
# compiled two or three small programs per leaf shape (15 of the demo's quick fit, each lowered again
# by every fresh process). Traced (a plate built inside `jit`), they are part of the caller's program.
_stacked_groups = stored_jit(_stack_groups, inline=True)
_split = stored_jit(_split_arrays, inline=True)


def unstack(plate: Plate) -> list[PyTree]:
    """The members of a plate, as separate models (the inverse of [`scarlet_like.stack`][]).

    Shared parameters stay shared between the returned models. Each member's own parameters get back
    the identities they had before stacking, or, for a plate not made by `stack`, fresh ones.
    """
    if not isinstance(plate, Plate):
        raise TypeError(f"unstack: expected a Plate, got {type(plate).__name__}")
    if not plate.stacked():
        raise PlateError("unstack: this plate holds one member (it is inside a `vmap` over the plate)")
    axes, layout = jax.tree_util.tree_flatten(plate.in_axes(), is_leaf=lambda x: x is None)
    leaves = layout.flatten_up_to(plate.members)  # type: ignore[attr-defined]
    mapped = [position for position, axis in enumerate(axes) if axis is not None]
    out = []
    for index, sliced in enumerate(_split([leaves[position] for position in mapped], plate.size)):
        member_leaves = leaves.copy()
        for position, array in zip(mapped, sliced, strict=True):
            member_leaves[position] = array
        member = jax.tree_util.tree_unflatten(layout, member_leaves)
        own = [group.token for group in walk(member).groups if group.token not in plate.shared]
        identities = plate.identities[index] if plate.identities is not None else ()
        if len(identities) != len(own):
            identities = tuple(uuid.uuid4().hex for _ in own)
        out.append(rename_tokens(member, dict(zip(own, identities, strict=True))))
    return out

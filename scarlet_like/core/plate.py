"""Plates: many same-structure sub-models stacked along a leading axis and evaluated with `vmap`.

The node types live here; [`scarlet_like.stack`][] and [`scarlet_like.unstack`][], which walk models,
are in `stacking.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Int, PyTree

from .parameter import is_parameter, replace
from .resolve import Resolvable, resolve, resolve_with

__all__ = ["Plate", "Stacked", "PlateError", "member_axes"]


class PlateError(ValueError):
    """Models that cannot be stacked; the message says where they differ."""


class Plate(Resolvable):
    """`size` copies of one sub-model, stored stacked: every array has a leading axis of length `size`.

    Parameters common to all members (the same Parameter in each, such as population parameters in a
    hierarchical model) are stored once, unstacked. Build plates with [`scarlet_like.stack`][]; undo
    with [`scarlet_like.unstack`][].

    Calling a plate calls every member (vectorised with `vmap`) and stacks the results;
    [`scarlet_like.Plate.map`][] applies any function to every member. Names of the flat
    vector read `blobs[3].center`, with the plate's position in the model and the member index.

    A plate is a pytree like any other: `jax.vmap` over it (its members and their data stacked the
    same way) gives the function one member at a time, and `sl.fit`, names and all, treat that member
    as a model of its own. The plate's axis is carried by data (`index`, the members' numbers), so a
    plate knows when a `vmap` has taken it away.
    """

    members: PyTree
    # 0, 1, ..., size - 1: an array, so that it loses its axis exactly when the members do (under `vmap`)
    index: Int[Array, "*plates size"]
    size: int = eqx.field(static=True)
    shared: frozenset[str] = eqx.field(static=True)
    # positions of the members in the list they stand for, when the plate is part of a `Stacked` list
    labels: tuple[int, ...] | None = eqx.field(static=True)
    # for each member, the identities its own (unshared) parameters had before stacking, in walk order
    identities: tuple[tuple[str, ...], ...] | None = eqx.field(static=True)

    def __init__(
        self,
        members: PyTree,
        size: int,
        shared: frozenset[str] = frozenset(),
        labels: tuple[int, ...] | None = None,
        identities: tuple[tuple[str, ...], ...] | None = None,
        index: Array | None = None,
    ):
        self.members = members
        self.size = int(size)
        self.shared = frozenset(shared)
        self.labels = labels
        self.identities = identities
        # (on the host: `jnp.arange` is a small program of its own, compiled once per plate size)
        self.index = jax.device_put(np.arange(self.size, dtype=np.int32)) if index is None else index

    def stacked(self, depth: int = 0) -> bool:
        """Whether the members carry the plate's axis; `False` inside a `vmap` over the plate.

        `depth` is the number of plates around this one whose axes the arrays still carry.
        """
        return self.index.ndim > depth

    def with_members(self, members: PyTree, **changes: Any) -> Plate:
        """The same plate holding other members (and other static fields, if given)."""
        fields: dict[str, Any] = dict(
            size=self.size,
            shared=self.shared,
            labels=self.labels,
            identities=self.identities,
            index=self.index,
        )
        fields.update(changes)
        return Plate(members, **fields)

    def in_axes(self) -> PyTree:
        """The `vmap` axes of `members`: 0 for stacked arrays, `None` for shared parameters."""
        return member_axes(self.members, self.shared)

    def resolved(self, values: Mapping[str, Any], path: str) -> Plate:
        # Shared (unstacked) values come from outside the vmap; the members' own values are mapped.
        outer = {token: value for token, value in values.items() if token in self.shared}
        if not self.stacked():
            members = resolve_with(self.members, outer)
        else:
            members = jax.vmap(lambda member: resolve_with(member, outer), in_axes=(self.in_axes(),))(
                self.members
            )
        return self.with_members(members, shared=frozenset(), identities=None)

    def map(self, fn: Callable[[Any], Any]) -> Any:
        """`fn(member)` for every member, vectorised; `fn` sees resolved members (plain arrays)."""
        members = resolve(self).members
        return jax.vmap(fn)(members) if self.stacked() else fn(members)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.map(lambda member: member(*args, **kwargs))

    def __len__(self) -> int:
        return self.size

    def __getattr__(self, name: str) -> Any:
        # Inside a `vmap` over the plate it is one member: it reads as that member (a likelihood's
        # `log_likelihood`, a scene's `sources`), so that code written for one model runs on it.
        if name.startswith("_") or name in Plate.__dataclass_fields__:
            raise AttributeError(name)
        try:
            index, members = object.__getattribute__(self, "index"), object.__getattribute__(self, "members")
        except AttributeError:
            raise AttributeError(name) from None
        if index.ndim == 0:
            return getattr(members, name)
        raise AttributeError(f"'Plate' object has no attribute '{name}'")

    def member(self, index: int) -> PyTree:
        """Member `index` as a separate model, its sharing tokens as in the plate."""
        return jax.tree_util.tree_map(
            lambda axis, leaf: leaf if axis is None else leaf[index],
            self.in_axes(),
            self.members,
            is_leaf=lambda x: x is None,
        )


class Stacked(eqx.Module):
    """A list of models stored with its same-structure elements stacked into plates.

    The layout the framework computes with: a list of K like sources becomes one
    [`scarlet_like.Plate`][], so the compiled program does not grow with K. It reads like the list
    (`len`, indexing, iteration give the elements), and names still say `sources[3].center`.
    Made by `scarlet_like.core.stacked_lists`; users normally never see one.

    **Fields:**

    - `parts`: plates (labelled with their elements' list positions) and lone elements.
    - `order`: for each list position, `(part, member)`; `member` is -1 for a lone element.
    """

    parts: tuple[Any, ...]
    order: tuple[tuple[int, int], ...] = eqx.field(static=True)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        part, member = self.order[index]
        return self.parts[part] if member < 0 else self.parts[part].member(member)

    def __iter__(self) -> Any:
        return iter(self[i] for i in range(len(self)))


def member_axes(tree: PyTree, shared: frozenset[str]) -> PyTree:
    """`vmap` axes of a plate's `members` (or a prior inside them): `None` for the Parameters in
    `shared` (stored once), 0 for everything else."""

    def axis(node: Any) -> Any:
        if is_parameter(node):
            if node.token in shared:
                return jax.tree_util.tree_map(lambda _: None, node)
            prior = None if node.prior is None else member_axes(node.prior, shared)
            return replace(node, value=0, prior=prior)
        return 0

    return jax.tree_util.tree_map(axis, tree, is_leaf=is_parameter)

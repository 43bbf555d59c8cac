"""Plates: many same-structure sub-models stacked along a leading axis and evaluated with `vmap`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from .parameter import is_parameter, replace

__all__ = ["Plate", "Stacked", "stack", "unstack", "PlateError"]


class PlateError(ValueError):
    """Models that cannot be stacked; the message says where they differ."""


class Plate(eqx.Module):
    """`size` copies of one sub-model, stored stacked: every array has a leading axis of length `size`.

    Parameters common to all members (the same Parameter object in each, such as population
    parameters in a hierarchical model) are stored once, unstacked. Build plates with
    [`scarlet_like.stack`][]; undo with [`scarlet_like.unstack`][].

    Calling a plate calls every member (vectorised with `vmap`) and stacks the results;
    [`scarlet_like.Plate.map`][] applies any function to every member. Names of the flat
    vector read `blobs[3].center`, with the plate's position in the model and the member index.
    """

    members: PyTree
    size: int = eqx.field(static=True)
    shared: frozenset[str] = eqx.field(static=True)
    # positions of the members in the list they stand for, when the plate is part of a `Stacked` list
    labels: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def in_axes(self) -> PyTree:
        """The `vmap` axes of `members`: 0 for stacked arrays, `None` for shared parameters."""
        return _axes(self.members, self.shared)

    def map(self, fn: Callable[[Any], Any]) -> Any:
        """`fn(member)` for every member, vectorised; `fn` sees resolved members (plain arrays)."""
        from .tree import resolve

        return jax.vmap(fn)(resolve(self).members)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.map(lambda member: member(*args, **kwargs))

    def __len__(self) -> int:
        return self.size

    @property
    def marker(self) -> str:
        """How the plate's axis appears in names: `[:]`, or its labels (`[0:4]`, `[1,3,7]`)."""
        if self.labels is None:
            return "[:]"
        first, last = self.labels[0], self.labels[-1]
        if self.labels == tuple(range(first, last + 1)):
            return f"[{first}:{last + 1}]"
        return "[" + ",".join(map(str, self.labels)) + "]"

    def member(self, index: int) -> PyTree:
        """Member `index` as a separate model, its sharing tokens as in the plate."""
        axes = self.in_axes()
        return jax.tree_util.tree_map(
            lambda axis, leaf: leaf if axis is None else leaf[index],
            axes,
            self.members,
            is_leaf=lambda x: x is None,
        )


class Stacked(eqx.Module):
    """A list of models stored with its same-structure elements stacked into plates.

    The layout the framework computes with: a list of K like sources becomes one
    [`scarlet_like.Plate`][], so the compiled program does not grow with K. It reads like the list
    (`len`, indexing, iteration give the elements), and names still say `sources[3].center`.
    Made by `scarlet_like.core.layout.stacked_lists`; users normally never see one.

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

    def to_list(self) -> list[Any]:
        """The elements as a plain list, with the sharing inside each element given fresh identities."""
        unstacked = [unstack(part) if isinstance(part, Plate) else None for part in self.parts]
        return [self.parts[part] if member < 0 else unstacked[part][member] for part, member in self.order]


def _axes(tree: PyTree, shared: frozenset[str]) -> PyTree:
    def axis(node: Any) -> Any:
        if is_parameter(node):
            if node.token is not None and node.token in shared:
                return jax.tree_util.tree_map(lambda _: None, node)
            prior = None if node.prior is None else _axes(node.prior, shared)
            return replace(node, value=0, prior=prior)
        return 0

    return jax.tree_util.tree_map(axis, tree, is_leaf=is_parameter)


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
    if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b):
        return f"{here}: {a!r} vs {b!r}"
    return None


def stack(models: Sequence[PyTree]) -> Plate:
    """Stack same-structure models into a [`scarlet_like.Plate`][].

    **Arguments:**

    - `models`: two or more models built the same way (same classes, fields, constraints and prior
      forms; array shapes equal). Parameters that are the same object in every model (population
      parameters) stay one shared parameter; all others get a leading axis.

    **Returns:**

    The plate. Raises [`scarlet_like.PlateError`][] naming the first field where two
    models differ.
    """
    from .tree import walk

    models = list(models)
    if not models:
        raise PlateError("stack: got no models")
    # Walking all models together gives the Parameter objects they have in common a sharing token.
    walk(models)
    walks = [walk(model) for model in models]
    token_sets = [{group.token for group in w.groups if group.token is not None} for w in walks]
    shared = frozenset(set.intersection(*token_sets)) if token_sets else frozenset()
    # Member-internal sharing (a parameter used twice inside one member) gets the same token in every
    # member, so that all members have one tree structure.
    internal_tokens: dict[int, str] = {}
    canonical = []
    for w in walks:
        renamed = {}
        position = 0
        for group in w.groups:
            if group.token is None or group.token in shared:
                continue
            renamed[group.token] = internal_tokens.setdefault(position, uuid.uuid4().hex)
            position += 1
        parameters = [
            replace(spot.parameter, token=renamed.get(spot.parameter.token, spot.parameter.token))
            for spot in w.spots
        ]
        canonical.append(w.rebuild(parameters))
    first = canonical[0]
    structure = jax.tree_util.tree_structure(first)
    for index, other in enumerate(canonical[1:], start=1):
        difference = _describe_difference(first, other)
        if difference is None and jax.tree_util.tree_structure(other) != structure:
            difference = "tree structure"
        if difference is not None:
            raise PlateError(f"stack: model 0 and model {index} differ at {difference}")
    axes = _axes(first, shared)

    def stack_leaf(axis: Any, *leaves: Any) -> Any:
        if axis is None:
            return leaves[0]
        return jnp.stack([jnp.asarray(leaf) for leaf in leaves])

    members = jax.tree_util.tree_map(stack_leaf, axes, *canonical, is_leaf=lambda x: x is None)
    return Plate(members=members, size=len(models), shared=shared)


def unstack(plate: Plate) -> list[PyTree]:
    """The members of a plate, as separate models (the inverse of [`scarlet_like.stack`][]).

    Shared parameters stay shared between the returned models; sharing inside a member gets a fresh
    identity per member.
    """
    if not isinstance(plate, Plate):
        raise TypeError(f"unstack: expected a Plate, got {type(plate).__name__}")
    from .tree import walk

    axes = plate.in_axes()
    out = []
    for index in range(plate.size):
        member = jax.tree_util.tree_map(
            lambda axis, leaf, i=index: leaf if axis is None else leaf[i],
            axes,
            plate.members,
            is_leaf=lambda x: x is None,
        )
        w = walk(member)
        fresh = {
            group.token: uuid.uuid4().hex
            for group in w.groups
            if group.token is not None and group.token not in plate.shared
        }
        parameters = [
            replace(spot.parameter, token=fresh.get(spot.parameter.token, spot.parameter.token))
            for spot in w.spots
        ]
        out.append(w.rebuild(parameters))
    return out

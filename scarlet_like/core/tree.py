"""Walking models: names, partition/combine, ravel, get/set values, fix/free, resolve.

Every function here takes any pytree holding [`scarlet_like.Parameter`][]s (an `sl.Module`, a list,
a dict, ...) and returns new trees; nothing is mutated.

Sharing: all spots of a model holding the same `Parameter` object, or copies of it carrying the same
token, are one *group* with one free entry. A group is named by its first spot in flattening order.
"""

from __future__ import annotations

import contextvars
import difflib
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from .derived import Derived, DerivedError
from .parameter import Parameter, ParameterError, _check_value, is_parameter, replace
from .plate import Plate, Stacked, _axes

__all__ = [
    "partition",
    "combine",
    "ravel",
    "resolve",
    "get_values",
    "set_values",
    "fix",
    "free",
    "parameters",
    "entry_names",
]


def path_to_name(path: Sequence[Any]) -> str:
    """`(GetAttrKey('sources'), SequenceKey(0), GetAttrKey('center'))` -> `sources[0].center`."""
    text = ""
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey):
            text += f".{key.name}"
        elif isinstance(key, jax.tree_util.SequenceKey):
            text += f"[{key.idx}]"
        elif isinstance(key, jax.tree_util.DictKey):
            text += f"[{key.key!r}]"
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            text += f"[{key.key}]"
        else:
            text += str(key)
    return text.removeprefix(".")


@dataclass(frozen=True)
class Spot:
    """One place in a model that holds a Parameter."""

    path: str  # display path; "[:]" marks the axis of each enclosing plate
    parameter: Parameter
    batch: tuple[int, ...]  # sizes of the plates this value is stacked over (outermost first)
    # for each of those plates, the tokens of the parameters it shares unstacked among its members
    shared: tuple[frozenset[str], ...] = ()
    # for each of those plates, its mark in `path` and the index each member shows in names
    marks: tuple[tuple[str, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class Group:
    """One parameter of a model, possibly used in several spots."""

    name: str
    spots: tuple[int, ...]  # indices into `Walk.spots`
    parameter: Parameter  # as found at the first spot
    batch: tuple[int, ...]
    shared: tuple[frozenset[str], ...] = ()
    marks: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def log_prior(self) -> Array:
        """The prior's log density at the current value, each plate member's prior applied to it."""
        return _batched_log_prob(self.parameter.prior, self.parameter.value, self.shared)

    @property
    def free(self) -> bool:
        return not self.parameter.fixed

    @property
    def token(self) -> str | None:
        return self.parameter.token


@dataclass(frozen=True)
class Walk:
    """A model taken apart into its Parameter spots, grouped into parameters."""

    spots: list[Spot]
    groups: list[Group]
    rebuild: Callable[[list[Parameter]], PyTree]  # new Parameters, one per spot -> new model


def _has_parameters(tree: Any) -> bool:
    return any(is_parameter(leaf) for leaf in jax.tree_util.tree_leaves(tree, is_leaf=is_parameter))


def _is_walk_node(node: Any) -> bool:
    return is_parameter(node) or isinstance(node, Plate | Stacked)


def _batched_log_prob(prior: Any, value: Array, shared: tuple[frozenset[str], ...]) -> Array:
    if not shared:
        return prior.log_prob(value)
    inner = lambda prior, value: _batched_log_prob(prior, value, shared[1:])  # noqa: E731
    per_member = jax.vmap(inner, in_axes=(_axes(prior, shared[0]), 0))(prior, value)
    return jnp.sum(per_member)


def _descend(
    tree: PyTree,
    prefix: str,
    batch: tuple[int, ...],
    shared: tuple[frozenset[str], ...],
    marks: tuple[tuple[str, tuple[int, ...]], ...] = (),
) -> tuple[list[Spot], Callable[[list[Parameter]], PyTree]]:
    """Spots of `tree` in flattening order (a Parameter before the Parameters of its prior)."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_walk_node)
    spots: list[Spot] = []
    # How to put each leaf back: (kind, first spot, number of inner spots, inner rebuild, node)
    plan: list[tuple[str, int, int, Any, Any]] = []
    for key_path, leaf in with_paths:
        path = _join(prefix, path_to_name(key_path))
        if is_parameter(leaf):
            start = len(spots)
            # A parameter shared by the members of a plate is not stacked over that plate (nor over
            # the plates inside it).
            depth = next(
                (
                    level
                    for level, tokens in enumerate(shared)
                    if leaf.token is not None and leaf.token in tokens
                ),
                len(shared),
            )
            own_batch, own_shared, own_marks = batch[:depth], shared[:depth], marks[:depth]
            spots.append(Spot(path=path, parameter=leaf, batch=own_batch, shared=own_shared, marks=own_marks))
            if leaf.prior is not None and _has_parameters(leaf.prior):
                inner, rebuild_prior = _descend(leaf.prior, path + ".prior", own_batch, own_shared, own_marks)
                spots.extend(inner)
                plan.append(("parameter", start, len(inner), rebuild_prior, None))
            else:
                plan.append(("parameter", start, 0, None, None))
        elif isinstance(leaf, Plate):
            start = len(spots)
            inner, rebuild_members = _descend_plate(leaf, path, batch, shared, marks)
            spots.extend(inner)
            plan.append(("plate", start, len(inner), rebuild_members, leaf))
        elif isinstance(leaf, Stacked):
            start = len(spots)
            inner, rebuild_parts = _descend_stacked(leaf, path, batch, shared, marks)
            spots.extend(inner)
            plan.append(("stacked", start, len(inner), rebuild_parts, leaf))
        else:
            plan.append(("leaf", 0, 0, None, leaf))

    def rebuild(parameters: list[Parameter]) -> PyTree:
        leaves = []
        for kind, start, count, inner_rebuild, node in plan:
            if kind == "leaf":
                leaves.append(node)
            elif kind == "parameter":
                parameter = parameters[start]
                if inner_rebuild is not None:
                    prior = inner_rebuild(parameters[start + 1 : start + 1 + count])
                    parameter = replace(parameter, prior=prior)
                leaves.append(parameter)
            else:
                leaves.append(inner_rebuild(parameters[start : start + count]))
        return jax.tree_util.tree_unflatten(treedef, leaves)

    return spots, rebuild


def _descend_plate(
    plate: Plate,
    path: str,
    batch: tuple[int, ...],
    shared: tuple[frozenset[str], ...],
    marks: tuple[tuple[str, tuple[int, ...]], ...],
) -> tuple[list[Spot], Callable[[list[Parameter]], Plate]]:
    mark = plate.marker
    labels = plate.labels if plate.labels is not None else tuple(range(plate.size))
    spots, rebuild_members = _descend(
        plate.members, path + mark, (*batch, plate.size), (*shared, plate.shared), (*marks, (mark, labels))
    )

    def rebuild(new_members: list[Parameter]) -> Plate:
        members = rebuild_members(new_members)
        # tokens may have been renamed (stacking a plate of plates): keep `shared` in step
        renamed = {
            old.parameter.token: new.token
            for old, new in zip(spots, new_members, strict=True)
            if old.parameter.token is not None
        }
        shared_tokens = frozenset(renamed.get(token, token) for token in plate.shared)
        return Plate(members=members, size=plate.size, shared=shared_tokens, labels=plate.labels)

    return spots, rebuild


def _descend_stacked(
    stacked: Stacked,
    path: str,
    batch: tuple[int, ...],
    shared: tuple[frozenset[str], ...],
    marks: tuple[tuple[str, tuple[int, ...]], ...],
) -> tuple[list[Spot], Callable[[list[Parameter]], Stacked]]:
    """A stacked list is named as the list it stands for: `sources[3]`, `sources[0:7]`."""
    spots: list[Spot] = []
    pieces = []
    for index, part in enumerate(stacked.parts):
        if isinstance(part, Plate):
            inner, rebuild_part = _descend_plate(part, path, batch, shared, marks)
        else:
            position = next(p for p, (which, _) in enumerate(stacked.order) if which == index)
            inner, rebuild_part = _descend(part, f"{path}[{position}]", batch, shared, marks)
        pieces.append((len(spots), len(inner), rebuild_part))
        spots.extend(inner)

    def rebuild(parameters: list[Parameter]) -> Stacked:
        parts = tuple(
            rebuild_part(parameters[start : start + count]) for start, count, rebuild_part in pieces
        )
        return Stacked(parts=parts, order=stacked.order)

    return spots, rebuild


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path or path.startswith("["):
        return prefix + path
    return f"{prefix}.{path}"


def walk(model: PyTree) -> Walk:
    """Take `model` apart into its Parameter spots and group spots that are one parameter.

    Spots holding the very same Parameter object, or Parameters with the same sharing token, form one
    group, named after its first spot (or the Parameter's own `name`). A Parameter object found in
    several spots is given a token, written into the object itself: from then on the sharing
    survives `tree_at`, copies, stacking and serialisation of any model that holds it.
    """
    spots, rebuild = _descend(model, "", (), ())
    members: dict[Any, list[int]] = {}
    for index, spot in enumerate(spots):
        parameter = spot.parameter
        key = ("token", parameter.token) if parameter.token is not None else ("object", id(parameter))
        members.setdefault(key, []).append(index)
    groups = []
    for key, indices in members.items():
        first = spots[indices[0]]
        if len(indices) > 1 and key[0] == "object":
            # Same object in several spots: annotate it (construction-time metadata, not state).
            object.__setattr__(first.parameter, "token", uuid.uuid4().hex)
        name = first.parameter.name or first.path or "value"
        groups.append(
            Group(
                name=name,
                spots=tuple(indices),
                parameter=first.parameter,
                batch=first.batch,
                shared=first.shared,
                marks=first.marks,
            )
        )
    groups.sort(key=lambda group: group.spots[0])
    _check_unique_names(groups)
    return Walk(spots=spots, groups=groups, rebuild=rebuild)


def _check_unique_names(groups: list[Group]) -> None:
    seen: dict[str, Group] = {}
    for group in groups:
        if group.name in seen:
            raise ParameterError(
                f"two different parameters are named '{group.name}'; names must be unique "
                "(give one of them another `name=`)"
            )
        seen[group.name] = group


def _replaced(tree: Walk, changes: dict[int, dict[str, Any]]) -> PyTree:
    """Rebuild with some groups' Parameters changed (`{group index: {field: value}}`) in every spot."""
    parameters = [spot.parameter for spot in tree.spots]
    for group_index, fields in changes.items():
        for spot in tree.groups[group_index].spots:
            parameters[spot] = replace(parameters[spot], **fields)
    return tree.rebuild(parameters)


def canonical_tokens(tree: PyTree) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
    """Number the sharing tokens of `tree` by first appearance, and give the way back.

    Sharing tokens are unique identifiers, so two models built the same way differ in them. Code that
    needs one structure for both (a compile cache, a stack) works on the canonical form and maps its
    results back, so that user-visible models never carry the numbered tokens (which would collide
    between models).

    **Returns:**

    `(canonical_tree, restore)`, where `restore` maps any tree carrying the numbered tokens back to the
    original ones.
    """
    found = walk(tree)
    forward: dict[str, str] = {}
    for group in found.groups:
        if group.token is not None and group.token not in forward:
            forward[group.token] = f"#{len(forward)}"
    backward = {number: token for token, number in forward.items()}

    def renamed(target: PyTree, mapping: dict[str, str]) -> PyTree:
        target_walk = walk(target) if target is not tree else found
        changes = {
            index: {"token": mapping[group.token]}
            for index, group in enumerate(target_walk.groups)
            if group.token in mapping
        }
        return _replaced(target_walk, changes) if changes else target

    return renamed(tree, forward), lambda other: renamed(other, backward)


def parameters(model: PyTree, *, free_only: bool = False) -> dict[str, Parameter]:
    """The model's parameters by name (each shared parameter once).

    **Arguments:**

    - `model`: any pytree holding Parameters.
    - `free_only`: leave out fixed parameters.

    **Returns:**

    `{name: Parameter}` in flattening order.
    """
    return {group.name: group.parameter for group in walk(model).groups if group.free or not free_only}


def partition(model: PyTree) -> tuple[dict[str, Array], PyTree]:
    """Split a model into its free unconstrained values and everything else.

    **Arguments:**

    - `model`: any pytree holding Parameters.

    **Returns:**

    `(free, rest)`. `free` is `{name: unconstrained array}` with one entry per free parameter (a
    shared parameter once; a parameter in a plate stacked over the plate's axis): a plain pytree of
    arrays, ready for optax. `rest` is the model with the values of free parameters removed.
    [`scarlet_like.combine`][] is the exact inverse.
    """
    tree = walk(model)
    free_values = {}
    changes = {}
    for index, group in enumerate(tree.groups):
        if group.free:
            free_values[group.name] = group.parameter.unconstrained()
            changes[index] = {"value": None}
    return free_values, _replaced(tree, changes)


def combine(free: dict[str, Array], rest: PyTree) -> PyTree:
    """Put free unconstrained values back into a model: the inverse of [`scarlet_like.partition`][].

    **Arguments:**

    - `free`: `{name: unconstrained array}`, as the first output of `partition`.
    - `rest`: the second output of `partition`.

    **Returns:**

    The model, with each free parameter's value mapped through its constraint into every spot that
    uses it. Works under `jit`, `grad` and `vmap`.
    """
    tree = walk(rest)
    changes = {}
    for index, group in enumerate(tree.groups):
        if group.parameter.value is None:
            if group.name not in free:
                raise KeyError(f"combine: `free` has no value for the free parameter '{group.name}'")
            changes[index] = {"value": group.parameter.constraint.forward(free[group.name])}
    return _replaced(tree, changes)


class Unravel(eqx.Module):
    """Map a flat unconstrained vector back to a model (the second output of [`scarlet_like.ravel`][]).

    A pytree holding the model's non-free part and, as static metadata, the hashable layout of the
    flat vector: cheap to call inside `jit`.
    """

    rest: PyTree
    names: tuple[str, ...] = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(shape) for shape in self.shapes)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def free(self, x: Float[Array, " n"]) -> dict[str, Array]:
        """The `free` dict (as from `partition`) for the flat vector `x`."""
        if x.shape != (self.size,):
            raise ValueError(f"expected a flat vector of shape ({self.size},), got {x.shape}")
        offsets = np.cumsum((0, *self.sizes))
        return {
            name: x[start:stop].reshape(shape)
            for name, start, stop, shape in zip(
                self.names, offsets[:-1], offsets[1:], self.shapes, strict=True
            )
        }

    def __call__(self, x: Float[Array, " n"]) -> PyTree:
        return combine(self.free(x), self.rest)

    def value_names(self) -> tuple[str, ...]:
        """The keys of [`scarlet_like.get_values`][] of the unravelled model, in order."""
        shapes = dict(zip(self.names, self.shapes, strict=True))
        names: list[str] = []
        for group in walk(self.rest).groups:
            if group.free:
                shape = group.parameter.constraint.constrained_shape(shapes[group.name])
                names.extend(split_labelled(group.name, np.zeros(shape, np.int8), group.marks))
        return tuple(names)


def ravel(model: PyTree) -> tuple[Float[Array, " n"], Unravel]:
    """Flatten a model's free parameters into one unconstrained vector.

    **Arguments:**

    - `model`: any pytree holding Parameters.

    **Returns:**

    `(x, unravel)`: the 1-D unconstrained vector (entries in the order of
    [`scarlet_like.entry_names`][]) and a callable mapping such a vector back to a model.
    """
    free_values, rest = partition(model)
    leaves = list(free_values.values())
    if leaves:
        dtype = jnp.result_type(*leaves)
        x = jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves])
    else:
        x = jnp.zeros((0,), dtype=jnp.asarray(0.0).dtype)
    unravel = Unravel(
        rest=rest,
        names=tuple(free_values),
        shapes=tuple(tuple(leaf.shape) for leaf in leaves),
    )
    return x, unravel


def element_names(
    name: str, shape: tuple[int, ...], marks: tuple[tuple[str, tuple[int, ...]], ...] = ()
) -> list[str]:
    """Names of the scalar elements of an array called `name`: `center` of shape (2,) gives
    `center[0]`, `center[1]`; the leading axes of plates fill their marks in `name`, in order
    (`blobs[:].flux` gives `blobs[3].flux`; `marks` pairs each mark with the labels of its axis)."""
    if shape == ():
        return [name]
    # plates whose mark the name shows (a parameter given its own `name=` shows none)
    marked, remaining = 0, name
    for mark, _ in marks[: len(shape)]:
        if mark not in remaining:
            break
        remaining = remaining.replace(mark, "", 1)
        marked += 1
    names = []
    for index in np.ndindex(*shape):
        text = name
        for (mark, labels), i in zip(marks[:marked], index[:marked], strict=True):
            text = text.replace(mark, f"[{labels[i]}]", 1)
        rest = index[marked:]
        names.append(text + ("[" + ", ".join(map(str, rest)) + "]" if rest else ""))
    return names


def entry_names(model: PyTree) -> tuple[str, ...]:
    """One readable name per entry of the flat vector of [`scarlet_like.ravel`][].

    **Returns:**

    Names such as `sources[0].center[1]`, or `blobs[3].center[0]` inside a plate; a scalar
    parameter's entry is its bare name.
    """
    names: list[str] = []
    for group in walk(model).groups:
        if group.free:
            parameter = group.parameter
            shape = parameter.constraint.unconstrained_shape(tuple(parameter.value.shape))
            names.extend(element_names(group.name, tuple(shape), group.marks))
    return tuple(names)


def _is_resolve_node(node: Any) -> bool:
    return is_parameter(node) or isinstance(node, Derived | Plate)


def resolve(model: PyTree) -> PyTree:
    """Replace every Parameter by its value and every [`scarlet_like.Derived`][] by its result.

    **Arguments:**

    - `model`: any pytree holding Parameters.

    **Returns:**

    The same structure with plain arrays where Parameters and derived values were: what model methods
    see. All spots of a shared parameter get the value of its first spot. Inside a plate, members are
    resolved one by one (`vmap`) and every result is stacked.
    """
    by_token: dict[str, Any] = {}
    for leaf in jax.tree_util.tree_leaves(model, is_leaf=is_parameter):
        if is_parameter(leaf) and leaf.token is not None:
            by_token.setdefault(leaf.token, leaf.value)
    return _resolve(model, by_token)


# The derived values being computed in this context, innermost last. A derived function may resolve
# other parts of a model it refers to (a closure over another model, a caskade-style link); if that
# leads back to a value still being computed, the values depend on each other in a cycle.
_COMPUTING: contextvars.ContextVar[tuple[Derived, ...]] = contextvars.ContextVar(
    "scarlet_like_computing", default=()
)


def _resolve(tree: PyTree, by_token: dict[str, Any]) -> PyTree:
    def one(key_path: Any, node: Any) -> Any:
        if is_parameter(node):
            return by_token.get(node.token, node.value) if node.token is not None else node.value
        if isinstance(node, Derived):
            return _compute(node, path_to_name(key_path), by_token)
        if isinstance(node, Plate):
            return _resolve_plate(node, by_token)
        return node

    return jax.tree_util.tree_map_with_path(one, tree, is_leaf=_is_resolve_node)


def _compute(node: Derived, path: str, by_token: dict[str, Any]) -> Any:
    computing = _COMPUTING.get()
    if any(node is other for other in computing):
        start = next(i for i, other in enumerate(computing) if other is node)
        chain = " -> ".join(d.label for d in (*computing[start:], node))
        raise DerivedError(f"derived values form a cycle: {chain}")
    reset = _COMPUTING.set((*computing, node))
    try:
        inputs = _resolve(node.inputs, by_token)
        try:
            return node.fn(*inputs)
        except DerivedError:
            raise
        except Exception as error:
            shapes = ", ".join(str(jax.tree_util.tree_map(lambda a: tuple(jnp.shape(a)), x)) for x in inputs)
            where = f" at '{path}'" if path else ""
            raise DerivedError(
                f"Derived '{node.label}'{where} failed on its resolved inputs (shapes {shapes}): "
                f"{type(error).__name__}: {error}"
            ) from error
    finally:
        _COMPUTING.reset(reset)


def _resolve_plate(plate: Plate, by_token: dict[str, Any]) -> Plate:
    # Shared (unstacked) values come from outside the vmap; the members' own values are mapped.
    outer = {token: value for token, value in by_token.items() if token in plate.shared}
    members = jax.vmap(lambda member: _resolve(member, outer), in_axes=(plate.in_axes(),))(plate.members)
    return Plate(members=members, size=plate.size, shared=frozenset(), labels=plate.labels)


def get_values(model: PyTree) -> dict[str, Array]:
    """Constrained values of the free parameters, by name.

    **Returns:**

    `{name: value}` with one entry per free parameter (a shared parameter once), in flat-vector
    order. A parameter inside a plate is one entry (`blobs[:].center`) holding the stacked values.
    """
    values: dict[str, Array] = {}
    for group in walk(model).groups:
        if group.free:
            values.update(split_labelled(group.name, group.parameter.value, group.marks))
    return values


def split_labelled(
    name: str, value: Any, marks: tuple[tuple[str, tuple[int, ...]], ...], axis: int = 0
) -> dict[str, Any]:
    """`{name: value}`, with the axes of labelled plates (a stacked list) split into the list's elements.

    `sources[0:3].center` of shape `(3, 2)` becomes `sources[0].center`, `sources[1].center` and
    `sources[2].center`; the axes of ordinary plates stay (`blobs[:].center`).
    """
    for level, (mark, labels) in enumerate(marks):
        if mark not in name:
            break
        if mark == "[:]":
            axis += 1
            continue
        out: dict[str, Any] = {}
        for index, label in enumerate(labels):
            member = jnp.take(value, index, axis=axis)
            out.update(split_labelled(name.replace(mark, f"[{label}]", 1), member, marks[level + 1 :], axis))
        return out
    return {name: value}


def set_values(model: PyTree, values: dict[str, ArrayLike] | ArrayLike) -> PyTree:
    """A new model with some free parameters' constrained values replaced.

    **Arguments:**

    - `model`: any pytree holding Parameters.
    - `values`: either `{name: constrained value}` for any subset of the free parameters (names as in
      [`scarlet_like.get_values`][]), or a flat array of *all* free constrained values concatenated in
      that order.

    **Returns:**

    The new model (every spot of a shared parameter updated).
    """
    tree = walk(model)
    free_groups = [(index, group) for index, group in enumerate(tree.groups) if group.free]
    by_name = {group.name: (index, group) for index, group in free_groups}
    if isinstance(values, dict):
        updates = {}
        for name, value in values.items():
            if name not in by_name:
                close = difflib.get_close_matches(str(name), list(by_name), n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise KeyError(f"set_values: no free parameter named {name!r}{hint}")
            updates[name] = value
    else:
        flat = jnp.asarray(values)
        sizes = [math.prod(group.parameter.value.shape) for _, group in free_groups]
        if flat.ndim != 1 or flat.shape[0] != sum(sizes):
            raise ValueError(
                f"set_values: the flat array has shape {tuple(flat.shape)}, but the model's free "
                f"parameters have {sum(sizes)} constrained entries"
            )
        offsets = np.cumsum((0, *sizes))
        updates = {
            group.name: flat[start:stop].reshape(group.parameter.value.shape)
            for (_, group), start, stop in zip(free_groups, offsets[:-1], offsets[1:], strict=True)
        }
    changes = {}
    for name, value in updates.items():
        index, group = by_name[name]
        old = group.parameter
        new_value = jnp.asarray(value, dtype=old.value.dtype)
        if new_value.shape != old.value.shape:
            raise ValueError(
                f"set_values: '{name}' has shape {tuple(old.value.shape)}, got {tuple(new_value.shape)}"
            )
        _check_value(new_value, old.constraint, None, f"set_values: parameter '{name}'")
        changes[index] = {"value": new_value}
    return _replaced(tree, changes)


Where = Callable[[PyTree], Any] | str | Sequence[str]


def _selected_groups(tree: Walk, model: PyTree, where: Where, caller: str) -> list[int]:
    """Indices of the groups picked by an equinox-style `where` callable, or by names / prefixes."""
    if callable(where):
        selected = where(model)
        nodes = selected if isinstance(selected, list | tuple) else [selected]
        chosen: list[Any] = []
        for node in nodes:
            chosen.extend(spot.parameter for spot in _descend(node, "", (), ())[0])
        picked = [
            index
            for index, group in enumerate(tree.groups)
            if any(tree.spots[spot].parameter is p for spot in group.spots for p in chosen)
        ]
        if not picked:
            raise ParameterError(f"{caller}: `where` selected no Parameter of the model")
        return picked
    names = [where] if isinstance(where, str) else list(where)
    picked = []
    for name in names:
        matches = [
            index
            for index, group in enumerate(tree.groups)
            if group.name == name or group.name.startswith(name + ".") or group.name.startswith(name + "[")
        ]
        if not matches:
            close = difflib.get_close_matches(name, [g.name for g in tree.groups], n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"{caller}: no parameter named {name!r}{hint}")
        picked.extend(matches)
    return picked


def _set_fixed(model: PyTree, where: Where, fixed: bool, caller: str) -> PyTree:
    tree = walk(model)
    picked = _selected_groups(tree, model, where, caller)
    return _replaced(tree, {index: {"fixed": fixed} for index in picked})


def fix(model: PyTree, where: Where) -> PyTree:
    """A new model with the selected parameters fixed (constants, not entries of the flat vector).

    **Arguments:**

    - `model`: any pytree holding Parameters.
    - `where`: an equinox-style selector `lambda m: m.sources[0].center` (it may return a Parameter, a
      sub-model, or a sequence of them: every Parameter inside is fixed), or a name / list of names as
      in [`scarlet_like.get_values`][]; a name also selects everything under it (`"sources[0]"`).

    **Returns:**

    The new model; a shared parameter is fixed in all its spots.
    """
    return _set_fixed(model, where, True, "fix")


def free(model: PyTree, where: Where) -> PyTree:
    """A new model with the selected parameters free; `where` as in [`scarlet_like.fix`][]."""
    return _set_fixed(model, where, False, "free")

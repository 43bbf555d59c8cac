"""Walking models: names, partition/combine, ravel, get/set values, fix/free, sharing identities.

Every function here takes any pytree holding [`scarlet_like.Parameter`][]s (an `sl.Module`, a list,
a dict, ...) and returns new trees; nothing is mutated.

Sharing: all spots of a model holding copies of one `Parameter` (the same identity, `token`) are one
*group* with one free entry. A group is named by its first spot in flattening order.

Where a value sits is data, not text: a [`Path`][scarlet_like.core.Path] of keys and
[`PlateAxis`][scarlet_like.core.PlateAxis] entries, one for each plate around it. The names users
see (`blobs[:].center`, `blobs[3].center[1]`, `sources[0:4].center`) are written from it by
`Path.text`, and nowhere else.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from .parameter import (
    Parameter,
    ParameterError,
    _check_value,
    is_parameter,
    known_value,
    raise_problems,
    replace,
)
from .plate import Plate, Stacked, member_axes
from .resolve import key_text, path_to_name, resolve

__all__ = [
    "Group",
    "Path",
    "PlateAxis",
    "Unravel",
    "Walk",
    "canonical_tokens",
    "combine",
    "entry_names",
    "fix",
    "free",
    "get_values",
    "has_parameters",
    "parameters",
    "partition",
    "path_to_name",
    "ravel",
    "rename_tokens",
    "resolve",
    "set_values",
    "walk",
]


@dataclass(frozen=True)
class PlateAxis:
    """A plate around a value: the leading axis it adds, and how its members are named."""

    size: int
    # positions of the members in the list the plate stands for (a stacked list), or None
    labels: tuple[int, ...] | None = None
    # identities of the parameters its members share, stored once (not along this axis)
    shared: frozenset[str] = frozenset()

    @property
    def marker(self) -> str:
        """The whole axis in a name: `[:]`, or the list positions it stands for (`[0:4]`, `[1,3,7]`)."""
        if self.labels is None:
            return "[:]"
        first, last = self.labels[0], self.labels[-1]
        if self.labels == tuple(range(first, last + 1)):
            return f"[{first}:{last + 1}]"
        return "[" + ",".join(map(str, self.labels)) + "]"

    def member(self, index: int) -> str:
        """Member `index` in a name: `[3]`, or its list position."""
        return f"[{index if self.labels is None else self.labels[index]}]"


@dataclass(frozen=True)
class Path:
    """Where a value sits in a model: key texts (`.center`, `[0]`) and the plates around it."""

    parts: tuple[str | PlateAxis, ...] = ()

    def extend(self, parts: Iterable[str | PlateAxis]) -> Path:
        return Path((*self.parts, *parts))

    @property
    def plates(self) -> tuple[PlateAxis, ...]:
        return tuple(part for part in self.parts if isinstance(part, PlateAxis))

    def text(self, members: Sequence[int | None] = ()) -> str:
        """The path as a name; `members[i]` picks a member of the i-th plate (None: the whole axis).

        The one place where names are written from positions.
        """
        texts, level = [], 0
        for part in self.parts:
            if isinstance(part, PlateAxis):
                index = members[level] if level < len(members) else None
                texts.append(part.marker if index is None else part.member(index))
                level += 1
            else:
                texts.append(part)
        return "".join(texts).removeprefix(".")


@dataclass(frozen=True)
class Spot:
    """One place in a model that holds a Parameter."""

    path: Path
    parameter: Parameter
    # the plates its value is stacked over, outermost first (those around it that do not share it)
    plates: tuple[PlateAxis, ...] = ()


@dataclass(frozen=True)
class Group:
    """One parameter of a model, possibly used in several spots."""

    name: str
    spots: tuple[int, ...]  # indices into `Walk.spots`
    parameter: Parameter  # as found at the first spot
    path: Path = Path()  # of the first spot
    plates: tuple[PlateAxis, ...] = ()  # the plates its value is stacked over, outermost first

    @property
    def batch(self) -> tuple[int, ...]:
        """Sizes of the leading plate axes of the value."""
        return tuple(plate.size for plate in self.plates)

    @property
    def shared(self) -> tuple[frozenset[str], ...]:
        """For each plate axis, the identities its members share."""
        return tuple(plate.shared for plate in self.plates)

    @property
    def free(self) -> bool:
        return not self.parameter.fixed

    def text(self, members: Sequence[int | None] = ()) -> str:
        """The path of the first spot as a name, `members` picking members of the plates the value
        is stacked over (see `Path.text`). The plates whose members share the parameter (the
        innermost ones: see `_descend`) are named by their first member, where the first spot is:
        a width shared by stacked sources is `sources[0].morphology.sigma`, as in the list it
        stands for, not `sources[0:2].morphology.sigma`."""
        return _shared_text(self.path, self.plates, members)

    @property
    def token(self) -> str:
        return self.parameter.token

    def log_prior(self) -> Array:
        """The prior's log density at the current value, each plate member's prior applied to it."""
        return _batched_log_prob(self.parameter.prior, known_value(self.parameter), self.shared)

    def element_names(self, shape: tuple[int, ...], fill: Sequence[int | None] | None = None) -> list[str]:
        """Names of the scalar elements of a value of this parameter of shape `shape`.

        The leading axes of the plates fill the plates' places in the name (`blobs[3].center[0]`); a
        parameter given its own `name=` shows every axis as an index (`host_flux[3]`). `fill` is for
        a value of [`entries`][scarlet_like.core.Group.entries]: the plates already picked there,
        `None` for the axes it still has.
        """
        if self.parameter.name is not None:
            return [self.parameter.name + _index_text(index) for index in np.ndindex(*shape)]
        fill = tuple(fill) if fill is not None else (None,) * len(self.plates)
        open_axes = [level for level, member in enumerate(fill) if member is None][: len(shape)]
        names = []
        for index in np.ndindex(*shape):
            members = list(fill)
            for level, member in zip(open_axes, index, strict=False):
                members[level] = member
            names.append((self.text(members) or "value") + _index_text(index[len(open_axes) :]))
        return names

    def entry_fills(self, value: Any) -> list[tuple[tuple[int | None, ...], Any]]:
        """The value as [`scarlet_like.get_values`][] shows it: split along the plates that stand for
        list elements (`sources[0:3]`), kept along the others (`blobs[:]`). Pairs of (members picked,
        `None` where the axis is kept) and values."""
        if self.parameter.name is not None:
            return [((None,) * len(self.plates), value)]

        def split(fill: tuple[int | None, ...], value: Any, axis: int) -> list[Any]:
            if len(fill) == len(self.plates):
                return [(fill, value)]
            plate = self.plates[len(fill)]
            if plate.labels is None:
                return split((*fill, None), value, axis + 1)
            return [
                pair
                for index in range(plate.size)
                for pair in split((*fill, index), jnp.take(value, index, axis=axis), axis)
            ]

        return split((), value, 0)

    def entries(self, value: Any) -> dict[str, Any]:
        """`{name: value}` as in [`scarlet_like.get_values`][] (see `entry_fills`)."""
        if self.parameter.name is not None:
            return {self.name: value}
        return {self.text(fill) or "value": part for fill, part in self.entry_fills(value)}


def _shared_text(path: Path, plates: tuple[PlateAxis, ...], members: Sequence[int | None] = ()) -> str:
    """`path` as a name, `members` picking members of `plates` (the outer plates of the path, those
    a value is stacked over) and the first member of the plates inside them (which share it)."""
    picked = (*members, *([None] * (len(plates) - len(members))))
    return path.text((*picked, *([0] * (len(path.plates) - len(plates)))))


def _index_text(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, index)) + "]" if index else ""


@dataclass(frozen=True)
class Walk:
    """A model taken apart into its Parameter spots, grouped into parameters."""

    spots: list[Spot]
    groups: list[Group]
    # new Parameters, one per spot (with the identities of the old ones) -> new model
    rebuild: Callable[[list[Parameter]], PyTree]

    def replaced(self, changes: Mapping[int, Mapping[str, Any]]) -> PyTree:
        """The model with some groups' Parameters changed (`{group index: {field: value}}`) in every
        spot; changing identities is [`rename_tokens`][scarlet_like.core.rename_tokens]' job."""
        parameters = [spot.parameter for spot in self.spots]
        for group_index, fields in changes.items():
            for spot in self.groups[group_index].spots:
                parameters[spot] = replace(parameters[spot], **fields)
        return self.rebuild(parameters)


def has_parameters(tree: Any) -> bool:
    """Whether `tree` holds any Parameter."""
    return any(is_parameter(leaf) for leaf in jax.tree_util.tree_leaves(tree, is_leaf=is_parameter))


def _is_walk_node(node: Any) -> bool:
    return is_parameter(node) or isinstance(node, Plate | Stacked)


def _batched_log_prob(prior: Any, value: Array, shared: tuple[frozenset[str], ...]) -> Array:
    if not shared:
        return prior.log_prob(value)
    inner = lambda prior, value: _batched_log_prob(prior, value, shared[1:])  # noqa: E731
    per_member = jax.vmap(inner, in_axes=(member_axes(prior, shared[0]), 0))(prior, value)
    return jnp.sum(per_member)


Rebuild = Callable[[list[Parameter]], Any]


def _descend(tree: PyTree, path: Path, plates: tuple[PlateAxis, ...]) -> tuple[list[Spot], Rebuild]:
    """Spots of `tree` in flattening order (a Parameter before the Parameters of its prior).

    `plates` are the plates around `tree` whose axes its arrays carry, outermost first.
    """
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_walk_node)
    spots: list[Spot] = []
    # How to put each leaf back: (first spot, number of spots, rebuild of them or None, leaf)
    plan: list[tuple[int, int, Rebuild | None, Any]] = []
    for key_path, leaf in with_paths:
        here = path.extend(key_text(key) for key in key_path)
        start = len(spots)
        if is_parameter(leaf):
            # A parameter shared by the members of a plate is not stacked over that plate (nor over
            # the plates inside it).
            depth = next((level for level, plate in enumerate(plates) if leaf.token in plate.shared), None)
            own = plates if depth is None else plates[:depth]
            spots.append(Spot(path=here, parameter=leaf, plates=own))
            inner: list[Spot] = []
            rebuild_inner: Rebuild | None = None
            if leaf.prior is not None and has_parameters(leaf.prior):
                inner, rebuild_inner = _descend(leaf.prior, here.extend([".prior"]), own)
            spots.extend(inner)
            plan.append((start, 1 + len(inner), functools.partial(_rebuild_parameter, rebuild_inner), leaf))
        elif isinstance(leaf, Plate):
            inner, rebuild_inner = _descend_plate(leaf, here, plates)
            spots.extend(inner)
            plan.append((start, len(inner), rebuild_inner, leaf))
        elif isinstance(leaf, Stacked):
            inner, rebuild_inner = _descend_stacked(leaf, here, plates)
            spots.extend(inner)
            plan.append((start, len(inner), rebuild_inner, leaf))
        else:
            plan.append((start, 0, None, leaf))

    return spots, functools.partial(_rebuild_tree, treedef, plan)


# The rebuilds are module-level functions bound with `functools.partial` rather than closures: the
# test suite's type-checking hook decorates a nested function anew at each call of the function
# around it (a walk made one per parameter): test_linked_sources took 63.0 s with closures, 59.9 s
# without (51.8 s unchecked).
def _rebuild_tree(
    treedef: Any, plan: list[tuple[int, int, Rebuild | None, Any]], parameters: list[Parameter]
) -> PyTree:
    leaves = [
        leaf if inner is None else inner(parameters[start : start + count])
        for start, count, inner, leaf in plan
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _rebuild_parameter(rebuild_prior: Rebuild | None, parameters: list[Parameter]) -> Parameter:
    parameter = parameters[0]
    if rebuild_prior is not None:
        parameter = replace(parameter, prior=rebuild_prior(parameters[1:]))
    return parameter


def _descend_plate(plate: Plate, path: Path, plates: tuple[PlateAxis, ...]) -> tuple[list[Spot], Rebuild]:
    if plate.stacked(len(plates)):
        axis = PlateAxis(size=plate.size, labels=plate.labels, shared=plate.shared)
        spots, rebuild_members = _descend(plate.members, path.extend([axis]), (*plates, axis))
    else:
        # inside a `vmap` over the plate: one member, a model of its own
        spots, rebuild_members = _descend(plate.members, path, plates)
    return spots, lambda parameters: plate.with_members(rebuild_members(parameters))


def _descend_stacked(
    stacked: Stacked, path: Path, plates: tuple[PlateAxis, ...]
) -> tuple[list[Spot], Rebuild]:
    """A stacked list is named as the list it stands for: `sources[3]`, `sources[0:7]`."""
    spots: list[Spot] = []
    pieces = []
    for index, part in enumerate(stacked.parts):
        if isinstance(part, Plate):
            inner, rebuild_part = _descend_plate(part, path, plates)
        else:
            position = next(p for p, (which, _) in enumerate(stacked.order) if which == index)
            inner, rebuild_part = _descend(part, path.extend([f"[{position}]"]), plates)
        pieces.append((len(spots), len(inner), rebuild_part))
        spots.extend(inner)

    def rebuild(parameters: list[Parameter]) -> Stacked:
        parts = tuple(
            rebuild_part(parameters[start : start + count]) for start, count, rebuild_part in pieces
        )
        return Stacked(parts=parts, order=stacked.order)

    return spots, rebuild


def walk(model: PyTree, *, check: bool = True, prefix: str = "") -> Walk:
    """Take `model` apart into its Parameter spots and group the spots that are one parameter.

    Spots holding Parameters of one identity (`token`: the same Parameter, or a copy of it) form one
    group, named after its first spot (or the Parameter's own `name`). Pure: nothing is changed.

    With `check`, a Parameter whose initial value the model cannot start from (see
    [`scarlet_like.Parameter`][]) raises a `ParameterError` naming its path, after `prefix`.
    """
    spots, rebuild = _descend(model, Path(), ())
    if check:
        raise_problems(((spot.path.text(), spot.parameter) for spot in spots), prefix)
    members: dict[str, list[int]] = {}
    for index, spot in enumerate(spots):
        members.setdefault(spot.parameter.token, []).append(index)
    groups = []
    for indices in members.values():
        first = spots[indices[0]]
        groups.append(
            Group(
                name=first.parameter.name or _shared_text(first.path, first.plates) or "value",
                spots=tuple(indices),
                parameter=first.parameter,
                path=first.path,
                plates=first.plates,
            )
        )
    check_unique_names(groups)
    return Walk(spots=spots, groups=groups, rebuild=rebuild)


def check_unique_names(groups: Sequence[Group]) -> None:
    """Raise a `ParameterError` if two different parameters have one name."""
    seen: set[str] = set()
    for group in groups:
        if group.name in seen:
            raise ParameterError(
                f"two different parameters are named '{group.name}'; names must be unique "
                "(give one of them another `name=`)"
            )
        seen.add(group.name)


def _is_identity_node(node: Any) -> bool:
    return is_parameter(node) or isinstance(node, Plate)


def rename_tokens(tree: PyTree, mapping: Mapping[str, str]) -> PyTree:
    """`tree` with the Parameter identities in `mapping` renamed, everywhere they appear (Parameters,
    their priors, the shared identities of plates and the members' identities they keep).

    The one function that changes identities: [`canonical_tokens`][scarlet_like.canonical_tokens],
    stacking and batched fits all use it.
    """

    def rename(node: Any) -> Any:
        if is_parameter(node):
            prior = None if node.prior is None else rename_tokens(node.prior, mapping)
            return replace(node, token=mapping.get(node.token, node.token), prior=prior)
        if isinstance(node, Plate):
            identities = node.identities
            if identities is not None:
                identities = tuple(tuple(mapping.get(t, t) for t in member) for member in identities)
            return node.with_members(
                rename_tokens(node.members, mapping),
                shared=frozenset(mapping.get(token, token) for token in node.shared),
                identities=identities,
            )
        return node

    return jax.tree_util.tree_map(rename, tree, is_leaf=_is_identity_node)


def tokens(tree: PyTree) -> list[str]:
    """Every Parameter identity in `tree`, once, in order of first appearance (plates' kept member
    identities after their members)."""
    found: dict[str, None] = {}

    def visit(tree: PyTree) -> None:
        for node in jax.tree_util.tree_leaves(tree, is_leaf=_is_identity_node):
            if is_parameter(node):
                found.setdefault(node.token)
                if node.prior is not None:
                    visit(node.prior)
            elif isinstance(node, Plate):
                visit(node.members)
                for member in node.identities or ():
                    found.update(dict.fromkeys(member))

    visit(tree)
    return list(found)


def canonical_tokens(tree: PyTree) -> tuple[PyTree, Callable[[PyTree], PyTree]]:
    """Number the Parameter identities of `tree` by first appearance, and give the way back.

    Identities are unique, so two models built the same way differ in them. Code that needs one
    structure for both (a compile cache, a stack) works on the canonical form and maps its results
    back, so that user-visible models never carry the numbered identities (which would collide
    between models).

    **Returns:**

    `(canonical_tree, restore)`, where `restore` maps any tree carrying the numbered identities back
    to the original ones.
    """
    forward = {token: f"#{number}" for number, token in enumerate(tokens(tree))}
    backward = {number: token for token, number in forward.items()}
    return rename_tokens(tree, forward), lambda other: rename_tokens(other, backward)


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
    free = [(index, group) for index, group in enumerate(tree.groups) if group.free]
    values = _mapped(
        "inverse",
        tuple(group.parameter.constraint for _, group in free),
        tuple(known_value(group.parameter) for _, group in free),
    )
    free_values = {group.name: value for (_, group), value in zip(free, values, strict=True)}
    return free_values, tree.replaced({index: {"value": None} for index, _ in free})


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
    missing = [(index, group) for index, group in enumerate(tree.groups) if group.parameter.value is None]
    for _, group in missing:
        if group.name not in free:
            raise KeyError(f"combine: `free` has no value for the free parameter '{group.name}'")
    values = _mapped(
        "forward",
        tuple(group.parameter.constraint for _, group in missing),
        tuple(free[group.name] for _, group in missing),
    )
    return tree.replaced({index: {"value": value} for (index, _), value in zip(missing, values, strict=True)})


def any_traced(tree: Any) -> bool:
    """Whether any leaf of `tree` is a JAX tracer: the call is inside a transformation (`jit`, `grad`,
    `vmap`), where values are not known and nothing may be compiled or checked on the side."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _mapped(direction: str, constraints: tuple[Any, ...], values: tuple[Any, ...]) -> tuple[Array, ...]:
    """Each value through its constraint's `forward` or `inverse` map.

    Outside any transformation, the maps run as one compiled program per model structure. Op by op,
    they dispatched about 60 small programs per `sl.fit` of the HSC demo blend, each traced, lowered
    and looked up in the persistent cache again by every fresh process.
    """
    if not values:
        return ()
    if any_traced(values):
        return tuple(getattr(c, direction)(v) for c, v in zip(constraints, values, strict=True))
    return _compiled_maps(direction, constraints, tuple(jax.device_put(value) for value in values))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _compiled_maps(
    direction: str, constraints: tuple[Any, ...], values: tuple[Any, ...]
) -> tuple[Array, ...]:
    return tuple(getattr(c, direction)(v) for c, v in zip(constraints, values, strict=True))


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
        pieces = zip(self.names, offsets[:-1], offsets[1:], self.shapes, strict=True)
        if isinstance(x, jax.core.Tracer):
            return {name: x[start:stop].reshape(shape) for name, start, stop, shape in pieces}
        # a concrete vector is cut on the host: no small program dispatched per entry
        host = np.asarray(x)
        return {name: jax.device_put(host[start:stop].reshape(shape)) for name, start, stop, shape in pieces}

    def __call__(self, x: Float[Array, " n"]) -> PyTree:
        return combine(self.free(x), self.rest)

    def value_names(self) -> tuple[str, ...]:
        """The keys of [`scarlet_like.get_values`][] of the unravelled model, in order."""
        shapes = dict(zip(self.names, self.shapes, strict=True))
        names: list[str] = []
        for group in walk(self.rest).groups:
            if group.free:
                shape = group.parameter.constraint.constrained_shape(shapes[group.name])
                names.extend(group.entries(np.zeros(shape, np.int8)))
        return tuple(names)

    def value_element_names(self) -> tuple[str, ...]:
        """One name per scalar element of the values of [`scarlet_like.get_values`][], in order:
        `blobs[:].center` of shape `(3, 2)` gives `blobs[0].center[0]`, ..., `blobs[2].center[1]`."""
        shapes = dict(zip(self.names, self.shapes, strict=True))
        names: list[str] = []
        for group in walk(self.rest).groups:
            if group.free:
                shape = group.parameter.constraint.constrained_shape(shapes[group.name])
                for fill, value in group.entry_fills(np.zeros(shape, np.int8)):
                    names.extend(group.element_names(tuple(value.shape), fill))
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
        if any_traced(leaves):
            x = jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves])
        else:  # joined on the host: no small program dispatched per entry
            x = jax.device_put(np.concatenate([np.ravel(leaf).astype(dtype) for leaf in leaves]))
    else:
        x = jnp.zeros((0,), dtype=jnp.asarray(0.0).dtype)
    unravel = Unravel(
        rest=rest,
        names=tuple(free_values),
        shapes=tuple(tuple(leaf.shape) for leaf in leaves),
    )
    return x, unravel


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
            shape = parameter.constraint.unconstrained_shape(tuple(known_value(parameter).shape))
            names.extend(group.element_names(tuple(shape)))
    return tuple(names)


def get_values(model: PyTree, *, free_only: bool = True) -> dict[str, Array]:
    """Constrained values of the model's parameters, by name.

    **Arguments:**

    - `model`: any pytree holding Parameters.
    - `free_only`: `True` (default) gives the free parameters only, the entries of the flat vector;
      `False` gives every parameter, fixed ones included, under the same names. For a table of a
      simulation's truth (all fixed) against a fit:
      `truth, fit = sl.get_values(truth_model, free_only=False), sl.get_values(fitted.model)`.

    **Returns:**

    `{name: value}` with one entry per parameter (a shared parameter once), in flattening order (for
    the free ones, that of the flat vector). A parameter inside a plate is one entry
    (`blobs[:].center`) holding the stacked values.
    """
    values: dict[str, Array] = {}
    for group in walk(model).groups:
        if group.free or not free_only:
            values.update(group.entries(group.parameter.value))
    return values


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
        sizes = [math.prod(known_value(group.parameter).shape) for _, group in free_groups]
        if flat.ndim != 1 or flat.shape[0] != sum(sizes):
            raise ValueError(
                f"set_values: the flat array has shape {tuple(flat.shape)}, but the model's free "
                f"parameters have {sum(sizes)} constrained entries"
            )
        offsets = np.cumsum((0, *sizes))
        updates = {
            group.name: flat[start:stop].reshape(known_value(group.parameter).shape)
            for (_, group), start, stop in zip(free_groups, offsets[:-1], offsets[1:], strict=True)
        }
    changes = {}
    for name, value in updates.items():
        index, group = by_name[name]
        old = group.parameter
        old_value = known_value(old)
        new_value = jnp.asarray(value, dtype=old_value.dtype)
        if new_value.shape != old_value.shape:
            raise ValueError(
                f"set_values: '{name}' has shape {tuple(old_value.shape)}, got {tuple(new_value.shape)}"
            )
        _check_value(new_value, old.constraint, None, f"set_values: parameter '{name}'")
        changes[index] = {"value": new_value}
    return tree.replaced(changes)


Where = Callable[[PyTree], Any] | str | Sequence[str]


def _selected_groups(tree: Walk, model: PyTree, where: Where, caller: str) -> list[int]:
    """Indices of the groups picked by an equinox-style `where` callable, or by names / prefixes."""
    if callable(where):
        selected = where(model)
        nodes = selected if isinstance(selected, list | tuple) else [selected]
        chosen = {spot.parameter.token for node in nodes for spot in _descend(node, Path(), ())[0]}
        picked = [index for index, group in enumerate(tree.groups) if group.token in chosen]
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
    return tree.replaced({index: {"fixed": fixed} for index in picked})


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

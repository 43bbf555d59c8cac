"""Looking at a model: a graphviz DAG ([`scarlet_like.graph`][]) and an indented text tree
([`scarlet_like.tree`][]).

Both views follow the model in field order, the order that also names parameters, so every parameter
is shown under the name used by `get_values`, the flat vector's names and errors. A shared parameter
(one group of `scarlet_like.core.walk` with several spots) is shown once and referred to
elsewhere; a plate's member structure is shown once, however many members it stacks.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import equinox as eqx
import graphviz
import jax
import numpy as np
from jaxtyping import PyTree

from .derived import Derived, Meta
from .hierarchical import HierarchicalPrior
from .parameter import Parameter, is_parameter
from .plate import Plate
from .tree import Group, path_to_name, walk

__all__ = ["graph", "tree"]


# --------------------------------------------------------------------------------------
# Pieces shared by both views
# --------------------------------------------------------------------------------------


def _join(prefix: str, suffix: str) -> str:
    """Join paths the way parameter names are joined (`a` + `[0]` -> `a[0]`, `a` + `b` -> `a.b`)."""
    if not prefix:
        return suffix
    if not suffix or suffix.startswith("["):
        return prefix + suffix
    return f"{prefix}.{suffix}"


def _format_value(value: Any) -> str:
    """Scalars to 4 significant digits, up to 4 numbers inline, anything bigger as `float32[5, 3]`."""
    if value is None:
        return "None"
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - tracers and odd leaves: fall back on what they say of themselves
        shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
        if shape is not None and dtype is not None:
            return f"{dtype}{list(shape)}"
        return _truncate(repr(value))
    if array.dtype.kind not in "biufc":
        return _truncate(repr(value))
    if array.size == 1:
        return f"{array.item():.4g}"
    if 0 < array.size <= 4:
        return "[" + ", ".join(f"{number:.4g}" for number in array.ravel()) + "]"
    return f"{array.dtype}{list(array.shape)}"


def _truncate(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_visible_constraint(parameter: Parameter) -> bool:
    constraint = parameter.constraint
    return type(constraint).__name__ != "Real" and str(constraint) != "real()"


def _is_node(candidate: Any) -> bool:
    """Where flattening stops: every module (Parameters, Derived, Plates, Meta, user modules)."""
    return isinstance(candidate, eqx.Module)


def _children(node: eqx.Module) -> Iterator[tuple[str, Any]]:
    """`(relative path, child)` for the non-static fields of a module, containers opened up.

    Lists, tuples and dicts are not shown on their own: their modules hang directly below the module
    that holds them, labelled with the full field path (`sources[0]`). `None` fields vanish.
    """
    for field in dataclasses.fields(node):
        if field.metadata.get("static", False):
            continue
        yield from _expand(field.name, getattr(node, field.name, None))


def _expand(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if _is_node(value):
        yield prefix, value
        return
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(value, is_leaf=_is_node)[0]:
        yield _join(prefix, path_to_name(key_path)), leaf


def _prior_children(prior: Any) -> Iterator[tuple[str, Any]]:
    """The arguments of a prior that are parts of the model (Parameters, Derived, modules)."""
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(
        prior, is_leaf=lambda candidate: candidate is not prior and _is_node(candidate)
    )[0]:
        if _is_node(leaf):
            yield _join("prior", path_to_name(key_path)), leaf


class _Catalogue:
    """What one pass over a model knows: its parameter groups and which nodes repeat.

    Object identities are only used within one call, while the model holding the objects is alive.
    """

    def __init__(self, model: PyTree):
        walked = walk(model, check=False)  # a picture of what is there, problems included
        self.groups: list[Group] = walked.groups
        self._group_of_object: dict[int, int] = {}
        self._group_of_token: dict[str, int] = {}
        for index, group in enumerate(walked.groups):
            for spot in group.spots:
                self._group_of_object[id(walked.spots[spot].parameter)] = index
            self._group_of_token[group.token] = index

    def group_index(self, parameter: Parameter) -> int | None:
        if parameter.token in self._group_of_token:
            return self._group_of_token[parameter.token]
        return self._group_of_object.get(id(parameter))

    def group(self, parameter: Parameter) -> Group | None:
        index = self.group_index(parameter)
        return None if index is None else self.groups[index]

    def key(self, node: Any) -> tuple[Any, ...]:
        """A key equal for two spots holding "the same" node.

        Parameters are keyed by their group. Modules and derived values by identity, or, for copies
        (after `tree_at`, `combine`, ...) whose every parameter is shared, by class and the groups
        (and constants) they hold: such copies are one sub-model used in several places.
        """
        if is_parameter(node):
            index = self.group_index(node)
            return ("group", index) if index is not None else ("object", id(node))
        leaves = jax.tree_util.tree_leaves(node, is_leaf=is_parameter)
        parameters = [leaf for leaf in leaves if is_parameter(leaf)]
        if parameters:
            groups = tuple(self.group_index(parameter) for parameter in parameters)
            constants = tuple(id(leaf) for leaf in leaves if not is_parameter(leaf))
            function = id(node.fn) if isinstance(node, Derived) else None
            if None not in groups:
                return ("copies", type(node), function, groups, constants)
        return ("object", id(node))

    def reference(self, node: Any) -> str:
        """How a prior argument is named in text: a parameter's name, a derived value's label."""
        if is_parameter(node):
            group = self.group(node)
            return group.name if group is not None else "Parameter"
        if isinstance(node, Derived):
            return f"'{node.label}'"
        if isinstance(node, eqx.Module):
            return type(node).__name__
        return _format_value(node)

    def prior_text(self, prior: Any) -> str:
        if isinstance(prior, HierarchicalPrior):
            family = getattr(prior.family, "__name__", type(prior.family).__name__)
            arguments = [self.reference(argument) for argument in prior.args]
            arguments += [f"{name}={self.reference(value)}" for name, value in prior.kwargs.items()]
            return f"{family}({', '.join(arguments)})"
        return repr(prior)

    def parameter_details(self, parameter: Parameter) -> list[str]:
        """Constraint, prior and `fixed`, as short texts (the value is formatted separately)."""
        details = []
        if _has_visible_constraint(parameter):
            details.append(str(parameter.constraint))
        if parameter.prior is not None:
            details.append(f"prior={self.prior_text(parameter.prior)}")
        if parameter.fixed:
            details.append("fixed")
        return details


#: The class attribute by which a module names its fields that are worked out from its other fields
#: (transforms, normalisations): `sl.tree` folds them into one line.
PRECOMPUTED = "__precomputed_fields__"


def _is_precomputed(module: eqx.Module, field_path: str, child: Any) -> bool:
    """Whether a child is part of a field its module declares precomputed, with no Parameter in it."""
    field = re.split(r"[.\[]", field_path, maxsplit=1)[0]
    if field not in getattr(type(module), PRECOMPUTED, ()):
        return False
    return not any(is_parameter(leaf) for leaf in jax.tree_util.tree_leaves(child, is_leaf=is_parameter))


def _folded_text(field_path: str, child: Any) -> str:
    """`grid (FourierGrid: ky, kx, psf_fourier)`, or `log_normalisation` for an array."""
    if not _is_node(child):
        return field_path
    arrays = [
        name
        for name, value in _children(child)
        if not _is_node(value) and getattr(value, "shape", None) is not None
    ]
    return f"{field_path} ({type(child).__name__}: {', '.join(arrays)})" if arrays else field_path


def _plate_shared(parameter: Parameter, plates: tuple[tuple[str, Plate], ...]) -> tuple[str, Plate] | None:
    """The outermost enclosing plate whose members all use this very parameter, if any."""
    for plate_path, plate in plates:
        if parameter.token in plate.shared:
            return plate_path, plate
    return None


# --------------------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------------------

_FREE_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": "#cfe2f3"}
_FIXED_STYLE = {"shape": "ellipse", "style": "dashed", "color": "grey50", "fontcolor": "grey40"}
_MODULE_STYLE = {"shape": "box"}
_DERIVED_STYLE = {"shape": "hexagon", "style": "filled", "fillcolor": "#fff2cc"}
_META_STYLE = {"shape": "note", "color": "grey50", "fontcolor": "grey40"}
_PRIOR_EDGE = {"style": "dashed", "label": "prior"}
_META_EDGE = {"style": "dotted"}


def _label(*lines: str) -> str:
    # Escaped line by line so that backslashes in user text survive and a label such as `<lambda>`
    # is not taken for an HTML-like label.
    return graphviz.nohtml("\\n".join(graphviz.escape(line) for line in lines if line))


@dataclasses.dataclass
class _Drawing:
    catalogue: _Catalogue
    name: str
    # node id -> (attributes, clusters it sits in, outermost first)
    nodes: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = dataclasses.field(default_factory=dict)
    # cluster id -> (label, enclosing clusters)
    clusters: dict[str, tuple[str, tuple[str, ...]]] = dataclasses.field(default_factory=dict)
    edges: dict[tuple[str, str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    ids_by_key: dict[tuple[Any, ...], str] = dataclasses.field(default_factory=dict)
    used_ids: set[str] = dataclasses.field(default_factory=set)

    def new_id(self, kind: str, path: str) -> str:
        """A DOT identifier from a path: readable, deterministic, and never handed out twice."""
        base = re.sub(r"\W+", "_", f"{kind}_{path or self.name}").strip("_")
        candidate, suffix = base, 1
        while candidate in self.used_ids:
            suffix += 1
            candidate = f"{base}_{suffix}"
        self.used_ids.add(candidate)
        return candidate

    def add_edge(self, tail: str, head: str | None, attributes: dict[str, Any]) -> None:
        if head is None:
            return
        label = str(attributes.get("label", ""))
        self.edges.setdefault((tail, head, label), attributes)

    def visit(
        self,
        node: Any,
        path: str,
        relative: str,
        consumer: str | None,
        edge: dict[str, Any],
        clusters: tuple[str, ...],
        plates: tuple[tuple[str, Plate], ...],
    ) -> None:
        """Draw `node` (found at `path`) unless drawn already, and an edge from it to `consumer`.

        Edges follow the flow of values: parameters into the modules and derived values using them,
        sub-modules into the module holding them, prior arguments into the parameter they shape.
        This keeps the picture a DAG even when a derived value reads the module that holds it.
        """
        if isinstance(node, Plate):
            self.visit_plate(node, path, relative, consumer, edge, clusters, plates)
            return
        if not _is_node(node):
            # Constants (arrays, numbers) are left out of the picture; `tree` lists them.
            return
        if isinstance(node, Meta):
            # drawn wherever it is met: a Meta has no key, so it is never taken for another spot's node
            node_id = self.new_id("meta", path)
            label = _label(f"{relative or self.name}: Meta({type(node.content).__name__})")
            self.nodes[node_id] = ({**_META_STYLE, "label": label, "tooltip": path}, clusters)
            self.add_edge(node_id, consumer, {**edge, **_META_EDGE})
            return
        key = self.catalogue.key(node)
        if key in self.ids_by_key:
            self.add_edge(self.ids_by_key[key], consumer, edge)
            return
        if is_parameter(node):
            node_id = self.draw_parameter(node, path, key, clusters, plates)
        elif isinstance(node, Derived):
            node_id = self.new_id("derived", path)
            self.ids_by_key[key] = node_id
            self.nodes[node_id] = (
                {
                    **_DERIVED_STYLE,
                    "label": _label(f"{relative or self.name}: {node.label}"),
                    "tooltip": path,
                },
                clusters,
            )
            several = len(node.inputs) > 1
            for index, item in enumerate(node.inputs):
                for inner, child in _expand(f"[{index}]", item):
                    input_edge = {"label": inner} if several or inner != f"[{index}]" else {}
                    self.visit(
                        child, _join(path, "inputs" + inner), inner, node_id, input_edge, clusters, plates
                    )
        else:
            node_id = self.new_id("module", path)
            self.ids_by_key[key] = node_id
            label = _label(f"{relative or self.name}: {type(node).__name__}")
            style = _MODULE_STYLE if consumer is not None or path else {**_MODULE_STYLE, "penwidth": "2"}
            self.nodes[node_id] = ({**style, "label": label, "tooltip": path or self.name}, clusters)
            for field_path, child in _children(node):
                self.visit(
                    child,
                    _join(path, field_path),
                    field_path,
                    node_id,
                    {"label": field_path},
                    clusters,
                    plates,
                )
        self.add_edge(node_id, consumer, edge)

    def draw_parameter(
        self,
        parameter: Parameter,
        path: str,
        key: tuple[Any, ...],
        clusters: tuple[str, ...],
        plates: tuple[tuple[str, Plate], ...],
    ) -> str:
        group = self.catalogue.group(parameter)
        name = group.name if group is not None else path
        node_id = self.new_id("param", name)
        self.ids_by_key[key] = node_id
        shared_by = _plate_shared(parameter, plates)
        if shared_by is not None:
            # One value for all members: drawn outside the plate that stacks the others.
            outer = tuple(plate_path for plate_path, _ in plates).index(shared_by[0])
            clusters = clusters[:outer]
        lines = [name, _format_value(parameter.value), *self.catalogue.parameter_details(parameter)]
        style = _FIXED_STYLE if parameter.fixed else _FREE_STYLE
        self.nodes[node_id] = ({**style, "label": _label(*lines), "tooltip": name}, clusters)
        if parameter.prior is not None:
            for prior_path, argument in _prior_children(parameter.prior):
                self.visit(
                    argument, _join(path, prior_path), prior_path, node_id, _PRIOR_EDGE, clusters, plates
                )
        return node_id

    def visit_plate(
        self,
        plate: Plate,
        path: str,
        relative: str,
        consumer: str | None,
        edge: dict[str, Any],
        clusters: tuple[str, ...],
        plates: tuple[tuple[str, Plate], ...],
    ) -> None:
        cluster_id = "cluster_" + self.new_id("", path)
        self.clusters[cluster_id] = (f"{path or self.name} (×{plate.size})", clusters)
        member_path, member_relative = path + "[:]", relative + "[:]"
        inner_clusters, inner_plates = (*clusters, cluster_id), (*plates, (member_path, plate))
        member_edge = {**edge, "label": member_relative}
        for inner, member in _expand("", plate.members):
            self.visit(
                member,
                member_path + inner,
                member_relative + inner,
                consumer,
                {**member_edge, "label": member_relative + inner},
                inner_clusters,
                inner_plates,
            )

    def digraph(self) -> graphviz.Digraph:
        dot = graphviz.Digraph(name=self.name)
        dot.attr("node", fontname="Helvetica", fontsize="11")
        dot.attr("edge", fontname="Helvetica", fontsize="9")
        self.emit_nodes(dot, ())
        for (tail, head, _), attributes in self.edges.items():
            dot.edge(tail, head, **{name: str(value) for name, value in attributes.items()})
        return dot

    def emit_nodes(self, target: graphviz.Digraph, clusters: tuple[str, ...]) -> None:
        # Nodes are declared inside their cluster before any edge mentions them, so that the layout
        # engine puts them in the cluster rather than at the top level.
        for node_id, (attributes, where) in self.nodes.items():
            if where == clusters:
                target.node(node_id, **attributes)
        for cluster_id, (label, parent) in self.clusters.items():
            if parent == clusters:
                with target.subgraph(name=cluster_id) as cluster:
                    cluster.attr(label=label, style="rounded,dashed", color="grey40", fontname="Helvetica")
                    self.emit_nodes(cluster, (*clusters, cluster_id))


def graph(model: PyTree, *, name: str = "model") -> graphviz.Digraph:
    """A graphviz picture of a model: its modules, parameters, derived values and plates.

    **Arguments:**

    - `model`: any pytree holding [`scarlet_like.Parameter`][]s (usually an [`scarlet_like.Module`][]).
    - `name`: the graph's name, also the label of the top-level node.

    **Returns:**

    A `graphviz.Digraph`. Its DOT text (`.source`) needs nothing else; displaying it in a notebook,
    `.render()` or `.pipe(format="svg")` need the Graphviz `dot` program.

    What is drawn, with edges following the flow of values (so the picture is a DAG):

    - modules as boxes labelled `field: Class` (`sources[0]: Source`), with an edge into the module
      that holds them; lists, tuples and dicts are not drawn, their path labels the edge;
    - parameters as ellipses named as in `get_values` (filled when free, dashed grey when fixed), with
      their value, constraint and prior; a shared parameter is one node with an edge into every
      module using it;
    - [`scarlet_like.Derived`][] values as hexagons, with an edge from each input and one into the
      module holding them;
    - the parameters of a [`scarlet_like.HierarchicalPrior`][] with a dashed `prior` edge into the
      parameter whose prior they set;
    - a plate as a cluster `blobs (×10)` holding its member structure once; parameters shared by
      all members sit outside it;
    - [`scarlet_like.Meta`][] attachments as notes, not opened.

    ```python
    sl.graph(scene)                        # displays itself in Jupyter
    sl.graph(scene).render("scene", format="pdf")
    ```
    """
    drawing = _Drawing(catalogue=_Catalogue(model), name=name)
    if _is_node(model):
        drawing.visit(model, "", "", None, {}, (), ())
    else:
        # A list or dict of models gets a node of its own for its members to hang from.
        root = drawing.new_id("module", "")
        drawing.nodes[root] = (
            {**_MODULE_STYLE, "penwidth": "2", "label": _label(f"{name}: {type(model).__name__}")},
            (),
        )
        for path, child in _expand("", model):
            drawing.visit(child, path, path, root, {"label": path}, (), ())
    if not drawing.nodes:
        drawing.nodes[drawing.new_id("module", "")] = ({**_MODULE_STYLE, "label": _label(name)}, ())
    return drawing.digraph()


# --------------------------------------------------------------------------------------
# tree
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Printing:
    catalogue: _Catalogue
    lines: list[str] = dataclasses.field(default_factory=list)
    shown: dict[tuple[Any, ...], str] = dataclasses.field(default_factory=dict)  # key -> path first shown

    def write(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def show(
        self, node: Any, path: str, label: str, depth: int, plates: tuple[tuple[str, Plate], ...]
    ) -> None:
        head = f"{label}: " if label else ""
        if isinstance(node, Plate):
            self.show_plate(node, path, head, depth, plates)
            return
        if isinstance(node, Meta):
            self.write(depth, f"{head}Meta({type(node.content).__name__})")
            return
        if not _is_node(node):
            children = list(_expand("", node))
            if len(children) == 1 and children[0][1] is node:
                self.write(depth, f"{label or 'value'} = {_format_value(node)}  const")
                return
            self.write(depth, f"{head}{type(node).__name__}")
            for inner, child in children:
                self.show(child, _join(path, inner), _join(label, inner), depth + 1, plates)
            return
        key = self.catalogue.key(node)
        if key in self.shown:
            self.show_repeat(node, label, key, depth)
            return
        if is_parameter(node):
            self.show_parameter(node, path, label, key, depth, plates)
        elif isinstance(node, Derived):
            self.shown[key] = path
            self.write(depth, f"{head}Derived '{node.label}'")
            for index, item in enumerate(node.inputs):
                for inner, child in _expand(f"inputs[{index}]", item):
                    self.show(child, _join(path, inner), inner, depth + 1, plates)
        else:
            self.shown[key] = path
            self.write(depth, f"{head}{type(node).__name__}")
            folded = []
            for field_path, child in _children(node):
                if _is_precomputed(node, field_path, child):
                    folded.append(_folded_text(field_path, child))
                else:
                    self.show(child, _join(path, field_path), field_path, depth + 1, plates)
            if folded:
                self.write(depth + 1, f"(precomputed: {', '.join(folded)})")

    def show_repeat(self, node: Any, label: str, key: tuple[Any, ...], depth: int) -> None:
        first = self.shown[key]
        if is_parameter(node):
            self.write(depth, f"{label or 'value'} -> {first}  [shared]")
        else:
            kind = f"Derived '{node.label}'" if isinstance(node, Derived) else type(node).__name__
            self.write(depth, f"{label or 'value'} -> {first or 'the model'}  [same {kind}]")

    def show_parameter(
        self,
        parameter: Parameter,
        path: str,
        label: str,
        key: tuple[Any, ...],
        depth: int,
        plates: tuple[tuple[str, Plate], ...],
    ) -> None:
        group = self.catalogue.group(parameter)
        name = group.name if group is not None else path
        self.shown[key] = name
        head = label or name or "value"
        if parameter.name is not None:
            head += f" '{parameter.name}'"
        parts = [f"{head} = {_format_value(parameter.value)}", *self.catalogue.parameter_details(parameter)]
        if group is not None and len(group.spots) > 1:
            parts.append(f"[shared ×{len(group.spots)}]")
        shared_by = _plate_shared(parameter, plates)
        if shared_by is not None:
            parts.append(f"[one value for all {shared_by[1].size} members]")
        self.write(depth, "  ".join(parts))
        if parameter.prior is not None:
            for prior_path, argument in _prior_children(parameter.prior):
                # Arguments shown elsewhere are already named in the prior's text.
                if not _is_node(argument) or self.catalogue.key(argument) not in self.shown:
                    self.show(argument, _join(path, prior_path), prior_path, depth + 1, plates)

    def show_plate(
        self, plate: Plate, path: str, head: str, depth: int, plates: tuple[tuple[str, Plate], ...]
    ) -> None:
        member_path = path + "[:]"
        inner_plates = (*plates, (member_path, plate))
        members = plate.members
        is_module = isinstance(members, eqx.Module) and not isinstance(members, Parameter | Derived | Meta)
        if is_module and not isinstance(members, Plate):
            self.shown[self.catalogue.key(members)] = member_path
            self.write(depth, f"{head}Plate(×{plate.size}) of {type(members).__name__}")
            children = _children(members)
        else:
            self.write(depth, f"{head}Plate(×{plate.size})")
            children = _expand("[:]", members)
        for relative, child in children:
            inner_path = _join(member_path, relative) if is_module else path + relative
            self.show(child, inner_path, relative, depth + 1, inner_plates)


def tree(model: PyTree) -> str:
    """A readable text outline of a model, one line per module, parameter or derived value.

    **Arguments:**

    - `model`: any pytree holding [`scarlet_like.Parameter`][]s.

    **Returns:**

    The outline as a string (print it). Each parameter line reads `field = value  constraint
    prior=...  fixed`; a shared parameter is described at its first spot, marked `[shared ×n]`, and
    its other spots read `field -> name  [shared]`. Plates read `blobs: Plate(×10) of Blob` with the
    member structure once; stacked values show their stacked shape. Constants (arrays that are not
    Parameters) end in `const`; static fields are left out. Fields that a module works out from its
    others (an observation's PSF transforms and normalisation, named by the class attribute
    `__precomputed_fields__`) are folded into one line, `(precomputed: grid (FourierGrid: ky, kx,
    psf_fourier), log_normalisation)`. Priors read as they were written
    (`LogNormal(loc=0, scale=1).expand([2]).to_event(1)`).

    ```python
    print(sl.tree(model))
    # LightCurve
    #   t0 = -2  prior=Normal(loc=0, scale=5)
    #   width = 2.5  positive()  prior=LogNormal(loc=0, scale=1)
    #   peak = 0.2  interval(0.0, 1.0)  fixed
    ```
    """
    printing = _Printing(catalogue=_Catalogue(model))
    printing.show(model, "", "", 0, ())
    return "\n".join(printing.lines)

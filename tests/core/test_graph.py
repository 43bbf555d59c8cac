"""`graph` (graphviz DAG of a model) and `tree` (text outline of a model)."""

import re
import shutil

import graphviz
import jax.numpy as jnp
import numpyro.distributions as nd
import pytest

import scarlet_like as sl
from scarlet_like.core.graph import graph, tree


class Pair(sl.Module):
    free: sl.Parameter
    fixed: sl.Parameter


class Line(sl.Module):
    slope: sl.Parameter
    intercept: sl.Parameter


class LightCurve(sl.Module):
    t0: sl.Parameter
    width: sl.Parameter

    def __call__(self, t):
        return jnp.exp(-0.5 * ((t - self.t0) / self.width) ** 2)


class TwoLines(sl.Module):
    first: Line
    second: Line


class Blob(sl.Module):
    center: sl.Parameter
    flux: sl.Parameter


class Population(sl.Module):
    blobs: sl.Plate
    mu: sl.Parameter
    tau: sl.Parameter


class WithDerived(sl.Module):
    curve: LightCurve
    peak: sl.Derived


class WithMeta(sl.Module):
    line: Line
    reference: sl.Meta


def peak_flux(curve):
    return curve(0.0)


def pair():
    return Pair(
        free=sl.Parameter(1.23456, constraint=sl.constraints.positive()),
        fixed=sl.Parameter(jnp.zeros((5, 3)), fixed=True),
    )


def two_lines_sharing_intercept():
    intercept = sl.Parameter(0.5, prior=nd.Normal(0.0, 1.0))
    return TwoLines(
        first=Line(slope=sl.Parameter(1.0), intercept=intercept),
        second=Line(slope=sl.Parameter(2.0), intercept=intercept),
    )


def curve_and_peak():
    curve = LightCurve(t0=sl.Parameter(-2.0), width=sl.Parameter(2.5, constraint=sl.constraints.positive()))
    return WithDerived(curve=curve, peak=sl.Derived(peak_flux, curve))


def population(size=5):
    mu = sl.Parameter(0.0, prior=nd.Normal(0.0, 5.0), name="mu")
    tau = sl.Parameter(1.0, constraint=sl.constraints.positive(), name="tau")
    members = [
        Blob(
            center=sl.Parameter(jnp.array([float(i), 2.0])),
            flux=sl.Parameter(float(i), prior=sl.HierarchicalPrior(nd.Normal, mu, tau)),
        )
        for i in range(size)
    ]
    return Population(blobs=sl.stack(members), mu=mu, tau=tau)


def with_meta():
    hidden = Line(slope=sl.Parameter(3.0), intercept=sl.Parameter(4.0))
    return WithMeta(
        line=Line(slope=sl.Parameter(1.0), intercept=sl.Parameter(2.0)), reference=sl.Meta(hidden)
    )


# --------------------------------------------------------------------------------------
# Reading DOT text back
# --------------------------------------------------------------------------------------

_ATTRIBUTE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')
_EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")
_NODE = re.compile(r"^\s*(\w+) \[(.*)\]$")


def _attributes(text):
    return {key: value.strip('"') for key, value in _ATTRIBUTE.findall(text or "")}


def nodes(source):
    found = {}
    for line in source.splitlines():
        if " -> " in line:
            continue
        match = _NODE.match(line)
        if match and match.group(1) not in ("node", "edge", "graph"):
            assert match.group(1) not in found, f"node {match.group(1)} declared twice"
            found[match.group(1)] = _attributes(match.group(2))
    return found


def edges(source):
    found = []
    for line in source.splitlines():
        match = _EDGE.match(line)
        if match:
            found.append((match.group(1), match.group(2), _attributes(match.group(3))))
    return found


def node_labelled(source, first_line):
    """The one node whose label's first line is `first_line`."""
    matches = [
        node_id
        for node_id, attributes in nodes(source).items()
        if attributes.get("label", "").split("\\n")[0] == first_line
    ]
    assert len(matches) == 1, f"{len(matches)} nodes labelled {first_line!r}"
    return matches[0]


def cluster_block(source, name):
    """The text of `subgraph name { ... }` (clusters are not nested in these tests)."""
    start = source.index(f"subgraph {name} {{")
    return source[start : source.index("}", start)]


# --------------------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------------------


def test_free_and_fixed_parameters_are_drawn_differently():
    source = graph(pair()).source
    all_nodes = nodes(source)
    free = all_nodes[node_labelled(source, "free")]
    fixed = all_nodes[node_labelled(source, "fixed")]
    assert free["shape"] == fixed["shape"] == "ellipse"
    assert free["style"] == "filled"
    assert fixed["style"] == "dashed"
    assert free["label"] == "free\\n1.235\\npositive()"
    assert fixed["label"] == "fixed\\nfloat32[5, 3]\\nfixed"
    root = node_labelled(source, "model: Pair")
    assert all_nodes[root]["shape"] == "box"
    assert {(tail, head, attributes["label"]) for tail, head, attributes in edges(source)} == {
        (node_labelled(source, "free"), root, "free"),
        (node_labelled(source, "fixed"), root, "fixed"),
    }


def test_shared_parameter_is_one_node_with_an_edge_into_each_module():
    source = graph(two_lines_sharing_intercept()).source
    intercept = node_labelled(source, "first.intercept")
    assert "second.intercept" not in source
    into_modules = {
        (head, attributes["label"]) for tail, head, attributes in edges(source) if tail == intercept
    }
    assert into_modules == {
        (node_labelled(source, "first: Line"), "intercept"),
        (node_labelled(source, "second: Line"), "intercept"),
    }
    assert "prior=Normal(loc=0, scale=1)" in nodes(source)[intercept]["label"]


def assert_acyclic(source):
    successors = {}
    for tail, head, _ in edges(source):
        successors.setdefault(tail, set()).add(head)
    state = {}

    def visit(node):
        state[node] = "open"
        for nxt in successors.get(node, ()):
            assert state.get(nxt) != "open", f"cycle through {nxt}"
            if nxt not in state:
                visit(nxt)
        state[node] = "done"

    for node in list(successors):
        if node not in state:
            visit(node)


def test_derived_node_has_edges_from_its_inputs_and_into_its_holder():
    source = graph(curve_and_peak()).source
    all_nodes = nodes(source)
    derived = node_labelled(source, "peak: peak_flux")
    curve = node_labelled(source, "curve: LightCurve")
    root = node_labelled(source, "model: WithDerived")
    assert all_nodes[derived]["shape"] == "hexagon"
    assert [(tail, head) for tail, head, _ in edges(source) if head == derived] == [(curve, derived)]
    assert (derived, root) in {(tail, head) for tail, head, _ in edges(source)}
    # The module read by the derived value is drawn once: its parameters are not duplicated.
    assert sum(attributes["label"].endswith(": LightCurve") for attributes in all_nodes.values()) == 1
    assert [attributes["label"].split("\\n")[0] for attributes in all_nodes.values()].count("curve.t0") == 1
    assert_acyclic(source)


def test_module_copies_holding_the_same_parameters_stay_one_node():
    # set_values rebuilds the tree: `curve` and the derived value's input become distinct objects.
    model = sl.set_values(curve_and_peak(), {"curve.t0": jnp.asarray(1.0)})
    assert model.curve is not model.peak.inputs[0]
    source = graph(model).source
    assert sum(attributes["label"].endswith(": LightCurve") for attributes in nodes(source).values()) == 1
    assert nodes(source)[node_labelled(source, "curve.t0")]["label"] == "curve.t0\\n1"


def test_plate_is_a_cluster_with_members_drawn_once():
    source = graph(population(size=5)).source
    assert "subgraph cluster_blobs {" in source
    block = cluster_block(source, "cluster_blobs")
    assert re.search(r'label="blobs \(×5\)"', block)
    center = node_labelled(source, "blobs[:].center")
    flux = node_labelled(source, "blobs[:].flux")
    member = node_labelled(source, "blobs[:]: Blob")
    for node_id in (center, flux, member):
        assert f"\t{node_id} [" in block
    assert "float32[5, 2]" in nodes(source)[center]["label"]
    # Population parameters are one value for all members: outside the cluster.
    mu, tau = node_labelled(source, "mu"), node_labelled(source, "tau")
    assert f"\t{mu} [" not in block and f"\t{tau} [" not in block
    prior_edges = {
        (tail, head) for tail, head, attributes in edges(source) if attributes.get("label") == "prior"
    }
    assert prior_edges == {(mu, flux), (tau, flux)}
    assert all(
        attributes["style"] == "dashed"
        for tail, head, attributes in edges(source)
        if attributes.get("label") == "prior"
    )
    assert "prior=Normal(mu, tau)" in nodes(source)[flux]["label"]
    root = node_labelled(source, "model: Population")
    assert {tail for tail, head, _ in edges(source) if head == root} == {member, mu, tau}


def test_meta_is_a_note_that_is_not_opened():
    source = graph(with_meta()).source
    note = node_labelled(source, "reference: Meta(Line)")
    assert nodes(source)[note]["shape"] == "note"
    assert "\\n3\\n" not in source and "\\n4\\n" not in source
    assert len([node for node in nodes(source) if node.startswith("param")]) == 2


def test_node_ids_are_unique_stable_identifiers():
    model = population()
    first, second = graph(model).source, graph(model).source
    assert first == second
    ids = list(nodes(first))
    assert len(ids) == len(set(ids)) == 6
    assert all(re.fullmatch(r"[A-Za-z_]\w*", node_id) for node_id in ids)
    declared = set(ids)
    assert all(tail in declared and head in declared for tail, head, _ in edges(first))


def test_container_root_gets_a_node():
    line = Line(slope=sl.Parameter(1.0), intercept=sl.Parameter(0.0))
    source = graph([line, pair()], name="models").source
    root = node_labelled(source, "models: list")
    assert {(tail, attributes["label"]) for tail, head, attributes in edges(source) if head == root} == {
        (node_labelled(source, "[0]: Line"), "[0]"),
        (node_labelled(source, "[1]: Pair"), "[1]"),
    }


def test_source_needs_no_dot_binary(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert shutil.which("dot") is None
    digraph = graph(population())
    assert digraph.source.startswith("digraph model {")
    assert "cluster_blobs" in digraph.source
    with pytest.raises(graphviz.ExecutableNotFound):
        digraph.pipe(format="svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz `dot` program is not installed")
def test_renders_to_svg():
    base = population()
    # A lambda is labelled `<lambda>`, which must not be taken for an HTML-like label.
    model = Population(blobs=base.blobs, mu=base.mu, tau=sl.Derived(lambda x: x, base.tau))
    svg = graph(model).pipe(format="svg", encoding="utf-8")
    assert "<svg" in svg
    assert "blobs (×5)" in svg
    assert "tau: &lt;lambda&gt;" in svg


# --------------------------------------------------------------------------------------
# tree
# --------------------------------------------------------------------------------------


def test_tree_lists_parameters_with_values_constraints_and_flags():
    assert tree(pair()).splitlines() == [
        "Pair",
        "  free = 1.235  positive()",
        "  fixed = float32[5, 3]  fixed",
    ]


def test_tree_marks_shared_parameters_and_refers_back_to_the_first_spot():
    lines = tree(two_lines_sharing_intercept()).splitlines()
    assert lines == [
        "TwoLines",
        "  first: Line",
        "    slope = 1",
        "    intercept = 0.5  prior=Normal(loc=0, scale=1)  [shared ×2]",
        "  second: Line",
        "    slope = 2",
        "    intercept -> first.intercept  [shared]",
    ]


def test_tree_shows_derived_values_with_their_inputs():
    text = tree(curve_and_peak())
    assert "  peak: Derived 'peak_flux'\n    inputs[0] -> curve  [same LightCurve]" in text
    assert text.count("t0 = -2") == 1
    assert "width = 2.5  positive()" in text


def test_tree_shows_a_plate_once_with_its_size():
    text = tree(population(size=5))
    lines = text.splitlines()
    assert lines[1] == "  blobs: Plate(×5) of Blob"
    assert lines[2] == "    center = float32[5, 2]"
    assert lines[3] == "    flux = float32[5]  prior=Normal(mu, tau)"
    assert text.count("center =") == 1
    # The population parameters first appear inside the prior, marked as one value for all members.
    assert (
        "prior.args[0] 'mu' = 0  prior=Normal(loc=0, scale=5)  [shared ×2]  [one value for all 5 members]"
        in text
    )
    assert "  mu -> mu  [shared]" in lines
    assert "  tau -> tau  [shared]" in lines


def test_tree_shows_meta_and_constants_without_opening_them():
    class WithConstant(sl.Module):
        line: Line
        reference: sl.Meta
        weights: jnp.ndarray

    model = WithConstant(
        line=Line(slope=sl.Parameter(1.0), intercept=sl.Parameter(2.0)),
        reference=sl.Meta({"survey": "HSC"}),
        weights=jnp.ones((4, 4)),
    )
    assert tree(model).splitlines()[-2:] == ["  reference: Meta(dict)", "  weights = float32[4, 4]  const"]
    assert "HSC" not in tree(model)
    assert "slope = 3" not in tree(with_meta())


def test_tree_shows_the_distribution_inside_an_expanded_prior():
    model = Line(
        slope=sl.Parameter(jnp.ones(3), prior=nd.LogNormal(0.0, 1.0).expand([3]).to_event(1)),
        intercept=sl.Parameter(jnp.ones(2), prior=nd.HalfNormal(1.0).expand([2]).mask(False)),
    )
    text = tree(model)
    assert "slope = [1, 1, 1]  prior=LogNormal(loc=0, scale=1).expand([3]).to_event(1)" in text
    assert "ExpandedDistribution()" not in text
    # a wrapper with no numbers of its own shows what it wraps
    assert "prior=MaskedDistribution(HalfNormal(scale=1).expand([2]))" in text


class Smoothed(sl.Module):
    """A model holding a transform worked out from its other fields."""

    __precomputed_fields__ = ("kernel", "norm")

    width: sl.Parameter
    data: jnp.ndarray
    kernel: Line
    norm: jnp.ndarray


def test_tree_folds_precomputed_fields_into_one_line():
    model = Smoothed(
        width=sl.Parameter(2.0, constraint=sl.constraints.positive()),
        data=jnp.zeros((4, 4)),
        kernel=Line(slope=jnp.ones((8, 5)), intercept=jnp.zeros(5)),
        norm=jnp.asarray(3.0),
    )
    assert tree(model).splitlines() == [
        "Smoothed",
        "  width = 2  positive()",
        "  data = float32[4, 4]  const",
        "  (precomputed: kernel (Line: slope, intercept), norm)",
    ]
    # a precomputed field that holds a Parameter is the user's: shown in full
    fitted = Smoothed(
        width=sl.Parameter(2.0), data=jnp.zeros(3), kernel=Line(sl.Parameter(1.0), 0.0), norm=jnp.asarray(1.0)
    )
    assert "  kernel: Line" in tree(fitted).splitlines()
    assert "(precomputed: norm)" in tree(fitted)

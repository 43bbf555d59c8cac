"""Priors: one small interface over numpyro, distrax and anything with a `log_prob`.

A prior's *form* (the distribution class and its structure) is static: it is part of the model's tree
structure and so of every jit cache key. Its *numbers* (a Normal's `loc` and `scale`, say) are held as
ordinary array leaves that are never free. Two consequences that users rely on:

- models whose priors differ only in numbers (a prior centred on each blend's own detection) share one
  compiled program, and can be stacked and vmapped together;
- flattening a model never walks into a numpyro object: the distribution is rebuilt from its leaves only
  when a log-probability is needed, which inside `jit` happens once, at trace time.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as numpyro_distributions
from jaxtyping import Array, Float, PRNGKeyArray

from .constraints import float_array, is_distrax

__all__ = [
    "Prior",
    "NumpyroPrior",
    "DistraxPrior",
    "LogProbPrior",
    "SumPrior",
    "DistributionPrior",
    "as_prior",
]


class Prior(eqx.Module):
    """Interface of a prior on one parameter value.

    Subclasses implement `log_prob`, `sample`, `shape` (batch + event shape of the distribution) and
    `event_shape`. Use [`scarlet_like.priors.as_prior`][] to wrap a user's distribution.
    """

    #: Whether many entries are expected at a bound of their constraint where the posterior peaks (a
    #: free-form image's empty pixels at zero): fits do not report such entries as stuck at a bound.
    expects_values_at_bound: ClassVar[bool] = False

    def log_prob(self, value: Array) -> Float[Array, ""]:
        """Log density at `value`, summed over all elements (a scalar)."""
        raise NotImplementedError

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        """Draw `sample_shape` samples."""
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Batch + event shape of the distribution; `None` when it cannot be told (a `log_prob`-only
        object), and the shape of a parameter is then not checked against it."""
        raise NotImplementedError

    @property
    def event_shape(self) -> tuple[int, ...] | None:
        raise NotImplementedError


def _their_broadcasting() -> contextlib.AbstractContextManager[Any]:
    """Rank promotion allowed, whatever the user's setting, for a distribution's own code: numpyro's and
    distrax's broadcast arrays of different ranks (a `loc` of shape `(3,)` against draws `(n, 3)`)."""
    return jax.numpy_rank_promotion("allow")


class _Structure(NamedTuple):
    """How a distribution's leaves, held in a canonical order, go back into it: `treedef` unflattens
    `[arguments[i] for i in order]`."""

    treedef: Any
    order: tuple[int, ...]

    def __fingerprint__(self) -> Any:
        """What the structure means, the same in every process: the distribution's classes and its
        fields by name, each data field the index of its argument. (`treedef` and `order` follow the
        `set` order of numpyro's field names, which changes from one process to the next; a key for
        stored programs built from them would never match again.)"""
        return _described(jax.tree_util.tree_unflatten(self.treedef, list(self.order)))


def _described(obj: Any) -> Any:
    """`obj` with every numpyro distribution in it as `(class, ((field name, value), ...))`, fields
    sorted by name; other values as they are."""
    if _is_numpyro_distribution(obj):
        kind = type(obj)
        names = sorted(set(kind.gather_pytree_data_fields()) | set(kind.gather_pytree_aux_fields()))
        return kind, tuple((name, _described(obj.__dict__.get(name))) for name in names)
    if isinstance(obj, tuple | list):
        return type(obj)(_described(item) for item in obj)
    return obj


def _split(distribution: Any) -> tuple[list[Any], _Structure] | None:
    """Leaves and structure of a distribution, or None if it cannot be split into array leaves.

    The leaves are held sorted by their names (`.base_dist.loc`): numpyro flattens a distribution's
    fields in the order of a `set` of their names, which changes from one Python process to the next
    (string hashing is randomised), and a model saved by one process must load in another.
    """
    try:
        leaves, treedef = jax.tree_util.tree_flatten(distribution)
        hash(treedef)
    except Exception:  # noqa: BLE001 - any failure means "keep it whole"
        return None
    numeric = (jax.Array, np.ndarray, np.generic, float, int)
    if not leaves or not all(isinstance(leaf, numeric) and not isinstance(leaf, bool) for leaf in leaves):
        return None
    order = _canonical_order(distribution, leaves)
    arguments = [float_array(leaves[i], strong=True) for i in order]
    # position in `arguments` of each leaf in the flattening order
    back = tuple(int(i) for i in np.argsort(order))
    return arguments, _Structure(treedef, back)


def _is_numpyro_distribution(obj: Any) -> bool:
    return callable(getattr(type(obj), "gather_pytree_data_fields", None))


def _named_leaves(obj: Any, prefix: str) -> list[tuple[str, Any]]:
    """`(name, leaf)` for the leaves of `obj` in the order `jax.tree_util.tree_flatten` gives them,
    numpyro distributions' fields named by their own names."""
    if _is_numpyro_distribution(obj):
        named = []
        # numpyro flattens its fields in this order (that of a `set`, fixed within a process)
        for field in type(obj).gather_pytree_data_fields():
            named += _named_leaves(obj.__dict__.get(field), f"{prefix}.{field}")
        return named
    flat, _ = jax.tree_util.tree_flatten_with_path(
        obj, is_leaf=lambda node: node is not obj and _is_numpyro_distribution(node)
    )
    named = []
    for path, leaf in flat:
        name = prefix + jax.tree_util.keystr(path)
        named += _named_leaves(leaf, name) if _is_numpyro_distribution(leaf) else [(name, leaf)]
    return named


def _canonical_order(distribution: Any, leaves: list[Any]) -> list[int]:
    """Indices of `leaves` (in flattening order) sorted by the leaves' names; the flattening order
    itself where the names cannot be matched to the leaves.

    Names go with leaves by position, not by identity: two fields holding one object (a prior's
    `loc` given twice) would otherwise take each other's names in the order of the `set`, and the
    structure, the same model, would differ from one process to the next."""
    try:
        named = _named_leaves(distribution, "")
    except Exception:  # noqa: BLE001 - an unusual distribution keeps the order it flattens to
        return list(range(len(leaves)))
    names = [name for name, _ in named]
    if len(named) != len(leaves) or any(
        leaf is not mine for (_, leaf), mine in zip(named, leaves, strict=True)
    ):
        return list(range(len(leaves)))
    if len(set(names)) != len(names):
        return list(range(len(leaves)))
    return sorted(range(len(leaves)), key=names.__getitem__)


class DistributionPrior(Prior):
    """A prior that builds a distribution (numpyro's or distrax's interface) and asks it."""

    @property
    def distribution(self) -> Any:
        raise NotImplementedError

    def log_prob(self, value: Array) -> Float[Array, ""]:
        with _their_broadcasting():
            return jnp.sum(self.distribution.log_prob(value))

    @property
    def shape(self) -> tuple[int, ...]:
        distribution = self.distribution
        return tuple(distribution.batch_shape) + tuple(distribution.event_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.distribution.event_shape)


class NumpyroPrior(DistributionPrior):
    """A numpyro distribution, held as its array arguments plus its static structure.

    **Arguments:**

    - `distribution`: a `numpyro.distributions.Distribution`.
    """

    arguments: list[Array]
    structure: Any = eqx.field(static=True)

    def __init__(self, distribution: Any):
        split = _split(distribution)
        if split is None:
            raise TypeError(f"cannot split {distribution!r} into array leaves")
        self.arguments, self.structure = split

    @property
    def distribution(self) -> Any:
        leaves = [self.arguments[i] for i in self.structure.order]
        return jax.tree_util.tree_unflatten(self.structure.treedef, leaves)

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        with _their_broadcasting():
            return self.distribution.sample(key, sample_shape)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as the distribution, split again where it is unpickled: the structure holds a
        # treedef whose field order (numpyro's, a `set` of names) is only valid in the process that
        # made it. Dask and multiprocessing ship models to other processes this way.
        return type(self), (self.distribution,)

    def __repr__(self) -> str:
        return _short_repr(self.distribution)


class DistraxPrior(NumpyroPrior):
    """A distrax distribution, held like [`scarlet_like.priors.NumpyroPrior`][].

    distrax names the random key `seed`; this adapter hides that difference.

    **Arguments:**

    - `distribution`: a `distrax.Distribution`.
    """

    # Written out for type checkers, which would otherwise give it the fields as arguments (Equinox
    # does not: a subclass without fields of its own inherits `__init__`).
    def __init__(self, distribution: Any):
        super().__init__(distribution)

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        with _their_broadcasting():
            return self.distribution.sample(seed=key, sample_shape=sample_shape)


class LogProbPrior(Prior):
    """Any object with a `log_prob(value)` method, held whole as static metadata.

    It is compared by identity in jit cache keys: reuse the same object to reuse compiled code. Give it
    `batch_shape`/`event_shape` attributes to have its shape checked, and `sample(key, sample_shape)` to
    draw from it.
    """

    distribution: Any = eqx.field(static=True)

    def log_prob(self, value: Array) -> Float[Array, ""]:
        with _their_broadcasting():
            return jnp.sum(self.distribution.log_prob(value))

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        if not hasattr(self.distribution, "sample"):
            raise TypeError(f"prior {self.distribution!r} has no `sample` method")
        with _their_broadcasting():
            return self.distribution.sample(key, sample_shape)

    @property
    def shape(self) -> tuple[int, ...] | None:
        batch = getattr(self.distribution, "batch_shape", None)
        event = getattr(self.distribution, "event_shape", None)
        if batch is None or event is None:
            return None
        return tuple(batch) + tuple(event)

    @property
    def event_shape(self) -> tuple[int, ...] | None:
        event = getattr(self.distribution, "event_shape", None)
        return None if event is None else tuple(event)

    def __repr__(self) -> str:
        return _short_repr(self.distribution)


class SumPrior(Prior):
    """Several priors on one value, their log densities added (their densities multiplied,
    unnormalised): a learned prior with a hand-made penalty on top, say.

    Its log density's value is known when every term's is (see `scarlet_like.ScorePrior`), and a fit
    expects values at a bound of the constraint when any term does. It cannot be sampled from.

    **Arguments:** the priors (each a [`scarlet_like.Prior`][] or anything
    [`scarlet_like.priors.as_prior`][] wraps), at least one.
    """

    terms: tuple[Prior, ...]

    def __init__(self, *terms: Any):
        wrapped = tuple(as_prior(term) for term in terms)
        if not wrapped or any(term is None for term in wrapped):
            raise ValueError(f"SumPrior: give one prior or more, got {terms!r}")
        self.terms = tuple(term for term in wrapped if term is not None)

    def log_prob(self, value: Array) -> Float[Array, ""]:
        total = self.terms[0].log_prob(value)
        for term in self.terms[1:]:
            total = total + term.log_prob(value)
        return total

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        raise TypeError(
            "SumPrior: a product of densities cannot be sampled from term by term; start the parameter "
            "from the data or a fit"
        )

    @property  # type: ignore[misc]
    def expects_values_at_bound(self) -> bool:  # type: ignore[override]
        return any(getattr(term, "expects_values_at_bound", False) for term in self.terms)

    @property
    def has_log_density(self) -> bool:
        return all(bool(getattr(term, "has_log_density", True)) for term in self.terms)

    @property
    def shape(self) -> tuple[int, ...] | None:
        return next((term.shape for term in self.terms if term.shape is not None), None)

    @property
    def event_shape(self) -> tuple[int, ...] | None:
        return next((term.event_shape for term in self.terms if term.event_shape is not None), None)


def as_prior(obj: Any) -> Prior | None:
    """Wrap a user's distribution as a [`scarlet_like.Prior`][].

    **Arguments:**

    - `obj`: `None`, a `Prior`, a numpyro distribution, a distrax distribution, or any object with a
      `log_prob` method.

    **Returns:**

    `None` for `None`, else a `Prior`.
    """
    if obj is None or isinstance(obj, Prior):
        return obj

    if isinstance(obj, numpyro_distributions.Distribution):
        return NumpyroPrior(obj) if _split(obj) is not None else LogProbPrior(obj)
    if is_distrax(obj, "Distribution"):
        return DistraxPrior(obj) if _split(obj) is not None else LogProbPrior(obj)
    if callable(getattr(obj, "log_prob", None)):
        return LogProbPrior(obj)
    raise TypeError(
        f"a prior must be a numpyro or distrax distribution, or have a `log_prob` method; "
        f"got {type(obj).__name__}"
    )


def _short_repr(distribution: Any) -> str:
    """`Normal(loc=0.0, scale=1.0)`-style text, with arrays summarised."""
    name = type(distribution).__name__
    base = getattr(distribution, "base_dist", None)
    if name == "Independent" and base is not None:
        return f"{_short_repr(base)}.to_event({distribution.reinterpreted_batch_ndims})"
    if name == "ExpandedDistribution" and base is not None:
        # as the user wrote it: the distribution inside, widened to a shape
        return f"{_short_repr(base)}.expand({list(distribution.batch_shape)})"
    parts = []
    for arg in getattr(distribution, "arg_constraints", {}) or {}:
        value = getattr(distribution, arg, None)
        if value is None:
            continue
        parts.append(f"{arg}={_short_value(value)}")
    if not parts and base is not None:
        # a wrapper without numbers of its own (masked, folded, ...): show what it wraps
        return f"{name}({_short_repr(base)})"
    return f"{name}({', '.join(parts)})"


def _short_value(value: Any) -> str:
    if isinstance(value, jax.core.Tracer):
        return f"{value.dtype}{list(value.shape)}"
    array = np.asarray(value)
    if array.size == 1:
        return f"{array.item():.4g}"
    if array.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in array.ravel()) + "]"
    return f"{array.dtype}{list(array.shape)}"

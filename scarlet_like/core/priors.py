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

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["Prior", "NumpyroPrior", "DistraxPrior", "LogProbPrior", "HierarchicalPrior", "as_prior"]


class Prior(eqx.Module):
    """Interface of a prior on one parameter value.

    Subclasses implement `log_prob`, `sample`, `shape` (batch + event shape of the distribution) and
    `event_shape`. Use [`scarlet_like.core.priors.as_prior`][] to wrap a user's distribution.
    """

    def log_prob(self, value: Array) -> Float[Array, ""]:
        """Log density at `value`, summed over all elements (a scalar)."""
        raise NotImplementedError

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        """Draw `sample_shape` samples."""
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def event_shape(self) -> tuple[int, ...]:
        raise NotImplementedError


def _as_leaf_array(leaf: Any) -> Any:
    """Arguments become strongly typed floating arrays, like parameter values."""
    array = jnp.asarray(leaf)
    if not jnp.issubdtype(array.dtype, jnp.inexact):
        array = array.astype(jnp.asarray(0.0).dtype)
    return jnp.array(array, dtype=array.dtype)


def _split(distribution: Any) -> tuple[list[Any], Any] | None:
    """Leaves and structure of a distribution, or None if it cannot be split into array leaves."""
    try:
        leaves, treedef = jax.tree_util.tree_flatten(distribution)
        hash(treedef)
    except Exception:  # noqa: BLE001 - any failure means "keep it whole"
        return None
    numeric = (jax.Array, np.ndarray, np.generic, float, int)
    if not leaves or not all(isinstance(leaf, numeric) and not isinstance(leaf, bool) for leaf in leaves):
        return None
    return [_as_leaf_array(leaf) for leaf in leaves], treedef


class NumpyroPrior(Prior):
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
        return jax.tree_util.tree_unflatten(self.structure, self.arguments)

    def log_prob(self, value: Array) -> Float[Array, ""]:
        return jnp.sum(self.distribution.log_prob(value))

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        return self.distribution.sample(key, sample_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        distribution = self.distribution
        return tuple(distribution.batch_shape) + tuple(distribution.event_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.distribution.event_shape)

    def __repr__(self) -> str:
        return _short_repr(self.distribution)


class DistraxPrior(NumpyroPrior):
    """A distrax distribution, held like [`scarlet_like.core.priors.NumpyroPrior`][].

    distrax names the random key `seed`; this adapter hides that difference.
    """

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        return self.distribution.sample(seed=key, sample_shape=sample_shape)


class LogProbPrior(Prior):
    """Any object with a `log_prob(value)` method, held whole as static metadata.

    It is compared by identity in jit cache keys: reuse the same object to reuse compiled code. Give it
    `batch_shape`/`event_shape` attributes to have its shape checked, and `sample(key, sample_shape)` to
    draw from it.
    """

    distribution: Any = eqx.field(static=True)

    def log_prob(self, value: Array) -> Float[Array, ""]:
        return jnp.sum(self.distribution.log_prob(value))

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        if not hasattr(self.distribution, "sample"):
            raise TypeError(f"prior {self.distribution!r} has no `sample` method")
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


class HierarchicalPrior(Prior):
    """A prior whose arguments are themselves parameters (or derived values) of the model.

    **Arguments:**

    - `family`: a distribution class or any callable returning a distribution (numpyro, distrax, or
      anything with `log_prob`), e.g. `numpyro.distributions.Normal`.
    - `*args`, `**kwargs`: its arguments: [`scarlet_like.Parameter`][]s, [`scarlet_like.Derived`][]
      values, arrays or numbers.

    Each time the log density is evaluated, the arguments are resolved to their current values and the
    distribution is built from them. Use the same Parameter objects elsewhere in the model (population
    mean and scale as fields of the top-level model, say) and they stay one free parameter each:

    ```python
    mu = sl.Parameter(0.0, prior=nd.Normal(0.0, 5.0))
    tau = sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.HalfCauchy(5.0))
    theta = sl.Parameter(jnp.zeros(8), prior=sl.HierarchicalPrior(nd.Normal, mu, tau))
    ```
    """

    family: Any = eqx.field(static=True)
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __init__(self, family: Any, *args: Any, **kwargs: Any):
        if not callable(family):
            raise TypeError(f"HierarchicalPrior: `family` must be callable, got {type(family).__name__}")
        self.family = family
        self.args = tuple(args)
        self.kwargs = dict(kwargs)

    @property
    def distribution(self) -> Any:
        """The distribution at the arguments' current values."""
        from .tree import resolve

        args, kwargs = resolve((self.args, self.kwargs))
        return self.family(*args, **kwargs)

    def log_prob(self, value: Array) -> Float[Array, ""]:
        return jnp.sum(self.distribution.log_prob(value))

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        distribution = self.distribution
        if _is_distrax(distribution):
            return distribution.sample(seed=key, sample_shape=sample_shape)
        return distribution.sample(key, sample_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        distribution = self.distribution
        return tuple(distribution.batch_shape) + tuple(distribution.event_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.distribution.event_shape)

    def __repr__(self) -> str:
        name = getattr(self.family, "__name__", repr(self.family))
        return f"{name}(<{len(self.args) + len(self.kwargs)} linked arguments>)"


def _is_distrax(obj: Any) -> bool:
    try:
        import distrax
    except ImportError:
        return False
    return isinstance(obj, distrax.Distribution)


def as_prior(obj: Any) -> Prior | None:
    """Wrap a user's distribution as a [`scarlet_like.core.priors.Prior`][].

    **Arguments:**

    - `obj`: `None`, a `Prior`, a numpyro distribution, a distrax distribution, or any object with a
      `log_prob` method.

    **Returns:**

    `None` for `None`, else a `Prior`.
    """
    if obj is None or isinstance(obj, Prior):
        return obj
    import numpyro.distributions as numpyro_distributions

    if isinstance(obj, numpyro_distributions.Distribution):
        return NumpyroPrior(obj) if _split(obj) is not None else LogProbPrior(obj)
    if _is_distrax(obj):
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
    parts = []
    for arg in getattr(distribution, "arg_constraints", {}) or {}:
        value = getattr(distribution, arg, None)
        if value is None:
            continue
        parts.append(f"{arg}={_short_value(value)}")
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

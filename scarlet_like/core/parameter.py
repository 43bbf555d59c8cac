"""`Parameter`: a value with its prior, constraint and role in a model."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array

from .constraints import Constraint, NumbersLike, as_constraint, float_array
from .priors import Prior, _short_value, as_prior

__all__ = ["Parameter", "ParameterError", "is_parameter"]


class ParameterError(ValueError):
    """Bad parameter input: the message names the parameter at fault."""


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


class Parameter(eqx.Module):
    """A model value with its prior, its constraint, and whether it is free.

    **Arguments:**

    - `value`: the initial value, in constrained space; converted to a floating JAX array.
    - `prior`: a numpyro or distrax distribution, or anything with `log_prob`; `None` means flat.
    - `constraint`: a [`scarlet_like.constraints`][] bijector, a numpyro constraint or transform, or a
      distrax bijector; `None` means unconstrained.
    - `fixed`: if `True` the value is a constant of the model, not an entry of the flat vector.
    - `name`: a display name; by default a parameter is named by its path in the model
      (`sources[0].center`).

    Only `value` (and a prior's numeric arguments) are pytree leaves; the constraint, the prior's form,
    `fixed` and `name` are static metadata. The same `Parameter` placed in several spots of a model is
    one free entry: each Parameter is given a unique identity (`token`) when it is made, static metadata
    that `eqx.tree_at`, `jax.tree.map`, copies, stacking and `sl.save`/`sl.load` all keep.

    Two models built separately therefore differ in their Parameters' identities, and `jax.jit` traces
    a function of each anew. The framework's own compiled functions (`sl.fit`, `sl.sample`,
    `sl.fit_many`, ...) number identities canonically first (see
    [`scarlet_like.canonical_tokens`][]) and compile once for models built the same way.
    """

    value: Array | None
    prior: Prior | None
    constraint: Constraint = eqx.field(static=True)
    fixed: bool = eqx.field(static=True)
    name: str | None = eqx.field(static=True)
    # Identity given at construction: every spot holding a copy of this Parameter is one parameter.
    token: str = eqx.field(static=True)

    def __init__(
        self,
        value: NumbersLike,
        *,
        prior: Any = None,
        constraint: Any = None,
        fixed: bool = False,
        name: str | None = None,
    ):
        if isinstance(value, Parameter):
            raise ParameterError(
                f"Parameter{_label(name)}: the value is itself a Parameter; pass it directly instead"
            )
        if name is not None and not isinstance(name, str):
            raise ParameterError(f"Parameter name must be a string, got {type(name).__name__}")
        self.constraint = as_constraint(constraint)
        self.prior = as_prior(prior)
        self.fixed = bool(fixed)
        self.name = name
        self.token = uuid.uuid4().hex
        try:
            self.value = float_array(value, strong=True)
        except TypeError as error:
            raise ParameterError(
                f"Parameter{_label(name)}: cannot convert {type(value).__name__} to an array"
            ) from error
        _check_value(self.value, self.constraint, self.prior, describe(self))

    def unconstrained(self) -> Array:
        """The value mapped to unconstrained space by the constraint's inverse."""
        return self.constraint.inverse(self.value)

    def __repr__(self) -> str:
        return describe(self, value=True)


def is_parameter(node: Any) -> bool:
    """Whether `node` is a [`scarlet_like.Parameter`][] (used as `is_leaf` when walking models)."""
    return isinstance(node, Parameter)


def replace(parameter: Parameter, **changes: Any) -> Parameter:
    """A copy of `parameter` with some fields changed, without re-running validation."""
    new = object.__new__(Parameter)
    for field in dataclasses.fields(Parameter):
        object.__setattr__(new, field.name, changes.get(field.name, getattr(parameter, field.name)))
    return new


def _label(name: str | None) -> str:
    return f" '{name}'" if name else ""


def describe(parameter: Parameter, *, value: bool = False) -> str:
    """`Parameter(1.5, positive(), prior=LogNormal(...), name='r_half')`; the value only if asked."""
    parts = []
    if value and parameter.value is not None:
        if _is_concrete(parameter.value):
            parts.append(_short_value(parameter.value))
        else:
            parts.append(f"{parameter.value.dtype}{list(parameter.value.shape)}")
    if str(parameter.constraint) != "real()":
        parts.append(str(parameter.constraint))
    if parameter.prior is not None:
        parts.append(f"prior={parameter.prior!r}")
    if parameter.fixed:
        parts.append("fixed=True")
    if parameter.name:
        parts.append(f"name={parameter.name!r}")
    return f"Parameter({', '.join(parts)})"


def _check_value(value: Array, constraint: Constraint, prior: Prior | None, who: str) -> None:
    """Early, named errors for values a model cannot start from."""
    try:
        constraint.unconstrained_shape(tuple(value.shape))
    except ValueError as error:
        raise ParameterError(f"{who}: {error}") from None
    if prior is not None:
        _check_prior_shape(tuple(value.shape), prior, who)
    if not _is_concrete(value):
        return
    host = np.asarray(value)
    if not np.all(np.isfinite(host)):
        bad = np.argwhere(~np.isfinite(host))
        where = "" if host.ndim == 0 else f" at index {tuple(int(i) for i in bad[0])}"
        raise ParameterError(f"{who}: initial value is not finite{where}: {_short_value(host)}")
    if not bool(constraint.check(value)):
        raise ParameterError(
            f"{who}: initial value {_short_value(host)} is outside the support of {constraint}"
        )


def _check_prior_shape(value_shape: tuple[int, ...], prior: Prior, who: str) -> None:
    try:
        prior_shape = prior.shape
        event_shape = prior.event_shape
    except Exception as error:  # a hierarchical prior whose arguments do not fit its family
        raise ParameterError(f"{who}: the prior {prior!r} cannot be built: {error}") from error
    if prior_shape is None or event_shape is None:
        return
    n_event = len(event_shape)
    trailing = value_shape[len(value_shape) - n_event :] if n_event else ()
    mismatch = n_event > len(value_shape) or trailing != tuple(event_shape)
    if not mismatch:
        try:
            mismatch = np.broadcast_shapes(tuple(prior_shape), value_shape) != value_shape
        except ValueError:
            mismatch = True
    if mismatch:
        raise ParameterError(
            f"{who}: prior {prior!r} has batch+event shape {tuple(prior_shape)} "
            f"(event shape {tuple(event_shape)}), which does not match the value's shape {value_shape}"
        )

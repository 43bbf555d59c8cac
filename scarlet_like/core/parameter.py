"""`Parameter`: a value with its prior, constraint and role in a model."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array

from .constraints import Constraint, NumbersLike, as_constraint, float_array
from .priors import Prior, _short_value, as_prior

__all__ = ["Parameter", "ParameterError", "converting", "deferred_checks", "is_parameter"]


class ParameterError(ValueError):
    """Bad parameter input: the message names the parameter at fault."""


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


class Parameter(eqx.Module):
    """A model value with its prior, its constraint, and whether it is free.

    **Arguments:**

    - `value`: the initial value, in constrained space; converted to a floating JAX array. Inside
      `with sl.Scene(frame):`, also an astropy `SkyCoord`, which becomes its `(y, x)` position in the
      frame's pixels.
    - `prior`: a numpyro or distrax distribution, or anything with `log_prob`; `None` means flat.
      Inside `with sl.Scene(frame):`, a position's prior may be an astropy `Quantity` angle: the
      standard deviation on the sky (one width, or two for `(Δα cos δ, Δδ)`) of a Gaussian around the
      value, carried into the frame's pixels by its WCS.
    - `constraint`: a [`scarlet_like.constraints`][] bijector, a numpyro constraint or transform, or a
      distrax bijector; `None` means unconstrained.
    - `fixed`: if `True` the value is a constant of the model, not an entry of the flat vector.
    - `name`: a display name; by default a parameter is named by its path in the model
      (`sources[0].center`).

    Only `value` (and a prior's numeric arguments) are pytree leaves; the constraint, the prior's form,
    `fixed` and `name` are static metadata. The same `Parameter` placed in several spots of a model is
    one free entry: each Parameter is given a unique identity (`token`) when it is made, static metadata
    that `eqx.tree_at`, `jax.tree.map`, copies, stacking and `sl.save`/`sl.load` all keep.

    A value the Parameter cannot start from (outside the constraint's support, not finite, of a shape
    the constraint or the prior does not take) raises a [`scarlet_like.ParameterError`][] naming the
    parameter: at once for a Parameter given a `name=`, otherwise as soon as its path in a model is
    known (when the [`scarlet_like.Module`][] holding it is built, when a `Source` joins a scene, or
    when the model is walked: `sl.fit`, `sl.get_values`, ...), as `sources[2].morphology.r_half: ...`.

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
    # What is wrong with the initial value, for a Parameter that has no name to say it with yet: raised
    # with the parameter's path by whatever first places it in a model (see `raise_problems`).
    problem: str | None = eqx.field(static=True)

    def __init__(
        self,
        # numbers, or a value a builder's converter turns into numbers (a SkyCoord inside a Scene, see
        # `converting`): what is left unconverted is checked below, with a ParameterError
        value: NumbersLike | Any,
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
        converters = _CONVERTERS.get()
        if converters:
            value, prior = converters[-1](value, prior, f"Parameter{_label(name)}")
        self.constraint = as_constraint(constraint)
        self.prior = as_prior(prior)
        self.fixed = bool(fixed)
        self.name = name
        self.token = uuid.uuid4().hex
        try:
            self.value = float_array(value, strong=True)
        except TypeError as error:
            raise ParameterError(
                f"Parameter{_label(name)}: cannot convert {type(value).__name__} to an array (values of "
                "other kinds are converted only where a builder knows them: a sky coordinate inside "
                "`with sl.Scene(frame):`, with the frame's WCS)"
            ) from error
        problem = value_problem(self.value, self.constraint, self.prior)
        if problem is not None and name is not None:
            raise ParameterError(f"{describe(self)}: {problem}")
        # Without a name, the culprit cannot be named yet: the model that holds it names its path.
        self.problem = problem

    def unconstrained(self) -> Array:
        """The value mapped to unconstrained space by the constraint's inverse."""
        return self.constraint.inverse(known_value(self))

    def __repr__(self) -> str:
        return describe(self, value=True)


def known_value(parameter: Parameter) -> Array:
    """`parameter.value`, which only the rest of a partitioned model (see [`scarlet_like.partition`][])
    leaves out (`None`): what asks for a value never meets such a Parameter, and says so if it does."""
    if parameter.value is None:
        raise ValueError(f"{describe(parameter)} has no value: it is held in the free part of a partition")
    return parameter.value


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
    problem = value_problem(value, constraint, prior)
    if problem is not None:
        raise ParameterError(f"{who}: {problem}")


def value_problem(value: Array, constraint: Constraint, prior: Prior | None) -> str | None:
    """What makes `value` a value a model cannot start from, with the fix, in words; None if nothing.

    Shapes are checked always, the numbers only when the value is concrete (not under `jit`).
    """
    try:
        constraint.unconstrained_shape(tuple(value.shape))
    except ValueError as error:
        return f"{error} (give a value of a shape {constraint} takes, or another constraint)"
    if prior is not None:
        problem = _prior_shape_problem(tuple(value.shape), prior)
        if problem is not None:
            return problem
    if not _is_concrete(value):
        return None
    host = np.asarray(value)
    if not np.all(np.isfinite(host)):
        bad = np.argwhere(~np.isfinite(host))
        where = "" if host.ndim == 0 else f" at index {tuple(int(i) for i in bad[0])}"
        return f"initial value is not finite{where}: {_short_value(host)} (give a finite starting value)"
    if not bool(constraint.check(value)):
        subnormal = ""
        if np.issubdtype(host.dtype, np.floating):
            tiny = np.finfo(host.dtype).tiny
            if np.any((host != 0) & (np.abs(host) < tiny)):
                # XLA on CPU flushes subnormals to zero: 1e-45 > 0 is False there
                subnormal = f"; values below {tiny:.3g} in magnitude count as 0 in {host.dtype} computations"
        return (
            f"initial value {_short_value(host)} is outside the support of {constraint}{subnormal} (start "
            "it inside the support, or give the parameter a constraint that allows this value)"
        )
    return None


def _prior_shape_problem(value_shape: tuple[int, ...], prior: Prior) -> str | None:
    try:
        prior_shape = prior.shape
        event_shape = prior.event_shape
    except Exception as error:  # a hierarchical prior whose arguments do not fit its family
        return f"the prior {prior!r} cannot be built: {error}"
    if prior_shape is None or event_shape is None:
        return None
    n_event = len(event_shape)
    trailing = value_shape[len(value_shape) - n_event :] if n_event else ()
    mismatch = n_event > len(value_shape) or trailing != tuple(event_shape)
    if not mismatch:
        try:
            mismatch = np.broadcast_shapes(tuple(prior_shape), value_shape) != value_shape
        except ValueError:
            mismatch = True
    if not mismatch:
        return None
    if value_shape:
        fix = (
            f"give the prior the value's shape, e.g. `.expand({list(value_shape)}).to_event"
            f"({len(value_shape)})` on a scalar distribution"
        )
    else:
        fix = "give a prior of one number, a scalar distribution without `.expand`"
    return (
        f"prior {prior!r} has batch+event shape {tuple(prior_shape)} (event shape {tuple(event_shape)}), "
        f"which does not match the value's shape {value_shape} ({fix}, or a value of shape "
        f"{tuple(prior_shape)})"
    )


#: `(value, prior, who) -> (value, prior)`: turns a Parameter's value and prior of a kind the core
#: does not know into ones it does (`who` names the Parameter in errors), and returns the others as
#: they are.
ValueConverter = Callable[[Any, Any, str], tuple[Any, Any]]

# Converters set by builders, innermost last (a `Scene`'s `with` block converts sky coordinates with
# its frame's WCS). A context variable, not a global: each thread and task sees its own.
_CONVERTERS: contextvars.ContextVar[tuple[ValueConverter, ...]] = contextvars.ContextVar(
    "scarlet_like_value_converters", default=()
)


@contextlib.contextmanager
def converting(converter: ValueConverter) -> Iterator[None]:
    """Within this block, every new Parameter's value and prior first go through `converter`.

    For builders whose context gives meaning to values the core does not know: inside
    `with sl.Scene(frame):`, a `SkyCoord` becomes a position in the frame's pixels.
    """
    reset = _CONVERTERS.set((*_CONVERTERS.get(), converter))
    try:
        yield
    finally:
        _CONVERTERS.reset(reset)


# How many scene-like builders are gathering sub-models right now, in this thread or task: while one
# is, a module's construction leaves problems of its parameters to the builder, which knows their full
# paths (`sources[2].morphology.r_half`, not `r_half`). A context variable, not a global.
_DEFERRING: contextvars.ContextVar[int] = contextvars.ContextVar("scarlet_like_deferring", default=0)


@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Within this block, modules built leave their parameters' problems to whoever gathers them.

    For builders such as a `Scene`'s `with` block, which then call
    `raise_problems` with the full paths.
    """
    reset = _DEFERRING.set(_DEFERRING.get() + 1)
    try:
        yield
    finally:
        _DEFERRING.reset(reset)


def deferring() -> bool:
    """Whether a builder has asked for parameter problems to be left to it (`deferred_checks`)."""
    return _DEFERRING.get() > 0


def raise_problems(found: Iterator[tuple[str, Parameter]], prefix: str = "") -> None:
    """Raise a `ParameterError` for the first `(path, parameter)` whose value it cannot start from.

    The message names the parameter by its path after `prefix` (`sources[2]` + `morphology.r_half`).
    A parameter whose value has been replaced
    since (by `eqx.tree_at`, say) is checked again, and passes if its value is now good.
    """
    for path, parameter in found:
        if parameter.problem is None or parameter.value is None:
            continue
        problem = value_problem(parameter.value, parameter.constraint, parameter.prior)
        if problem is not None:
            path = path or ("" if prefix else "value")
            where = prefix + path if not prefix or not path or path.startswith("[") else f"{prefix}.{path}"
            raise ParameterError(f"{where}: {problem}")

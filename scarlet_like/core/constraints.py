"""Constraints: bijections from unconstrained space onto the support of a parameter.

A [`scarlet_like.constraints.Constraint`][] maps an unconstrained array `u` (any real
values) onto a constrained array `x = forward(u)` lying inside a support (positive numbers,
an interval, the unit disk, the simplex, ...). Optimisers and samplers work on `u`; the
model sees `x`; a prior density on `x` is carried over to `u` with
`log_abs_det_jacobian(u)`.

Constraints are *static metadata* of a parameter: they live in static fields of Equinox
modules and become part of the cache key of `jax.jit`. Every constraint is therefore an
immutable, hashable value object, and two constraints built the same way compare equal,
so that two models built the same way share their compiled code:

```python
interval(0.5, 6.0) == interval(0.5, 6.0)  # True, and the hashes agree
```

The maps themselves come from `numpyro.distributions.transforms` (via `biject_to`); a
constraint only stores a hashable description (floats, tuples) and builds the numpyro
transform when it is used, in the dtype of the input.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike
from numpyro.distributions import constraints as numpyro_constraints
from numpyro.distributions import transforms as numpyro_transforms
from numpyro.distributions.transforms import biject_to

__all__ = [
    "Constraint",
    "Real",
    "Positive",
    "GreaterThan",
    "LessThan",
    "Interval",
    "UnitDisk",
    "Disk",
    "Simplex",
    "Ordered",
    "Monotonic",
    "NumpyroConstraint",
    "NumpyroTransform",
    "DistraxBijector",
    "UnitDiskTransform",
    "unit_disk_support",
    "real",
    "positive",
    "greater_than",
    "less_than",
    "interval",
    "unit_disk",
    "disk",
    "simplex",
    "ordered",
    "monotonic",
    "NumbersLike",
    "float_array",
    "as_constraint",
]


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


#: Numbers as users give them: a number, an array, or a (nested) list or tuple of numbers (jaxtyping's
#: `ArrayLike` leaves out the lists and tuples that `jnp.asarray` takes).
NumbersLike = ArrayLike | list[Any] | tuple[Any, ...]


def float32_array(value: NumbersLike) -> Array:
    """A host value (a number, a NumPy array) as a float32 JAX array, converted on the host: `jnp.asarray`
    of a host value compiles a small program of its own per shape (JAX's `stage`), and a scene's start
    made that way was dozens of programs, read back and lowered again by every fresh process."""
    return jax.device_put(np.asarray(value, np.float32))


def float_array(value: NumbersLike, *, strong: bool = False) -> Array:
    """`value` as a floating JAX array: the one conversion to floats of the package.

    A floating (or complex) dtype is kept; integers and booleans become the default float type
    (float32, or float64 when x64 is enabled).

    **Arguments:**

    - `value`: an array, a number or a tracer.
    - `strong`: also drop a weak type (a Python number's), as parameter values and prior numbers need:
      a weakly typed value would make `jit` compile a second time for the same dtype. A tracer keeps
      its type.

    **Returns:**

    The floating array.
    """
    if strong and not isinstance(value, jax.Array | jax.core.Tracer):
        # numbers and NumPy arrays converted on the host: op by op, `jnp` would compile (and every
        # fresh process lower) two or three small programs per Parameter made
        host = np.asarray(value)
        if host.dtype.kind in "biu":
            return jax.device_put(host.astype(jnp.result_type(float)))
        if host.dtype.kind in "fc":
            return jax.device_put(host.astype(jax.dtypes.canonicalize_dtype(host.dtype)))
    if strong and isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
        if jnp.issubdtype(value.dtype, jnp.inexact) and not value.weak_type:
            return value  # already what is asked: no copy
        if not value.committed:  # (on the host too: a small program per shape otherwise)
            return float_array(np.asarray(value), strong=True)
    array = value if isinstance(value, jax.core.Tracer) else jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.inexact):
        return array.astype(jnp.result_type(float))
    if strong and not isinstance(array, jax.core.Tracer):
        return jnp.array(array, dtype=array.dtype)
    return array


def _format_shape(shape: Sequence[int]) -> str:
    return str(tuple(shape))


@dataclasses.dataclass(frozen=True)
class _Bound:
    """A static, hashable bound: a float, or a small array of floats for per-element bounds.

    Storing plain Python floats (rather than arrays) is what makes the constraints that hold
    them hashable and comparable by value.
    """

    values: tuple[float, ...]
    shape: tuple[int, ...]

    @classmethod
    def from_user(cls, value: NumbersLike | _Bound, name: str) -> _Bound:
        if isinstance(value, _Bound):
            return value
        if isinstance(value, jax.core.Tracer):
            raise TypeError(
                f"`{name}` must be a concrete value (a float or an array of floats known "
                "when the constraint is built), not a traced JAX value: constraints are "
                "static metadata."
            )
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be a float or an array of floats, got dtype {array.dtype}.")
        array = array.astype(np.float64)
        if array.size == 0:
            raise ValueError(f"`{name}` must not be empty.")
        if np.isnan(array).any():
            raise ValueError(f"`{name}` must not contain NaN, got {array.tolist()}.")
        return cls(tuple(float(v) for v in array.ravel()), tuple(array.shape))

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float64).reshape(self.shape)

    def to_jax(self, dtype: Any, shape: Sequence[int] | None = None) -> jax.Array:
        """The bound as a JAX array; broadcast to `shape` if given (written out, as strict rank
        promotion asks of arrays of per-element bounds)."""
        array = jnp.asarray(self.to_numpy(), dtype=dtype)
        return array if shape is None else jnp.broadcast_to(array, tuple(shape))

    def __repr__(self) -> str:
        if self.shape == ():
            return repr(self.values[0])
        return repr(self.to_numpy().tolist())


def _require_finite(bound: _Bound, name: str, suggestion: str) -> None:
    if not np.isfinite(bound.to_numpy()).all():
        raise ValueError(f"`{name}` must be finite, got {bound!r}; {suggestion}")


def _require_bound_fits(shape: tuple[int, ...], bound: _Bound, constraint: Constraint) -> None:
    """Per-element bounds must broadcast *into* the parameter shape; broadcasting the other way
    would make the map change the shape of the parameter and stop being a bijection."""
    try:
        broadcast = np.broadcast_shapes(shape, bound.shape)
    except ValueError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(
            f"{constraint!r} has bounds of shape {_format_shape(bound.shape)}, which do not "
            f"broadcast to the parameter shape {_format_shape(shape)}."
        )


def _require_vector_shape(
    shape: tuple[int, ...], constraint: Constraint, last_axis: int | None = None
) -> None:
    if len(shape) < 1:
        raise ValueError(
            f"{constraint!r} acts on vectors along the last axis, so it needs an array with at "
            f"least one axis; got shape {_format_shape(shape)}."
        )
    if last_axis is not None and shape[-1] != last_axis:
        raise ValueError(
            f"{constraint!r} needs a last axis of size {last_axis}, got shape {_format_shape(shape)}."
        )


def _inside_on_host(values: np.ndarray, lower: _Bound | None, upper: _Bound | None) -> bool:
    """Whether every value is finite and strictly within the bounds, compared as XLA on CPU compares
    them op by op: subnormal numbers flushed to zero (1e-45 > 0 is False there)."""

    def flushed(array: np.ndarray) -> np.ndarray:
        return np.where(np.abs(array) < jnp.finfo(array.dtype).tiny, np.zeros_like(array), array)

    values = flushed(values)
    inside = np.isfinite(values)
    if lower is not None:
        inside &= values > flushed(lower.to_numpy().astype(values.dtype))
    if upper is not None:
        inside &= values < flushed(upper.to_numpy().astype(values.dtype))
    return bool(np.all(inside))


def _lowest_above(bound: jax.Array) -> jax.Array:
    """The smallest float of the same dtype strictly above `bound` that is not subnormal."""
    tiny = jnp.asarray(jnp.finfo(bound.dtype).tiny, dtype=bound.dtype)
    return jnp.maximum(jnp.nextafter(bound, jnp.asarray(jnp.inf, bound.dtype)), bound + tiny)


def _highest_below(bound: jax.Array) -> jax.Array:
    tiny = jnp.asarray(jnp.finfo(bound.dtype).tiny, dtype=bound.dtype)
    return jnp.minimum(jnp.nextafter(bound, jnp.asarray(-jnp.inf, bound.dtype)), bound - tiny)


# --------------------------------------------------------------------------------------
# The unit disk, which numpyro does not provide
# --------------------------------------------------------------------------------------

# Below this squared radius the radial maps use their Taylor series: exact at the origin
# (where r = |u| has no derivative) and accurate to rounding in float32 and float64, since
# the first neglected term is O(r^6).
_SMALL_RADIUS_SQUARED = 1e-6


class _UnitDiskSupport(numpyro_constraints.Constraint):
    """Open unit disk for 2-vectors along the last axis: `g1**2 + g2**2 < 1`."""

    event_dim = 1

    def __call__(self, x):
        x = jnp.asarray(x)
        return jnp.sum(x * x, axis=-1) < 1

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)

    def tree_flatten(self):
        return (), ((), dict())

    def eq(self, other: object, static: bool = False) -> bool:
        return isinstance(other, _UnitDiskSupport)

    def __repr__(self) -> str:
        return "UnitDisk()"


unit_disk_support = _UnitDiskSupport()


class UnitDiskTransform(numpyro_transforms.ParameterFreeTransform):
    """Radial bijection from the plane onto the open unit disk, `u -> tanh(|u|) u / |u|`.

    Acts on the last axis, which must have size 2 (e.g. the ellipticity `g = (g1, g2)` of a
    galaxy). The direction of `u` is kept and only its length is squashed, so the map is the
    identity to first order at the origin and has finite values and gradients there.

    In finite precision the radius saturates at `1 - 4 eps` (reached for `|u|` around 8 in
    float32 and 18 in float64), so that the output always lies strictly inside the disk.
    """

    domain = numpyro_constraints.real_vector
    codomain = unit_disk_support
    sign = 1

    @staticmethod
    def _split_radius(squared_radius: jax.Array) -> tuple[jax.Array, jax.Array]:
        # The "double where": the unused branch still gets differentiated, so it must be fed
        # a harmless radius instead of 0 to keep NaNs out of the gradient at the origin.
        is_small = squared_radius < _SMALL_RADIUS_SQUARED
        safe_radius = jnp.sqrt(jnp.where(is_small, jnp.ones_like(squared_radius), squared_radius))
        return is_small, safe_radius

    def __call__(self, x):
        x = float_array(x)
        _require_vector_shape(jnp.shape(x), unit_disk(), last_axis=2)
        squared_radius = jnp.sum(x * x, axis=-1, keepdims=True)
        is_small, radius = self._split_radius(squared_radius)
        saturation = 1.0 - 4.0 * float(jnp.finfo(x.dtype).eps)
        tanh_over_radius = jnp.where(
            is_small,
            1.0 - squared_radius / 3.0 + 2.0 * squared_radius**2 / 15.0,
            jnp.minimum(jnp.tanh(radius), saturation) / radius,
        )
        return x * tanh_over_radius

    def _inverse(self, y):
        y = float_array(y)
        _require_vector_shape(jnp.shape(y), unit_disk(), last_axis=2)
        squared_radius = jnp.sum(y * y, axis=-1, keepdims=True)
        is_small, radius = self._split_radius(squared_radius)
        atanh_over_radius = jnp.where(
            is_small,
            1.0 + squared_radius / 3.0 + squared_radius**2 / 5.0,
            jnp.arctanh(radius) / radius,
        )
        return y * atanh_over_radius

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        # For a radial map u -> f(r) u / r in the plane, det J = f'(r) f(r) / r, here
        # (1 - tanh^2 r) tanh(r) / r.
        x = float_array(x)
        _require_vector_shape(jnp.shape(x), unit_disk(), last_axis=2)
        squared_radius = jnp.sum(x * x, axis=-1)
        is_small, radius = self._split_radius(squared_radius)
        # log(1 - tanh^2 r) = log 4 - 2r - 2 log(1 + exp(-2r)): no cancellation and no
        # overflow for any r >= 0.
        log_sech_squared = math.log(4.0) - 2.0 * radius - 2.0 * jnp.log1p(jnp.exp(-2.0 * radius))
        log_tanh_over_radius = jnp.log(jnp.tanh(radius) / radius)
        # Series of the sum of both logs: -4/3 r^2 + 11/45 r^4 + O(r^6).
        series = -4.0 * squared_radius / 3.0 + 11.0 * squared_radius**2 / 45.0
        return jnp.where(is_small, series, log_sech_squared + log_tanh_over_radius)


@biject_to.register(_UnitDiskSupport)
def _biject_to_unit_disk(constraint):
    return UnitDiskTransform()


# --------------------------------------------------------------------------------------
# Base classes
# --------------------------------------------------------------------------------------


class Constraint(abc.ABC):
    """Base class of constraints: a bijection `forward` from unconstrained space onto a support.

    Subclasses must be immutable and hashable, and compare equal by value when built the same
    way, as they are used as static (compile-time) data.

    `event_dim` is 0 for constraints acting on each scalar independently and 1 for constraints
    acting on vectors along the last axis (unit disk, simplex, ordered vectors).
    """

    # Read-only properties here, so that a subclass may give either a class attribute (`event_dim = 1`)
    # or a property of its own (an adapter asks the object it wraps).
    @property
    def event_dim(self) -> int:
        """0 for constraints acting on each scalar independently, 1 for vectors along the last axis."""
        raise NotImplementedError(f"{type(self).__name__} does not say its event_dim")

    @property
    def bounded(self) -> bool | None:
        """Whether the support is bounded in every direction (an interval, the unit disk, the simplex):
        without a prior, a posterior is then still proper. `None` when it cannot be told."""
        return None

    @abc.abstractmethod
    def forward(self, unconstrained: NumbersLike) -> jax.Array:
        """Maps unconstrained values into the support.

        **Arguments:**

        - `unconstrained`: an array of any real values, of shape
            `self.unconstrained_shape(shape)`.

        **Returns:**

        The constrained array, of shape `self.constrained_shape(unconstrained.shape)` and of
        the same floating dtype.
        """

    @abc.abstractmethod
    def inverse(self, constrained: NumbersLike) -> jax.Array:
        """Maps values of the support back to unconstrained space.

        **Arguments:**

        - `constrained`: an array inside the support.

        **Returns:**

        The unconstrained array `u` with `forward(u) == constrained`.
        """

    @abc.abstractmethod
    def log_abs_det_jacobian(self, unconstrained: NumbersLike) -> jax.Array:
        """Log of the absolute Jacobian determinant of `forward`, summed over all elements.

        **Arguments:**

        - `unconstrained`: the unconstrained array at which the Jacobian is taken.

        **Returns:**

        A scalar: the sum over every element (or every vector, for vector constraints) of
        `log|det J|`. For the simplex, `J` is taken with respect to the first `K - 1` output
        coordinates.
        """

    @abc.abstractmethod
    def check(self, constrained: NumbersLike) -> jax.Array:
        """Tells whether every element lies inside the support.

        **Arguments:**

        - `constrained`: a candidate constrained array, e.g. an initial value.

        **Returns:**

        A boolean JAX scalar, `True` iff every value is finite and strictly inside the
        (open) support, so that `inverse` gives finite values.
        """

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the unconstrained array for a constrained array of shape `shape`."""
        return tuple(shape)

    def constrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the constrained array for an unconstrained array of shape `shape`."""
        return tuple(shape)

    def at_bound(self, unconstrained: NumbersLike, start: NumbersLike) -> jax.Array:
        """Which unconstrained entries have run to a bound of the support (where an optimizer stalls,
        the map flattening out).

        **Arguments:**

        - `unconstrained`: where a fit ended.
        - `start`: where it started (same shape): it sets the scale of a one-sided bound.

        **Returns:**

        A boolean array of the unconstrained shape. A value is at a two-sided bound within 1e-3 of the
        interval's width (the unit disk: `|g| > 0.999`); at a one-sided bound once its distance to
        the bound has shrunk below 1e-3 of the distance at the start (a size from 2 pixels to 2e-3).
        The base class knows no bounds: all False.
        """
        return jnp.zeros(np.shape(unconstrained), bool)

    def flat_at_bound(self, unconstrained: NumbersLike, start: NumbersLike | None = None) -> jax.Array:
        """Which unconstrained entries sit where the map has flattened out against a bound, so that
        a gradient through it vanishes (in float32, at a Sersic index of 6 from an interval's
        logistic map, exactly): a fit cannot bring them back, whatever the rest of the model does.

        **Arguments:**

        - `unconstrained`: where a fit stands.
        - `start`: where it started (same shape), or None: it sets the scale of a one-sided bound.

        **Returns:**

        A boolean array of the unconstrained shape: the two-sided bounds of
        [`at_bound`][scarlet_like.constraints.Constraint.at_bound] (an interval's ends, a disk's
        rim), and, given `start`, the entries whose distance to a one-sided bound has shrunk below
        1e-6 of the distance at the start (a flux gone from 5 to 1e-25). Nearer than that, a one-sided
        bound's map (`exp`) still keeps the gradient in proportion to the distance, and the fit's
        curvature scaling undoes that: such entries are not flat. The base class: all False.
        """
        return jnp.zeros(np.shape(unconstrained), bool)


class _NumpyroBacked(Constraint):
    """A constraint whose maps are those of a numpyro transform, built on demand.

    Subclasses describe the transform with `_numpyro_transform(dtype)`; building it is cheap,
    and building it in the input's dtype keeps strict dtype promotion happy. numpyro's maps broadcast
    arrays of different ranks (a vector against a batch of them), so they run with rank promotion
    allowed, whatever the user's setting.
    """

    @abc.abstractmethod
    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform: ...

    def _into_support(self, constrained: jax.Array) -> jax.Array:
        # Hook to undo rounding that lands on the boundary of an open support.
        return constrained

    def forward(self, unconstrained: NumbersLike) -> jax.Array:
        unconstrained = float_array(unconstrained)
        self.constrained_shape(unconstrained.shape)
        transform = self._numpyro_transform(unconstrained.dtype)
        with jax.numpy_rank_promotion("allow"):
            constrained = transform(unconstrained)
        return self._into_support(constrained)

    def inverse(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self.unconstrained_shape(constrained.shape)
        with jax.numpy_rank_promotion("allow"):
            return self._numpyro_transform(constrained.dtype).inv(constrained)

    def log_abs_det_jacobian(self, unconstrained: NumbersLike) -> jax.Array:
        unconstrained = float_array(unconstrained)
        self.constrained_shape(unconstrained.shape)
        transform = self._numpyro_transform(unconstrained.dtype)
        # Some log-dets are written in terms of the output (the simplex's); the output kept
        # inside the support keeps them finite where the raw one would underflow to 0.
        with jax.numpy_rank_promotion("allow"):
            constrained = self._into_support(transform(unconstrained))
            log_det = transform.log_abs_det_jacobian(unconstrained, constrained)
        return jnp.sum(log_det).astype(unconstrained.dtype)


# --------------------------------------------------------------------------------------
# Elementwise constraints
# --------------------------------------------------------------------------------------


# How close to a bound `Constraint.at_bound` calls "at the bound": a fraction of an interval's width,
# or of the start's distance to a one-sided bound. Why 1e-3 for the latter and not less: in float32 a
# fit cannot tell a collapsing size from zero long before 1e-4 of its start. A Gaussian galaxy of
# sigma 2e-3 px changes its image by (2e-3 / 1.2)^2 = 3e-6 of a 1.2 px PSF's; fitted to a star from
# sigma 2, its loss stopped changing at 1.3e-4 to 6.5e-4 of the start, by CPU and noise: with 1e-4
# the collapse was reported on one CPU and not on another.
_TWO_SIDED = 1e-3
_ONE_SIDED = 1e-3
# Where a one-sided bound traps a fit (`Constraint.flat_at_bound`): far below the reported 1e-3, so
# that only entries that have vanished are sent back (on the bundled HSC blend, AMD EPYC with
# AVX-512: a galaxy's fluxes at 1e-25 and 1e-38 in three bands; sent back, the fit went on from
# chi^2 1.647 to 1.562).
_ONE_SIDED_FLAT = 1e-6


class _Elementwise(_NumpyroBacked):
    """Constraints acting on each scalar independently, with an optional lower and upper
    bound (per element if the bounds are arrays)."""

    event_dim: ClassVar[int] = 0

    def _bounds(self) -> tuple[_Bound | None, _Bound | None]:
        return None, None

    def _validate(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        for bound in self._bounds():
            if bound is not None:
                _require_bound_fits(shape, bound, self)
        return shape

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return self._validate(shape)

    def constrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return self._validate(shape)

    def _into_support(self, constrained: jax.Array) -> jax.Array:
        lower, upper = self._bounds()
        if lower is None and upper is None:
            return constrained
        dtype = constrained.dtype
        largest = jnp.asarray(jnp.finfo(dtype).max, dtype=dtype)
        # Near a finite bound, `bound + tiny increment` rounds to the bound itself; the open
        # support (and a finite `inverse`) is kept by stepping one float inside. The infinite
        # side is capped at the largest float so that overflow cannot produce `inf`.
        shape = constrained.shape
        floor = -largest if lower is None else _lowest_above(lower.to_jax(dtype, shape))
        ceiling = largest if upper is None else _highest_below(upper.to_jax(dtype, shape))
        return jnp.clip(constrained, floor, ceiling)

    def at_bound(self, unconstrained: NumbersLike, start: NumbersLike) -> jax.Array:
        lower, upper = self._bounds()
        if lower is not None and upper is not None:
            return self.flat_at_bound(unconstrained)
        value = self.forward(unconstrained)
        dtype, shape = value.dtype, value.shape
        if lower is not None:
            origin = self.forward(start) - lower.to_jax(dtype, shape)
            return value - lower.to_jax(dtype, shape) < _ONE_SIDED * origin
        if upper is not None:
            origin = upper.to_jax(dtype, shape) - self.forward(start)
            return upper.to_jax(dtype, shape) - value < _ONE_SIDED * origin
        return jnp.zeros(value.shape, bool)

    def flat_at_bound(self, unconstrained: NumbersLike, start: NumbersLike | None = None) -> jax.Array:
        lower, upper = self._bounds()
        value = self.forward(unconstrained)
        dtype, shape = value.dtype, value.shape
        if lower is not None and upper is not None:
            low, high = lower.to_jax(dtype, shape), upper.to_jax(dtype, shape)
            width = high - low
            return (value - low < _TWO_SIDED * width) | (high - value < _TWO_SIDED * width)
        if start is None or (lower is None and upper is None):
            return jnp.zeros(value.shape, bool)
        if lower is not None:
            low = lower.to_jax(dtype, shape)
            return value - low < _ONE_SIDED_FLAT * (self.forward(start) - low)
        high = upper.to_jax(dtype, shape)  # type: ignore[union-attr]
        return high - value < _ONE_SIDED_FLAT * (high - self.forward(start))

    def check(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self._validate(constrained.shape)
        lower, upper = self._bounds()
        if not isinstance(constrained, jax.core.Tracer) and jnp.issubdtype(constrained.dtype, jnp.floating):
            # A Parameter's start value, checked on the host: op by op, `jnp` compiled four or five
            # small programs per Parameter made, each lowered again by every fresh process.
            # (`jnp.asarray` would stage the result into a small program of its own; `device_put` does not)
            return jax.device_put(np.asarray(_inside_on_host(np.asarray(constrained), lower, upper)))
        inside = jnp.isfinite(constrained)
        if lower is not None:
            inside = inside & (constrained > lower.to_jax(constrained.dtype, constrained.shape))
        if upper is not None:
            inside = inside & (constrained < upper.to_jax(constrained.dtype, constrained.shape))
        return jnp.all(inside)


@dataclasses.dataclass(frozen=True, repr=False)
class Real(_Elementwise):
    """No constraint: the identity map on the real line. Build with `real()`."""

    bounded: ClassVar[bool | None] = False

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(numpyro_constraints.real)

    def __repr__(self) -> str:
        return "real()"


@dataclasses.dataclass(frozen=True, repr=False)
class Positive(_Elementwise):
    """Positive numbers, `x = exp(u)`. Build with `positive()`."""

    bounded: ClassVar[bool | None] = False

    def _bounds(self) -> tuple[_Bound | None, _Bound | None]:
        return _Bound((0.0,), ()), None

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(numpyro_constraints.positive)

    def __repr__(self) -> str:
        return "positive()"


# The bounded constraints take numbers (or a `_Bound`, as `dataclasses.replace` passes back) and keep a
# `_Bound`: their own `__init__` says both, where a generated one would declare the field as the union
# of the two and leave every later use of it to narrow it again.
@dataclasses.dataclass(frozen=True, repr=False, init=False)
class GreaterThan(_Elementwise):
    """Numbers above `lower`, `x = lower + exp(u)`. Build with `greater_than(lower)`."""

    bounded: ClassVar[bool | None] = False

    lower: _Bound

    def __init__(self, lower: NumbersLike | _Bound):
        bound = _Bound.from_user(lower, "lower")
        _require_finite(bound, "lower", "use real() for no bound.")
        object.__setattr__(self, "lower", bound)

    def _bounds(self) -> tuple[_Bound | None, _Bound | None]:
        return self.lower, None

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(numpyro_constraints.greater_than(self.lower.to_jax(dtype)))

    def __repr__(self) -> str:
        return f"greater_than({self.lower!r})"


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class LessThan(_Elementwise):
    """Numbers below `upper`, `x = upper - exp(u)`. Build with `less_than(upper)`."""

    bounded: ClassVar[bool | None] = False

    upper: _Bound

    def __init__(self, upper: NumbersLike | _Bound):
        bound = _Bound.from_user(upper, "upper")
        _require_finite(bound, "upper", "use real() for no bound.")
        object.__setattr__(self, "upper", bound)

    def _bounds(self) -> tuple[_Bound | None, _Bound | None]:
        return None, self.upper

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(numpyro_constraints.less_than(self.upper.to_jax(dtype)))

    def __repr__(self) -> str:
        return f"less_than({self.upper!r})"


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class Interval(_Elementwise):
    """Numbers in the open interval `(lower, upper)`, `x = lower + (upper - lower) sigmoid(u)`.
    Build with `interval(lower, upper)`."""

    bounded: ClassVar[bool | None] = True

    lower: _Bound
    upper: _Bound

    def __init__(self, lower: NumbersLike | _Bound, upper: NumbersLike | _Bound):
        lower = _Bound.from_user(lower, "lower")
        upper = _Bound.from_user(upper, "upper")
        suggestion = "use greater_than(), less_than() or real() for a one-sided bound."
        _require_finite(lower, "lower", suggestion)
        _require_finite(upper, "upper", suggestion)
        try:
            ordered = np.all(lower.to_numpy() < upper.to_numpy())
        except ValueError as error:
            raise ValueError(
                f"interval bounds of shapes {_format_shape(lower.shape)} and "
                f"{_format_shape(upper.shape)} do not broadcast together."
            ) from error
        if not ordered:
            raise ValueError(f"interval needs lower < upper, got lower={lower!r}, upper={upper!r}.")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def _bounds(self) -> tuple[_Bound | None, _Bound | None]:
        return self.lower, self.upper

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        lower = self.lower.to_numpy().astype(dtype)
        upper = self.upper.to_numpy().astype(dtype)
        # Bounds distinct in float64 can round to the same value in a narrower dtype, which
        # would make the map constant; better to say so than to return garbage.
        if not np.all(lower < upper):
            raise ValueError(f"{self!r}: the bounds are not distinct once rounded to {np.dtype(dtype)}.")
        return biject_to(numpyro_constraints.interval(jnp.asarray(lower), jnp.asarray(upper)))

    def __repr__(self) -> str:
        return f"interval({self.lower!r}, {self.upper!r})"


# --------------------------------------------------------------------------------------
# Vector constraints
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class UnitDisk(_NumpyroBacked):
    """2-vectors inside the open unit disk, e.g. galaxy ellipticities `g = (g1, g2)`, `|g| < 1`.

    Uses [`scarlet_like.constraints.UnitDiskTransform`][], a radial map that keeps the
    direction of `u`. The last axis must have size 2; leading axes hold independent vectors.
    Build with `unit_disk()`.
    """

    bounded: ClassVar[bool | None] = True

    event_dim: ClassVar[int] = 1

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(unit_disk_support)

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        _require_vector_shape(shape, self, last_axis=2)
        return shape

    constrained_shape = unconstrained_shape

    def _scaled(self, constrained: NumbersLike) -> jax.Array:
        """Where `constrained` lies in the unit disk: itself here; a `Disk` shifts and scales."""
        return float_array(constrained)

    def _scaled_on_host(self, constrained: np.ndarray) -> np.ndarray:
        return constrained

    def check(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self.unconstrained_shape(constrained.shape)
        if not isinstance(constrained, jax.core.Tracer):
            # a start value, checked on the host as `_Elementwise.check` does (five small programs
            # op by op, per ellipticity made)
            host = np.asarray(constrained)
            scaled = self._scaled_on_host(host)
            inside = np.all(np.isfinite(host)) & np.all(np.sum(scaled * scaled, axis=-1) < 1)
            return jax.device_put(np.asarray(inside))
        return jnp.all(jnp.isfinite(constrained)) & jnp.all(unit_disk_support(self._scaled(constrained)))

    def at_bound(self, unconstrained: NumbersLike, start: NumbersLike) -> jax.Array:
        return self.flat_at_bound(unconstrained)

    def flat_at_bound(self, unconstrained: NumbersLike, start: NumbersLike | None = None) -> jax.Array:
        radius = jnp.linalg.norm(self._scaled(self.forward(unconstrained)), axis=-1, keepdims=True)
        return jnp.broadcast_to(radius > 1.0 - _TWO_SIDED, np.shape(unconstrained))

    def __repr__(self) -> str:
        return "unit_disk()"


@dataclasses.dataclass(frozen=True, repr=False, init=False)
class Disk(UnitDisk):
    """2-vectors within `radius` of `center`, `x = center + radius * tanh(|u|) u / |u|`: a position
    that may move but not far, e.g. a source's centre kept on its side of its neighbours. The map of
    [`scarlet_like.constraints.UnitDisk`][], scaled and shifted. Build with `disk(center, radius)`.
    """

    center: _Bound
    radius: _Bound

    def __init__(self, center: NumbersLike | _Bound, radius: NumbersLike | _Bound):
        center = _Bound.from_user(center, "center")
        radius = _Bound.from_user(radius, "radius")
        _require_finite(center, "center", "give the middle of the disk.")
        _require_finite(radius, "radius", "use real() for no bound.")
        if not center.shape or center.shape[-1] != 2:
            raise ValueError(f"disk: center must have a last axis of size 2 (y, x), got shape {center.shape}")
        if not np.all(radius.to_numpy() > 0):
            raise ValueError(f"disk: radius must be positive, got {radius!r}.")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "radius", radius)

    # The unit disk's maps, scaled and shifted, with the scaling's log-determinant added here:
    # numpyro's ComposeTransform with an AffineTransform gets it wrong over a vector event (0.79 for
    # 1.50 at radius 3, checked against the Jacobian's determinant).
    def forward(self, unconstrained: NumbersLike) -> jax.Array:
        inside = super().forward(unconstrained)  # checks the shape
        center = self.center.to_jax(inside.dtype, inside.shape)
        return center + self.radius.to_jax(inside.dtype, inside.shape[:-1])[..., None] * inside

    def inverse(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self.unconstrained_shape(constrained.shape)
        return super().inverse(self._scaled(constrained))

    def log_abs_det_jacobian(self, unconstrained: NumbersLike) -> jax.Array:
        unit = super().log_abs_det_jacobian(unconstrained)  # checks the shape
        # a factor radius on each of the two coordinates of every vector
        log_radius = jnp.log(self.radius.to_jax(unit.dtype))
        scale = 2.0 * jnp.sum(jnp.broadcast_to(log_radius, np.shape(unconstrained)[:-1]))
        return (unit + scale).astype(unit.dtype)

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = super().unconstrained_shape(shape)
        for name, bound_shape in (("center", self.center.shape), ("radius", self.radius.shape + (2,))):
            try:
                broadcast = np.broadcast_shapes(shape, bound_shape)
            except ValueError:
                broadcast = None
            if broadcast != shape:
                raise ValueError(
                    f"{self!r}: {name} does not fit the parameter shape {_format_shape(shape)} "
                    "(center: (..., 2); radius: one per vector)."
                )
        return shape

    constrained_shape = unconstrained_shape

    def _scaled(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        offset = constrained - self.center.to_jax(constrained.dtype, constrained.shape)
        return offset / self.radius.to_jax(constrained.dtype, constrained.shape[:-1])[..., None]

    def _scaled_on_host(self, constrained: np.ndarray) -> np.ndarray:
        dtype = constrained.dtype
        offset = constrained - self.center.to_numpy().astype(dtype)
        return offset / self.radius.to_numpy().astype(dtype)[..., None]

    def __repr__(self) -> str:
        return f"disk({self.center!r}, {self.radius!r})"


@dataclasses.dataclass(frozen=True, repr=False)
class Simplex(_NumpyroBacked):
    """Vectors of `K` positive entries summing to 1, from `K - 1` unconstrained values by
    stick breaking. Build with `simplex()`.

    `log_abs_det_jacobian` is taken with respect to the first `K - 1` coordinates (the last
    one is determined by them).
    """

    bounded: ClassVar[bool | None] = True

    event_dim: ClassVar[int] = 1

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(numpyro_constraints.simplex)

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        _require_vector_shape(shape, self)
        if shape[-1] < 1:
            raise ValueError(f"{self!r} needs at least one category, got shape {shape}.")
        return shape[:-1] + (shape[-1] - 1,)

    def constrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        _require_vector_shape(shape, self)
        return shape[:-1] + (shape[-1] + 1,)

    def _into_support(self, constrained: jax.Array) -> jax.Array:
        # With many categories the last stick can underflow to 0, which is outside the open
        # simplex; the smallest normal float is far below the sum tolerance of `check`.
        return jnp.maximum(constrained, jnp.asarray(jnp.finfo(constrained.dtype).tiny))

    def check(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self.unconstrained_shape(constrained.shape)
        categories = constrained.shape[-1]
        # Summing K numbers each rounded to half an ulp can be off by about K ulps.
        tolerance = 16.0 * categories * float(jnp.finfo(constrained.dtype).eps)
        sums_to_one = jnp.abs(jnp.sum(constrained, axis=-1) - 1.0) <= tolerance
        return jnp.all(jnp.isfinite(constrained)) & jnp.all(constrained > 0) & jnp.all(sums_to_one)

    def __repr__(self) -> str:
        return "simplex()"


def _strictly_increasing(values: jax.Array) -> jax.Array:
    """Nudges ties in a non-decreasing last axis up to the next float.

    An increment `exp(u)` smaller than the spacing of floats around the running sum is lost
    to rounding, which produces equal neighbours: outside the (strictly) ordered support,
    with an infinite `inverse`.
    """

    def step(previous, current):
        # The floor only breaks ties; it carries no derivative (nextafter has none anyway).
        floor = jnp.nextafter(jax.lax.stop_gradient(previous), jnp.asarray(jnp.inf, dtype=previous.dtype))
        fixed = jnp.maximum(current, floor)
        return fixed, fixed

    along_first = jnp.moveaxis(values, -1, 0)
    _, rest = jax.lax.scan(step, along_first[0], along_first[1:])
    return jnp.moveaxis(jnp.concatenate([along_first[:1], rest], axis=0), 0, -1)


@dataclasses.dataclass(frozen=True, repr=False)
class Ordered(_NumpyroBacked):
    """Strictly increasing vectors along the last axis, `x_0 = u_0`,
    `x_i = x_{i-1} + exp(u_i)`. Build with `ordered()`."""

    bounded: ClassVar[bool | None] = False

    event_dim: ClassVar[int] = 1

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(numpyro_constraints.ordered_vector)

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        _require_vector_shape(shape, self)
        return shape

    constrained_shape = unconstrained_shape

    def _into_support(self, constrained: jax.Array) -> jax.Array:
        if constrained.shape[-1] < 2:
            return constrained
        return _strictly_increasing(constrained)

    def check(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self.unconstrained_shape(constrained.shape)
        increasing = jnp.diff(constrained, axis=-1) > 0
        return jnp.all(jnp.isfinite(constrained)) & jnp.all(increasing)

    def __repr__(self) -> str:
        return "ordered()"


class _ImageTree(NamedTuple):
    """The paths of a `(height, width)` image toward its central element, in flat indices."""

    paths: np.ndarray  # (height * width, steps): each element, then one step inward at a time, the
    # centre left out, padded with height * width
    parents: np.ndarray  # (height * width,): each element's neighbour one step inward (the centre's: itself)
    center: int


@functools.lru_cache(maxsize=64)
def _image_tree(height: int, width: int) -> _ImageTree:
    """Paths to the central element `(height // 2, width // 2)`: one step toward it at a time,
    diagonally while both the row and the column differ from the centre's."""
    rows, columns = np.mgrid[0:height, 0:width]
    center_row, center_column = height // 2, width // 2
    steps = max(center_row, height - 1 - center_row, center_column, width - 1 - center_column, 1)
    paths = np.full((height * width, steps), height * width, dtype=np.int32)
    row, column = rows.ravel(), columns.ravel()
    # one step inward, the centre staying where it is
    parents = ((row - np.sign(row - center_row)) * width + column - np.sign(column - center_column)).astype(
        np.int32
    )
    for step in range(steps):
        away = (row != center_row) | (column != center_column)
        paths[away, step] = (row * width + column)[away]
        row = row - np.sign(row - center_row)
        column = column - np.sign(column - center_column)
    return _ImageTree(paths, parents, center_row * width + center_column)


@dataclasses.dataclass(frozen=True, repr=False)
class Monotonic(Constraint):
    """Positive images (the last two axes) whose values never increase away from the central element
    `(H // 2, W // 2)`: a free-form galaxy that declines from its centre outward, exactly rather than
    by a penalty. Build with `monotonic()`.

    Each element's parent is its neighbour one step toward the centre (diagonally while both its row
    and its column differ from the centre's, then along the row or column). The centre is
    `exp(u_center)`, and every other element is its parent's value times `exp(-softplus(u))`, so
    `log x = u_center - sum of softplus(u)` over the element's path to the centre. Every path is a
    straight or bent line toward the centre, as in scarlet's nearest-neighbour monotonicity: a
    profile whose contours are ellipses aligned with the axes is monotonic along them; a very
    elongated, tilted one can rise slightly along some paths.

    Ties (equal values along a path, e.g. far out where the image has underflowed) are inside the
    support; `inverse` maps them to a large negative `u`.
    """

    bounded: ClassVar[bool | None] = False

    event_dim: ClassVar[int] = 2

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        shape = tuple(shape)
        if len(shape) < 2 or shape[-1] < 1 or shape[-2] < 1:
            raise ValueError(
                f"{self!r} acts on images: the parameter needs two last axes (H, W), got shape "
                f"{_format_shape(shape)}"
            )
        return shape

    constrained_shape = unconstrained_shape

    @staticmethod
    def _flat(values: jax.Array) -> tuple[jax.Array, _ImageTree]:
        height, width = values.shape[-2:]
        return values.reshape(values.shape[:-2] + (height * width,)), _image_tree(height, width)

    def _log_values(self, unconstrained: jax.Array) -> jax.Array:
        flat, tree = self._flat(unconstrained)
        declines = jax.nn.softplus(flat)
        # the padding index of the paths reads a zero decline
        declines = jnp.concatenate([declines, jnp.zeros(flat.shape[:-1] + (1,), flat.dtype)], axis=-1)
        center = flat[..., tree.center, None]
        return (center - jnp.sum(declines[..., tree.paths], axis=-1)).reshape(unconstrained.shape)

    def forward(self, unconstrained: NumbersLike) -> jax.Array:
        unconstrained = float_array(unconstrained)
        self.constrained_shape(unconstrained.shape)
        # the smallest normal float rather than an underflow to 0: the values stay in the support
        tiny = jnp.asarray(jnp.finfo(unconstrained.dtype).tiny, unconstrained.dtype)
        return jnp.maximum(jnp.exp(self._log_values(unconstrained)), tiny)

    def inverse(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self.unconstrained_shape(constrained.shape)
        log_values, tree = self._flat(jnp.log(constrained))
        declines = log_values[..., tree.parents] - log_values
        # a tie has a decline of 0, the limit u -> -inf: give it the decline of a tiny step
        smallest = jnp.asarray(jnp.finfo(constrained.dtype).eps, constrained.dtype)
        unconstrained = _inverse_softplus(jnp.maximum(declines, smallest))
        unconstrained = unconstrained.at[..., tree.center].set(log_values[..., tree.center])
        return unconstrained.reshape(constrained.shape)

    def log_abs_det_jacobian(self, unconstrained: NumbersLike) -> jax.Array:
        # log x is triangular in u (an element depends on its own u and its ancestors'), with
        # -sigmoid(u) on the diagonal (1 at the centre); x = exp(log x) adds log x.
        unconstrained = float_array(unconstrained)
        self.constrained_shape(unconstrained.shape)
        flat, tree = self._flat(unconstrained)
        diagonal = jax.nn.log_sigmoid(flat).at[..., tree.center].set(0.0)
        return (jnp.sum(self._log_values(unconstrained)) + jnp.sum(diagonal)).astype(unconstrained.dtype)

    def check(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        self.unconstrained_shape(constrained.shape)
        flat, tree = self._flat(constrained)
        declining = flat <= flat[..., tree.parents]
        return jnp.all(jnp.isfinite(constrained)) & jnp.all(constrained > 0) & jnp.all(declining)

    def project(self, values: NumbersLike) -> jax.Array:
        """The largest monotonic image below positive `values`: each element lowered to the smallest
        value on its path to the centre (a start for a free-form image from any positive picture)."""
        values = float_array(values)
        self.unconstrained_shape(values.shape)
        flat, tree = self._flat(values)
        center = flat[..., tree.center, None]
        padded = jnp.concatenate([flat, center], axis=-1)
        lowest = jnp.minimum(jnp.min(padded[..., tree.paths], axis=-1), center)
        return lowest.reshape(values.shape)

    def __repr__(self) -> str:
        return "monotonic()"


def _inverse_softplus(values: jax.Array) -> jax.Array:
    """`u` with `softplus(u) = values` (positive), `log(expm1(values))` written to stay finite."""
    return values + jnp.log(-jnp.expm1(-values))


# --------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------


def real() -> Real:
    """No constraint (identity map).

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] for the whole real line.
    """
    return Real()


def positive() -> Positive:
    """Strictly positive values, through `exp`.

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with support `(0, inf)`.
    """
    return Positive()


def greater_than(lower: NumbersLike) -> GreaterThan:
    """Values strictly above a bound, through `lower + exp(u)`.

    **Arguments:**

    - `lower`: a finite float, or an array of floats broadcasting to the parameter shape for
        per-element bounds.

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with support `(lower, inf)`.
    """
    return GreaterThan(lower)


def less_than(upper: NumbersLike) -> LessThan:
    """Values strictly below a bound, through `upper - exp(u)`.

    **Arguments:**

    - `upper`: a finite float, or an array of floats broadcasting to the parameter shape.

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with support `(-inf, upper)`.
    """
    return LessThan(upper)


def interval(lower: NumbersLike, upper: NumbersLike) -> Interval:
    """Values strictly between two bounds, through a scaled sigmoid.

    **Arguments:**

    - `lower`: a finite float, or an array of floats broadcasting to the parameter shape.
    - `upper`: same, with `lower < upper` everywhere (else `ValueError`).

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with support `(lower, upper)`.
    """
    return Interval(lower, upper)


def unit_disk() -> UnitDisk:
    """2-vectors (last axis of size 2) of length below 1, e.g. ellipticities.

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with `event_dim = 1`, mapping `u` to
    `tanh(|u|) u / |u|`.
    """
    return UnitDisk()


def disk(center: NumbersLike, radius: NumbersLike) -> Disk:
    """2-vectors (last axis of size 2) within `radius` of `center`, e.g. a source's centre that may
    move a little around its detection but not onto a neighbour.

    **Arguments:**

    - `center`: the middle, shape `(2,)` or `(..., 2)` broadcasting to the parameter's shape.
    - `radius`: a positive float, or one per vector (the parameter's shape without its last axis).

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with `event_dim = 1`, mapping `u` to
    `center + radius * tanh(|u|) u / |u|`; `at_bound` flags a vector within 0.1% of the radius from
    the edge.
    """
    return Disk(center, radius)


def simplex() -> Simplex:
    """Probability vectors along the last axis (positive, summing to 1).

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with `event_dim = 1`; `K - 1`
    unconstrained values give `K` constrained ones.
    """
    return Simplex()


def ordered() -> Ordered:
    """Strictly increasing vectors along the last axis.

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] with `event_dim = 1`.
    """
    return Ordered()


def monotonic() -> Monotonic:
    """Positive images that never brighten away from their central pixel: free-form galaxies held
    monotonic exactly (see [`scarlet_like.constraints.Monotonic`][]).

    **Returns:**

    A [`scarlet_like.constraints.Constraint`][] acting on the last two axes.
    """
    return Monotonic()


# --------------------------------------------------------------------------------------
# Adapters for numpyro and distrax objects
# --------------------------------------------------------------------------------------


# numpyro supports bounded in every direction (private classes, looked up by name so that a numpyro
# release renaming one only loses the check).
_BOUNDED_NUMPYRO_SUPPORTS = tuple(
    getattr(numpyro_constraints, name)
    for name in ("_Interval", "_Simplex", "_CorrCholesky", "_CorrMatrix")
    if hasattr(numpyro_constraints, name)
) + (_UnitDiskSupport,)


class _WrappedTransform(_NumpyroBacked):
    """Common parts of the adapters built around a numpyro transform."""

    def _transform(self) -> numpyro_transforms.Transform:
        return self._numpyro_transform(None)

    @property
    def bounded(self) -> bool:
        return isinstance(self._transform().codomain, _BOUNDED_NUMPYRO_SUPPORTS)

    @property
    def event_dim(self) -> int:
        return self._transform().codomain.event_dim

    def unconstrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(self._transform().inverse_shape(tuple(shape)))

    def constrained_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(self._transform().forward_shape(tuple(shape)))

    def check(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        transform = self._transform()
        # numpyro's own checks may accept the boundary of an open support (its intervals are
        # closed); requiring a finite `inverse` rules the boundary out.
        inside = jnp.all(jnp.isfinite(constrained))
        with jax.numpy_rank_promotion("allow"):  # numpyro's code, as in `_NumpyroBacked`
            inside = inside & jnp.all(jnp.isfinite(transform.inv(constrained)))
            codomain = transform.codomain
            if not numpyro_constraints.is_dependent(codomain):
                inside = inside & jnp.all(codomain(constrained))
        return inside


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class NumpyroConstraint(_WrappedTransform):
    """Adapter for a numpyro constraint, mapped with numpyro's `biject_to`.

    Two adapters are equal when the wrapped constraints have the same type and numpyro's own
    `==` says they are equal (e.g. `constraints.interval(0.0, 1.0)` built twice). Give bounds
    as Python floats: numpyro compares array bounds by identity only, and array bounds of a
    fixed dtype also clash with strict dtype promotion.

    **Arguments:**

    - `constraint`: a `numpyro.distributions.constraints.Constraint` with a bijection
        registered in `biject_to`.
    """

    constraint: numpyro_constraints.Constraint

    def __post_init__(self):
        if not isinstance(self.constraint, numpyro_constraints.Constraint):
            raise TypeError(f"NumpyroConstraint needs a numpyro constraint, got {type(self.constraint)}.")
        try:
            biject_to(self.constraint)
        except NotImplementedError as error:
            raise TypeError(
                f"numpyro has no bijection onto {self.constraint!r} (nothing registered in "
                "`biject_to`), so it cannot be used as a parameter constraint."
            ) from error

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return biject_to(self.constraint)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumpyroConstraint):
            return NotImplemented
        if self.constraint is other.constraint:
            return True
        if type(self.constraint) is not type(other.constraint):
            return False
        try:
            return bool(self.constraint == other.constraint)
        except Exception:
            return False

    def __hash__(self) -> int:
        # numpyro constraints are unhashable (they define `==` only); equal adapters wrap
        # constraints of the same type, so hashing the type is consistent with `==`.
        return hash((NumpyroConstraint, type(self.constraint)))

    def __repr__(self) -> str:
        return f"NumpyroConstraint({self.constraint!r})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class NumpyroTransform(_WrappedTransform):
    """Adapter using a numpyro transform directly as `forward`.

    Equality and hashing follow the *identity* of the wrapped transform: reuse the same
    transform object to let models share compiled code. (Value equality is not trusted here:
    numpyro's equality of transforms may ignore attributes that change the map.)

    **Arguments:**

    - `transform`: a `numpyro.distributions.transforms.Transform`; its `codomain` is used
        in `check`, its `forward_shape` / `inverse_shape` for the shapes.
    """

    transform: numpyro_transforms.Transform

    def __post_init__(self):
        if not isinstance(self.transform, numpyro_transforms.Transform):
            raise TypeError(f"NumpyroTransform needs a numpyro transform, got {type(self.transform)}.")

    def _numpyro_transform(self, dtype: Any) -> numpyro_transforms.Transform:
        return self.transform

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumpyroTransform):
            return NotImplemented
        return self.transform is other.transform

    def __hash__(self) -> int:
        return hash((NumpyroTransform, id(self.transform)))

    def __repr__(self) -> str:
        return f"NumpyroTransform({type(self.transform).__name__})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class DistraxBijector(Constraint):
    """Adapter for a distrax bijector (distrax is an optional dependency).

    The bijector must keep the shape of its input. `check` accepts `x` when `inverse(x)` is
    finite and maps back to `x`, as distrax bijectors do not describe their support.

    Equality and hashing follow the *identity* of the wrapped bijector: reuse the same
    bijector object to let models share compiled code.

    **Arguments:**

    - `bijector`: a `distrax.Bijector`.
    """

    bijector: Any

    def __post_init__(self):
        if not is_distrax(self.bijector, "Bijector"):
            raise TypeError(
                f"DistraxBijector needs a distrax.Bijector (and distrax installed), got "
                f"{type(self.bijector)}."
            )

    @property
    def event_dim(self) -> int:
        return int(self.bijector.event_ndims_out)

    def forward(self, unconstrained: NumbersLike) -> jax.Array:
        return self.bijector.forward(float_array(unconstrained))

    def inverse(self, constrained: NumbersLike) -> jax.Array:
        return self.bijector.inverse(float_array(constrained))

    def log_abs_det_jacobian(self, unconstrained: NumbersLike) -> jax.Array:
        unconstrained = float_array(unconstrained)
        # distrax already sums over the `event_ndims_in` event axes; the rest are batch axes.
        log_det = self.bijector.forward_log_det_jacobian(unconstrained)
        return jnp.sum(log_det).astype(unconstrained.dtype)

    def check(self, constrained: NumbersLike) -> jax.Array:
        constrained = float_array(constrained)
        unconstrained = self.bijector.inverse(constrained)
        round_trip = self.bijector.forward(unconstrained)
        tolerance = math.sqrt(float(jnp.finfo(constrained.dtype).eps))
        return (
            jnp.all(jnp.isfinite(constrained))
            & jnp.all(jnp.isfinite(unconstrained))
            & jnp.allclose(round_trip, constrained, rtol=tolerance, atol=tolerance)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistraxBijector):
            return NotImplemented
        return self.bijector is other.bijector

    def __hash__(self) -> int:
        return hash((DistraxBijector, id(self.bijector)))

    def __repr__(self) -> str:
        return f"DistraxBijector({type(self.bijector).__name__})"


def is_distrax(obj: Any, kind: str) -> bool:
    """Whether `obj` is an instance of `distrax.<kind>` (`"Bijector"`, `"Distribution"`).

    distrax is optional and slow to import (about 1 s): it is imported here, the first time an object
    might be one of its, and never when it is not installed.
    """
    try:
        import distrax
    except ImportError:
        return False
    return isinstance(obj, getattr(distrax, kind))


def as_constraint(obj: Any) -> Constraint:
    """Turns anything describing a support into a [`scarlet_like.constraints.Constraint`][].

    **Arguments:**

    - `obj`: one of
        - `None`, meaning unconstrained ([`scarlet_like.constraints.real`][]);
        - a [`scarlet_like.constraints.Constraint`][], returned as is;
        - a numpyro constraint (`numpyro.distributions.constraints.positive`, ...), mapped
            with numpyro's `biject_to`;
        - a numpyro transform, used as the forward map;
        - a distrax bijector, used as the forward map (needs `distrax` installed).

    **Returns:**

    The corresponding constraint.

    **Raises:**

    `TypeError` for any other kind of object.
    """
    if obj is None:
        return real()
    if isinstance(obj, Constraint):
        return obj
    if isinstance(obj, numpyro_constraints.Constraint):
        return NumpyroConstraint(obj)
    if isinstance(obj, numpyro_transforms.Transform):
        return NumpyroTransform(obj)
    if is_distrax(obj, "Bijector"):
        return DistraxBijector(obj)
    raise TypeError(
        f"Cannot use an object of type {type(obj).__module__}.{type(obj).__qualname__} as a "
        "constraint. Accepted: None (unconstrained), a scarlet_like Constraint (e.g. "
        "positive(), interval(0.0, 1.0)), a numpyro constraint, a numpyro transform, or a "
        "distrax bijector."
    )

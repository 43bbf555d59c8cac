"""A strong-Wolfe line search whose compiled program evaluates the objective in one place.

The search is the classic one (Nocedal & Wright, *Numerical Optimization*, algorithms 3.5 and 3.6,
with Hager & Zhang's approximate sufficient-decrease test): first the step grows until an interval
holding an acceptable step is known, then the interval shrinks by cubic, quadratic or bisection
steps until a step meets both the sufficient-decrease and the curvature conditions.

Written as two phases, each with its own call of the objective, a search compiles the objective's
value and gradient twice, as both branches of a `cond`. Here every trial is one turn of one loop:
the next step size is chosen by scalar arithmetic from what is known (expanding or zooming), the
objective is evaluated there once, and the bracket is updated by scalar arithmetic again. The
program holds one copy of the objective and its gradient, which is what a fit's compilation time
is made of (see `benchmarks/README.md`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike
from jaxtyping import Array, Bool, Float, Int, PyTree

__all__ = ["LineSearchInfo", "WolfeLineSearchState", "wolfe_line_search"]


class LineSearchInfo(NamedTuple):
    """What the last search found.

    **Fields:**

    - `trials`: how many step sizes it evaluated.
    - `decrease_error`: how far its last trial missed the sufficient-decrease condition (0: met).
    - `curvature_error`: how far its last trial missed the curvature condition (0: met).
    """

    trials: Int[Array, ""]
    decrease_error: Float[Array, ""]
    curvature_error: Float[Array, ""]


class WolfeLineSearchState(NamedTuple):
    """The state of [`wolfe_line_search`][scarlet_like.infer.wolfe_line_search] between steps.

    **Fields:**

    - `learning_rate`: the step size the last search chose.
    - `value`, `grad`: the objective and its gradient at the point it chose (what the next step
      starts from: `optax.value_and_grad_from_state` and [`scarlet_like.FitLoop`][] read them).
    - `info`: a [`LineSearchInfo`][scarlet_like.infer.line_search.LineSearchInfo].
    """

    learning_rate: Float[Array, ""]
    value: Float[Array, ""]
    grad: PyTree
    info: LineSearchInfo


class _Search(NamedTuple):
    """The carry of one search: the last trial, the bracket, and the best safe step."""

    trials: Array
    step: Array  # the last trial's step size, its value, gradient and slope along the direction
    value: Array
    grad: PyTree
    slope: Array
    decrease_error: Array
    curvature_error: Array
    bracketed: Array  # an interval holding an acceptable step is known: zoom into it
    done: Array
    failed: Array
    low: Array  # the bracket's end with the lower value, its value and slope
    value_low: Array
    slope_low: Array
    high: Array  # the other end
    value_high: Array
    slope_high: Array
    dropped: Array  # the end the last update let go: the third point of the cubic fit
    value_dropped: Array
    safe: Array  # the best step with sufficient decrease so far (0: none), its value and gradient
    value_safe: Array
    grad_safe: PyTree


def wolfe_line_search(
    max_trials: int = 20,
    *,
    decrease: float = 1e-4,
    curvature: float = 0.9,
    approximate: float | None = 1e-6,
    expansion: float = 2.0,
    min_interval: float = 1e-5,
) -> optax.GradientTransformationExtraArgs:
    """A line search for the strong Wolfe conditions, for `optax.lbfgs(linesearch=...)`.

    It scales the direction it is given (L-BFGS's) by a step size `t` such that the objective `f`
    along it decreases enough, `f(t) <= f(0) + decrease * t * f'(0)` (or, near the optimum where
    that is lost in rounding, Hager & Zhang's `f'(t) <= (2 decrease - 1) f'(0)` with `f(t)` at most
    `approximate * |f(0)|` above `f(0)`), and the slope flattens, `|f'(t)| <= curvature * |f'(0)|`.
    It tries `t = 1` first, doubles until the conditions hold or an interval holding such a step is
    found, then narrows that interval. If `max_trials` trials find none, it takes the best step that
    decreased enough, or no step at all when none did and the objective was not finite.

    Same algorithm and settings as optax's `scale_by_zoom_linesearch` as `optax.lbfgs` uses it; the
    difference is the compiled program: one evaluation of the objective and its gradient instead
    of two, so a fit loop compiles in less time.

    **Arguments:**

    - `max_trials`: the most step sizes one search evaluates.
    - `decrease`, `curvature`: the constants of the two Wolfe conditions (`0 < decrease < curvature < 1`).
    - `approximate`: how far above `f(0)` the approximate decrease test lets `f(t)` be, relative to
      `|f(0)|`; `None` for the plain sufficient-decrease condition only.
    - `expansion`: the factor by which the step grows while no interval is found.
    - `min_interval`: a search whose interval is narrower than this, and that has a step with
      sufficient decrease, stops there.

    **Returns:**

    An `optax.GradientTransformationExtraArgs`; its `update` takes `value`, `grad` (at `params`)
    and `value_fn` (the objective) as keyword arguments; other keyword arguments go to `value_fn`.
    Its state is a [`WolfeLineSearchState`][scarlet_like.infer.line_search.WolfeLineSearchState].
    """
    if not 0.0 < decrease < curvature < 1.0:
        raise ValueError(
            f"wolfe_line_search: need 0 < decrease < curvature < 1, got decrease={decrease}, "
            f"curvature={curvature}"
        )
    if int(max_trials) < 1:
        raise ValueError(f"wolfe_line_search: max_trials must be a positive integer, got {max_trials!r}")

    def init(params: PyTree) -> WolfeLineSearchState:
        dtype = jnp.real(jnp.empty((), jax.tree_util.tree_leaves(params)[0].dtype)).dtype
        return WolfeLineSearchState(
            learning_rate=jnp.ones((), dtype),
            value=jnp.full((), jnp.inf, dtype),
            grad=optax.tree.zeros_like(params),
            info=LineSearchInfo(
                trials=jnp.zeros((), jnp.int32),
                decrease_error=jnp.full((), jnp.inf, dtype),
                curvature_error=jnp.full((), jnp.inf, dtype),
            ),
        )

    def update(
        updates: PyTree,
        state: WolfeLineSearchState,
        params: PyTree,
        *,
        value: ArrayLike,
        grad: PyTree,
        value_fn: Callable[..., Array],
        **value_fn_kwargs: Any,
    ) -> tuple[PyTree, WolfeLineSearchState]:
        direction = updates
        dtype = state.learning_rate.dtype
        value0 = jnp.asarray(value, dtype)
        slope0 = optax.tree.real(optax.tree.vdot(grad, direction)).astype(dtype)
        value_and_grad = jax.value_and_grad(value_fn)

        def errors(step: Array, value: Array, slope: Array) -> tuple[Array, Array]:
            # sufficient decrease (Armijo), or Hager & Zhang's approximate version near the optimum
            decrease_error = value - value0 - decrease * step * slope0
            if approximate is not None:
                approximate_error = jnp.maximum(
                    slope - (2.0 * decrease - 1.0) * slope0, value - value0 - approximate * jnp.abs(value0)
                )
                decrease_error = jnp.minimum(decrease_error, approximate_error)
            curvature_error = jnp.abs(slope) - curvature * jnp.abs(slope0)
            # a non-finite value or slope is as far from acceptable as can be
            return tuple(  # type: ignore[return-value]
                jnp.where(jnp.isnan(error), jnp.inf, jnp.maximum(error, 0.0))
                for error in (decrease_error, curvature_error)
            )

        def next_step(s: _Search) -> Array:
            growing = jnp.where(s.trials == 0, jnp.ones((), dtype), expansion * s.step)
            # zooming: the minimum of a cubic through both ends and the dropped point, if well inside
            # the interval; else of a quadratic through both ends; else the middle
            width = jnp.abs(s.high - s.low)
            left, right = jnp.minimum(s.low, s.high), jnp.maximum(s.low, s.high)
            cubic = _cubic_minimum(
                s.low, s.value_low, s.slope_low, s.high, s.value_high, s.dropped, s.value_dropped
            )
            quadratic = _quadratic_minimum(s.low, s.value_low, s.slope_low, s.high, s.value_high)
            inside = lambda t, share: (t > left + share * width) & (t < right - share * width)  # noqa: E731
            zooming = jnp.where(
                inside(cubic, 0.2), cubic, jnp.where(inside(quadratic, 0.1), quadratic, (s.low + s.high) / 2)
            )
            return jnp.where(s.bracketed, zooming, growing)

        def trial(s: _Search) -> _Search:
            step = next_step(s)
            # the one evaluation of the objective
            value, grad = value_and_grad(optax.tree.add_scale(params, step, direction), **value_fn_kwargs)
            value = jnp.asarray(value, dtype)
            slope = optax.tree.real(optax.tree.vdot(grad, direction)).astype(dtype)
            decrease_error, curvature_error = errors(step, value, slope)
            acceptable = jnp.maximum(decrease_error, curvature_error) <= 0.0
            decreased = decrease_error <= 0.0
            last = s.trials + 1 >= max_trials
            new = (step, value, slope)

            # growing: an interval is found once the step went too far (not enough decrease, or worse
            # than the previous trial) or past the minimum along the line (the slope turned up)
            previous = (s.step, s.value, s.slope)
            overshot = (decrease_error > 0.0) | ((value >= s.value) & (s.trials > 0))
            turned = (slope >= 0.0) & ~overshot
            grow_low = _pick(turned, new, previous)
            grow_high = _pick(turned, previous, new)
            grow_safe = decreased

            # zooming: the trial replaces the end it is a better bracket with
            ends_low = (s.low, s.value_low, s.slope_low)
            ends_high = (s.high, s.value_high, s.slope_high)
            too_high = (decrease_error > 0.0) | (value >= s.value_low)
            flips = (slope * (s.high - s.low) >= 0.0) & ~too_high
            zoom_low = _pick(too_high, ends_low, new)
            zoom_high = _pick(too_high, new, _pick(flips, ends_low, ends_high))
            zoom_dropped = _pick(too_high | flips, ends_high[:2], ends_low[:2])
            zoom_safe = decreased & (value < s.value_safe)

            zoom = s.bracketed
            low = _pick(zoom, zoom_low, grow_low)
            high = _pick(zoom, zoom_high, grow_high)
            dropped = _pick(zoom, zoom_dropped, low[:2])
            take_safe = jnp.where(zoom, zoom_safe, grow_safe)
            safe = jnp.where(take_safe, step, s.safe)
            stuck = zoom & (jnp.abs(s.high - s.low) <= min_interval) & (safe > 0.0)
            return _Search(
                trials=s.trials + 1,
                step=step,
                value=value,
                grad=grad,
                slope=slope,
                decrease_error=decrease_error,
                curvature_error=curvature_error,
                bracketed=zoom | overshot | turned | acceptable,
                done=acceptable,
                failed=(last | stuck) & ~acceptable,
                low=low[0],
                value_low=low[1],
                slope_low=low[2],
                high=high[0],
                value_high=high[1],
                slope_high=high[2],
                dropped=dropped[0],
                value_dropped=dropped[1],
                safe=safe,
                value_safe=jnp.where(take_safe, value, s.value_safe),
                grad_safe=optax.tree.where(take_safe, grad, s.grad_safe),
            )

        zero = jnp.zeros((), dtype)
        start = _Search(
            trials=jnp.zeros((), jnp.int32),
            step=zero,
            value=value0,
            grad=grad,
            slope=slope0,
            decrease_error=jnp.full((), jnp.inf, dtype),
            curvature_error=jnp.full((), jnp.inf, dtype),
            bracketed=jnp.zeros((), bool),
            done=jnp.zeros((), bool),
            failed=jnp.zeros((), bool),
            low=zero,
            value_low=value0,
            slope_low=slope0,
            high=zero,
            value_high=value0,
            slope_high=slope0,
            dropped=zero,
            value_dropped=value0,
            safe=zero,
            value_safe=value0,
            grad_safe=grad,
        )
        end = jax.lax.while_loop(lambda s: ~(s.done | s.failed), trial, start)
        # A failed search falls back to its best step with sufficient decrease, or, when the last
        # trial's value was not even finite and none decreased enough, to no step at all.
        fall_back = end.failed & ((end.safe > 0.0) | jnp.isinf(end.decrease_error))
        step = jnp.where(fall_back, end.safe, end.step)
        new_state = WolfeLineSearchState(
            learning_rate=step,
            value=jnp.where(fall_back, end.value_safe, end.value),
            grad=optax.tree.where(fall_back, end.grad_safe, end.grad),
            info=LineSearchInfo(end.trials, end.decrease_error, end.curvature_error),
        )
        return optax.tree.scale(step, direction), new_state

    return optax.GradientTransformationExtraArgs(init, update)  # type: ignore[arg-type]


def _pick(condition: Bool[Array, ""], yes: tuple[Array, ...], no: tuple[Array, ...]) -> tuple[Array, ...]:
    """`yes` where `condition` holds, else `no`, entry by entry (scalars)."""
    return tuple(jnp.where(condition, a, b) for a, b in zip(yes, no, strict=True))


def _cubic_minimum(a: Array, fa: Array, slope_a: Array, b: Array, fb: Array, c: Array, fc: Array) -> Array:
    """The local minimum of the cubic with value `fa` and slope `slope_a` at `a`, through `(b, fb)` and
    `(c, fc)`; NaN when it has none (the caller then takes another step)."""
    db, dc = b - a, c - a
    # p(a + d) = fa + slope_a d + q d^2 + k d^3: two equations for q and k
    rb, rc = fb - fa - slope_a * db, fc - fa - slope_a * dc
    determinant = db**2 * dc**2 * (dc - db)
    q = (rb * dc**3 - rc * db**3) / determinant
    k = (rc * db**2 - rb * dc**2) / determinant
    # p' = slope_a + 2 q d + 3 k d^2 = 0; the root where p'' > 0
    return a + (-q + jnp.sqrt(q * q - 3.0 * k * slope_a)) / (3.0 * k)


def _quadratic_minimum(a: Array, fa: Array, slope_a: Array, b: Array, fb: Array) -> Array:
    """The extremum of the parabola with value `fa` and slope `slope_a` at `a`, through `(b, fb)`."""
    db = b - a
    q = (fb - fa - slope_a * db) / db**2
    return a - slope_a / (2.0 * q)

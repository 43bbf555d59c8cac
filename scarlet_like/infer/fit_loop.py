"""The one fit loop: an `init` / `step` pair on a `FitState`, shared by every way of fitting.

`sl.fit` (with and without a progress bar, inside or outside the user's `jit`/`vmap`), `sl.fit_many`,
`sl.fit_starts` and `sl.laplace` all run [`FitLoop`][scarlet_like.FitLoop] through one driver,
[`run`][scarlet_like.infer.run]: the steps and stopping rules are written once.

The loop runs an optax optimizer in coordinates scaled by the curvature of the negative log density
(as [`preconditioner`][scarlet_like.preconditioner] scales them, measured by differences of the
gradient). It goes in *stretches*: each starts where the
fit has got to (its best point), measures the curvature there and restarts the optimizer in the new
scaled coordinates; a stretch ends after `stretch_steps` steps or earlier when it stalls.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from ..core import LogDensity
from ..core.serialization import load, read_layout, save
from .line_search import wolfe_line_search
from .weak_types import strong

__all__ = ["FitLoop", "FitResult", "FitState", "preconditioner", "run"]

# Above this many free entries the Hessian diagonal is estimated from random probes, not exactly.
_EXACT_DIAGONAL_LIMIT = 256
_PROBES = 16
# The fit loop measures curvature from gradient differences over this share of each entry's scale.
_DIFFERENCE_STEP = 0.03

#: Default length of a stretch: the curvature is measured again every this many steps.
STRETCH_STEPS = 100

# A step "made no progress" when the loss changed by less than `rtol` relative; converged after this
# many such steps in a row (with a small gradient).
_CALM_STEPS = 5
# In the scaled coordinates a unit gradient is about one standard deviation from the optimum.
_SMALL_GRADIENT = 0.1


class FitResult(NamedTuple):
    """What [`scarlet_like.fit`][] returns (a pytree: it can come out of `jit` and `vmap`).

    **Fields:**

    - `model`: the fitted model: the point of lowest loss the fit evaluated.
    - `loss`: `(max_steps,)` negative log posterior after each step (NaN after the last step).
    - `steps`: number of steps taken.
    - `converged`: whether the fit stopped because it converged: the relative loss change stayed
      below `rtol` for 5 steps with a small gradient (see `gradient`), or a whole stretch with freshly
      measured curvature made no progress. False when it ran out of steps or hit a non-finite value.
    - `nonfinite`: `(n,)` True for the entries of the flat vector whose gradient (or value) turned
      non-finite; the fit then stopped, and `model` is the best point before that. When the loss is
      not finite but its gradient is, every entry is flagged (it cannot tell which is at fault).
      Under `jit` or `vmap` this is how a start where the log density is not finite shows: the fit
      stops after one step with entries flagged here.
    - `x`: the flat unconstrained vector of `model`.
    - `gradient`: the largest entry of the gradient at `x` in the fit's scaled coordinates, that is
      how many standard deviations (by the local curvature) the optimum may still be away along the
      worst direction. Below 0.1 at a converged optimum; above 1 the optimum was not reached.
    - `at_bounds`: `(n,)` True for the entries of the flat vector whose constrained value ended at a
      bound of its constraint (see [`scarlet_like.constraints.Constraint.at_bound`][]): a size
      collapsed to zero, a Sérsic index at the end of its range. The optimum may lie beyond, or the
      model may be wrong for the data there.
    - `interrupted`: True when the run was interrupted (Ctrl-C, `KeyboardInterrupt`) while `sl.fit`
      drove it from Python (with a progress bar, or adapting the model between stretches): `model`
      is then the best point reached before that, and the fit did not converge.
    """

    model: PyTree
    loss: Float[Array, " max_steps"]
    steps: Int[Array, ""]
    converged: Bool[Array, ""]
    nonfinite: Bool[Array, " n"]
    x: Float[Array, " n"]
    gradient: Float[Array, ""]
    at_bounds: Bool[Array, " n"]
    interrupted: Bool[Array, ""]

    def save(self, path: str | os.PathLike) -> None:
        """Write the result (the fitted model's values and every diagnostic) with
        [`scarlet_like.save`][]; read it back with [`scarlet_like.FitResult.load`][]."""
        save(path, self)

    @classmethod
    def load(cls, path: str | os.PathLike, like: PyTree) -> FitResult:
        """Read a result written by `FitResult.save` (or `sl.save(path, result)`).

        **Arguments:**

        - `path`: the file.
        - `like`: the model fitted (built by the same code; its values are not used), or a
          `FitResult` of the same structure.

        **Returns:**

        The result, equal to the saved one. Raises `ValueError` as [`scarlet_like.load`][] does.
        """
        if not isinstance(like, FitResult):
            # the diagnostics are plain arrays: their shapes and dtypes are in the file
            layout = {leaf["path"]: leaf for leaf in read_layout(path)}
            missing = [name for name in cls._fields[1:] if name not in layout]
            if missing:
                raise ValueError(
                    f"FitResult.load: {os.fspath(path)!r} holds no FitResult (it lacks {', '.join(missing)})"
                )
            like = cls(
                like,
                *(jnp.zeros(layout[name]["shape"], layout[name]["dtype"]) for name in cls._fields[1:]),
            )
        return load(path, like)


class FitState(NamedTuple):
    """The state of a [`FitLoop`][scarlet_like.FitLoop] (a pytree of arrays).

    **Fields:**

    - `x`, `loss`: the point the optimizer last evaluated and its loss (negative log density).
    - `best_x`, `best_loss`: the point of lowest loss this run evaluated so far (a run: from the
      start, or from a release, see `release`), where each stretch starts.
    - `best_gradient`: the gradient of the loss at `best_x` in this stretch's scaled coordinates
      (infinite before the first stretch): what the result reports, without evaluating it again.
    - `history`: `(max_steps,)` loss after each step, NaN where no step was taken (or it failed).
    - `step`: steps taken; `stretch`: stretches started; `stretch_step`: steps in this stretch.
    - `reference`, `scales`: this stretch's coordinates, `x = reference + scales * y`.
    - `y`, `opt_state`: the optimizer's position and state in those coordinates.
    - `calm`: consecutive steps whose loss change was below `rtol`.
    - `stalled`: the stretch ended early (calm with a large gradient, or a jump far uphill).
    - `stretch_start_loss`: the loss when this stretch began.
    - `gradient`: the largest scaled gradient entry at the last step.
    - `done`, `converged`, `nonfinite`: finished; by convergence; the entries that turned non-finite.
    - `key`: for the preconditioner's random probes on large models.
    - `start_x`: where the fit started: where entries trapped at a bound go back to.
    - `released`: the entries sent back to their start once already (each is, at most once), and
      those at a bound from the start.
    - `release`: the entries the next stretch sends back to their start, starting a new run (see
      [`FitLoop.advance`][scarlet_like.FitLoop.advance]).
    - `kept_x`, `kept_loss`, `kept_gradient`: the converged optimum of the runs before this one
      (loss infinite while there is none); the result is this or `best_x`, whichever is lower.
    """

    x: Array
    loss: Array
    best_x: Array
    best_loss: Array
    best_gradient: Array
    history: Array
    step: Array
    stretch: Array
    stretch_step: Array
    reference: Array
    scales: Array
    y: Array
    opt_state: Any
    calm: Array
    stalled: Array
    stretch_start_loss: Array
    gradient: Array
    done: Array
    converged: Array
    nonfinite: Array
    key: Array
    start_x: Array
    released: Array
    release: Array
    kept_x: Array
    kept_loss: Array
    kept_gradient: Array


def require_free_parameters(density: LogDensity, caller: str, model: PyTree) -> None:
    """A `ValueError` when `density` has no free entries: nothing to fit or sample.

    **Arguments:**

    - `density`: the log density of `model`.
    - `caller`: the public function's name, to start the message with (`"fit"`).
    - `model`: the model given, named by its type in the message.
    """
    if density.size == 0:
        raise ValueError(
            f"{caller}: the model ({type(model).__name__}) has no free parameters, so there is nothing to "
            f"{'sample' if caller == 'sample' else 'fit'}; free some with sl.free(model, ...) or give "
            "sl.Parameter(...) where it now has fixed values"
        )


def preconditioner(density: LogDensity, x: Float[Array, " n"], key: PRNGKeyArray | None = None) -> Array:
    """Per-entry step scales from the curvature of the negative log density at `x`.

    **Arguments:**

    - `density`: the log density.
    - `x`: where to measure the curvature.
    - `key`: for the random probes used when there are many entries.

    **Returns:**

    `1 / sqrt(|diag H|)` per entry (bounded), so that a unit step in the scaled coordinates moves every
    parameter by about its own uncertainty. Computed exactly (one Hessian-vector product per entry) for
    up to 256 entries, else estimated from 16 random sign probes.
    """
    loss = lambda v: -density(v)  # noqa: E731
    gradient = jax.grad(loss)

    def hvp(direction: Array) -> Array:
        return jax.jvp(gradient, (x,), (direction,))[1]

    probes = _probes(x, key)
    if x.shape[0] <= _EXACT_DIAGONAL_LIMIT:
        diagonal = jax.lax.map(lambda e: jnp.vdot(e, hvp(e)), probes)
    else:
        diagonal = jnp.mean(jax.lax.map(lambda z: z * hvp(z), probes), axis=0)
    return scales_from_curvature(diagonal).astype(x.dtype)


def _probes(x: Float[Array, " n"], key: PRNGKeyArray | None) -> Float[Array, "probes n"]:
    """The directions along which the curvature is measured: every unit vector for up to 256 entries,
    else 16 random sign vectors (seeded by `key`)."""
    size = x.shape[0]
    if size <= _EXACT_DIAGONAL_LIMIT:
        return jnp.eye(size, dtype=x.dtype)
    key = jax.random.key(0) if key is None else key
    return jax.random.rademacher(key, (_PROBES, size), dtype=x.dtype)


def _gradient_and_scales(
    density: LogDensity,
    x: Float[Array, " n"],
    key: PRNGKeyArray | None,
    lengths: Float[Array, " n"],
    passes: int | Int[Array, ""] = 1,
) -> tuple[Float[Array, ""], Float[Array, " n"], Float[Array, " n"]]:
    """The negative log density at `x`, its gradient there, and step scales as
    [`preconditioner`][scarlet_like.preconditioner] gives them, from the Hessian diagonal by forward
    differences of the gradient: entry `i`'s curvature from the gradient at `x` moved along `i` by
    3 % of `lengths[i]` (the scales of the stretch before: about the entry's own uncertainty).

    Why differences and not Hessian-vector products, as `preconditioner` computes: a fit loop
    compiles the gradient anyway, and differences of it compile no other code, where
    forward-over-reverse derivatives compile 2.5 times the gradient's code (on a two-source scene
    the fit loop's curvature compiled in 3.0 s of CPU against 9.3 s). A preconditioner needs the
    curvature to some per cent, no more. Measured on `bench_deblend.py --method auto --psf band
    --blends 8`: steps of 10 % of the scales made fits worse (median flux error 0.108 against 0.084
    with exact products), 3 % and 1 % did not (0.085, 0.082).

    With `passes` above 1 the measurement is repeated, each time with the scales of the pass before
    as `lengths`: a fit's first stretch takes two, since its lengths (1) are only a guess. With one
    pass there, the quick free-form fit of the HSC demo blend ended at chi^2 1.337 instead of 1.133,
    and tutorial 4's HST image at 1.08 instead of 1.00.
    """
    # the value comes with the gradient at no extra cost: a start moved off its bounds needs it
    value_and_gradient = jax.value_and_grad(lambda v: -density(v))
    size = x.shape[0]
    directions = _probes(x, key)

    def measure(carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        _, _, lengths = carry
        # the first probe stays at x: the gradient there, from the same evaluation site as the others
        points = x[None] + jnp.concatenate(
            [jnp.zeros((1, size), x.dtype), _DIFFERENCE_STEP * lengths[None] * directions]
        )
        values, gradients = jax.lax.map(value_and_gradient, points)
        at_x = gradients[0]
        # the steps as rounded in x's precision, so that a step below x's resolution does not skew them
        moved = points[1:] - x[None]
        # (g(x + d) - g(x))_i / d_i is H_ii plus sum_j H_ij d_j / d_i: nothing else for one entry moved,
        # zero in the mean for random signs
        ratios = jnp.where(moved != 0, (gradients[1:] - at_x[None]) / jnp.where(moved != 0, moved, 1), 0)
        diagonal = jnp.sum(ratios, axis=0) if size <= _EXACT_DIAGONAL_LIMIT else jnp.mean(ratios, axis=0)
        return values[0], at_x, scales_from_curvature(diagonal).astype(x.dtype)

    # more passes, each with the scales of the one before: one place in the program evaluates the gradient
    start = (jnp.zeros((), x.dtype), jnp.zeros_like(x), lengths)
    return jax.lax.fori_loop(0, passes, lambda _, carry: measure(carry), start)


def scales_from_curvature(diagonal: Float[Array, " n"]) -> Float[Array, " n"]:
    """`1 / sqrt(|d|)` per entry of the Hessian diagonal `d` of the negative log density, bounded: the
    step scales of [`preconditioner`][scarlet_like.preconditioner]."""
    curvature = jnp.abs(jnp.where(jnp.isfinite(diagonal), diagonal, 0.0))
    # Each entry gets its own scale, however different the curvatures (fluxes over many decades);
    # entries with no curvature at the start keep a unit scale; no scale exceeds 10 units.
    flat = curvature <= 1e-12
    scales = 1.0 / jnp.sqrt(jnp.where(flat, 1.0, curvature))
    return jnp.where(flat, 1.0, jnp.minimum(scales, 10.0))


@functools.cache
def default_optimizer() -> optax.GradientTransformationExtraArgs:
    """L-BFGS with a strong-Wolfe line search ([`wolfe_line_search`][scarlet_like.infer.wolfe_line_search]),
    one object per process.

    The optimizer is static in the compiled loop: a new object per fit would mean a new compilation
    per fit.
    """
    return optax.lbfgs(linesearch=wolfe_line_search())


@functools.lru_cache(maxsize=32)
def _with_extra_args(optimizer: Any) -> Any:
    # One wrapper per optimizer object, for the same reason as above.
    return optax.with_extra_args_support(optimizer)


def _keeps_value_and_grad(opt_state: Any) -> bool:
    """Whether the optimizer keeps the loss and gradient of its line search in its state (L-BFGS and
    optax's line searches with `store_grad=True` do): the loop then takes them from there instead of
    evaluating the density once more per step. Decided from the state's structure, so any such
    optimizer, not only the default object, gets the cheaper path."""
    marker = object()
    return all(optax.tree_utils.tree_get(opt_state, name, marker) is not marker for name in ("value", "grad"))


class FitLoop(eqx.Module):
    """One fit, step by step: `state = loop.init(key)`, then `state = loop.step(state)` until
    `loop.finished(state)`; `loop.result(state)` is the [`scarlet_like.FitResult`][].

    Like an optax optimizer or a blackjax kernel, a `FitLoop` holds no state of its own; it is a
    pytree (its density's arrays are leaves, its settings static), so it can be passed into `jit`
    and built inside `vmap`. [`scarlet_like.infer.run`][] drives it.

    **Arguments:**

    - `density`: the log density to maximise (for a MAP fit, built with `jacobian=False`).
    - `optimizer`: an optax transformation (default:
      [`default_optimizer`][scarlet_like.infer.default_optimizer]).
    - `max_steps`: the most optimizer steps.
    - `rtol`: the relative loss change below which a step counts as calm.
    - `stretch_steps`: the most steps of one stretch (fresh curvature at the start of each).
    - `max_stretches`: the most stretches (default: one per 5 steps: a stall takes at least 5).
    """

    density: LogDensity
    optimizer: Any = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    stretch_steps: int = eqx.field(static=True)
    max_stretches: int = eqx.field(static=True)

    def __init__(
        self,
        density: LogDensity,
        optimizer: Any = None,
        *,
        max_steps: int = 2000,
        rtol: float = 1e-7,
        stretch_steps: int = STRETCH_STEPS,
        max_stretches: int | None = None,
    ):
        self.density = density
        self.optimizer = default_optimizer() if optimizer is None else _with_extra_args(optimizer)
        self.max_steps = int(max_steps)
        if self.max_steps < 1:
            raise ValueError(f"fit: max_steps must be a positive integer, got {max_steps!r}")
        self.rtol = float(rtol)
        self.stretch_steps = max(1, int(stretch_steps))
        self.max_stretches = (
            max(math.ceil(self.max_steps / self.stretch_steps), math.ceil(self.max_steps / _CALM_STEPS))
            if max_stretches is None
            else int(max_stretches)
        )

    def init(self, key: PRNGKeyArray | None = None, x: Float[Array, " n"] | None = None) -> FitState:
        """The state before the first step, at `x` (default: the model's own values).

        **Arguments:**

        - `key`: seeds the preconditioner's random probes on large models.
        - `x`: the flat unconstrained starting point.

        **Returns:**

        A [`FitState`][scarlet_like.FitState] whose first step will start a stretch.
        """
        x = self.density.x0 if x is None else x
        key = jax.random.key(0) if key is None else key
        loss = -self.density(x)
        y = jnp.zeros_like(x)
        zero = jnp.zeros((), jnp.int32)
        false = jnp.zeros((), bool)
        return FitState(
            x=x,
            loss=loss,
            best_x=x,
            best_loss=loss,
            best_gradient=jnp.full_like(x, jnp.inf),
            history=jnp.full((self.max_steps,), jnp.nan, dtype=x.dtype),
            step=zero,
            stretch=zero,
            # "this stretch is over": the first step starts one
            stretch_step=jnp.asarray(self.stretch_steps, jnp.int32),
            reference=x,
            scales=jnp.ones_like(x),
            y=y,
            opt_state=strong(self.optimizer.init(y)),
            calm=zero,
            stalled=false,
            stretch_start_loss=loss,
            gradient=jnp.asarray(jnp.inf, x.dtype),
            done=false,
            converged=false,
            nonfinite=jnp.zeros(x.shape, bool),
            key=key,
            start_x=x,
            # an entry at a bound from the start has nowhere to go back to
            released=self.density.flat_at_bounds(x),
            release=jnp.zeros(x.shape, bool),
            kept_x=x,
            kept_loss=jnp.asarray(jnp.inf, loss.dtype),
            kept_gradient=jnp.full_like(x, jnp.inf),
        )

    def can_step(self, state: FitState) -> Bool[Array, "*batch"]:
        """Whether the fit has steps left: not finished, within `max_steps` and `max_stretches`."""
        return (
            ~state.done
            & (state.step < self.max_steps)
            & ((state.stretch < self.max_stretches) | ~self.stretch_over(state))
        )

    def finished(self, state: FitState) -> Bool[Array, "*batch"]:
        """Whether the fit is over."""
        return ~self.can_step(state)

    def stretch_over(self, state: FitState) -> Bool[Array, "*batch"]:
        """Whether the next step must start a new stretch."""
        return state.stalled | (state.stretch_step >= self.stretch_steps)

    def restart(self, state: FitState) -> FitState:
        """Start a stretch: from the best point of this run, with the curvature measured there; or,
        when entries are to be released from a bound (`state.release`), a new run from the best
        point with those entries back at their start.

        A released start whose loss or gradient is not finite is given up: the stretch is over at
        once, and the next starts from the best point again.
        """
        releasing = jnp.any(state.release)
        x = jnp.where(state.release, state.start_x, state.best_x)
        value, gradient, scales = _gradient_and_scales(
            self.density,
            x,
            jax.random.fold_in(state.key, state.stretch),
            state.scales,
            # at the first stretch the lengths are a guess (1), and so they are for released entries (their
            # scales were measured against a bound): measure again with what the first pass found
            passes=jnp.where((state.stretch == 0) | releasing, 2, 1),
        )
        value = jnp.where(releasing, value, state.best_loss)
        given_up = releasing & (~jnp.isfinite(value) | ~jnp.all(jnp.isfinite(gradient)))
        new_run = releasing & ~given_up
        y = jnp.zeros_like(x)
        gradient = gradient * scales
        opt_state = self.optimizer.init(y)
        if _keeps_value_and_grad(opt_state):
            # the optimizer's first step reads the loss and gradient at y = 0 from its state
            opt_state = optax.tree_utils.tree_set(opt_state, value=value, grad=gradient)
        return state._replace(
            x=x,
            loss=value,
            best_x=jnp.where(new_run, x, state.best_x),
            best_loss=jnp.where(new_run, value, state.best_loss),
            best_gradient=jnp.where(given_up, state.best_gradient, gradient),
            stretch=state.stretch + 1,
            stretch_step=jnp.zeros_like(state.stretch_step),
            reference=x,
            # (a start given up keeps the scales before it: the next stretch measures from them)
            scales=jnp.where(given_up, state.scales, scales),
            y=y,
            opt_state=strong(opt_state),
            calm=jnp.zeros_like(state.calm),
            stalled=given_up,
            stretch_start_loss=value,
            release=jnp.zeros_like(state.release),
        )

    def advance(self, state: FitState) -> FitState:
        """One optimizer step within the current stretch."""
        rtol = self.rtol
        reference, scales = state.reference, state.scales
        loss_of_y = lambda y: -self.density(reference + scales * y)  # noqa: E731
        # An optimizer that keeps the loss and gradient at its current point (L-BFGS has them from its
        # line search, `restart` from the curvature) is not made to evaluate the density once more per
        # step, and no copy of the density's gradient is compiled for it here.
        if _keeps_value_and_grad(state.opt_state):
            value = optax.tree_utils.tree_get(state.opt_state, "value")
            grad = optax.tree_utils.tree_get(state.opt_state, "grad")
        else:
            value, grad = jax.value_and_grad(loss_of_y)(state.y)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes integer counters with floats
            updates, opt_state = self.optimizer.update(
                grad, state.opt_state, state.y, value=value, grad=grad, value_fn=loss_of_y
            )
            y = optax.apply_updates(state.y, updates)
        current = reference + scales * state.y
        bad = ~jnp.isfinite(grad * scales) | ~jnp.isfinite(current)
        # a loss that is not finite with a finite gradient does not say which entry is at fault: all are
        bad = bad | (~jnp.isfinite(value) & ~jnp.any(bad))
        failed = jnp.any(bad)
        tolerance = rtol * jnp.maximum(jnp.abs(value), 1.0)
        calm = jnp.where(jnp.abs(state.loss - value) <= tolerance, state.calm + 1, 0)
        gradient = jnp.max(jnp.abs(grad))
        # A calm loss with a large gradient is a stall (the next stretch measures the curvature again)
        # ... unless a whole stretch, with fresh curvature, made no progress either: then the gradient
        # is as small as the float precision of the loss allows.
        no_progress = jnp.abs(state.stretch_start_loss - value) <= tolerance
        converged_now = (calm >= _CALM_STEPS) & ((gradient < _SMALL_GRADIENT) | no_progress) & ~failed
        # A line search that gives up may leave the optimizer far uphill (seen on real blends: a loss
        # 1e13 times the best). End the stretch: the next one starts again from the best point.
        jumped = value - state.best_loss > jnp.maximum(jnp.abs(state.best_loss), 1.0)
        improved = ~failed & (value < state.best_loss)
        best_x = jnp.where(improved, current, state.best_x)
        best_loss = jnp.where(improved, value, state.best_loss)
        best_gradient = jnp.where(improved, grad, state.best_gradient)
        # An entry run into a two-sided bound early in a fit stays there, whatever the rest of the fit
        # does later: the constraint's map is flat there (a Sersic index at 6 is an unconstrained value
        # of 17, where the gradient is 0 in float32). So a fit that converges with such entries goes on
        # once from the best point with them back at their start, each entry at most once, and keeps
        # whichever optimum is lower. On the bundled HSC blend (one Sersic profile per galaxy, AMD EPYC)
        # `sl.fit` went from chi^2 1.682 in 397 steps, three Sersic indices and two ellipticities at
        # bounds, to 1.601 in 965. A one-sided bound traps only an entry that has vanished (1e-6 of its
        # start's distance): on the same blend, AVX-512 CPU, a galaxy's fluxes went to 1e-25 in three
        # bands, chi^2 1.647 in 625 steps; sent back, 1.562 in 947. See `Constraint.flat_at_bound`.
        trapped = self.density.flat_at_bounds(best_x) & ~state.released
        release = (
            converged_now
            & jnp.any(trapped)
            & (state.step + 1 < self.max_steps)
            & (state.stretch < self.max_stretches)
        )
        stalled = ((calm >= _CALM_STEPS) & ~converged_now) | jumped | release
        # a release keeps this run's optimum for the result, if it is the lowest so far
        keep = release & (best_loss < state.kept_loss)
        return state._replace(
            # on failure, stay at the last point whose value and gradient were finite
            x=jnp.where(failed, state.x, current),
            loss=jnp.where(failed, state.loss, value),
            best_x=best_x,
            best_loss=best_loss,
            best_gradient=best_gradient,
            history=state.history.at[state.step].set(jnp.where(failed, jnp.nan, value)),
            step=state.step + 1,
            stretch_step=state.stretch_step + 1,
            y=jnp.where(failed, state.y, y),
            opt_state=strong(opt_state),
            calm=calm,
            stalled=stalled,
            gradient=jnp.where(failed, state.gradient, gradient),
            done=failed | (converged_now & ~release),
            converged=converged_now,
            nonfinite=bad,
            released=state.released | (trapped & release),
            release=trapped & release,
            kept_x=jnp.where(keep, best_x, state.kept_x),
            kept_loss=jnp.where(keep, best_loss, state.kept_loss),
            kept_gradient=jnp.where(keep, best_gradient, state.kept_gradient),
        )

    def step(self, state: FitState) -> FitState:
        """One step: a new stretch first if this one is over, then one optimizer step.

        Vectorised drivers call the two halves, [`restart`][scarlet_like.FitLoop.restart] and
        [`advance`][scarlet_like.FitLoop.advance], themselves, so that the curvature is measured only
        when some fit of the batch needs it (under `vmap` both branches of a `cond` are computed).
        """
        state = jax.lax.cond(self.stretch_over(state), self.restart, lambda s: s, state)
        # a restart that gave up a released start leaves its stretch over: the next step starts another
        return jax.lax.cond(self.stretch_over(state), lambda s: s, self.advance, state)

    def result(self, state: FitState) -> FitResult:
        """The [`scarlet_like.FitResult`][] of a state: the lowest point of its runs (this one and the
        optimum kept from before a release), and what is known about it."""
        kept = lowest_is_kept(state)
        x = jnp.where(kept, state.kept_x, state.best_x)
        # the gradient at the best point is known from the step that reached it (or the curvature's
        # measurement there): evaluating it again would compile another copy of the density's gradient
        gradient = jnp.where(kept, state.kept_gradient, state.best_gradient)
        return FitResult(
            model=self.density.model(x),
            loss=state.history,
            steps=state.step,
            # an optimum is kept only once converged; the run after it failing does not touch it
            converged=kept | state.converged,
            nonfinite=state.nonfinite & ~kept,
            x=x,
            gradient=jnp.max(jnp.abs(jnp.where(jnp.isfinite(gradient), gradient, jnp.inf))),
            at_bounds=self.density.at_bounds(x),
            interrupted=jnp.zeros((), bool),
        )


def lowest_is_kept(state: FitState) -> Bool[Array, "*batch"]:
    """Whether the lowest point of a fit so far is the optimum kept from before a release (else it is
    the current run's best point)."""
    return state.kept_loss < state.best_loss


def run(
    restart: Any,
    advance: Any,
    can_step: Any,
    stretch_over: Any,
    state: FitState,
    until: Int[Array, ""] | int,
) -> FitState:
    """Drive a fit, or a batch of fits in lockstep, until step `until` or the end.

    The same code runs one fit (`state` without a batch axis) and a batch (a leading axis, with
    `restart` and `advance` vectorised): an outer loop over stretches, measuring the curvature only
    for fits that start one, and an inner loop over steps that runs while any fit of the batch is in
    its stretch. A fit with nothing to do is stepped from a stand-in (its own state after its first
    step) and the result dropped: at a converged point the line search would fail through all its
    trials (20 for L-BFGS, two density evaluations each), at the stand-in it succeeds at once.

    **Arguments:**

    - `restart`, `advance`, `can_step`, `stretch_over`: the methods of a
      [`FitLoop`][scarlet_like.FitLoop], or their vectorised versions.
    - `state`: where the fit(s) stand.
    - `until`: stop before this step (the fit may stop earlier).

    **Returns:**

    The state(s) after the steps.
    """

    def active(state: FitState) -> Array:
        return can_step(state) & (state.step < until)

    def in_stretch(state: FitState) -> Array:
        return active(state) & ~stretch_over(state)

    def stretch(carry: tuple[FitState, FitState]) -> tuple[FitState, FitState]:
        state, stand_in = carry
        state = _if(active(state) & stretch_over(state), restart, state)

        def one_step(carry: tuple[FitState, FitState]) -> tuple[FitState, FitState]:
            state, stand_in = carry
            if state.step.ndim == 0:
                # one fit: the loop runs only while it is in its stretch
                return advance(state), stand_in
            moving = in_stretch(state)
            stepped = advance(_where(moving, state, stand_in))
            # the first step of a fit makes its stand-in
            stand_in = _where(stand_in.step == 0, stepped, stand_in)
            return _where(moving, stepped, state), stand_in

        return jax.lax.while_loop(lambda c: jnp.any(in_stretch(c[0])), one_step, (state, stand_in))

    state, _ = jax.lax.while_loop(lambda c: jnp.any(active(c[0])), stretch, (state, state))
    return state


def _if(condition: Array, function: Any, state: FitState) -> FitState:
    """`function(state)` where `condition` holds: for one fit a `cond` (not computed otherwise), for a
    batch computed for all and kept where it holds."""
    if condition.ndim == 0:
        return jax.lax.cond(condition, function, lambda s: s, state)
    return _where(condition, function(state), state)


def _where(condition: Array, yes: PyTree, no: PyTree) -> PyTree:
    """Fit by fit (`condition` has one entry per fit, or is a scalar): `yes` where it holds, else `no`."""

    def pick(a: Array, b: Array) -> Array:
        return jnp.where(condition.reshape(condition.shape + (1,) * (a.ndim - condition.ndim)), a, b)

    return jax.tree_util.tree_map(pick, yes, no)

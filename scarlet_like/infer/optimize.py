"""`sl.fit`: maximum a posteriori fitting on device, preconditioned, with a NaN guard."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._programs import stored_jit
from ..core import LogDensity, canonical_tokens, get_values, rename_tokens, resolve
from ..core.tree import any_traced, tokens
from .compiled_code import release_if_near_limit
from .fit_loop import (
    STRETCH_STEPS,
    FitLoop,
    FitResult,
    FitState,
    require_free_parameters,
    run,
)
from .progress import progress_bar

__all__ = ["FitWarning", "Starts", "fit", "fit_starts", "fit_warnings"]

# A converged fit whose chi^2 per data value is above this is reported: the model (or the optimum it
# found) does not describe the data. Real blends fitted well give 1.0 to 1.7 (the bundled HSC blend:
# 1.2 with bulge + disk sources chosen by BIC, 1.56-1.60 with one Sersic profile each).
_CHI2_FAR_ABOVE = 2.0


# A fitted value further than this many standard deviations from the centre of its Normal prior is
# reported: the data pulled it where its prior says it should not be. (On the bundled HSC blend, fitted
# with one Sersic profile per galaxy, the two faintest detections' centres end 15 px, 15 sd of their
# priors, from their detections: the fit takes them onto the bright galaxy as extra components.)
_FAR_FROM_PRIOR = 5.0


# An unconverged fit is reported only if its gradient is at least this (in units of each parameter's
# uncertainty): below, the optimum is within a tenth of a standard deviation, whatever the loss does.
_NEAR_OPTIMUM = 0.1


class FitWarning(RuntimeWarning):
    """What [`scarlet_like.fit`][] warns about its result: it did not converge, parameters ended at a
    bound of their constraint, a value turned non-finite, or the chi^2 is far above the number of
    data values. Filter it as any warning (`warnings.simplefilter("ignore", sl.FitWarning)`)."""


def _check_start(density: LogDensity) -> None:
    """A clear error when the starting point itself is not finite, naming the offending terms."""
    terms = density.terms(density.x0)
    bad = [name for name, value in terms.items() if not np.isfinite(np.asarray(value))]
    if bad:
        raise FloatingPointError(
            f"fit: the log density is not finite at the starting point: {', '.join(bad)}"
        )


def fit(
    model: PyTree,
    likelihood: Any,
    *,
    optimizer: Any = None,
    max_steps: int = 2000,
    rtol: float = 1e-7,
    progress: bool = True,
    key: PRNGKeyArray | None = None,
    chunks: int | None = None,
    adapt: Any = "auto",
) -> FitResult:
    """Find the maximum a posteriori model.

    **Arguments:**

    - `model`: any model with free [`scarlet_like.Parameter`][]s.
    - `likelihood`: an Observation, a list of them, or a callable of the resolved model.
    - `optimizer`: an optax transformation; default L-BFGS. Whatever it is, it runs in coordinates
      scaled by the curvature of each parameter (see [`scarlet_like.preconditioner`][]), so no step
      size needs tuning.
    - `max_steps`: the most optimizer steps.
    - `rtol`: converged when the relative change of the loss stays below this for 5 steps and the
      gradient in the scaled coordinates is below 0.1 (or a whole stretch, with freshly measured
      curvature, makes no progress: the float precision of the loss is reached).
    - `progress`: show a progress bar. With `progress=False` the whole fit is one JAX computation,
      and `fit` can be called inside the caller's `jax.jit` or `jax.vmap`. Called outside them (with
      or without a bar), `fit` checks the start on the host and warns about the result; inside them
      it can do neither: look at the result's `nonfinite` and `converged`.
    - `key`: for the random probes of the preconditioner on large models.
    - `chunks`: the fit runs in this many stretches of `max_steps / chunks` steps; the curvature is
      measured again at the start of each (and the progress bar advances). Default: one stretch per
      100 steps. A stretch that stalls ends early, and its unused steps go to further stretches.
    - `adapt`: a function `model -> model` called between stretches with the model at the best point
      so far, which may change what is static in it (the free parameters must stay the same); when it
      returns a new model, the fit continues from the same values with it. `"auto"` (default) uses
      the model's own `adapted()` method if it has one: a [`scarlet_like.Scene`][] grows the boxes its
      sources outgrow ([`Scene.grown`][scarlet_like.Scene.grown]). `None`: never.

    **Returns:**

    A [`scarlet_like.FitResult`][]. The density maximised leaves out the constraints' log|det J|
    (a maximum a posteriori fit in the constrained parameters). If a loss or gradient turns
    non-finite, the fit stops and returns the best point evaluated before that; outside `jit` and
    `vmap` it warns ([`scarlet_like.FitWarning`][]) naming the parameters, as it warns when the fit
    did not converge or ended at bounds. A step that lands far uphill (a line search that gave up)
    ends its stretch, and the next one starts again from the best point.

    A parameter that runs into a two-sided bound early on (a Sérsic index at 6, an ellipticity at 1)
    cannot come back by itself, whatever the rest of the fit does later: its constraint's map is flat
    there. So when the fit converges with such entries, it goes on once from the optimum with those
    entries back at their starting values, and returns the lower of the two optima; each entry is
    sent back at most once. (On the bundled HSC blend this took χ² from 1.68 to 1.60.) The steps
    count against `max_steps`.

    Ctrl-C (`KeyboardInterrupt`) during a fit driven from Python, a stretch at a time (with a
    progress bar, or with a model adapted between stretches), ends it at the end of the stretch
    under way: the result is the best model so far, flagged `interrupted`, with a `FitWarning` saying
    so. A fit run as one compiled computation (`progress=False` and nothing to adapt) cannot be
    interrupted part-way.

    Raises `ValueError` naming the model's type when it has no free parameters (also under `jit`).
    Outside `jit` and `vmap`, raises `FloatingPointError` naming the terms (likelihood, priors) whose
    log density is not finite at the start; inside them the fit stops after one step instead, with
    the entries at fault (all of them, when only the loss is not finite) flagged in `nonfinite`.
    """
    loop_options = _loop_options(optimizer, max_steps, rtol, chunks)
    density = LogDensity(model, likelihood, jacobian=False)
    require_free_parameters(density, "fit", model)
    release_if_near_limit("fit", density)
    key = jax.random.key(0) if key is None else key
    if not progress and any_traced((density, key)):
        # inside the caller's jit or vmap: the fit is part of their computation
        return _fit_all(FitLoop(density, **loop_options), key)
    # compile for the canonical structure: a model rebuilt the same way reuses the compiled loop
    canonical, restore = canonical_tokens(density)
    loop = FitLoop(canonical, **loop_options)
    adapter = _adapter(adapt, model)
    if progress or adapter is not None:
        result, loop = _fit_in_segments(loop, key, progress=progress, adapt=adapter, likelihood=likelihood)
    else:
        result = _compiled_fit_all(loop, key)
    if not np.isfinite(np.asarray(result.loss)[0]):
        # A start where the log density is not finite ends the fit at its first step. Only then are
        # the terms evaluated one by one to name the culprit: checking every start beforehand ran
        # the density eagerly, op by op (on the demo blend, cold, 389 small programs compiled:
        # 12.7 s of an 85 s fit, shared 2-core machine at load 6).
        _check_start(density)
    result = result._replace(model=restore(result.model))
    for message in fit_warnings(result, loop.density, likelihood):
        warnings.warn(message, FitWarning, stacklevel=2)
    return result


def _adapter(adapt: Any, model: PyTree) -> Any:
    """The function `fit` calls between stretches, or None."""
    if adapt is None:
        return None
    if isinstance(adapt, str):
        if adapt != "auto":
            raise ValueError(f"fit: adapt must be 'auto', None or a function model -> model, got {adapt!r}")
        method = getattr(type(model), "adapted", None)
        return (lambda current: current.adapted()) if callable(method) else None
    if not callable(adapt):
        raise TypeError(f"fit: adapt must be 'auto', None or a function model -> model, got {adapt!r}")
    return adapt


def _adapted(loop: FitLoop, state: FitState, adapt: Any, likelihood: Any) -> tuple[FitLoop, FitState]:
    """The loop and state after `adapt` of the model at the best point: the same ones if it kept the
    model, else a loop for the new model and a state that starts a fresh stretch at the same values."""
    # the lowest point of the fit's runs: a run started from released bounds is given up if it is higher
    # (`lowest_is_kept`, on the host: between stretches, small eager programs are each lowered again by
    # every fresh process)
    kept = np.asarray(state.kept_loss) < np.asarray(state.best_loss)
    lowest = np.where(kept[..., None], np.asarray(state.kept_x), np.asarray(state.best_x))
    current = loop.density.model(jax.device_put(lowest))
    changed = adapt(current)
    if changed is current:
        return loop, state
    density = LogDensity(changed, likelihood, jacobian=False)
    if sorted(density.names) != sorted(loop.density.names):
        raise ValueError(
            "fit: adapt must keep the model's free parameters; it changed "
            f"{sorted(set(density.names) ^ set(loop.density.names))[:5]}"
        )
    loop = eqx.tree_at(lambda old: old.density, loop, density)
    return loop, _moved(loop, state)


@eqx.filter_jit
def _moved(loop: FitLoop, state: FitState) -> FitState:
    """`state` at the new loop's own values (their order in the flat vector may differ), its loss
    measured again, a new stretch due."""
    fresh = loop.init(state.key)
    return state._replace(
        x=fresh.x,
        loss=fresh.loss,
        best_x=fresh.best_x,
        best_loss=fresh.best_loss,
        best_gradient=fresh.best_gradient,
        reference=fresh.reference,
        scales=fresh.scales,
        y=fresh.y,
        opt_state=fresh.opt_state,
        calm=fresh.calm,
        stalled=fresh.stalled,
        stretch_step=fresh.stretch_step,
        nonfinite=fresh.nonfinite,
        done=fresh.done,
        converged=fresh.converged,
        # the flat vector's order may have changed: entries trapped at a bound are released to the
        # values at this change from now on (where those are not at the bound already)
        start_x=fresh.start_x,
        released=fresh.released,
        release=fresh.release,
        kept_x=fresh.kept_x,
        kept_loss=fresh.kept_loss,
        kept_gradient=fresh.kept_gradient,
    )


def _loop_options(optimizer: Any, max_steps: int, rtol: float, chunks: int | None) -> dict[str, Any]:
    """`FitLoop`'s settings from `fit`'s arguments."""
    max_steps = int(max_steps)
    if max_steps < 1:
        raise ValueError(f"fit: max_steps must be a positive integer, got {max_steps!r}")
    count = math.ceil(max_steps / STRETCH_STEPS) if chunks is None else int(chunks)
    count = max(1, min(count, max_steps))
    return {
        "optimizer": optimizer,
        "max_steps": max_steps,
        "rtol": rtol,
        "stretch_steps": math.ceil(max_steps / count),
        # a stalled stretch ends early and its steps go to further stretches: up to one per 5 steps
        "max_stretches": max(count, math.ceil(max_steps / 5)),
    }


def _methods(loop: FitLoop, batched: bool) -> tuple[Any, Any, Any, Any]:
    """The loop's `restart`, `advance`, `can_step` and `stretch_over`, over a batch of starts of the
    same density if `batched`."""
    methods = (loop.restart, loop.advance, loop.can_step, loop.stretch_over)
    if not batched:
        return methods
    restart, advance, can_step, stretch_over = (jax.vmap(method) for method in methods)
    return restart, advance, can_step, stretch_over


def _init(loop: FitLoop, key: PRNGKeyArray, starts: Array | None) -> FitState:
    if starts is None:
        return loop.init(key)
    return jax.vmap(loop.init)(jax.random.split(key, starts.shape[0]), starts)


def _result(loop: FitLoop, state: FitState, batched: bool) -> FitResult:
    return jax.vmap(loop.result)(state) if batched else loop.result(state)


def _fit_all(loop: FitLoop, key: PRNGKeyArray, starts: Array | None = None) -> FitResult:
    """The whole fit (of every start in `starts`, if given) as one JAX computation."""
    batched = starts is not None
    state = run(*_methods(loop, batched), _init(loop, key, starts), loop.max_steps)
    return _result(loop, state, batched)


# Kept on disk between processes (`_programs.py`): a fresh process neither traces nor lowers them again
_compiled_fit_all = stored_jit(_fit_all)
_fit_init = stored_jit(_init)
_fit_result = stored_jit(_result)


@stored_jit
def _fit_segment(loop: FitLoop, state: FitState, until: Array, batched: bool) -> tuple[FitState, Array]:
    """The fit's steps up to step `until`, and whether every fit is then over."""
    state = run(*_methods(loop, batched), state, until)
    return state, jnp.all(loop.finished(state))


def _fit_in_segments(
    loop: FitLoop,
    key: PRNGKeyArray,
    starts: Array | None = None,
    *,
    progress: bool = True,
    adapt: Any = None,
    likelihood: Any = None,
) -> tuple[FitResult, FitLoop]:
    """The fit driven from Python a stretch's worth of steps at a time: a progress bar advancing, and
    `adapt` called in between. Returns the result and the loop it ended with.

    A `KeyboardInterrupt` (Ctrl-C) ends the fit where it stands: the result is that of the last
    completed stretch (its best point), flagged `interrupted`."""
    batched = starts is not None
    state = _fit_init(loop, key, starts)
    interrupted = False
    with progress_bar(loop.max_steps, "fit", "step", disable=not progress) as bar:
        try:
            while True:
                # (what the host reads between stretches is read with NumPy: as `jnp` operations each
                # would be a small program of its own, lowered again by every fresh process)
                before = int(np.max(np.asarray(state.step)))
                until = jax.device_put(np.int32(min(before + loop.stretch_steps, loop.max_steps)))
                # `state` and `loop` are only ever replaced whole: an interrupt leaves a consistent pair
                state, finished = _fit_segment(loop, state, until, batched)
                bar.update(int(np.max(np.asarray(state.step))) - before)
                lowest = np.minimum(np.asarray(state.best_loss), np.asarray(state.kept_loss))
                bar.set_postfix(loss=f"{float(np.min(lowest)):.6g}")
                if adapt is not None:
                    # also after the last step: a fit that converged with a source cut by its box goes on
                    # with the larger box while steps remain
                    adapted = _adapted(loop, state, adapt, likelihood)
                    if adapted[0] is not loop:  # a new model: "finished" is asked of its loop
                        finished = jnp.all(adapted[0].finished(adapted[1]))
                    loop, state = adapted
                if bool(finished):
                    break
        except KeyboardInterrupt:
            interrupted = True
    result = _fit_result(loop, state, batched)
    if interrupted:
        result = result._replace(interrupted=jnp.ones_like(result.interrupted))
    return result, loop


class Starts(NamedTuple):
    """What [`scarlet_like.fit_starts`][] returns.

    **Fields:**

    - `best`: the [`scarlet_like.FitResult`][] of the start that ended at the lowest loss.
    - `results`: every start's `FitResult`, in the order of the starts.
    - `losses`: `(starts,)` the final loss (negative log posterior) of each start.
    - `best_index`: which start is `best`.
    - `values`: `{name: (starts, ...)}` every start's fitted constrained values, as
      [`scarlet_like.get_values`][] names them: the spread of the optima.
    """

    best: FitResult
    results: list[FitResult]
    losses: Float[Array, " starts"]
    best_index: int
    values: dict[str, Array]

    def distinct(self, tolerance: float = 1.0) -> int:
        """How many different optima the starts found: final losses more than `tolerance` (in units of
        the log posterior, default 1) apart count as different."""
        losses = np.sort(np.asarray(self.losses)[np.isfinite(np.asarray(self.losses))])
        return int(1 + np.sum(np.diff(losses) > tolerance)) if losses.size else 0


def fit_starts(
    model: PyTree,
    likelihood: Any,
    *,
    starts: int | Sequence[PyTree] = 8,
    scatter: float = 0.5,
    key: PRNGKeyArray | None = None,
    progress: bool = True,
    vectorize: int | None = None,
    **fit_kwargs: Any,
) -> Starts:
    """Fit the same model from several starts and keep the best.

    Where a fit can end in different optima (a faint source wandering to its neighbour, a galaxy
    collapsing to a point, a bulge taken for a disk), several starts find them; the one of lowest
    loss is kept, and the others show how far apart the optima are. The starts are fitted as
    [`scarlet_like.fit_many`][] fits blends: one compiled fit, spread over the devices, side by side
    (`vmap`) where that pays.

    **Arguments:**

    - `model`, `likelihood`: as for [`scarlet_like.fit`][].
    - `starts`: how many starts: the model's own values and `starts - 1` scattered copies; or a list
      of models of the same structure (e.g. alternatives built with `sl.init`) to start from.
    - `scatter`: the standard deviation of the scatter, in the unconstrained coordinates (a position
      moves by about that many pixels, a positive value by a factor of about `exp(scatter)`).
    - `key`: seeds the scatter (and the fits' preconditioner probes).
    - `progress`: a progress bar over the starts.
    - `vectorize`: how many starts a device fits side by side, as for `fit_many` (default: one after
      the other on CPUs, all at once elsewhere).
    - `fit_kwargs`: `optimizer`, `max_steps`, `rtol`, `chunks`, as for `sl.fit`.

    **Returns:**

    A [`scarlet_like.Starts`][]: the best fit, every fit, their final losses and their values.
    Warns ([`scarlet_like.FitWarning`][]) about the best fit as `sl.fit` would, and raises as it does
    for a model with no free parameters or a start where the log density is not finite. Ctrl-C between
    starts (with `progress=True`, on CPUs, where they are fitted one at a time) returns the best of
    the starts fitted so far, with a warning; before the first is done, it raises again.
    """
    from .batch import fit_many

    density = LogDensity(model, likelihood, jacobian=False)
    require_free_parameters(density, "fit_starts", model)
    release_if_near_limit("fit_starts", density)
    key = jax.random.key(0) if key is None else key
    scatter_key, fit_key = jax.random.split(key)
    if isinstance(starts, int | np.integer):
        if starts < 1:
            raise ValueError(f"fit_starts: starts must be a positive integer, got {starts}")
        noise = scatter * jax.random.normal(scatter_key, (int(starts) - 1, density.size), density.x0.dtype)
        models = [model] + [density.model(density.x0 + row) for row in noise]
    else:
        models = list(starts)
        if not models:
            raise ValueError("fit_starts: got an empty list of starts")
        for index, other in enumerate(models):
            _check_same_parameters(density, other, index)
    _check_start(density)
    # Each start its own identities: starts sharing identities would be stacked as one shared model.
    renamed = [
        rename_tokens(start, {token: f"{token}~start{index}" for token in tokens(start)})
        for index, start in enumerate(models)
    ]
    on_cpu = jax.local_devices()[0].platform == "cpu"
    with warnings.catch_warnings():
        # fit_many's own word on an interrupt speaks of blends; said below in terms of starts
        warnings.filterwarnings("ignore", "fit_many was interrupted", FitWarning)
        results = fit_many(
            renamed,
            [likelihood] * len(models),
            progress=progress,
            # one start per compiled call where they run one after the other anyway: the bar advances
            batch_size=1 if progress and on_cpu and vectorize in (None, 1) else None,
            vectorize=vectorize,
            key=fit_key,
            **fit_kwargs,
        )
    if len(results) < len(models):
        warnings.warn(
            f"fit_starts was interrupted (KeyboardInterrupt) after {len(results)} of {len(models)} starts; "
            "returning the best of those",
            FitWarning,
            stacklevel=2,
        )
        models = models[: len(results)]
    xs = jnp.stack([result.x for result in results])
    # for the canonical structure: compiled once for all scenes built the same way
    losses, values = _losses_and_values(canonical_tokens(density)[0], xs)
    best_index = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
    best = results[best_index]
    start = models[best_index]
    back = {f"{token}~start{best_index}": token for token in tokens(start)}
    best = best._replace(model=rename_tokens(best.model, back))
    for message in fit_warnings(best, density, likelihood):
        warnings.warn(message, FitWarning, stacklevel=2)
    return Starts(best=best, results=results, losses=losses, best_index=best_index, values=values)


@eqx.filter_jit
def _losses_and_values(density: LogDensity, xs: Array) -> tuple[Array, dict[str, Array]]:
    """Each start's final loss and constrained values."""

    def one(x: Array) -> tuple[Array, dict[str, Array]]:
        return -density(x), get_values(density.model(x))

    return jax.vmap(one)(xs)


def _check_same_parameters(density: LogDensity, model: PyTree, index: int) -> None:
    """A start given as a model must have the free parameters of the first."""
    names = LogDensity(model, density.likelihood, jacobian=False).names
    if names != density.names:
        different = sorted(set(names) ^ set(density.names))[:5]
        raise ValueError(
            f"fit_starts: start {index} has other free parameters than the model ({', '.join(different)}); "
            "give starts of the same structure"
        )


def fit_warnings(result: FitResult, density: LogDensity, likelihood: Any = None) -> list[str]:
    """What is wrong with a fit's result, in words; empty when nothing is.

    **Arguments:**

    - `result`: a [`scarlet_like.FitResult`][] of one fit.
    - `density`: the log density it maximised (for the names of the entries).
    - `likelihood`: what the fit was given; observations among it give the chi^2 check.

    **Returns:**

    One message per finding: an interrupted fit, non-finite values (naming the parameters), no
    convergence with a gradient still above 0.1 standard deviations, parameters at a bound of their
    constraint (naming them and their values), parameters more than 5 standard deviations from the
    centre of their Normal prior (naming them, their values and the prior's centre), sources of a
    scene centred off its frame, and a chi^2 per data value above 2 for the observations.
    """
    messages = []
    names = density.names
    steps = int(result.steps)
    if bool(result.interrupted):
        messages.append(
            f"fit was interrupted (KeyboardInterrupt) after {steps} steps; returning the best model so "
            "far, not converged (FitResult.interrupted is True)"
        )
    elif bool(np.any(np.asarray(result.nonfinite))):
        bad = [name for name, flag in zip(names, np.asarray(result.nonfinite), strict=True) if flag]
        messages.append(
            f"fit stopped at step {steps}: non-finite gradient or value for {', '.join(bad)}; "
            "returning the best point before that"
        )
    elif not bool(result.converged) and float(result.gradient) >= _NEAR_OPTIMUM:
        messages.append(
            f"fit did not converge in {steps} steps: the largest gradient, in units of each parameter's "
            f"uncertainty, is {float(result.gradient):.3g}; raise max_steps, or start closer to the "
            "optimum (sl.init.scene, sl.fit_starts)"
        )
    if bool(np.any(np.asarray(result.at_bounds))):
        at = [name for name, flag in zip(names, np.asarray(result.at_bounds), strict=True) if flag]
        model_values = _named_values(result.model)
        shown = ", ".join(f"{name} = {model_values.get(name, '?')}" for name in at)
        messages.append(
            f"fit ended with {len(at)} parameter(s) at a bound of their constraint: {shown}; the data may "
            "ask for another model there (a point source instead of a collapsed galaxy, another "
            "component, a wider constraint)"
        )
    far = _far_from_normal_priors(result.model)
    if far:
        messages.append(
            f"fit ended with {len(far)} parameter(s) more than {_FAR_FROM_PRIOR:g} standard deviations from "
            f"the centre of their Normal prior: {'; '.join(far)}; the data pulled them away (a source "
            "taken onto a neighbour's light, a missing source or component, or too narrow a prior); "
            "sl.init.scene(..., max_shift=4.0) keeps each source's centre near its detection"
        )
    off = _sources_off_frame(result.model)
    if off:
        messages.append(
            f"fit ended with {len(off)} source(s) centred off the model frame: {'; '.join(off)}; a source is "
            "drawn by a Fourier phase that repeats over the padded grid, so one that moved far off the "
            "frame draws its light back onto the opposite side; hold its centre with a tighter prior or a "
            "constraint, or drop the source"
        )
    chi2 = _chi2_per_value(result.model, likelihood)
    if chi2 is not None and chi2 > _CHI2_FAR_ABOVE:
        messages.append(
            f"fit ended at a chi^2 per data value of {chi2:.3g}, far above 1: the model does not describe "
            "the data (a poor optimum, or sources missing or of the wrong kind); look at the residuals"
        )
    return messages


def _far_from_normal_priors(model: PyTree) -> list[str]:
    """`"name = value (prior centre c, z sd)"` for each parameter of `far_from_normal_priors(model)`."""
    return [
        f"{name} = {np.round(value, 3).tolist()} (prior centre {np.round(centre, 3).tolist()}, "
        f"{distance:.3g} sd)"
        for name, (value, centre, distance) in far_from_normal_priors(model).items()
    ]


def far_from_normal_priors(
    model: PyTree, limit: float = _FAR_FROM_PRIOR
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """The free parameters with a Normal prior (or one made of Normals by `to_event`) whose value lies
    more than `limit` prior standard deviations from the prior's centre in some element: a source's
    centre the data pulled onto a neighbour's light, say.

    **Arguments:**

    - `model`: a model with free Parameters, e.g. a fit's `result.model`.
    - `limit`: how many prior standard deviations count as far (default 5).

    **Returns:**

    `{name: (value, centre, distance)}`, names as [`scarlet_like.get_values`][] gives them, the
    distance the largest over the elements, in prior standard deviations. Other priors have no single
    centre and width to compare with, and are left out.
    """
    import numpyro.distributions as nd

    from ..core.priors import NumpyroPrior
    from ..core.tree import parameters

    found = {}
    for name, parameter in parameters(model, free_only=True).items():
        if not isinstance(parameter.prior, NumpyroPrior):
            continue
        distribution = parameter.prior.distribution
        while isinstance(distribution, nd.Independent):
            distribution = distribution.base_dist
        if type(distribution) is not nd.Normal:
            continue
        value = np.asarray(parameter.value, np.float64)
        try:
            centre = np.broadcast_to(np.asarray(distribution.loc, np.float64), value.shape)
            distance = np.abs(value - centre) / np.asarray(distribution.scale, np.float64)
        except ValueError:  # a prior batched differently from its value (a plate's): not compared
            continue
        if np.all(np.isfinite(distance)) and float(np.max(distance, initial=0.0)) > limit:
            found[name] = (value, centre, float(np.max(distance)))
    return found


def _sources_off_frame(model: PyTree) -> list[str]:
    """`"sources[i].center = [y, x] (frame H x W)"` for each source of a scene (anything with `sources`
    and a `frame` that can say whether it `contains` a position) whose centre lies off the frame."""
    frame: Any = getattr(model, "frame", None)
    sources = getattr(model, "sources", None)
    if sources is None or not callable(getattr(frame, "contains", None)):
        return []
    found = []
    for index, source in enumerate(sources):
        try:
            center = np.asarray(resolve(source).center, np.float64)
        except (AttributeError, TypeError, ValueError):  # a source without one centre
            continue
        if center.shape == (2,) and np.all(np.isfinite(center)) and not frame.contains(center):
            position = np.round(center, 2).tolist()
            found.append(f"sources[{index}].center = {position} (frame {frame.height} x {frame.width})")
    return found


def _named_values(model: PyTree) -> dict[str, str]:
    """`{entry name: value as text}` for the free entries of `model`."""
    out = {}
    for name, value in get_values(model).items():
        array = np.asarray(value)
        if array.ndim == 0:
            out[name] = f"{float(array):.3g}"
        else:
            for index in np.ndindex(array.shape):
                out[name + "".join(f"[{i}]" for i in index)] = f"{float(array[index]):.3g}"
    return out


@stored_jit
def _chi2_total(observations: tuple[Any, ...], model: PyTree) -> Array:
    """The observations' summed chi^2, compiled: those of a class with a `chi2_of_many(terms, model)`
    classmethod (observations of one shape, stacked) at once, the others one by one. Eagerly, one
    observation after the other, it took 7 s of a 38 s fit over ten nights."""
    by_class: dict[Any, list[Any]] = {}
    for term in observations:
        by_class.setdefault(type(term), []).append(term)
    totals = [
        kind.chi2_of_many(tuple(terms), model)
        if callable(getattr(kind, "chi2_of_many", None))
        else sum(term.chi2(model) for term in terms)
        for kind, terms in by_class.items()
    ]
    return sum(totals[1:], start=totals[0])


def _chi2_per_value(model: PyTree, likelihood: Any) -> float | None:
    """Chi^2 per usable data value over the observations in `likelihood`; None if it holds none."""
    terms = likelihood if isinstance(likelihood, list | tuple) else [likelihood]
    observations = [
        term for term in terms if callable(getattr(term, "chi2", None)) and hasattr(term, "weights")
    ]
    if not observations or len(observations) != len(terms):
        return None
    # numbered identities: a model built again the same way is the same program
    canonical, _ = canonical_tokens(model)
    chi2 = float(_chi2_total(tuple(observations), canonical))
    count = sum(int(np.sum(np.asarray(term.weights) > 0)) for term in observations)
    return chi2 / max(count, 1)

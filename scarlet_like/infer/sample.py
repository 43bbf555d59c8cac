"""`sl.sample`: the No-U-Turn sampler (blackjax) on any model, and the [`scarlet_like.Posterior`][] it
returns.

The sampler works on the flat unconstrained vector of [`scarlet_like.LogDensity`][], whose log
density includes the constraints' log|det J|: draws of `x` are draws of the posterior of the
unconstrained parameters, and mapping them through the constraints gives draws of the constrained
ones. Warmup is Stan's windowed adaptation (dual averaging of the step size, a mass matrix from the
draws of expanding windows), run chain by chain. The first mass matrix comes from the curvature of
the log density where each chain starts (the Laplace approximation's covariance when that is the
mode); it is dense (correlations included) for models of up to 100 free entries, diagonal above.

**numpyro interop.** The same density drives numpyro's own NUTS, which is handy to cross-check a
result or to use numpyro's tooling:

```python
density = sl.LogDensity(model, likelihood)
mcmc = numpyro.infer.MCMC(
    numpyro.infer.NUTS(potential_fn=lambda x: -density(x)), num_warmup=500, num_samples=1000
)
mcmc.run(jax.random.key(0), init_params=density.x0)
draws = mcmc.get_samples()                           # (draw, n) flat unconstrained vectors
models = jax.vmap(density.model)(draws)              # back to models, or sl.get_values(...)
```

(Under strict dtype promotion, run numpyro inside `jax.numpy_dtype_promotion("standard")`.)
"""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, overload

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.adaptation.window_adaptation import build_schedule
from blackjax.mcmc.hmc import HMCState
from jax.sharding import NamedSharding, PartitionSpec
from jaxtyping import Array, Bool, Float, Int, Key, PRNGKeyArray, PyTree, UInt32
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

from .._programs import stored_jit
from ..core import (
    LogDensity,
    Unravel,
    canonical_tokens,
    entry_names,
    get_values,
    has_log_density,
    ravel,
    stacked_lists,
    unstacked_lists,
    walk,
)
from ..core.serialization import UNRECORDED, package_version, written_by
from ..core.tree import any_traced
from .compiled_code import release_if_near_limit
from .fit_loop import FitResult, preconditioner, require_free_parameters, scales_from_curvature
from .laplace import Laplace, _gaussian_draws
from .progress import progress_bar
from .weak_types import strong

__all__ = ["ImproperPriorWarning", "Posterior", "sample"]

# Stage of a step when sampling; warmup steps have blackjax's stages, 0 (adapt the step size only) and
# 1 (the mass matrix too: Stan's "slow" windows).
_SAMPLING = 2
_FORMAT = 1
_MAX_DOUBLINGS = 10
# `mass_matrix="auto"`: dense up to this many free entries (see `sample`). Measured: the demo's HSC blend
# (69 entries, 4 chains x (100 + 100) from the fit) mixes 16 times faster per second with a dense matrix
# (min bulk ESS 213 in 121 s, R-hat 1.009, against 19 in 170 s, R-hat 1.18); on a correlated Gaussian of
# 128 entries, the windows' estimates from 200 warmup draws gave a dense matrix half as many effective
# draws per gradient as a diagonal one (too few draws for n^2 / 2 numbers), at 64 entries 1.15 times more.
_DENSE_LIMIT = 100


class ImproperPriorWarning(UserWarning):
    """A free parameter has neither a prior nor a bounded constraint: the posterior is proper along it
    only if the likelihood alone pins it down. Silence it with
    `warnings.filterwarnings("ignore", category=sl.ImproperPriorWarning)` when that is known."""


# ------------------------------------------------------------------------------------------------
# The compiled pieces. They live at module level and take the density as an argument, so that a
# second run on data of the same shapes reuses the compiled code.
# ------------------------------------------------------------------------------------------------


class _Adaptation(NamedTuple):
    step_size: Array
    inverse_mass_matrix: Array
    dual_averaging: Any
    mass_matrix: Any


class _Trace(NamedTuple):
    """What is recorded of each draw; in the carry, buffers `(chain, draw, ...)` filled as sampling goes."""

    position: Array
    log_density: Array
    divergent: Array
    acceptance_rate: Array
    num_integration_steps: Array
    energy: Array


class _Chains(NamedTuple):
    """Everything carried from one chunk of steps to the next; every leaf has a leading chain axis."""

    state: Any  # blackjax HMCState
    adaptation: _Adaptation
    records: _Trace
    warmup_steps: Int[Array, " chain"]  # leapfrog steps taken in warmup so far


class _Schedule(NamedTuple):
    """What each step of a chunk does; every field has one entry per step (NumPy arrays when it is made,
    JAX arrays inside the compiled chunk)."""

    step: Int[Array | np.ndarray, " steps"]  # global step number: with the chain's key, it seeds the step
    slot: Int[Array | np.ndarray, " steps"]  # where the draw is recorded; out of range (dropped) in warmup
    stage: Int[Array | np.ndarray, " steps"]
    window_end: Bool[Array | np.ndarray, " steps"]  # last step of a slow window: set the mass matrix
    warmup_end: Bool[Array | np.ndarray, " steps"]  # last warmup step: switch to the averaged step size
    active: Bool[Array | np.ndarray, " steps"]  # False for the padding after the last step


#: One random key per chain: new-style typed keys, or raw `uint32` pairs.
_ChainKeys = Key[Array, " chain"] | UInt32[Array, "chain 2"]


def _like(new: PyTree, old: PyTree) -> PyTree:
    """`new` with the dtypes of `old` (blackjax re-initialises some states from Python numbers)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.asarray(a, dtype=jnp.result_type(b)), new, old)


def _initial_adaptation(size: int, dtype: Any, dense: bool) -> _Adaptation:
    initial_step_size = jnp.ones((), dtype)
    dual_averaging = dual_averaging_adaptation(0.8)[0](initial_step_size)
    mass_matrix = mass_matrix_adaptation(not dense)[0](size)
    adaptation = _Adaptation(initial_step_size, mass_matrix.inverse_mass_matrix, dual_averaging, mass_matrix)

    def as_dtype(leaf: Any) -> Array:  # floats in the dtype of the positions, counters as they are
        return jnp.asarray(leaf, dtype if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact) else None)

    return strong(jax.tree_util.tree_map(as_dtype, adaptation))


def _adapt(
    adaptation: _Adaptation,
    target: Array,
    stage: Array,
    window_end: Array,
    warmup_end: Array,
    position: Array,
    acceptance_rate: Array,
    dense: bool,
) -> _Adaptation:
    """One step of Stan's windowed adaptation for one chain."""
    da_init, da_update, da_final = dual_averaging_adaptation(target)
    _, mm_update, mm_final = mass_matrix_adaptation(not dense)

    def step_size_only(adaptation: _Adaptation) -> _Adaptation:
        state = _like(da_update(adaptation.dual_averaging, acceptance_rate), adaptation.dual_averaging)
        step_size = jnp.exp(state.log_step_size).astype(adaptation.step_size.dtype)
        return adaptation._replace(dual_averaging=state, step_size=step_size)

    def with_mass_matrix(adaptation: _Adaptation) -> _Adaptation:
        adaptation = step_size_only(adaptation)
        mass_matrix = _like(mm_update(adaptation.mass_matrix, position), adaptation.mass_matrix)
        return adaptation._replace(mass_matrix=mass_matrix)

    def frozen(adaptation: _Adaptation) -> _Adaptation:
        return adaptation

    def close_window(adaptation: _Adaptation) -> _Adaptation:
        # Windows are memoryless: the mass matrix comes from this window's draws alone (a dense one
        # shrunk towards the one it replaces), and the step size adaptation restarts around the step
        # size reached so far.
        if dense:
            mass_matrix = _dense_window_end(adaptation.mass_matrix)
        else:
            mass_matrix = _like(mm_final(adaptation.mass_matrix), adaptation.mass_matrix)
        state = _like(da_init(da_final(adaptation.dual_averaging)), adaptation.dual_averaging)
        step_size = jnp.exp(state.log_step_size).astype(adaptation.step_size.dtype)
        return _Adaptation(step_size, mass_matrix.inverse_mass_matrix, state, mass_matrix)

    def finish(adaptation: _Adaptation) -> _Adaptation:
        step_size = da_final(adaptation.dual_averaging).astype(adaptation.step_size.dtype)
        return adaptation._replace(step_size=step_size)

    adaptation = jax.lax.switch(stage, (step_size_only, with_mass_matrix, frozen), adaptation)
    adaptation = jax.lax.cond(window_end, close_window, frozen, adaptation)
    return jax.lax.cond(warmup_end, finish, frozen, adaptation)


# A dense mass matrix estimated at the end of a window counts the one it replaces as this many draws:
# Stan shrinks its estimate towards a small multiple of the identity instead, which has the wrong
# scale for entries of very different sizes. Measured on eight schools (10 runs each, 500 warmup
# steps) and the benchmark's scene (2 runs): 0, 10 and 40 gave the same ESS per gradient within the
# scatter between runs; 10 keeps a window of a few draws from replacing the metric outright.
_PRIOR_DRAWS = 10.0


def _dense_window_end(state: Any) -> Any:
    """A dense mass matrix from the draws of the window that ends, shrunk towards the current one."""
    previous, welford = state.inverse_mass_matrix, state.wc_state
    count = welford.sample_size.astype(previous.dtype)
    covariance = welford.m2 / jnp.maximum(count - 1.0, 1.0)
    blended = (count * covariance + _PRIOR_DRAWS * previous) / (count + _PRIOR_DRAWS)
    fresh = jax.tree_util.tree_map(jnp.zeros_like, welford)
    return _like(type(state)(_well_conditioned(blended, previous), fresh), state)


# Smallest eigenvalue allowed in the correlation matrix of a dense inverse mass matrix: a condition
# number within about n / 1e-3, which float32 Cholesky factors of the mass matrix handle.
_SMALLEST_EIGENVALUE = 1e-3


def _well_conditioned(covariance: Float[Array, "n n"], fallback: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """`covariance` made symmetric and safely positive definite (`fallback` if it is not finite or has
    a variance that is not positive).

    A dense inverse mass matrix must be positive definite to the last bits: NUTS draws momenta with its
    Cholesky factor and weighs states by the kinetic energy it gives. Estimated from a window of draws in
    float32 it may not be (measured on eight schools: a window ending with an indefinite estimate, then a
    state of log density -6e34 accepted with a negative kinetic energy). The correlation matrix's
    eigenvalues are bounded below, which bounds the condition number and changes the variances little
    (the scales of the entries, however different, are kept apart from it).
    """
    covariance = 0.5 * (covariance + covariance.T)
    variance = jnp.diagonal(covariance)
    usable = jnp.all(jnp.isfinite(covariance)) & jnp.all(variance > 0)
    covariance = jnp.where(usable, covariance, fallback)
    scales = jnp.sqrt(jnp.diagonal(covariance))
    correlation = covariance / scales[:, None] / scales[None, :]
    eigenvalues, vectors = jnp.linalg.eigh(correlation)
    root = vectors * (scales[:, None] * jnp.sqrt(jnp.maximum(eigenvalues, _SMALLEST_EIGENVALUE))[None, :])
    return root @ root.T


def _run_chains(
    density: LogDensity,
    chains: _Chains,
    chain_keys: _ChainKeys,
    schedule: _Schedule,
    target: Array,
    go: Bool[Array, ""],
    sequential: bool = False,
) -> _Chains:
    """The steps of one chunk, for the chains on this device; none if not `go`. The chains of a
    device advance together (`vmap`), or one after the other (`sequential`)."""
    kernel = blackjax.nuts.build_kernel()

    def one_chain(key, state, adaptation, stage, window_end, warmup_end, index):
        proposed, info = kernel(
            jax.random.fold_in(key, index),
            state,
            density,
            adaptation.step_size,
            adaptation.inverse_mass_matrix,
            max_num_doublings=_MAX_DOUBLINGS,
        )
        # A state whose energy overflowed is refused: the chain stays where it is, as after a
        # divergence. blackjax counts a trajectory as divergent when its energy grows past a threshold,
        # but an energy of -inf (a kinetic energy overflowing with the wrong sign: a dense mass matrix
        # times a momentum of 1e20 in float32) passes for the best state of all. Measured on eight
        # schools with a dense mass matrix: a step of 4.9 right after a window ended reached log tau = 38
        # with energy -inf, and the chain stayed there at a log density of -7.6e27; in exact arithmetic
        # such a state has no chance of being chosen, so refusing it changes nothing else.
        finite = jnp.isfinite(info.energy) & jnp.isfinite(proposed.logdensity)
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old), proposed, state)
        acceptance_rate = jnp.where(finite, info.acceptance_rate, 0.0).astype(info.acceptance_rate.dtype)
        dense = adaptation.inverse_mass_matrix.ndim == 2
        adaptation = _adapt(
            adaptation, target, stage, window_end, warmup_end, state.position, acceptance_rate, dense
        )
        record = _Trace(
            position=state.position,
            log_density=state.logdensity,
            divergent=info.is_divergent | ~finite,
            acceptance_rate=acceptance_rate,
            num_integration_steps=info.num_integration_steps,
            # a finite stand-in (the potential energy) where the energy overflowed, for E-BFMI
            energy=jnp.where(finite, info.energy, -state.logdensity).astype(info.energy.dtype),
        )
        return state, adaptation, record

    # The stage flags are the same for every chain: under vmap, `switch` and `cond` stay branches.
    all_chains = jax.vmap(one_chain, in_axes=(0, 0, 0, None, None, None, None))
    if sequential:
        # One chain at a time is the same compiled step whatever the number of chains per device: XLA
        # fuses a batch of 4 chains unlike a batch of 1, and after a few hundred steps the rounding
        # differences grow into different draws (measured: 1e-6 after 10 warmup steps, different
        # chains after 200); sequential chains give the same draws to the bit on 1 and 4 devices.
        def all_chains(keys, state, adaptation, stage, window_end, warmup_end, index):
            def each(chain):
                return one_chain(*chain, stage, window_end, warmup_end, index)

            return jax.lax.map(each, (keys, state, adaptation))

    def step(chains: _Chains, xs: _Schedule) -> tuple[_Chains, None]:
        def run(chains: _Chains) -> _Chains:
            state, adaptation, record = all_chains(
                chain_keys, chains.state, chains.adaptation, xs.stage, xs.window_end, xs.warmup_end, xs.step
            )
            records = jax.tree_util.tree_map(
                lambda buffer, new: buffer.at[:, xs.slot].set(new.astype(buffer.dtype), mode="drop"),
                chains.records,
                record,
            )
            in_warmup = (xs.stage != _SAMPLING).astype(chains.warmup_steps.dtype)
            warmup_steps = chains.warmup_steps + in_warmup * record.num_integration_steps
            return _Chains(state, adaptation, records, warmup_steps.astype(chains.warmup_steps.dtype))

        return jax.lax.cond(xs.active & go, run, lambda chains: chains, chains), None

    # blackjax mixes Python scalars and integer counters into its float arithmetic
    with jax.numpy_dtype_promotion("standard"):
        chains, _ = jax.lax.scan(step, chains, schedule)
    return strong(chains)


def _on_each_device(fn: Any, mesh: Any, in_specs: Any, out_specs: Any) -> Any:
    """`fn` on the chains held by each device (no communication between them), or `fn` itself."""
    if mesh is None:
        return fn
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


class _Start(NamedTuple):
    """Where the chains start; only the first chunk of a run uses it."""

    positions: Float[Array, "chain n"]
    jitter: bool  # move each chain off its position first (static: no jitter, nothing of it compiled)
    first: Bool[Array | np.ndarray, ""]  # this chunk begins the run: set the chains up at `positions`
    # the first inverse mass matrix of each chain (`(chain, n)` or `(chain, n, n)`, e.g. a Laplace
    # covariance); None: from the curvature where each chain starts
    metric: Float[Array, "chain n"] | Float[Array, "chain n n"] | None = None


@stored_jit
def _advance(
    density: LogDensity,
    chains: _Chains,
    start: _Start,
    key: PRNGKeyArray,
    schedule: _Schedule,
    target: Array,
    mesh: Any,
    sequential: bool = False,
) -> tuple[_Chains, Float[Array, " chain"], Bool[Array, " n"]]:
    """One chunk of steps for every chain; the first chunk of a run first puts the chains at their starts.

    Setting up the chains here rather than in a function of its own means that the density and its
    gradient are compiled once, not twice. The first chunk's `chains` are placeholders of the right
    shapes (see `_placeholder`): the blank chains are made here, as are the chains' keys from `key`, so
    that a first call compiles no small programs of its own for them (measured on eight schools: 0.8 s
    of compiling, 10 % of the first call, went to splitting keys and making blank chains).

    **Returns:**

    The chains, and for checking the start: the log density at each unjittered start, and for each
    entry whether the gradient is finite at the chosen starts (zeros and True after the first chunk).
    When they are not finite, no step is taken.
    """
    dtype = start.positions.dtype
    num_chains, size = start.positions.shape
    start_key, chain_key = jax.random.split(key)
    chain_keys = jax.random.split(chain_key, num_chains)

    def begin(chains: _Chains) -> tuple[_Chains, Array]:
        dense = chains.adaptation.inverse_mass_matrix.ndim == 3
        chains = _blank(num_chains, size, dtype, chains.records.divergent.shape[1], dense)
        states, values = _starting_states(density, start.positions, start_key, start.jitter)
        # The first mass matrix from the curvature where each chain starts, not the identity: with
        # entries of very different scales (fluxes, positions, shapes) an identity mass matrix gives
        # a tiny step size and the longest trajectories (1023 leapfrog steps) until the first window
        # has been estimated. Measured on the HSC demo (4 chains, 100 + 100 steps): 949 s with the
        # identity, 203 s with the curvature.
        current = chains.adaptation.inverse_mass_matrix
        if start.metric is not None and current.ndim == 3:
            fallbacks = jax.vmap(jnp.diag)(jnp.abs(jax.vmap(jnp.diagonal)(start.metric)))
            metric = jax.vmap(_well_conditioned)(start.metric, fallbacks)
        elif start.metric is not None:
            metric = start.metric
        elif current.ndim == 3:
            metric = jax.vmap(lambda x: _curvature_covariance(density, x))(states.position)
        else:
            metric = jax.vmap(lambda x: preconditioner(density, x) ** 2)(states.position)
        mass_matrix = chains.adaptation.mass_matrix._replace(inverse_mass_matrix=metric.astype(current.dtype))
        adaptation = chains.adaptation._replace(
            inverse_mass_matrix=metric.astype(current.dtype), mass_matrix=mass_matrix
        )
        return chains._replace(state=_like(states, chains.state), adaptation=adaptation), values

    def resume(chains: _Chains) -> tuple[_Chains, Array]:
        return chains, jnp.zeros(start.positions.shape[:1], dtype)

    chains, values = jax.lax.cond(start.first, begin, resume, chains)
    gradient_finite = jnp.all(jnp.isfinite(chains.state.logdensity_grad), axis=0)
    go = jnp.all(jnp.isfinite(values)) & jnp.all(gradient_finite)

    chain, replicated = PartitionSpec("chain"), PartitionSpec()
    # Only arrays cross into the per-device function; the rest of the density (functions, Python
    # numbers) is closed over.
    arrays, others = eqx.partition(density, eqx.is_array)

    def on_device(arrays, chains, chain_keys, schedule, target, go):
        return _run_chains(eqx.combine(arrays, others), chains, chain_keys, schedule, target, go, sequential)

    run = _on_each_device(
        on_device,
        mesh,
        in_specs=(replicated, chain, chain, replicated, replicated, replicated),
        out_specs=chain,
    )
    return run(arrays, chains, chain_keys, schedule, target, go), values, gradient_finite


def _curvature_covariance(density: LogDensity, x: Float[Array, " n"]) -> Float[Array, "n n"]:
    """The inverse of the negative Hessian of the log density at `x` (the covariance of the Laplace
    approximation there, when `x` is the mode), made positive definite.

    The Hessian is computed one Hessian-vector product per entry and judged on the matrix with a unit
    diagonal (scaled as [`scarlet_like.preconditioner`][] scales entries); directions along which it is
    not curved downwards (away from the mode, or a flat direction) get the per-entry scales there.
    """
    size = x.shape[0]
    gradient = jax.grad(density)

    def row(direction: Array) -> Array:
        return -jax.jvp(gradient, (x,), (direction,))[1]

    hessian = jax.lax.map(row, jnp.eye(size, dtype=x.dtype))
    hessian = jnp.where(jnp.isfinite(hessian), hessian, 0.0)
    hessian = 0.5 * (hessian + hessian.T)
    scales = scales_from_curvature(jnp.diagonal(hessian)).astype(x.dtype)
    scaled = hessian * scales[:, None] * scales[None, :]
    eigenvalues, vectors = jnp.linalg.eigh(scaled)
    # Curved downwards: kept, bounded below (a nearly flat direction gets at most 100 times its entries'
    # scales); not: unit curvature, the scales of the entries.
    eigenvalues = jnp.where(eigenvalues > 0, jnp.maximum(eigenvalues, 1e-4), 1.0)
    root = vectors * (scales[:, None] / jnp.sqrt(eigenvalues)[None, :])
    return _well_conditioned(root @ root.T, jnp.diag(scales**2))


# Jitter sizes tried, largest first (unconstrained units); the last, 0, is the start itself.
_JITTER_SCALES = (*(2.0**-k for k in range(0, 24, 2)), 0.0)


def _starting_states(
    density: LogDensity, positions: Float[Array, "chain n"], key: PRNGKeyArray, jitter: bool
) -> tuple[HMCState, Float[Array, " chain"]]:
    """Starting states (jittered if asked), and the log density at each unjittered position."""
    chains, size = positions.shape
    moved = positions
    if jitter:
        # Each chain moves along a random direction, by the largest of the scales that costs at most
        # `size` in log density (about how far below the mode posterior draws lie): apart, but not in
        # the tails. The candidates' log densities only (no gradients: a smaller program to compile,
        # measured 1.9 s of CPU of the 7.7 s that compiling the first run of eight schools took with
        # them); the chains are evaluated together, one scale after the other (all at once would hold
        # every candidate's intermediates in memory together).
        scales = jnp.asarray(_JITTER_SCALES, positions.dtype)
        directions = jax.random.normal(key, positions.shape, positions.dtype)
        candidates = positions[:, None, :] + scales[None, :, None] * directions[:, None, :]
        values = jax.lax.map(jax.vmap(density), jnp.swapaxes(candidates, 0, 1)).T
        good = (jnp.isfinite(values) & (values >= values[:, -1:] - size)).at[:, -1].set(True)
        moved = candidates[jnp.arange(chains), jnp.argmax(good, axis=1)]
    # Gradients where the chains start and where they were asked to, in one evaluation: a chain whose
    # gradient is not finite where it moved to starts where it was asked to instead.
    both = jnp.concatenate([moved, positions], axis=0)
    values, gradients = jax.vmap(jax.value_and_grad(density))(both)
    finite = jnp.isfinite(values) & jnp.all(jnp.isfinite(gradients), axis=-1)
    use = finite[:chains, None]
    state = HMCState(
        jnp.where(use, moved, positions),
        jnp.where(use[:, 0], values[:chains], values[chains:]),
        jnp.where(use, gradients[:chains], gradients[chains:]),
    )
    return state, values[chains:]


def _blank(num_chains: int, size: int, dtype: Any, num_samples: int, dense: bool = False) -> _Chains:
    """Chains before their start: zero states, fresh adaptation (a dense or a diagonal mass matrix), and
    records to be filled (NaN draws, so that a run that never stepped does not pass for one that did)."""
    adaptation = _initial_adaptation(size, dtype, dense)
    return strong(
        _Chains(
            state=HMCState(
                jnp.zeros((num_chains, size), dtype),
                jnp.zeros(num_chains, dtype),
                jnp.zeros((num_chains, size), dtype),
            ),
            adaptation=jax.tree_util.tree_map(
                lambda leaf: jnp.broadcast_to(leaf, (num_chains, *leaf.shape)), adaptation
            ),
            records=_Trace(
                position=jnp.full((num_chains, num_samples, size), jnp.nan, dtype),
                log_density=jnp.full((num_chains, num_samples), jnp.nan, dtype),
                divergent=jnp.zeros((num_chains, num_samples), bool),
                acceptance_rate=jnp.full((num_chains, num_samples), jnp.nan, dtype),
                num_integration_steps=jnp.zeros((num_chains, num_samples), jnp.int32),
                energy=jnp.full((num_chains, num_samples), jnp.nan, dtype),
            ),
            warmup_steps=jnp.zeros(num_chains, jnp.int32),
        )
    )


def _placeholder(num_chains: int, size: int, dtype: Any, num_samples: int, dense: bool) -> _Chains:
    """Zeros (host NumPy arrays) of the shapes and dtypes of `_blank`'s chains: the first chunk's input,
    made without compiling anything (`_advance` makes the blank chains itself)."""
    shapes = jax.eval_shape(lambda: _blank(num_chains, size, dtype, num_samples, dense))
    return jax.tree_util.tree_map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes)


@eqx.filter_jit
def _map_draws(fn: Callable[[PyTree], Any], unravel: Unravel, samples: Float[Array, "chain draw n"]) -> Any:
    return jax.vmap(jax.vmap(lambda x: fn(unravel(x))))(samples)


@eqx.filter_jit
def _constrained_values(unravel: Unravel, samples: Float[Array, "chain draw n"]) -> dict[str, Array]:
    return jax.vmap(jax.vmap(lambda x: get_values(unravel(x))))(samples)


# ------------------------------------------------------------------------------------------------
# Checks of the input
# ------------------------------------------------------------------------------------------------


def score_only_parameters(model: PyTree) -> list[str]:
    """Parameters (free, or fixed under a prior with parameters) whose prior is known only by its
    gradient ([`scarlet_like.ScorePrior`][]): the log density's value leaves their term out."""
    return [
        group.name
        for group in walk(model).groups
        if group.parameter.prior is not None and not has_log_density(group.parameter.prior)
    ]


def _improper_parameters(model: PyTree) -> list[str]:
    """Free parameters along which the prior is improper: no prior and a support not bounded on every
    side (`real()`, `positive()`, `greater_than()`, ...). The posterior is proper along them only if
    the likelihood pins them down."""
    return [
        group.name
        for group in walk(model).groups
        if group.free and group.parameter.prior is None and group.parameter.constraint.bounded is False
    ]


def _starting_points(
    density: LogDensity, init: Any, num_chains: int, key: PRNGKeyArray, dense: bool
) -> tuple[Array, bool, Array | None]:
    """`(positions (chain, n), jitter?, first inverse mass matrices or None)` from the `init` argument
    of `sample`."""
    size = density.size
    if init is None:
        return jnp.broadcast_to(density.x0, (num_chains, size)), True, None
    if isinstance(init, Laplace):
        _check_same_parameters(density, init.unravel, "sample: `init` (a Laplace approximation)")
        covariance = init.covariance.astype(density.x0.dtype)
        start_key = jax.random.split(key)[0]  # the key `_advance` would jitter with (here, no jitter)
        positions = _gaussian_draws(init.x.astype(density.x0.dtype), covariance, start_key, num_chains)
        metric = covariance if dense else jnp.diagonal(covariance)
        return positions, False, jnp.broadcast_to(metric, (num_chains, *metric.shape))
    if isinstance(init, FitResult):
        init = init.x
    if eqx.is_array_like(init) and not isinstance(init, bool):
        x = jnp.asarray(init, dtype=density.x0.dtype)
        if x.shape == (size,):
            return jnp.broadcast_to(x, (num_chains, size)), True, None
        if x.shape == (num_chains, size):
            return x, False, None
        raise ValueError(
            f"sample: `init` has shape {x.shape}; expected a flat vector ({size},) or one per chain "
            f"({num_chains}, {size})"
        )
    x, unravel = ravel(stacked_lists(init))
    _check_same_parameters(density, unravel, "sample: `init`")
    return jnp.broadcast_to(x.astype(density.x0.dtype), (num_chains, size)), True, None


def _check_same_parameters(density: LogDensity, unravel: Unravel, what: str) -> None:
    if unravel.names != density.unravel.names or unravel.shapes != density.unravel.shapes:
        ours = dict(zip(density.unravel.names, density.unravel.shapes, strict=True))
        theirs = dict(zip(unravel.names, unravel.shapes, strict=True))
        differ = sorted(set(ours.items()) ^ set(theirs.items()))
        raise ValueError(
            f"{what} does not have the free parameters of the model; differing (name, shape): "
            + ", ".join(map(str, differ[:6]))
        )


def _check_chain_starts(density: LogDensity, positions: Array, values: Array, gradient_finite: Array) -> None:
    """Named errors for starting points where the log density or its gradient is not finite."""
    for index in np.flatnonzero(~np.isfinite(np.asarray(values)))[:1]:
        terms = density.terms(positions[index])
        bad = [name for name, term in terms.items() if not np.isfinite(np.asarray(term))]
        raise FloatingPointError(
            "sample: the log density is not finite at the starting point: "
            + (", ".join(bad) if bad else "(every term is finite, but not their sum)")
        )
    bad_gradient = ~np.asarray(gradient_finite)
    if bad_gradient.any():
        names = [name for name, bad in zip(density.names, bad_gradient, strict=True) if bad]
        raise FloatingPointError(
            "sample: the gradient of the log density is not finite at the starting point for "
            + ", ".join(names)
        )


def _chain_mesh(num_chains: int) -> Any:
    """A one-axis mesh over as many devices as divide the number of chains (None for one device)."""
    # this process's devices: on several hosts, each runs its own chains (see `fit_many` for the pattern)
    devices = jax.local_devices()
    count = max(d for d in range(1, len(devices) + 1) if num_chains % d == 0)
    if count == 1:
        return None
    return jax.sharding.Mesh(np.asarray(devices[:count]), ("chain",))


def _full_schedule(num_warmup: int, num_samples: int, chunk: int, num_chunks: int) -> _Schedule:
    length = chunk * num_chunks
    stage = np.full(length, _SAMPLING, np.int32)
    window_end = np.zeros(length, bool)
    warmup_end = np.zeros(length, bool)
    if num_warmup:
        # blackjax builds it with jnp from a list of (int, bool): evaluated now even under `jit`
        with jax.numpy_dtype_promotion("standard"), jax.ensure_compile_time_eval():
            warmup = np.asarray(build_schedule(num_warmup)).reshape(num_warmup, 2)
        stage[:num_warmup] = warmup[:, 0]
        window_end[:num_warmup] = warmup[:, 1].astype(bool)
        warmup_end[num_warmup - 1] = True
    step = np.arange(length, dtype=np.int32)
    active = step < num_warmup + num_samples
    slot = np.where((step >= num_warmup) & active, step - num_warmup, num_samples).astype(np.int32)
    return _Schedule(step, slot, stage, window_end, warmup_end, active)


# ------------------------------------------------------------------------------------------------
# sl.sample
# ------------------------------------------------------------------------------------------------


def sample(
    model: PyTree,
    likelihood: Any,
    *,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 4,
    key: PRNGKeyArray,
    progress: bool = True,
    init: Any = None,
    target_acceptance: float = 0.8,
    chunks: int = 20,
    chain_method: Literal["auto", "vectorized", "sequential"] = "auto",
    mass_matrix: Literal["auto", "diagonal", "dense"] = "auto",
) -> Posterior:
    """Draw from the posterior with the No-U-Turn sampler (blackjax), several chains at once.

    **Arguments:**

    - `model`: any model with free [`scarlet_like.Parameter`][]s.
    - `likelihood`: an Observation, a list of them, or a callable of the resolved model.
    - `num_warmup`: adaptation steps per chain (Stan's windowed adaptation of the step size and of the
      mass matrix); their draws are discarded. Fewer than 20: the step size alone is adapted, the
      first mass matrix kept (enough when it is already right: `init` a Laplace approximation of a
      nearly Gaussian posterior).
    - `num_samples`: draws kept per chain.
    - `num_chains`: chains (how they advance together: `chain_method`); with several devices, spread
      over them.
    - `key`: a JAX random key.
    - `progress`: show a progress bar over warmup and sampling. With `progress=False` the whole run
      is one pure JAX computation: `sample` can be called inside `jax.jit` and `jax.vmap` (over keys,
      data sets, starting points), where it runs every step in one scan, and neither shows a bar nor
      checks the start on the host (a start where the density is not finite gives NaN draws there).
    - `init`: where the chains start: a model with the same free parameters (e.g. `fitted.model`), a
      [`scarlet_like.FitResult`][], a flat unconstrained vector, or one vector per chain
      `(num_chains, n)` (used as given). Default: the model's current values. A single starting point
      is jittered per chain, along a random direction, by as much as costs at most `n` in log density
      (about where posterior draws lie below the mode) and at most one unconstrained unit. Or a
      [`scarlet_like.Laplace`][] approximation (`sl.laplace(model, likelihood)`): the chains start at
      draws of it, and its covariance (its diagonal with `mass_matrix="diagonal"`) is the first
      inverse mass matrix.
    - `target_acceptance`: the mean acceptance probability aimed at by the step size adaptation;
      raise it (0.9, 0.95) when there are divergences.
    - `chunks`: outside `jit`, the run is split into this many stretches of equal length (the
      progress bar advances after each); all use the same compiled code.
    - `chain_method`: how the chains held by one device advance: `"vectorized"` together (`vmap`;
      every NUTS step then lasts as long as the longest trajectory among them), or `"sequential"`,
      one after the other. With several devices the chains are spread over them either way. Only
      `"sequential"` gives the same draws to the bit whatever the number of devices (the same key on
      1 and on 4 devices); vectorized draws agree with them in distribution, not in the last bits.
      `"auto"` (default): sequential on CPUs, where a vectorised step waits for the longest of
      the chains' trajectories and gains little from doing them together (4 chains on 2 cores,
      `benchmarks/bench_sample.py`: min-ESS per second 2.0x vectorised on a small scene and 2.4x on
      eight schools), vectorised on GPUs and TPUs, whose width the chains fill.
    - `mass_matrix`: the shape of the adapted inverse mass matrix. `"dense"`: a full matrix, which
      takes out the correlations between entries (fluxes and sizes of a galaxy, constant and slope of
      a line): first the inverse of the curvature where each chain starts (made positive definite),
      then the covariance of each slow window's draws, shrunk towards the matrix it replaces. Each
      NUTS step then costs `O(n^2)` more per leapfrog step and `O(n^3)` per draw, nothing next to
      the gradient of a scene. `"diagonal"`: one variance per entry (Stan's default), from the
      curvature's diagonal first. `"auto"` (default): dense up to 100 free entries, diagonal above
      (beyond, a window's few draws are too few to estimate n^2 / 2 correlations).
      Measured (`benchmarks/bench_sample.py`, ESS per gradient evaluation, dense against diagonal):
      3.5x on a two-galaxy scene (14 entries), 5.5x on three galaxies (24), 2.6x on a quadratic with
      correlated coefficients (3); the same on eight schools (10), where the density is so cheap
      that the dense step's own cost makes it about 1.5x slower per second. On the demo's HSC blend
      (69 entries, sampled from the fit) 16x more effective draws per second.

    **Returns:**

    A [`scarlet_like.Posterior`][].

    Raises `ValueError` naming the model's type when it has no free parameters, and naming the
    differing parameters when `init` (a model or a Laplace approximation) is not of this model, and
    naming the parameters whose prior is a [`scarlet_like.ScorePrior`][] (its log density's value, which
    NUTS's energy needs, is unknown). Warns
    ([`scarlet_like.ImproperPriorWarning`][]) when a free parameter has neither a prior nor a
    bounded constraint, and raises `FloatingPointError` naming the terms at fault when the log density
    (or its gradient) is not finite where the chains start.

    Ctrl-C (`KeyboardInterrupt`) outside `jit` ends the run at the end of the stretch under way: the
    draws made until then come back as a `Posterior` flagged `interrupted`, with a warning; if it
    comes during warmup, before any draw was kept, the `KeyboardInterrupt` is raised again.

    Compiles once: a second call with a model and data of the same shapes, and the same
    `num_chains`, `num_samples`, `num_warmup + num_samples`, `chunks`, `mass_matrix` and kind of
    `init` (one start to jitter, one per chain, or a Laplace approximation), reuses the compiled stretch
    of steps, also for a model rebuilt with new shared parameters (their sharing tokens are numbered
    canonically for compiling).
    """
    for label, value, least in (("num_warmup", num_warmup, 0), ("num_samples", num_samples, 1)):
        if int(value) != value or value < least:
            raise ValueError(f"sample: `{label}` must be an integer >= {least}, got {value!r}")
    if int(num_chains) != num_chains or num_chains < 1:
        raise ValueError(f"sample: `num_chains` must be a positive integer, got {num_chains!r}")
    if not 0.0 < float(target_acceptance) < 1.0:
        raise ValueError(f"sample: `target_acceptance` must be in (0, 1), got {target_acceptance!r}")
    if chain_method not in ("auto", "vectorized", "sequential"):
        raise ValueError(
            f"sample: `chain_method` must be 'auto', 'vectorized' or 'sequential', got {chain_method!r}"
        )
    if chain_method == "auto":
        chain_method = "sequential" if jax.local_devices()[0].platform == "cpu" else "vectorized"
    if mass_matrix not in ("auto", "diagonal", "dense"):
        raise ValueError(f"sample: `mass_matrix` must be 'auto', 'diagonal' or 'dense', got {mass_matrix!r}")
    num_warmup, num_samples, num_chains = int(num_warmup), int(num_samples), int(num_chains)

    score_only = score_only_parameters(model)
    if score_only:
        # NUTS weighs the points of a trajectory and detects divergences by their energy, the negative
        # log density: with a prior's term missing from it, the chain would follow the right gradient
        # but keep the points of another distribution, silently.
        raise ValueError(
            f"sample: the prior of {', '.join(score_only)} is a score (sl.ScorePrior), whose log density's "
            "value is unknown, and NUTS needs that value for its energy (without it, it samples another "
            "distribution); use a prior with a log density (sl.FlowPrior), or sl.fit / sl.laplace, which "
            "need only its gradient"
        )
    density = LogDensity(model, likelihood)
    require_free_parameters(density, "sample", model)
    dense = mass_matrix == "dense" or (mass_matrix == "auto" and density.size <= _DENSE_LIMIT)
    release_if_near_limit("sample", density)
    improper = _improper_parameters(model)
    if improper:
        warnings.warn(
            "sample: these free parameters have neither a prior nor a bounded constraint, so the posterior "
            f"is improper along them unless the likelihood alone pins them down: {', '.join(improper)}",
            ImproperPriorWarning,
            stacklevel=2,
        )

    # The draws are mapped back to models with the model's own sharing tokens, but the sampler is
    # compiled for their canonical numbering: a model rebuilt the same way (fresh tokens for its shared
    # parameters) reuses the compiled steps.
    unravel = density.unravel
    density, _ = canonical_tokens(density)

    positions, jitter, metric = _starting_points(density, init, num_chains, key, dense)
    # Under `jit` (where even the key just split is a tracer) or `vmap`, nothing can be looked at on the
    # host: the whole run is one scan, a pure function of its inputs, with no progress bar, and the start
    # is not checked (a start where the density is not finite gives NaN draws).
    traced = any_traced((density, positions, key))
    dtype = positions.dtype
    chains = _placeholder(num_chains, density.size, dtype, num_samples, dense)
    start = _Start(positions, jitter, np.asarray(True), metric)

    mesh = _chain_mesh(num_chains)
    if mesh is not None and not traced:
        # placed where they are used rather than copied there from the first device at every chunk
        by_chain = NamedSharding(mesh, PartitionSpec("chain"))
        chains = jax.device_put(chains, by_chain)
        everywhere = NamedSharding(mesh, PartitionSpec())
        # only the arrays: other leaves (Python numbers a model may use as static sizes) stay as they are
        density = jax.tree_util.tree_map(
            lambda leaf: jax.device_put(leaf, everywhere) if eqx.is_array(leaf) else leaf, density
        )

    total = num_warmup + num_samples
    stretches = 1 if traced else max(1, min(int(chunks), total))
    chunk = math.ceil(total / stretches)
    num_chunks = math.ceil(total / chunk)
    schedule = _full_schedule(num_warmup, num_samples, chunk, num_chunks)
    target = jnp.asarray(target_acceptance, dtype)

    bar = None
    if progress and not traced:
        bar = progress_bar(total, "warmup" if num_warmup else "sample", "step")
    completed = 0  # steps every chain has taken, as far as `chains` holds them
    interrupted = False
    try:
        for index in range(num_chunks):
            begin = index * chunk
            part = _Schedule(*(steps[begin : begin + chunk] for steps in schedule))
            chains, values, gradient_finite = _advance(
                density, chains, start, key, part, target, mesh, chain_method == "sequential"
            )
            # `chains` is replaced whole; counted after it, an interrupt in between can only undercount
            completed = min(begin + chunk, total)
            # a tracer here: under `vmap` of a likelihood closing over batched data
            concrete = not isinstance(values, jax.core.Tracer)
            if index == 0:
                if concrete:
                    _check_chain_starts(density, positions, values, gradient_finite)
                start = start._replace(first=np.asarray(False))
            if bar is not None and concrete:
                bar.set_description("warmup" if begin + chunk <= num_warmup else "sample")
                step_size = np.asarray(chains.adaptation.step_size)
                divergences = int(np.asarray(chains.records.divergent).sum())
                bar.set_postfix(step_size=f"{float(step_size.mean()):.3g}", divergences=divergences)
                bar.update(min(chunk, total - begin))
    except KeyboardInterrupt:
        kept = completed - num_warmup
        if traced:
            raise
        if kept < 1:
            warnings.warn(
                f"sample was interrupted (KeyboardInterrupt) after {completed} of {num_warmup} warmup "
                "steps, before any draw was kept: nothing to return",
                RuntimeWarning,
                stacklevel=2,
            )
            raise
        warnings.warn(
            f"sample was interrupted (KeyboardInterrupt) after {kept} of {num_samples} draws per chain; "
            "returning those draws (Posterior.interrupted is True): their summary is that of a shorter run",
            RuntimeWarning,
            stacklevel=2,
        )
        records = jax.tree_util.tree_map(lambda leaf: leaf[:, :kept], chains.records)
        chains = chains._replace(records=records)
        interrupted = True
    finally:
        if bar is not None:
            bar.close()

    records = chains.records
    return Posterior(
        samples=records.position,
        log_density=records.log_density,
        divergences=records.divergent,
        acceptance_rate=records.acceptance_rate,
        num_integration_steps=records.num_integration_steps,
        energy=records.energy,
        step_size=chains.adaptation.step_size,
        inverse_mass_matrix=chains.adaptation.inverse_mass_matrix,
        unravel=unravel,
        interrupted=interrupted,
        warmup_integration_steps=chains.warmup_steps,
    )


# ------------------------------------------------------------------------------------------------
# Posterior
# ------------------------------------------------------------------------------------------------


def _rank_normal(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised draws (chain, draw, k): normal scores of the ranks over all chains and draws."""
    chains, count = draws.shape[:2]
    flat = draws.reshape(chains * count, -1)
    ranks = np.empty_like(flat)
    order = np.argsort(flat, axis=0, kind="stable")
    np.put_along_axis(ranks, order, np.arange(1, flat.shape[0] + 1, dtype=flat.dtype)[:, None], axis=0)
    probabilities = (ranks - 0.375) / (flat.shape[0] + 0.25)
    scores = np.asarray(jax.scipy.special.ndtri(jnp.asarray(probabilities, jnp.float32)), np.float64)
    return scores.reshape(draws.shape)


def _split_chains(draws: np.ndarray) -> np.ndarray:
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half :]], axis=0)


def _ess(draws: np.ndarray) -> np.ndarray:
    """Effective sample sizes; NaN where the estimate is not positive (seen with chains of a few draws,
    e.g. -2 for one chain of 4: the autocorrelation estimate is meaningless there)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ess = np.asarray(effective_sample_size(draws), np.float64)
    return np.where(ess > 0, ess, np.nan)


def _diagnostics(draws: np.ndarray) -> dict[str, np.ndarray]:
    """Summary statistics of draws (chain, draw, k), each of shape (k,)."""
    flat = draws.reshape(-1, draws.shape[-1])
    quantiles = np.quantile(flat, [0.05, 0.5, 0.95], axis=0)
    nan = np.full(draws.shape[-1], np.nan)
    out = {
        "mean": flat.mean(axis=0),
        "sd": flat.std(axis=0, ddof=1) if flat.shape[0] > 1 else nan,
        "5%": quantiles[0],
        "50%": quantiles[1],
        "95%": quantiles[2],
    }
    if draws.shape[1] < 4:  # too short to split chains
        out.update(mcse=nan, ess_bulk=nan, ess_tail=nan, r_hat=nan)
        return out
    split = _split_chains(draws)
    ess_mean = _ess(split)
    tail = np.minimum(
        _ess((split <= quantiles[0]).astype(np.float64)), _ess((split <= quantiles[2]).astype(np.float64))
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mcse"] = out["sd"] / np.sqrt(ess_mean)
        out["ess_bulk"] = _ess(_rank_normal(split))
        out["ess_tail"] = tail
        out["r_hat"] = np.asarray(split_gelman_rubin(draws), np.float64)
    return out


# The part of an element's name that says what it belongs to: up to the first member of a list or
# plate that is followed by more of the path (`sources[3]` of `sources[3].morphology.n`).
_MEMBER = re.compile(r"^(.*?\[\d+\])\.")


def _owners(names: Sequence[str]) -> dict[str, str]:
    """`{element name: what it belongs to}`: `sources[3]` for `sources[3].center[0]`; a name with no
    member of a list in it belongs to its first part (`t0`, `coefficients` of `coefficients[2]`)."""
    owners = {}
    for name in names:
        match = _MEMBER.match(name)
        owners[name] = match.group(1) if match else re.split(r"[.\[]", name, maxsplit=1)[0] or name
    return owners


class Posterior(eqx.Module):
    """Draws of the posterior, as returned by [`scarlet_like.sample`][] (a pytree).

    **Fields:**

    - `samples`: `(chain, draw, n)` flat unconstrained draws (entries named by `names`).
    - `log_density`: `(chain, draw)` log density at each draw (with the constraints' log|det J|).
    - `divergences`: `(chain, draw)` True where the trajectory leading to the draw diverged.
    - `acceptance_rate`: `(chain, draw)` mean acceptance probability of each trajectory.
    - `num_integration_steps`: `(chain, draw)` leapfrog steps of each trajectory.
    - `energy`: `(chain, draw)` Hamiltonian energy (for the E-BFMI diagnostic).
    - `step_size`: `(chain,)` adapted step sizes.
    - `inverse_mass_matrix`: adapted inverse mass matrices, `(chain, n)` diagonals or `(chain, n, n)`
      dense matrices (`mass_matrix` of [`scarlet_like.sample`][]).
    - `unravel`: maps a flat vector to a model.
    - `interrupted`: True when [`scarlet_like.sample`][] was interrupted (Ctrl-C) and returned the
      draws made until then: fewer than asked for, and the diagnostics (ESS, R-hat) those of the
      shorter run.
    - `warmup_integration_steps`: `(chain,)` leapfrog steps taken during warmup (None when not
      recorded). With `num_integration_steps`, the number of gradient evaluations the run cost:
      `gradient_evaluations()`.

    Use `values` for constrained draws by parameter, `summary()` for a table, `model_at(chain, draw)`
    for one model, `map(fn)` for any function of the model at every draw, `save` /
    [`scarlet_like.Posterior.load`][] to keep them, `to_arviz()` for ArviZ.
    """

    samples: Float[Array, "chain draw n"]
    log_density: Float[Array, "chain draw"]
    divergences: Bool[Array, "chain draw"]
    acceptance_rate: Float[Array, "chain draw"]
    num_integration_steps: Int[Array, "chain draw"]
    energy: Float[Array, "chain draw"]
    step_size: Float[Array, " chain"]
    inverse_mass_matrix: Float[Array, "chain n"] | Float[Array, "chain n n"]
    unravel: Unravel
    interrupted: bool = eqx.field(static=True, default=False)
    warmup_integration_steps: Int[Array, " chain"] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the entries of the flat vector (the last axis of `samples`), as `LogDensity.names`."""
        return entry_names(self.unravel(self.samples[0, 0]))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the free parameters: the keys of `values`, as in [`scarlet_like.get_values`][]."""
        return self.unravel.value_names()

    @property
    def num_chains(self) -> int:
        return self.samples.shape[0]

    @property
    def num_draws(self) -> int:
        return self.samples.shape[1]

    @property
    def values(self) -> dict[str, Array]:
        """`{name: (chain, draw, *shape)}` constrained draws of every free parameter (names as in
        [`scarlet_like.get_values`][]). Computed on each access: keep the result."""
        # compiled for canonically numbered identities: once for any model built the same way
        values = _constrained_values(canonical_tokens(self.unravel)[0], self.samples)
        # in flat-vector order (a dict coming out of `jit` has its keys sorted)
        return {name: values[name] for name in self.unravel.value_names()}

    def model_at(self, chain: int, draw: int) -> PyTree:
        """The model at one draw."""
        return unstacked_lists(self.unravel(self.samples[chain, draw]))

    def map(self, fn: Callable[[PyTree], Any]) -> Any:
        """`fn(model)` at every draw (vectorised and compiled), stacked with leading axes `(chain, draw)`.

        E.g. derived quantities: `posterior.map(lambda m: sl.resolve(m).theta)`, or predictions:
        `posterior.map(lambda m: sl.resolve(m)(times))`.
        """
        unravel, restore = canonical_tokens(self.unravel)
        return restore(_map_draws(fn, unravel, self.samples))

    @overload
    def summary(self, *, as_dict: Literal[False] = False, group: bool = False) -> str: ...

    @overload
    def summary(self, *, as_dict: Literal[True], group: bool = False) -> dict[str, dict[str, float]]: ...

    @overload
    def summary(self, *, as_dict: bool = False, group: bool = False) -> str | dict[str, dict[str, float]]: ...

    def summary(self, *, as_dict: bool = False, group: bool = False) -> str | dict[str, dict[str, float]]:
        """Per element of every free parameter (constrained): mean, sd, the 5 / 50 / 95 % quantiles,
        the Monte-Carlo standard error of the mean, bulk and tail effective sample sizes, and split R-hat.

        Bulk ESS is that of the rank-normalised draws of split chains; tail ESS the smaller of the ESS of
        the indicators of the 5 % and 95 % quantiles (Vehtari et al. 2021); R-hat is numpyro's split
        Gelman-Rubin statistic (near 1.00 when the chains agree; worry above 1.01-1.05).

        **Arguments:**

        - `as_dict`: return `{element name: {statistic: value}}` instead of a table.
        - `group`: order the rows by what they belong to, as one reads a model: all entries of
          `sources[0]` (center, spectrum, morphology), then those of `sources[1]`, ... (each group in
          the order of its first entry, the entries of a group in their own order; the table puts a
          blank line between groups). By default rows follow the flat vector, in which like
          sources are stacked: every center, then every spectrum, ...

        **Returns:**

        A printable table (with a line about divergences, step sizes and E-BFMI), or the dict.
        """
        names, columns = self.unravel.value_element_names(), []
        for draws in self.values.values():
            value = np.asarray(draws, np.float64)
            columns.append(value.reshape(*value.shape[:2], -1))
        stats = _diagnostics(np.concatenate(columns, axis=-1))
        table = {name: {k: float(v[i]) for k, v in stats.items()} for i, name in enumerate(names)}
        groups = _owners(names) if group else {name: "" for name in names}
        if group:
            order = {owner: index for index, owner in enumerate(dict.fromkeys(groups.values()))}
            table = dict(sorted(table.items(), key=lambda item: order[groups[item[0]]]))
        if as_dict:
            return table
        return self._format(table, groups)

    def _format(self, table: dict[str, dict[str, float]], groups: dict[str, str]) -> str:
        width = max(len("parameter"), *(len(name) for name in table))
        header = ["mean", "sd", "5%", "50%", "95%", "mcse", "ess_bulk", "ess_tail", "r_hat"]
        lines = [f"{'parameter':<{width}}" + "".join(f"{h:>11}" for h in header)]
        previous = None
        for name, row in table.items():
            if previous is not None and groups[name] != previous:
                lines.append("")
            previous = groups[name]
            cells = [f"{row[h]:>11.4g}" for h in header[:6]]
            cells += [f"{row[h]:>11.0f}" if np.isfinite(row[h]) else f"{'nan':>11}" for h in header[6:8]]
            cells.append(f"{row['r_hat']:>11.3f}")
            lines.append(f"{name:<{width}}" + "".join(cells))
        step_size = np.asarray(self.step_size)
        lines.append(
            f"{self.num_chains} chains x {self.num_draws} draws; "
            f"{int(np.asarray(self.divergences).sum())} divergences; "
            f"step size {step_size.min():.3g}-{step_size.max():.3g}; "
            f"E-BFMI min {float(np.min(self.bfmi())):.2f}"
            + (f"; {gradients} gradient evaluations" if (gradients := self.gradient_evaluations()) else "")
            + ("; interrupted (Ctrl-C): a shorter run than asked for" if self.interrupted else "")
        )
        return "\n".join(lines)

    def gradient_evaluations(self) -> int | None:
        """Gradient evaluations of the log density the run cost, warmup included (one per leapfrog
        step, summed over chains); None when the warmup's were not recorded. The effective sample size
        per gradient evaluation (`ess_bulk / posterior.gradient_evaluations()`) measures a sampler's
        efficiency whatever the machine."""
        if self.warmup_integration_steps is None:
            return None
        return int(np.asarray(self.warmup_integration_steps, np.int64).sum()) + int(
            np.asarray(self.num_integration_steps, np.int64).sum()
        )

    def bfmi(self) -> np.ndarray:
        """Energy Bayesian fraction of missing information per chain (below ~0.3: the momentum
        resampling explores the energy poorly; a reparametrisation may help)."""
        energy = np.asarray(self.energy, np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sum(np.diff(energy, axis=1) ** 2, axis=1) / np.sum(
                (energy - energy.mean(axis=1, keepdims=True)) ** 2, axis=1
            )

    def __str__(self) -> str:
        return self.summary()

    def to_arviz(self) -> Any:
        """An `arviz.InferenceData` with the constrained draws (group `posterior`) and the sampler
        statistics (`sample_stats`: `lp`, `diverging`, `acceptance_rate`, `n_steps`, `energy`,
        `step_size`). Needs ArviZ (`pip install arviz`), an optional dependency."""
        try:
            import arviz
        except ImportError as error:
            raise ImportError(
                "Posterior.to_arviz needs ArviZ, an optional dependency of scarlet_like: pip install arviz"
            ) from error
        posterior = {name: np.asarray(value) for name, value in self.values.items()}
        shape = self.samples.shape[:2]
        stats = {
            "lp": np.asarray(self.log_density),
            "diverging": np.asarray(self.divergences),
            "acceptance_rate": np.asarray(self.acceptance_rate),
            "n_steps": np.asarray(self.num_integration_steps),
            "energy": np.asarray(self.energy),
            "step_size": np.broadcast_to(np.asarray(self.step_size)[:, None], shape),
        }
        if "sample_stats" in inspect.signature(arviz.from_dict).parameters:
            return arviz.from_dict(posterior=posterior, sample_stats=stats)
        return arviz.from_dict({"posterior": posterior, "sample_stats": stats})  # ArviZ >= 1.0

    # -- saving and loading ---------------------------------------------------------------------

    _ARRAYS = (
        "samples",
        "log_density",
        "divergences",
        "acceptance_rate",
        "num_integration_steps",
        "energy",
        "step_size",
        "inverse_mass_matrix",
    )

    def save(self, path: str | os.PathLike) -> None:
        """Write the draws, the sampler statistics and the model's fixed values to an `.npz` file.

        Only arrays and a JSON header are written (no pickled code); [`scarlet_like.Posterior.load`][]
        needs a model of the same structure to read them back, bit for bit.
        """
        # `Any` values: given as `**arrays`, type checkers would also match them to `savez`'s `allow_pickle`
        arrays: dict[str, Any] = {name: np.asarray(getattr(self, name)) for name in self._ARRAYS}
        if self.warmup_integration_steps is not None:
            arrays["warmup_integration_steps"] = np.asarray(self.warmup_integration_steps)
        rest = io.BytesIO()
        eqx.tree_serialise_leaves(rest, self.unravel.rest)
        header = {
            "format": _FORMAT,
            "version": package_version(),
            "parameters": list(self.unravel.names),
            "shapes": [list(shape) for shape in self.unravel.shapes],
            "interrupted": bool(self.interrupted),
        }
        with open(path, "wb") as file:
            np.savez(
                file,
                header=np.frombuffer(json.dumps(header).encode(), np.uint8),
                rest=np.frombuffer(rest.getvalue(), np.uint8),
                **arrays,
            )

    @classmethod
    def load(cls, path: str | os.PathLike, like: PyTree) -> Posterior:
        """Read a posterior written by `save`.

        **Arguments:**

        - `path`: the file.
        - `like`: a model with the same free parameters and structure (e.g. built by the same code);
          its values are not used.

        **Returns:**

        The posterior, equal to the saved one. Raises `ValueError` naming the parameters that differ
        when `like` does not fit the file.
        """
        _, unravel = ravel(stacked_lists(like))
        with np.load(path, allow_pickle=False) as file:
            header = json.loads(file["header"].tobytes().decode())
            if header.get("format") != _FORMAT:
                raise ValueError(
                    f"Posterior.load: {os.fspath(path)!r} has posterior format {header.get('format')!r}, "
                    f"written by scarlet_like {header.get('version', UNRECORDED)}; this scarlet_like "
                    f"({package_version()}) reads format {_FORMAT}: load it with the version that wrote "
                    "it, or write it again with this one"
                )
            saved = list(zip(header["parameters"], map(tuple, header["shapes"]), strict=True))
            expected = list(zip(unravel.names, unravel.shapes, strict=True))
            if saved != expected:
                differ = sorted(set(saved) ^ set(expected))
                raise ValueError(
                    "Posterior.load: `like` does not have the saved free parameters; differing "
                    f"(name, shape): {', '.join(map(str, differ[:6]))}{written_by(header)}"
                )
            arrays = {name: jnp.asarray(file[name]) for name in cls._ARRAYS}
            warmup = file["warmup_integration_steps"] if "warmup_integration_steps" in file.files else None
            rest = eqx.tree_deserialise_leaves(io.BytesIO(file["rest"].tobytes()), unravel.rest)
        return cls(
            **arrays,
            unravel=Unravel(rest=rest, names=unravel.names, shapes=unravel.shapes),
            interrupted=bool(header.get("interrupted", False)),
            warmup_integration_steps=None if warmup is None else jnp.asarray(warmup),
        )

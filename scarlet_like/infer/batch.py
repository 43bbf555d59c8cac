"""`sl.fit_many`: one compiled fit for many blends of the same structure, spread over the devices."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, PyTree

from ..core import LogDensity, Plate, PlateError, canonical_tokens, stack, unstack, walk
from .compiled_code import release_if_near_limit
from .fit_loop import FitLoop, FitResult, require_free_parameters, run
from .optimize import FitWarning, _loop_options, fit
from .progress import progress_bar

__all__ = ["fit_many"]

# The name of the mesh axis the blends are spread over.
_AXIS = "blends"

# What `fit_many` passes on to every `fit` (`progress` is its own: a bar over batches), with `fit`'s
# defaults.
_FIT_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(fit).parameters.items()
    if name not in ("model", "likelihood", "progress")
}


@overload
def fit_many(
    models: Sequence[PyTree],
    likelihoods: Sequence[Any],
    *,
    batch_size: int | None = None,
    vectorize: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = False,
    unstack_results: Literal[True] = True,
    **fit_kwargs: Any,
) -> list[FitResult]: ...


@overload
def fit_many(
    models: Sequence[PyTree],
    likelihoods: Sequence[Any],
    *,
    batch_size: int | None = None,
    vectorize: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = False,
    unstack_results: Literal[False],
    **fit_kwargs: Any,
) -> FitResult: ...


@overload
def fit_many(
    models: Sequence[PyTree],
    likelihoods: Sequence[Any],
    *,
    batch_size: int | None = None,
    vectorize: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = False,
    unstack_results: bool = True,
    **fit_kwargs: Any,
) -> list[FitResult] | FitResult: ...


def fit_many(
    models: Sequence[PyTree],
    likelihoods: Sequence[Any],
    *,
    batch_size: int | None = None,
    vectorize: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = False,
    unstack_results: bool = True,
    **fit_kwargs: Any,
) -> list[FitResult] | FitResult:
    """Fit many blends of the same structure with one compiled computation, spread over the devices.

    Blend `i` is `models[i]` fitted to `likelihoods[i]` as `sl.fit(models[i], likelihoods[i],
    progress=False, **fit_kwargs)` fits it: the same stages, steps and stopping rules. (The compiled
    code differs, so float32 rounding may differ, and with it where exactly a fit stops: within its
    convergence tolerance.) The blends are stacked along a new leading axis, which is sharded over
    `devices`; each device fits its share of the blends.

    **Arguments:**

    - `models`: one model per blend. All must have the same structure: the same classes, fields,
      constraints, prior forms and array shapes (for scenes: the same number and kinds of sources in
      the same order, frames of the same shape). Values, the priors' parameters and data may differ.
    - `likelihoods`: one likelihood per blend (an Observation, a list of them, or an `sl.Module`
      holding its data), all of the same structure. A plain function closing over its data cannot
      be batched; the *same* function (or object) for every blend can, since nothing in it varies.
    - `batch_size`: fit this many blends per compiled call (default: all at once). Every batch has the
      same shape, so only the first one compiles; smaller batches need less memory and let the
      progress bar advance.
    - `vectorize`: how many blends a device fits side by side as one vectorised (`vmap`) computation;
      it works through its share of the batch in groups of that many, one group after the other.
      Vectorised fits run until the slowest of the group has finished: this pays where a single fit
      leaves most of the device idle, as on GPUs and TPUs with small blends. Not on a CPU, where the
      blends' gradients side by side cost as much as one after the other or more (32 small blends:
      1.4 times, see `benchmarks/README.md`). Default: 1 on CPUs (one blend after the other on each
      device), all of a device's share elsewhere.
    - `devices`: the devices to shard the blends over (default `jax.local_devices()`). A batch is
      padded with copies of its last blend up to a multiple of `len(devices) * vectorize`; the copies
      are dropped from the results.
    - `progress`: show a progress bar over the blends, advancing one batch at a time.
    - `unstack_results`: return one [`scarlet_like.FitResult`][] per blend (default). With `False`,
      return a single `FitResult` whose arrays carry a leading axis of blends and stay where the
      devices left them (sharded), and whose `model` is a [`scarlet_like.Plate`][] of the fitted
      models ([`scarlet_like.unstack`][] splits it).
    - `fit_kwargs`: `optimizer`, `max_steps`, `rtol`, `key`, `chunks`, as for [`scarlet_like.fit`][];
      the same for every blend.

    **Returns:**

    A list with one `FitResult` per blend, in the order of `models`. A fit that stopped on a non-finite
    value says so in its `nonfinite` field. There is no warning and no check of the starts: the
    blends are fitted inside one compiled computation, as `sl.fit` is under `jit`; a blend whose
    start is not finite stops after one step, flagged in `nonfinite`.

    Raises [`scarlet_like.PlateError`][] naming the first blend whose model or likelihood differs in
    structure from blend 0's (and where), and `ValueError` if there are not as many likelihoods as
    models or if the models have no free parameters.

    Ctrl-C (`KeyboardInterrupt`) between batches (see `batch_size`) returns the results of the
    blends of the batches fitted so far, the first ones in the order of `models`, with a
    [`scarlet_like.FitWarning`][] saying how many; if no batch was finished, the interrupt is raised
    again.

    A second call with blends of the same structure and shapes (and the same `batch_size`,
    `vectorize`, devices and `fit_kwargs`) reuses the compiled computation.

    !!! info "Several hosts"

        On a cluster, call `jax.distributed.initialize()` at the start of every process, then let each
        process call `fit_many` on its own share of the blends (e.g. `blends[jax.process_index()::
        jax.process_count()]`): they are fitted on that process's local devices, with no communication
        between processes. Gather the results afterwards as you would any per-process output.
    """
    models, likelihoods = list(models), list(likelihoods)
    if len(models) != len(likelihoods):
        raise ValueError(
            f"fit_many: got {len(models)} models but {len(likelihoods)} likelihoods; pass one likelihood "
            "per model"
        )
    if not models:
        raise ValueError("fit_many: got no models")
    # the blends share one structure (checked when they are stacked): the first speaks for all
    require_free_parameters(LogDensity(models[0], likelihoods[0], jacobian=False), "fit_many", models[0])
    release_if_near_limit("fit_many", models)
    unknown = sorted(set(fit_kwargs) - set(_FIT_DEFAULTS))
    if unknown:
        raise TypeError(
            f"fit_many: unknown option(s) {', '.join(unknown)}; the options passed on to fit are "
            f"{', '.join(_FIT_DEFAULTS)}"
        )
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("fit_many: got an empty list of devices")
    count = len(models)
    size = min(count, _positive("batch_size", count if batch_size is None else batch_size))
    share = math.ceil(size / len(devices))  # blends per device and batch
    if vectorize is None:
        vectorize = 1 if devices[0].platform == "cpu" else share
    group = min(share, _positive("vectorize", vectorize))
    # Every batch is padded to one shape, so that they all share one compiled computation.
    padded = math.ceil(share / group) * group * len(devices)

    plate = _stack_models(models)
    dynamic, static = _stack_likelihoods(likelihoods)
    options = {**_FIT_DEFAULTS, **fit_kwargs}
    key = options.pop("key")
    key = jax.random.key(0) if key is None else key
    mesh = Mesh(np.asarray(devices), (_AXIS,)) if len(devices) > 1 else None
    axes = plate.in_axes()

    bar = None
    if progress:
        bar = progress_bar(count, "fit_many", "blend")
    outputs = []
    try:
        for start in range(0, count, size):
            stop = min(start + size, count)
            rows = lambda leaf, start=start, stop=stop: _rows(leaf, start, stop, padded)  # noqa: E731
            members = _on_batched(axes, plate.members, rows)
            data = _on_batched(0, dynamic, rows)
            if mesh is not None:
                # placed where they will be fitted, rather than copied there from the first device
                members, data, key = _place(mesh, (members, data, key), (axes, 0, None))
            else:
                members, data, key = _put_arrays((members, data, key), devices[0])
            batch = Plate(members=members, size=padded, shared=plate.shared)
            result = _fit_batch(batch, data, key, static, options, mesh, group)
            outputs.append((result, stop - start))
            if bar is not None:
                # without a bar, the next batch is prepared while the devices still work on this one
                jax.block_until_ready(result)
                bar.update(stop - start)
    except KeyboardInterrupt:
        finished = sum(used for _, used in outputs)
        _warn_interrupted(finished, count)
        if not finished:
            raise
    finally:
        if bar is not None:
            bar.close()
    if unstack_results:
        results = [blend for result, used in outputs for blend in _split(result, used)]
        if any(group.token is not None for group in walk(models[0]).groups):
            results = [_with_tokens_of(model, result) for model, result in zip(models, results, strict=False)]
        return results
    return _join(outputs)


def _warn_interrupted(finished: int, count: int) -> None:
    """On a `KeyboardInterrupt`: a warning saying what `fit_many` returns (nothing, with no batch
    finished)."""
    if not finished:
        warnings.warn(
            "fit_many was interrupted (KeyboardInterrupt) before its first batch of blends was fitted: "
            "nothing to return",
            FitWarning,
            stacklevel=3,
        )
        return
    warnings.warn(
        f"fit_many was interrupted (KeyboardInterrupt): returning the results of the first {finished} of "
        f"{count} blends (the batches fitted so far); fit the others with models[{finished}:]",
        FitWarning,
        stacklevel=3,
    )


def _positive(name: str, value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"fit_many: {name} must be a positive integer, got {value!r}")
    return number


@eqx.filter_jit
def _fit_batch(
    models: Plate,
    data: PyTree,
    key: Array,
    static: PyTree,
    options: dict[str, Any],
    mesh: Mesh | None,
    group: int,
) -> FitResult:
    """Fit one padded batch; a module-level compiled function, so its compilation is reused."""
    axes = models.in_axes()
    devices = 1 if mesh is None else mesh.size
    local_count = models.size // devices

    def local(members: PyTree, data: PyTree, key: Array) -> FitResult:
        """The blends of one device, `group` at a time."""

        def fit_group(start: Array) -> FitResult:
            take = lambda leaf: jax.lax.dynamic_slice_in_dim(leaf, start, group)  # noqa: E731
            group_members = _on_batched(axes, members, take)
            group_data = _on_batched(0, data, take)
            if group == 1:
                # a single blend: `fit` itself, whose branches (unlike those of a vmapped fit) are taken
                # or skipped
                single = lambda leaf: leaf[0]  # noqa: E731
                likelihood = eqx.combine(_on_batched(0, group_data, single), static)
                result = fit(
                    _on_batched(axes, group_members, single), likelihood, progress=False, key=key, **options
                )
                return jax.tree_util.tree_map(lambda leaf: leaf[None], result)
            return _vectorised_fit(group_members, group_data, axes, static, key, options)

        starts = jnp.arange(0, local_count, group)
        if starts.shape[0] == 1:
            return fit_group(starts[0])
        results = jax.lax.map(fit_group, starts)
        return jax.tree_util.tree_map(lambda leaf: leaf.reshape(local_count, *leaf.shape[2:]), results)

    if mesh is None:
        return local(models.members, data, key)
    batched, replicated = PartitionSpec(_AXIS), PartitionSpec()
    specs = (
        _on_axes(axes, models.members, lambda axis: batched if axis == 0 else replicated),
        _on_axes(0, data, lambda axis: batched),
        replicated,
    )
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=batched, check_vma=False)(
        models.members, data, key
    )


def _vectorised_fit(
    members: PyTree, data: PyTree, axes: PyTree, static: PyTree, key: Array, options: dict[str, Any]
) -> FitResult:
    """`fit` of a group of blends at once: the fit loop's methods vectorised with `vmap` and driven in
    lockstep by [`scarlet_like.infer.run`][], which stops as soon as no blend of the group has anything
    left to do, measures the curvature only when some blend starts a stretch, and steps finished
    blends from a cheap stand-in.

    One difference from `fit`: when a step turns non-finite, the fit keeps the point of the step
    before (`fit` keeps the one before that).
    """
    loop_options = _loop_options(
        options["optimizer"], options["max_steps"], options["rtol"], options["chunks"]
    )
    in_axes = (axes, eqx.if_array(0))

    def loop(member: PyTree, blend_data: PyTree) -> FitLoop:
        density = LogDensity(member, eqx.combine(blend_data, static), jacobian=False)
        return FitLoop(density, **loop_options)

    def method(name: str) -> Any:
        def call(member: PyTree, blend_data: PyTree, state: Any) -> Any:
            return getattr(loop(member, blend_data), name)(state)

        batched = eqx.filter_vmap(call, in_axes=(*in_axes, 0))
        return lambda state: batched(members, data, state)

    initial = eqx.filter_vmap(lambda member, blend_data: loop(member, blend_data).init(key), in_axes=in_axes)
    state = run(
        method("restart"),
        method("advance"),
        method("can_step"),
        method("stretch_over"),
        initial(members, data),
        loop_options["max_steps"],
    )
    return method("result")(state)


def _on_axes(axes: PyTree, tree: PyTree, fn: Callable[[Any], Any]) -> PyTree:
    """`fn(axis)` for every array leaf of `tree`, where `axes` (a prefix of `tree`) says its axis."""

    def on(axis: Any, subtree: Any) -> Any:
        return jax.tree_util.tree_map(lambda leaf: fn(axis) if eqx.is_array(leaf) else leaf, subtree)

    return jax.tree_util.tree_map(on, axes, tree, is_leaf=lambda node: node is None)


def _on_batched(axes: PyTree, tree: PyTree, fn: Callable[[Array], Array | np.ndarray]) -> PyTree:
    """`fn(leaf)` for the array leaves of `tree` stacked over blends (axis 0); the rest unchanged."""

    def on(axis: Any, subtree: Any) -> Any:
        if axis is None:
            return subtree
        return jax.tree_util.tree_map(lambda leaf: fn(leaf) if eqx.is_array(leaf) else leaf, subtree)

    return jax.tree_util.tree_map(on, axes, tree, is_leaf=lambda node: node is None)


def _rows(leaf: Array, start: int, stop: int, padded: int) -> np.ndarray:
    """Rows `start:stop`, padded to `padded` rows with copies of the last (a real blend: it converges
    like the others and keeps the padding free of NaNs)."""
    # on the host: eager slicing and padding on the device would compile a little function per shape
    part = np.asarray(leaf)[start:stop]
    extra = padded - (stop - start)
    if extra:
        part = np.concatenate([part, np.repeat(part[-1:], extra, axis=0)])
    return part


def _place(mesh: Mesh, tree: PyTree, axes: PyTree) -> PyTree:
    batched = NamedSharding(mesh, PartitionSpec(_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())
    shardings = _on_axes(axes, tree, lambda axis: batched if axis == 0 else replicated)
    return jax.tree_util.tree_map(
        lambda leaf, where: jax.device_put(leaf, where) if eqx.is_array(leaf) else leaf, tree, shardings
    )


def _put_arrays(tree: PyTree, device: jax.Device) -> PyTree:
    """The array leaves of `tree` on `device` (Python numbers stay static, as under `filter_jit`)."""
    return jax.tree_util.tree_map(
        lambda leaf: jax.device_put(leaf, device) if eqx.is_array(leaf) else leaf, tree
    )


def _with_tokens_of(original: PyTree, result: FitResult) -> FitResult:
    """`result` whose model has the sharing tokens of `original` (a model of the same structure), as
    `fit` returns it: the blends were fitted with tokens renamed for stacking."""
    canonical, _ = canonical_tokens(result.model)
    _, restore = canonical_tokens(original)
    return result._replace(model=restore(canonical))


def _stack_models(models: list[PyTree]) -> Plate:
    """The models stacked into one plate, their sharing tokens renamed the same way at every call."""
    try:
        plate = stack(models)
    except PlateError as error:
        raise PlateError(f"fit_many: the blends' models differ in structure: {_in_blends(error)}") from None
    # Identities are static metadata of the compiled computation: numbered canonically, they are the
    # same at every call, and one computation serves them all.
    return canonical_tokens(plate)[0]


def _stack_likelihoods(likelihoods: list[Any]) -> tuple[PyTree, PyTree]:
    """`(stacked arrays, everything else)` of the likelihoods; everything else must agree across blends."""
    # Python numbers stay static, as under `eqx.filter_jit`: they may be shapes or flags.
    parts = [eqx.partition(likelihood, eqx.is_array) for likelihood in likelihoods]
    try:
        dynamic = stack([arrays for arrays, _ in parts]).members
    except PlateError as error:
        raise PlateError(
            f"fit_many: the blends' likelihoods differ in structure: {_in_blends(error)}"
        ) from None
    static = parts[0][1]
    for index, (_, other) in enumerate(parts[1:], start=1):
        if not eqx.tree_equal(static, other):
            raise PlateError(
                f"fit_many: the likelihoods of blend 0 and blend {index} differ in something that is not an "
                "array (a function, a closure over data, a Python number, a static field); only array data "
                "can differ between blends: hold the data as arrays in an sl.Module or an Observation "
                "rather than in a closure"
            )
    return dynamic, static


def _in_blends(error: PlateError) -> str:
    # `stack` counts models; here they are blends
    return str(error).removeprefix("stack: ").replace("model ", "blend ")


def _split(result: FitResult, used: int) -> list[FitResult]:
    """One FitResult per blend, its arrays on the default device like those of `sl.fit`."""
    # One transfer of the whole batch to the host, slicing there, and one transfer back: no device
    # work per blend and array.
    host = jax.device_get(result)
    models = unstack(Plate(members=host.model, size=used, shared=frozenset()))
    blends = [FitResult(model, *(field[index] for field in host[1:])) for index, model in enumerate(models)]
    return jax.device_put(blends)


def _join(outputs: list[tuple[FitResult, int]]) -> FitResult:
    """The batches' results as one FitResult with a leading axis of blends, the padding dropped."""
    count = sum(used for _, used in outputs)
    if len(outputs) == 1 and outputs[0][0].steps.shape[0] == count:
        joined = outputs[0][0]
    else:
        joined = jax.tree_util.tree_map(
            lambda *leaves: jnp.concatenate(
                [leaf[:used] for leaf, (_, used) in zip(leaves, outputs, strict=True)]
            ),
            *(result for result, _ in outputs),
        )
    return joined._replace(model=Plate(members=joined.model, size=count, shared=frozenset()))

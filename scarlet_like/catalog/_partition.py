"""Fit one partition (blends of one bucket): cutouts, scenes, `fit_many`, one row per detection.

This is what a Dask worker runs for each task; it also runs in the calling process (`workers=0`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._blends import Blend
from ._field import FieldImage

__all__ = ["FLAGS", "Partition", "error_mode", "fit_partition", "marginal_flux_errors"]

#: Bits of the catalog's `flag` column (0 when all went well).
FLAGS = {
    "failed": 1,  # the blend could not be set up or fitted: the `error` column says why
    "nonfinite": 2,  # the fit ended on non-finite values
    "not_converged": 4,  # the fit ran out of steps before it converged
    "edge": 8,  # the blend's cutout reaches beyond the field's edge (zero-weight pixels stand in)
    "outside": 16,  # the detection lies outside the field: not fitted
}


@dataclasses.dataclass(frozen=True)
class Partition:
    """One task: blends of one bucket (cutout size, number of sources), fitted together.

    - `name`: the partition's file stem (`size032-n01-p0000`), unique in a run.
    - `blends`: the blends.
    - `images`: the field's observations (travelling as file paths when read from files).
    - `detection_ids`: the detection ids of every row of the detection table.
    - `options`: `kinds`, `batch_size`, `fit` (options for `fit_many`), `flux_errors`, `grids` (how
      the images lie against the first one's pixels, `None` when they share its grid).
    """

    name: str
    blends: tuple[Blend, ...]
    images: tuple[FieldImage, ...]
    detection_ids: np.ndarray
    options: dict[str, Any]


@contextlib.contextmanager
def count_compilations() -> Iterator[list[str]]:
    """Within the block, the names of the functions JAX compiles (from `jax.log_compiles`), in a list."""
    names: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Compiling "):
                names.append(message.split()[1])

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("jax")
    propagate = logger.propagate
    logger.addHandler(handler)
    # the compile messages are counted here, not printed on the worker's console
    logger.propagate = False
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def fit_partition(partition: Partition) -> Any:
    """Fit every blend of `partition`; an astropy Table with one row per detection of its blends.

    Never raises for a blend: a blend whose cutouts, scene or fit fail gets its rows flagged `failed`
    with the error in the `error` column; one whose fit ends on non-finite values is flagged
    `nonfinite` (and its fluxes set to NaN). The table's `meta` holds the partition's name, the
    worker's process id, its seconds, the functions compiled while it ran, its number of blends and
    the worker's peak memory (MB).
    """
    start = time.perf_counter()
    with count_compilations() as compiled:
        rows, error_seconds = _fit_blends(partition)
    table = _to_table(rows, partition)
    table.meta.update(
        {
            "partition": partition.name,
            "pid": _process_id(),
            "seconds": time.perf_counter() - start,
            "compiled": ";".join(compiled),
            "fit_compilations": sum("_fit_batch" in name for name in compiled),
            "error_compilations": sum("_marginal_flux_std" in name for name in compiled),
            "error_seconds": error_seconds,
            "blends": len(partition.blends),
            "peak_memory_mb": _peak_memory_mb(),
        }
    )
    return table


def _peak_memory_mb() -> float:
    """The process's peak resident memory so far (MB), where the platform tells it (else NaN)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # kB on Linux, bytes on macOS


def _process_id() -> int:
    import os

    return os.getpid()


def _observations(blend: Blend, images: Sequence[FieldImage]) -> list[Any]:
    from ..astro import ArrayPSF, Observation

    observations = []
    for image in images:
        data, weights = image.cutout(blend.origin, blend.size, blend.keep)
        observations.append(
            Observation(
                data, weights=weights, psf=ArrayPSF(image.psf), channels=image.channels, name=image.name
            )
        )
    return observations


def _scene(blend: Blend, observations: list[Any], kinds: str) -> Any:
    from ..astro import init

    local = blend.positions - np.asarray(blend.origin, dtype=np.float64)
    return init.scene(observations, local, kinds=kinds)


def _scene_on_grids(
    blend: Blend, images: Sequence[FieldImage], grids: Any, kinds: str
) -> tuple[Any, list[Any]]:
    """The blend's scene and observations when the images lie on different pixel grids (see
    `_grids.py`): the model frame on the finest image's cutout, a fixed shift per other observation."""
    from ..astro import Scene, init

    observations, frame, positions, shifts = grids.observations(blend, images)
    started = init.scene(observations, positions, frame=frame, kinds=kinds)
    with Scene(frame, sources=started.sources, shifts=shifts) as scene:
        pass
    return scene, observations


def _structure(scene: Any) -> tuple[str, ...]:
    return tuple(type(source).__name__ for source in scene.sources)


def _fit_blends(partition: Partition) -> tuple[list[dict[str, Any]], float]:
    """The rows of every blend of the partition, and the seconds spent on flux uncertainties."""
    from ..infer import fit_many

    options = partition.options
    rows: list[dict[str, Any]] = []
    prepared: dict[tuple[str, ...], list[tuple[Blend, Any, list[Any]]]] = {}
    grids = options.get("grids")
    for blend in partition.blends:
        try:
            if grids is None:
                observations = _observations(blend, partition.images)
                scene = _scene(blend, observations, options["kinds"])
            else:
                scene, observations = _scene_on_grids(blend, partition.images, grids, options["kinds"])
        except Exception as error:  # any failure of one blend is recorded, never raised
            rows.extend(_failed_rows(blend, partition, error))
            continue
        prepared.setdefault(_structure(scene), []).append((blend, scene, observations))

    batch = int(options["batch_size"])
    error_seconds = 0.0
    for group in prepared.values():
        # padded to whole batches with copies of the last blend: every call has the same shapes, so the
        # compiled fit of this structure is reused by every group and every partition on this worker
        padded = group + [_fresh_copy(group[-1]) for _ in range(-len(group) % batch)]
        try:
            results = fit_many(
                [scene for _, scene, _ in padded],
                [observations for _, _, observations in padded],
                batch_size=batch,
                **options["fit"],
            )[: len(group)]
        except Exception:  # fall back to one blend at a time, to find the failing one
            results = [None] * len(group)
        fitted = []
        for (blend, scene, observations), result in zip(group, results, strict=True):
            try:
                if result is None:
                    result = fit_many([scene], [observations], batch_size=1, **options["fit"])[0]
                fitted.append((blend, observations, result))
            except Exception as error:
                rows.extend(_failed_rows(blend, partition, error))
        errors: list[np.ndarray | None] = [None] * len(fitted)
        if fitted and error_mode(options["flux_errors"]) == "marginal":
            start = time.perf_counter()
            try:
                errors = list(marginal_flux_errors([(result.model, obs) for _, obs, result in fitted], batch))
            except Exception:  # each blend on its own in `_fitted_rows`, which records what fails
                logging.getLogger("scarlet_like.catalog").debug(
                    "batched flux errors failed:\n%s", traceback.format_exc()
                )
            error_seconds += time.perf_counter() - start
        for (blend, observations, result), blend_errors in zip(fitted, errors, strict=True):
            try:
                rows.extend(
                    _fitted_rows(blend, partition, result, observations, options, errors=blend_errors)
                )
            except Exception as failure:
                rows.extend(_failed_rows(blend, partition, failure))
    return rows, error_seconds


def _fresh_copy(prepared: tuple[Blend, Any, list[Any]]) -> tuple[Blend, Any, list[Any]]:
    """A copy of a blend whose Parameters have identities of their own: copies that kept the original's
    would be taken for Parameters shared between the blends, another structure to compile."""
    blend, scene, observations = prepared
    return blend, _renamed(scene), observations


def _renamed(model: Any) -> Any:
    """`model` with new identities for its Parameters (see `_fresh_copy`)."""
    import uuid

    from ..core.tree import rename_tokens, tokens

    return rename_tokens(model, {token: uuid.uuid4().hex for token in tokens(model)})


def _base_row(blend: Blend, partition: Partition, member: int) -> dict[str, Any]:
    field = partition.images[0]
    row = int(blend.rows[member])
    edge = (
        blend.origin[0] < 0
        or blend.origin[1] < 0
        or blend.origin[0] + blend.size > field.shape[1]
        or blend.origin[1] + blend.size > field.shape[2]
    )
    return {
        "id": partition.detection_ids[row],
        "row": row,
        "blend": blend.index,
        "blend_size": len(blend.rows),
        "cutout": blend.size,
        "flag": FLAGS["edge"] if edge else 0,
    }


def _failed_rows(blend: Blend, partition: Partition, error: BaseException) -> list[dict[str, Any]]:
    text = f"{type(error).__name__}: {error}".strip()
    if len(text) > 500:
        text = text[:500] + "..."
    logging.getLogger("scarlet_like.catalog").debug(
        "blend %d failed:\n%s", blend.index, traceback.format_exc()
    )
    rows = []
    for member in range(len(blend.rows)):
        row = _base_row(blend, partition, member)
        y, x = blend.positions[member]
        row.update({"y": y, "x": x, "flag": row["flag"] | FLAGS["failed"], "error": text})
        rows.append(row)
    return rows


def _fitted_rows(
    blend: Blend,
    partition: Partition,
    result: Any,
    observations: list[Any],
    options: dict[str, Any],
    errors: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The rows of a fitted blend; `errors`, its `(K, C)` marginal flux uncertainties when they were
    computed with its bucket's (else computed here, as `options["flux_errors"]` says)."""
    from ..core import get_values, resolve

    scene = resolve(result.model)
    values = get_values(result.model)
    finite = bool(np.isfinite(float(np.nanmin(np.asarray(result.loss))))) and all(
        bool(np.all(np.isfinite(np.asarray(value)))) for value in values.values()
    )
    finite = finite and not bool(np.any(np.asarray(result.nonfinite)))
    chi2 = float(sum(float(obs.chi2(scene)) for obs in observations))
    pixels = int(sum(int(np.count_nonzero(np.asarray(obs.weights))) for obs in observations))
    mode = error_mode(options["flux_errors"])
    if not finite or mode == "none":
        errors = None
    elif mode == "fixed":
        errors = _flux_errors(scene, observations)
    elif errors is None:
        errors = marginal_flux_errors([(result.model, observations)], 1)[0]
    rows = []
    centers = np.stack([np.asarray(source.center, dtype=np.float64) for source in scene.sources])
    grids = options.get("grids")
    # sizes in the catalog's (the first image's) pixels
    pixel = 1.0
    if grids is None:
        centers = centers + np.asarray(blend.origin, dtype=np.float64)
    else:
        centers = grids.to_reference(centers, blend, partition.images)
        pixel = grids.scales[grids.finest] / grids.scales[0]
    for member, source in enumerate(scene.sources):
        row = _base_row(blend, partition, member)
        center = centers[member]
        spectrum = np.asarray(source.spectrum, dtype=np.float64)
        flag = row["flag"]
        if not finite:
            flag |= FLAGS["nonfinite"]
            spectrum = np.full_like(spectrum, np.nan)
        if not bool(result.converged):
            flag |= FLAGS["not_converged"]
        row.update(
            {
                "y": center[0],
                "x": center[1],
                "kind": "point" if type(source).__name__ == "PointSource" else "extended",
                "spectrum": spectrum,
                "spectrum_err": (
                    np.full_like(spectrum, np.nan) if errors is None else np.asarray(errors[member])
                ),
                "chi2": chi2,
                "chi2_per_pixel": chi2 / max(pixels, 1),
                "steps": int(result.steps),
                "converged": bool(result.converged),
                "flag": flag,
                "error": "" if finite else "the fit ended on non-finite values",
            }
        )
        morphology = getattr(source, "morphology", None)
        for name, unit in (("n", 1.0), ("r_half", pixel)):
            value = getattr(morphology, name, None)
            row[name] = math.nan if value is None else float(value) * unit
        shear = getattr(morphology, "ellipticity", None)
        row["g1"], row["g2"] = (math.nan, math.nan) if shear is None else (float(shear[0]), float(shear[1]))
        rows.append(row)
    return rows


def error_mode(value: Any) -> str:
    """`flux_errors` as one of `"marginal"`, `"fixed"`, `"none"` (`True` is `"marginal"`, `False` and
    `None` are `"none"`); a `ValueError` for anything else."""
    if value is True:
        return "marginal"
    if value is False or value is None:
        return "none"
    if value in ("marginal", "fixed", "none"):
        return str(value)
    raise ValueError(
        f"catalog: flux_errors must be 'marginal' (shapes and centres free), 'fixed' (held at the fit) or "
        f"'none', got {value!r}"
    )


def marginal_flux_errors(fitted: Sequence[tuple[Any, list[Any]]], batch: int) -> list[np.ndarray]:
    """`(K, C)` flux uncertainties of fitted blends, every other free parameter (centres, shapes)
    marginalised: from the inverse of the Gauss-Newton matrix `J^T W J` of all the blend's free
    parameters (`J` the Jacobian of the rendered model in the fit's unconstrained coordinates, `W` the
    weights), plus the curvature of their priors; carried to the fluxes by the delta method, as
    [`scarlet_like.laplace`][] does. NaN for a blend whose matrix is not positive definite.

    **Arguments:**

    - `fitted`: `(model, observations)` per blend, all of one structure (the fitted models, with their
      Parameters).
    - `batch`: blends per compiled call, the last call padded to it: one compilation per structure.

    **Returns:**

    One `(K, C)` array per blend.
    """
    from ..core import Plate, canonical_tokens, stack

    out: list[np.ndarray] = []
    for start in range(0, len(fitted), batch):
        chunk = list(fitted[start : start + batch])
        used = len(chunk)
        # padded with copies of the last blend, as `fit_many` pads: every call stacks as many models
        last_model, last_observations = chunk[-1]
        chunk += [(_renamed(last_model), last_observations) for _ in range(batch - used)]
        # canonical identities: the same static metadata for every chunk and partition of a structure
        plate = canonical_tokens(stack([model for model, _ in chunk]))[0]
        parts = [eqx.partition(observations, eqx.is_array) for _, observations in chunk]
        data = stack([arrays for arrays, _ in parts]).members
        models = Plate(members=plate.members, size=batch, shared=plate.shared)
        std = np.asarray(_marginal_flux_std(models, data, parts[0][1]), dtype=np.float64)
        out.extend(std[:used])
    return out


@eqx.filter_jit
def _marginal_flux_std(models: Any, data: Any, static: Any) -> jax.Array:
    """`(B, K, C)`: `_blend_flux_std` of each blend of a padded batch (a Plate of models, the stacked
    arrays of their observations and what the observations share)."""
    axes = models.in_axes()

    def one(model: Any, blend_data: Any) -> jax.Array:
        return _blend_flux_std(model, eqx.combine(blend_data, static))

    return eqx.filter_vmap(one, in_axes=(axes, eqx.if_array(0)))(models.members, data)


def _blend_flux_std(model: Any, observations: list[Any]) -> jax.Array:
    from ..core import LogDensity, resolve
    from ..infer.laplace import _constrained_std, _split_std

    density = LogDensity(model, observations, jacobian=False)
    x0 = density.x0

    def whitened(x: jax.Array) -> jax.Array:
        scene = resolve(density.unravel(x))
        return jnp.concatenate([(jnp.sqrt(o.weights) * o.render(scene)).ravel() for o in observations])

    jacobian = jax.jacfwd(whitened)(x0)
    precision = jacobian.T @ jacobian - jax.hessian(density.log_prior)(x0)
    std = _split_std(density.unravel, _constrained_std(density.unravel, x0, _inverse(precision)))
    spectra = [jnp.asarray(source.spectrum) for source in resolve(model).sources]
    return jnp.stack(
        [
            std.get(f"sources[{k}].spectrum", jnp.full(spectrum.shape, jnp.nan, x0.dtype))
            for k, spectrum in enumerate(spectra)
        ]
    )


def _inverse(precision: jax.Array) -> jax.Array:
    """The inverse of a symmetric positive definite matrix, all NaN if it is not (judged on the matrix
    scaled to a unit diagonal: fluxes and shapes differ by decades in their curvature)."""
    diagonal = jnp.diag(precision)
    scale = 1.0 / jnp.sqrt(jnp.where(diagonal > 0, diagonal, 1.0))
    scaled = precision * scale[:, None] * scale[None, :]
    eigenvalues, vectors = jnp.linalg.eigh(0.5 * (scaled + scaled.T))
    good = jnp.all(diagonal > 0) & (jnp.min(eigenvalues) > 1e-6)
    inverse = (
        (vectors / jnp.where(good, eigenvalues, 1.0)[None, :]) @ vectors.T * scale[:, None] * scale[None, :]
    )
    return jnp.where(good, inverse, jnp.nan)


def _flux_errors(scene: Any, observations: list[Any]) -> np.ndarray:
    """`(K, C)` flux uncertainties with every shape and centre held at the fit: the inverse of the
    Fisher matrix of the fluxes (the model is linear in them), the sources' covariances included."""
    spectra = jnp.stack([jnp.asarray(source.spectrum) for source in scene.sources])
    covariance = np.asarray(_flux_covariance(scene, observations, spectra), dtype=np.float64)
    variance = np.diag(covariance).reshape(spectra.shape)
    return np.sqrt(np.where(variance > 0, variance, np.nan))


@eqx.filter_jit
def _flux_covariance(scene: Any, observations: list[Any], spectra: jax.Array) -> jax.Array:
    def render(values: jax.Array) -> list[jax.Array]:
        replaced = eqx.tree_at(
            lambda s: [source.spectrum for source in s.sources], scene, [value for value in values]
        )
        return [observation.render(replaced) for observation in observations]

    # each source's unit image per channel: the model is linear in the spectra
    jacobians = jax.jacfwd(render)(spectra)
    size = spectra.size
    fisher = jnp.zeros((size, size), dtype=spectra.dtype)
    for observation, jacobian in zip(observations, jacobians, strict=True):
        flat = jacobian.reshape(-1, size)
        weights = observation.weights.reshape(-1)
        fisher = fisher + flat.T @ (weights[:, None] * flat)
    return jnp.linalg.pinv(fisher)


def _to_table(rows: list[dict[str, Any]], partition: Partition) -> Any:
    from astropy.table import Table

    channels = _channels(partition.images)
    field = partition.images[0]
    columns: dict[str, list[Any]] = {
        name: [] for name in ("id", "row", "blend", "blend_size", "cutout", "kind", "y", "x", "ra", "dec")
    }
    for channel in channels:
        columns[f"flux_{channel}"] = []
        columns[f"flux_err_{channel}"] = []
    for name in ("n", "r_half", "g1", "g2", "chi2", "chi2_per_pixel", "steps", "converged", "flag"):
        columns[name] = []
    columns["error"] = []
    columns["partition"] = []
    nan_spectrum = np.full(len(channels), np.nan)
    for row in rows:
        ra, dec = field.to_sky(row["y"], row["x"])
        spectrum = row.get("spectrum", nan_spectrum)
        spectrum_err = row.get("spectrum_err", nan_spectrum)
        values = {
            **row,
            "ra": float(ra),
            "dec": float(dec),
            "kind": row.get("kind", ""),
            "error": row.get("error", ""),
            "partition": partition.name,
        }
        for index, channel in enumerate(channels):
            values[f"flux_{channel}"] = float(spectrum[index])
            values[f"flux_err_{channel}"] = float(spectrum_err[index])
        defaults = {"steps": 0, "converged": False}
        for name in columns:
            columns[name].append(values.get(name, defaults.get(name, math.nan)))
    dtypes: dict[str, Any] = {"row": np.int64, "blend": np.int64, "blend_size": np.int32, "cutout": np.int32}
    dtypes.update({"steps": np.int32, "converged": bool, "flag": np.int32, "kind": str, "error": str})
    dtypes["partition"] = str
    table = Table()
    for name, column in columns.items():
        table[name] = np.asarray(column, dtype=dtypes.get(name, None if name == "id" else np.float64))
    return table


def _channels(images: Sequence[FieldImage]) -> list[str]:
    """Every channel of the images, each once, in order of first appearance (the model frame's)."""
    channels: list[str] = []
    for image in images:
        channels.extend(channel for channel in image.channels if channel not in channels)
    return channels

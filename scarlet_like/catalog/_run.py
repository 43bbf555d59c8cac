"""`sl.catalog.fit_field`: a whole field to a catalog, on Dask workers or in this process."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._blends import SIZES, Blend, make_blends, psf_fwhm
from ._field import FieldImage, read_detections
from ._partition import FLAGS, Partition, _channels, _to_table, error_mode, fit_partition

__all__ = ["CatalogRun", "fit_field"]

_MISSING_DASK = (
    "catalog: running on Dask needs the packages dask and distributed: pip install 'scarlet_like[catalog]' "
    "(or run in this process with workers=0)"
)


@dataclasses.dataclass(frozen=True)
class CatalogRun:
    """What [`scarlet_like.catalog.fit_field`][] returns.

    - `table`: the catalog, an astropy Table with one row per detection (see `fit_field`).
    - `output`: the Parquet file written (None when no output was asked for).
    - `fitted`: names of the partitions fitted in this run.
    - `skipped`: names of the partitions whose results an earlier run had written (resumed).
    - `partitions`: per partition fitted in this run, its `meta`: worker process id, seconds, and
      functions compiled (`fit_compilations` counts those of the fit itself).
    - `seconds`: wall time of the run.
    """

    table: Any
    output: pathlib.Path | None
    fitted: tuple[str, ...]
    skipped: tuple[str, ...]
    partitions: dict[str, dict[str, Any]]
    seconds: float


def fit_field(
    images: FieldImage | str | os.PathLike | Sequence[FieldImage | str | os.PathLike],
    detections: Any,
    output: str | os.PathLike | None = None,
    *,
    fits: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    linking_length: float | None = None,
    margin: float | None = None,
    sizes: Sequence[int] = SIZES,
    kinds: str = "auto",
    blends_per_partition: int = 64,
    batch_size: int = 4,
    flux_errors: str | bool = "marginal",
    progress: bool = True,
    overwrite: bool = False,
    **fit_options: Any,
) -> CatalogRun:
    """Fit every blend of a field and write one catalog: detections in, one row per detection out.

    ```python
    run = sl.catalog.fit_field(["field_gri.fits"], "detections.fits", "catalog.parquet", workers=2)
    run.table["flux_r", "flux_err_r", "flag"]
    ```

    **Arguments:**

    - `images`: the field's observations: [`scarlet_like.catalog.FieldImage`][]s or FITS files (see
      `FieldImage.from_fits` for their layout); their channels are joined. Several may share one
      pixel grid (one file per band of a coadd), or lie on different grids (another instrument's
      pixel scale, a shifted or rotated exposure: each then needs a celestial WCS); the catalog's
      pixels (`x`, `y`, `r_half`, the cutout sizes) are the first image's. On different grids each
      blend is cut from each image around its sky position and fitted as one scene of several
      observations, its model frame on the grid of the image with the finest pixels.
    - `detections`: a detection table (a file astropy reads, or an astropy Table) with columns `ra`,
      `dec` in degrees, or `x`, `y` in the first image's pixels (0-based); or a `(K, 2)` array of
      `(y, x)`. An `id` column, if any, is carried into the catalog (default: the row number).
    - `output`: the Parquet file to write (checked for writing before any fit). Partitions are
      written as they finish into the folder `<output>.parts/`; a second run with the same output
      and inputs skips the partitions found there (it resumes), and with other inputs it raises
      unless `overwrite`. `None`: write nothing, return the table.
    - `fits`: also write the catalog as FITS, next to the Parquet file (`.fits` suffix).
    - `workers`: Dask worker processes of a `LocalCluster` started for the run (default: one per CPU
      core); `0` fits every partition here, in this process, without Dask.
    - `scheduler`: address of a running Dask scheduler (`tcp://host:8786`) to use instead.
    - `client`: a `dask.distributed.Client` to use instead.
    - `linking_length`: detections closer than this (pixels) are in one blend, with their friends'
      friends (default: 3 times the largest PSF FWHM).
    - `margin`: pixels beyond a blend's outermost detections that its cutout fits (default: the
      linking length); its cutout is the smallest of `sizes` holding that box, the rest of the
      cutout padded with zero weight.
    - `sizes`: the standard cutout sides (pixels).
    - `kinds`: `"auto"` (point source or galaxy, decided by `sl.init.scene` from the data),
      `"point"` or `"extended"` for every detection.
    - `blends_per_partition`: the most blends in one task: a bucket (blends of one cutout size and
      number of sources) with more is split into several partitions.
    - `batch_size`: blends per call of `sl.fit_many`, every call padded to it (so that it compiles
      once per structure and worker).
    - `flux_errors`: how `flux_err_<channel>` is computed: `"marginal"` (default), every other free
      parameter of the blend (centres, shapes, the neighbours' fluxes) marginalised, from the inverse
      of the Gauss-Newton matrix of all of them, batched over each bucket like the fit; `"fixed"`, the
      shapes and centres held at the fit (the inverse Fisher matrix of the fluxes alone: smaller, too
      small for galaxies); `"none"` (or `False`), NaN.
    - `progress`: show a progress bar over the partitions (Dask's, with Dask).
    - `overwrite`: start afresh, removing the partitions of an earlier run with other inputs.
    - `fit_options`: passed on to [`scarlet_like.fit_many`][] (`max_steps`, `rtol`, `optimizer`, ...).

    **Returns:**

    A [`scarlet_like.catalog.CatalogRun`][] whose `table` has, per detection, in the order of the
    detection table: `id`, `row`, `blend` (the blend's number), `blend_size`, `cutout` (its side),
    `kind`, the fitted centre `y`, `x` (first image's pixels) and `ra`, `dec` (degrees),
    `flux_<channel>` and `flux_err_<channel>` per channel, the Sérsic `n`, `r_half` (pixels), `g1`,
    `g2` (NaN for point sources), `chi2` of its blend over every observation and `chi2_per_pixel`,
    `steps`, `converged`, `flag` (0 when all went well; bits in `sl.catalog.FLAGS`), `error` (why a
    blend failed) and `partition`.

    **Blends.** Detections are linked by friends of friends: two closer than `linking_length` are in
    one blend, and so are their friends. An isolated detection is a blend of one. The light of
    sources of other blends is not modelled: it falls in a blend's cutout only when they are closer
    than its margin.

    **Faults.** A blend that cannot be set up or fitted (bad pixels, NaN weights, a detection off the
    field) is recorded with its error and flag; it never stops the run. A task that raises is
    retried by Dask twice; one whose worker dies is run again on another (or the restarted) worker,
    up to Dask's `distributed.scheduler.allowed-failures` times (3 by default).
    """
    started = time.perf_counter()
    images = _field_images(images)
    channels = _channels(images)
    output_path = None if output is None else _writable_output(pathlib.Path(output), fits)

    table = read_detections(detections)
    field = images[0]
    if {"x", "y"} <= set(table.colnames):
        ys, xs = np.asarray(table["y"], np.float64), np.asarray(table["x"], np.float64)
    else:
        ys, xs = field.to_pixels(table["ra"], table["dec"])
    ids = np.asarray(table["id"]) if "id" in table.colnames else np.arange(len(table))
    positions = np.stack([ys, xs], axis=-1).reshape(-1, 2)
    _, height, width = field.shape
    inside = (
        np.all(np.isfinite(positions), axis=1)
        & (positions[:, 0] > -0.5)
        & (positions[:, 0] < height - 0.5)
        & (positions[:, 1] > -0.5)
        & (positions[:, 1] < width - 0.5)
    )

    grids = None
    if len(images) > 1:
        from ._grids import grids_of

        grids = grids_of(images)
    # in the first image's pixels
    sides = [1.0] * len(images) if grids is None else [scale / grids.scales[0] for scale in grids.scales]
    fwhm = max(psf_fwhm(image.psf) * side for image, side in zip(images, sides, strict=True))
    link = 3.0 * fwhm if linking_length is None else float(linking_length)
    if not link > 0:
        raise ValueError(f"catalog: linking_length must be a positive number of pixels, got {linking_length}")
    rows = np.flatnonzero(inside)
    blends = make_blends(positions[rows], rows, link, link if margin is None else float(margin), sizes)
    options = {
        "kinds": kinds,
        "batch_size": int(batch_size),
        "fit": dict(fit_options),
        "flux_errors": error_mode(flux_errors),
        "grids": grids,
    }
    partitions = _partitions(blends, tuple(images), ids, options, int(blends_per_partition))

    parts = None
    done: dict[str, Any] = {}
    if output_path is not None:
        fingerprint = _fingerprint(images, positions, ids, link, margin, sizes, options, blends_per_partition)
        parts = _parts_folder(output_path, fingerprint, overwrite)
        done = _finished(parts, partitions)
    todo = [partition for partition in partitions if partition.name not in done]

    results: dict[str, Any] = dict(done)
    meta: dict[str, dict[str, Any]] = {}
    if todo:
        if workers == 0 and client is None and scheduler is None:
            fitted = _run_here(todo, progress)
        else:
            fitted = _run_on_dask(todo, workers, scheduler, client, progress)
        for name, part in fitted:
            results[name] = part
            meta[name] = dict(part.meta)
            if parts is not None:
                _write_atomically(part, parts / f"{name}.parquet")
        # `fitted` is a generator: partitions are written as they finish

    catalog = _assemble(results, partitions, images, positions, ids, inside, channels)
    if output_path is not None:
        _write_atomically(catalog, output_path)
        if fits:
            catalog.write(output_path.with_suffix(".fits"), overwrite=True)
    return CatalogRun(
        table=catalog,
        output=output_path,
        fitted=tuple(meta),
        skipped=tuple(done),
        partitions=meta,
        seconds=time.perf_counter() - started,
    )


def _field_images(images: Any) -> list[FieldImage]:
    if isinstance(images, FieldImage | str | os.PathLike):
        images = [images]
    images = [image if isinstance(image, FieldImage) else FieldImage.from_fits(image) for image in images]
    if not images:
        raise ValueError("catalog: got no field image")
    return images


def _writable_output(path: pathlib.Path, fits: bool) -> pathlib.Path:
    """The output path, checked for writing now rather than after hours of fitting."""
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"catalog: the output must be a Parquet file (.parquet), got {str(path)!r}")
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"catalog: the output folder {str(folder)!r} does not exist; create it first")
    for target in [path, path.with_suffix(".fits")] if fits else [path]:
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(f"catalog: cannot overwrite {str(target)!r}")
    probe = folder / f".{path.name}.write-check"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"catalog: cannot write into the output folder {str(folder)!r}: {error}"
        ) from None
    return path


def _partitions(
    blends: list[Blend], images: tuple[FieldImage, ...], ids: np.ndarray, options: dict[str, Any], most: int
) -> list[Partition]:
    if most < 1:
        raise ValueError(f"catalog: blends_per_partition must be a positive integer, got {most}")
    buckets: dict[tuple[int, int], list[Blend]] = {}
    for blend in blends:
        buckets.setdefault(blend.bucket, []).append(blend)
    partitions = []
    for (size, count), members in sorted(buckets.items()):
        pieces = math.ceil(len(members) / most)
        for piece in range(pieces):
            chunk = members[piece::pieces]  # as even as can be
            name = f"size{size:03d}-n{count:02d}-p{piece:04d}"
            partitions.append(Partition(name, tuple(chunk), images, ids, options))
    return partitions


def _fingerprint(images: list[FieldImage], positions: np.ndarray, ids: np.ndarray, *settings: Any) -> str:
    digest = hashlib.sha256()
    for image in images:
        if image.path is not None:
            stat = os.stat(image.path)
            digest.update(f"{os.path.abspath(image.path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(f"{image.name}:{image.shape}:{image.channels}".encode())
    digest.update(np.ascontiguousarray(positions, dtype=np.float64).tobytes())
    digest.update(repr(ids.tolist()).encode())
    digest.update(repr(settings).encode())
    return digest.hexdigest()


def _parts_folder(output: pathlib.Path, fingerprint: str, overwrite: bool) -> pathlib.Path:
    parts = output.with_name(output.name + ".parts")
    manifest = parts / "run.json"
    if manifest.exists():
        earlier = json.loads(manifest.read_text()).get("fingerprint")
        if earlier != fingerprint:
            if not overwrite:
                raise ValueError(
                    f"catalog: {str(parts)!r} holds the partitions of a run with other images, detections or "
                    "options; pass overwrite=True (--overwrite) to start afresh, or choose another output"
                )
            for old in parts.glob("*.parquet"):
                old.unlink()
    parts.mkdir(exist_ok=True)
    manifest.write_text(json.dumps({"fingerprint": fingerprint}))
    return parts


def _finished(parts: pathlib.Path, partitions: list[Partition]) -> dict[str, Any]:
    from astropy.table import Table

    done = {}
    for partition in partitions:
        path = parts / f"{partition.name}.parquet"
        if path.exists():
            try:
                done[partition.name] = Table.read(path)
            except Exception:  # a damaged file is fitted again
                continue
    return done


def _write_atomically(table: Any, path: pathlib.Path) -> None:
    """Write a table to `path` through a temporary file: an interrupted write leaves no partial file."""
    temporary = path.with_name(f".{path.name}.tmp")
    table.write(temporary, format="parquet", overwrite=True)
    os.replace(temporary, path)


def _run_here(partitions: list[Partition], progress: bool) -> Any:
    from ..infer.progress import progress_bar

    bar = progress_bar(len(partitions), "catalog", "partition", disable=not progress)
    try:
        for partition in partitions:
            yield partition.name, fit_partition(partition)
            bar.update(1)
    finally:
        bar.close()


def _run_on_dask(
    partitions: list[Partition], workers: int | None, scheduler: str | None, client: Any, progress: bool
) -> Any:
    try:
        import distributed
    except ImportError as error:
        raise ImportError(_MISSING_DASK) from error

    cluster = None
    own_client = client is None
    if client is None:
        if scheduler is not None:
            client = distributed.Client(scheduler)
        else:
            count = (os.cpu_count() or 1) if workers is None else int(workers)
            # one thread per worker: JAX already spreads one fit over the process's cores
            cluster = distributed.LocalCluster(
                n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            client = distributed.Client(cluster)
    try:
        link = getattr(client, "dashboard_link", None)
        if link:
            print(f"catalog: Dask dashboard at {link}", file=sys.stderr)
        futures = [
            client.submit(fit_partition, partition, key=f"catalog-{partition.name}", retries=2, pure=False)
            for partition in partitions
        ]
        if progress:
            # Dask's bar blocks until every task is done: drawn from a thread of its own, so that this
            # one writes each partition as it finishes
            import threading

            threading.Thread(
                target=distributed.progress, args=(futures,), kwargs={"notebook": False}, daemon=True
            ).start()
        for future in distributed.as_completed(futures):
            part = future.result()
            yield part.meta["partition"], part
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _assemble(
    results: dict[str, Any],
    partitions: list[Partition],
    images: list[FieldImage],
    positions: np.ndarray,
    ids: np.ndarray,
    inside: np.ndarray,
    channels: list[str],
) -> Any:
    """The partitions' tables, and a row for every detection outside the field, in detection order."""
    from astropy.table import vstack

    tables = [results[partition.name] for partition in partitions if partition.name in results]
    outside = np.flatnonzero(~inside)
    if len(outside):
        rows = [
            {
                "row": int(row),
                "blend": -1,
                "blend_size": 0,
                "cutout": 0,
                "y": positions[row, 0],
                "x": positions[row, 1],
                "flag": FLAGS["outside"],
                "error": "the detection lies outside the field",
            }
            for row in outside
        ]
        empty = Partition("outside", (), tuple(images), ids, {})
        extra = _to_table([{**row, "id": ids[row["row"]]} for row in rows], empty)
        extra["partition"] = ""
        tables.append(extra)
    if not tables:
        return _to_table([], Partition("", (), tuple(images), ids, {}))
    catalog = vstack(tables, metadata_conflicts="silent")
    catalog.meta.clear()
    catalog.meta["channels"] = ",".join(channels)
    catalog.sort("row")
    return catalog

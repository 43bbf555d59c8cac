"""sl.catalog: a simulated field (GalSim) through `fit_field` and `python -m scarlet_like catalog`: every
detection once, a corrupted blend flagged while the others succeed, resumed runs, fluxes against the
truth, and compilations reused across the tasks of a Dask worker; marginal flux uncertainties; a field
on two pixel grids; a Dask worker that dies mid-task."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

import numpy as np
import pytest

import scarlet_like as sl

pytest.importorskip("galsim")
pytest.importorskip("pyarrow")

_SIMS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "catalog_sims.py"
# Fast settings: the fits of the tiny field converge in 22-213 steps
_FAST = {"max_steps": 300, "kinds": "extended", "progress": False}


def _sims():
    spec = importlib.util.spec_from_file_location("catalog_sims", _SIMS)
    module = importlib.util.module_from_spec(spec)
    sys.modules["catalog_sims"] = module
    spec.loader.exec_module(module)
    return module


def _write(folder, field, corrupt: int):
    """The field as files: images (with NaN weights on the centre pixel of object `corrupt`), and
    detections with ra, dec and ids, plus one detection off the field."""
    from astropy.table import Table

    weights = field.weights.copy()
    y, x = (int(round(float(field.truth[name][corrupt]))) for name in ("y", "x"))
    weights[:, y, x] = np.nan
    image = sl.catalog.write_field(
        folder / "field.fits", field.images, weights, field.psfs, field.bands, field.wcs
    )
    truth = field.truth
    ra, dec = field.wcs.pixel_to_world_values([-50.0], [-50.0])
    detections = Table(
        {
            "id": np.concatenate([1000 + np.arange(len(truth)), [9999]]),
            "ra": np.concatenate([truth["ra"], ra]),
            "dec": np.concatenate([truth["dec"], dec]),
        }
    )
    detections.write(folder / "detections.fits")
    return image, folder / "detections.fits"


@pytest.fixture(scope="module")
def tiny_field(tmp_path_factory):
    """4 isolated objects (a star and three galaxies) on a 64 x 64 field in g, r, i, detected at their
    true positions; object 1's cutout holds NaN weights."""
    folder = tmp_path_factory.mktemp("catalog")
    field = _sims().simulate_field(size=64, spacing=32, seed=2, pair_every=100)
    image, detections = _write(folder, field, corrupt=1)
    return folder, field, image, detections


@pytest.fixture(scope="module")
def small_field(tmp_path_factory):
    """9 objects on a 120 x 120 field in g, r, i (one a pair: 10 sources), detected at their true
    positions; object 1's cutout holds NaN weights."""
    folder = tmp_path_factory.mktemp("catalog")
    field = _sims().simulate_field(size=120, spacing=40, seed=1)
    image, detections = _write(folder, field, corrupt=1)
    return folder, field, image, detections


def _check_catalog(table, field, corrupt: int):
    truth = field.truth
    # every detection once, in the order of the detection table, the one off the field flagged
    assert table["id"].tolist() == [*range(1000, 1000 + len(truth)), 9999]
    assert table["flag"][-1] == sl.catalog.FLAGS["outside"] and table["blend"][-1] == -1
    # the blend with NaN weights is flagged failed, with its reason; all the others were fitted
    failed = (np.asarray(table["flag"]) & sl.catalog.FLAGS["failed"]) != 0
    assert np.flatnonzero(failed).tolist() == [corrupt]
    assert "weights must be finite" in table["error"][corrupt]
    fitted = np.ones(len(table), bool)
    fitted[[corrupt, len(table) - 1]] = False
    assert np.all(np.isfinite(table["flux_r"][fitted])) and np.all(table["flux_err_r"][fitted] > 0)
    assert np.all(table["chi2_per_pixel"][fitted] < 1.3)
    # (the faintest galaxy of the small field, 820 in r, takes more than 300 steps)
    bright = fitted[: len(truth)] & (np.asarray(truth["flux_r"]) > 1000)
    assert np.all(table["converged"][: len(truth)][bright])
    # the pair is one blend of two; the others blends of one
    sizes = np.asarray(table["blend_size"][: len(truth)])
    assert np.array_equal(sizes, np.asarray(truth["blend_of"]))
    # fluxes of isolated sources against the truth: within 5 of their errors, and the bright ones within
    # 3 % (measured: 2.0 % at most above 2000). The errors (marginal, the default) let shapes and
    # centres free: every pull under 3 on the tiny field; with the shapes held ("fixed") the pulls of
    # its galaxies were 0.8-3.7, and the faint galaxy of the small field (1060 in r) 4.9 low in r.
    isolated = fitted[: len(truth)] & (sizes == 1)
    assert isolated.sum() >= 3
    for band in field.bands:
        measured, true = np.asarray(table[f"flux_{band}"][: len(truth)]), np.asarray(truth[f"flux_{band}"])
        pull = np.abs(measured - true) / np.asarray(table[f"flux_err_{band}"][: len(truth)])
        assert np.all(pull[isolated] < 5), (band, pull[isolated])
        bright = isolated & (np.asarray(truth["flux_r"]) > 2000)
        assert np.all(np.abs(measured / true - 1)[bright] < 0.03), (band, measured / true)
    # positions back on the sky: within 0.05" (a quarter of a pixel) of the truth for isolated sources
    offset = np.hypot(
        (np.asarray(table["ra"][: len(truth)]) - truth["ra"]) * np.cos(np.radians(2.0)),
        np.asarray(table["dec"][: len(truth)]) - truth["dec"],
    )
    assert np.all(offset[isolated] * 3600 < 0.05), offset[isolated] * 3600


def test_fit_field_in_this_process_flags_the_corrupt_blend_and_resumes(tiny_field):
    folder, field, image, detections = tiny_field
    output = folder / "here.parquet"
    options = {**_FAST, "blends_per_partition": 2}
    run = sl.catalog.fit_field(image, detections, output, workers=0, fits=True, **options)
    _check_catalog(run.table, field, corrupt=1)
    assert output.is_file() and output.with_suffix(".fits").is_file()
    from astropy.table import Table

    written = Table.read(output)
    assert written["id"].tolist() == run.table["id"].tolist()
    assert np.allclose(written["flux_r"], run.table["flux_r"], equal_nan=True)
    assert run.fitted == ("size032-n01-p0000", "size032-n01-p0001") and not run.skipped
    # the second partition ran the compiled fit of the first
    assert [run.partitions[name]["fit_compilations"] for name in run.fitted][1] == 0

    # an interrupted run: the second partition and the catalog were not written yet
    parts = output.with_name(output.name + ".parts")
    (parts / "size032-n01-p0001.parquet").unlink()
    output.unlink()
    again = sl.catalog.fit_field(image, detections, output, workers=0, **options)
    assert again.fitted == ("size032-n01-p0001",) and again.skipped == ("size032-n01-p0000",)
    assert np.allclose(again.table["flux_r"], run.table["flux_r"], equal_nan=True, rtol=1e-5)
    assert again.table["flag"].tolist() == run.table["flag"].tolist()

    # other options over the same output: refused, unless asked to start afresh
    with pytest.raises(ValueError, match="other images, detections or options"):
        sl.catalog.fit_field(image, detections, output, workers=0, **{**options, "max_steps": 200})


def test_marginal_flux_errors_are_wider_than_fixed_ones_and_compile_once(tiny_field):
    _, field, image, detections = tiny_field
    options = {**_FAST, "blends_per_partition": 2}
    marginal = sl.catalog.fit_field(image, detections, None, workers=0, **options)
    fixed = sl.catalog.fit_field(image, detections, None, workers=0, flux_errors="fixed", **options)
    # the batched errors compiled at most once (not at all when an earlier test of this module did),
    # and the second partition reused them
    metas = [marginal.partitions[name] for name in marginal.fitted]
    assert metas[0]["error_compilations"] <= 1 and metas[1]["error_compilations"] == 0
    assert all(meta["error_seconds"] > 0 for meta in metas)
    assert not any(meta["error_compilations"] for meta in fixed.partitions.values())
    truth = field.truth
    fitted = np.isfinite(np.asarray(marginal.table["flux_err_r"][: len(truth)]))
    assert fitted.sum() == 3  # the corrupt blend failed
    galaxies = fitted & ~np.asarray(truth["star"])
    assert galaxies.sum() >= 2
    for band in field.bands:
        wide = np.asarray(marginal.table[f"flux_err_{band}"][: len(truth)])
        narrow = np.asarray(fixed.table[f"flux_err_{band}"][: len(truth)])
        # marginalising over the other parameters never narrows an error, and widens a galaxy's
        assert np.all(wide[fitted] >= 0.999 * narrow[fitted]), (band, wide / narrow)
        assert np.all(wide[galaxies] > 1.2 * narrow[galaxies]), (band, wide / narrow)
        pull = (np.asarray(marginal.table[f"flux_{band}"][: len(truth)]) - truth[f"flux_{band}"]) / wide
        assert np.all(np.abs(pull[fitted]) < 3), (band, pull)
    with pytest.raises(ValueError, match="flux_errors must be"):
        sl.catalog.fit_field(image, detections, None, workers=0, flux_errors="laplace")


def _two_grids(field):
    """The tiny field's g and r on its own 0.2" grid, and i drawn again on a 0.1" grid turned by 30
    degrees (sharper PSF: sigma 1 pixel of the first grid against 1.5)."""
    other = _sims().draw_on_grid(field, ("i",), scale=0.5, rotation_deg=30.0, psf_sigma=1.0, seed=3)
    ground = sl.catalog.FieldImage(
        field.images[:2], field.weights[:2], field.psfs[:2], ("g", "r"), field.wcs, name="ground"
    )
    space = sl.catalog.FieldImage(other.images, other.weights, other.psfs, ("i",), other.wcs, name="space")
    return ground, space


# The model frame is the finest image's 90 x 90 pixel cutout (the 0.1" grid, turned): compiling its fit
# took 300 s on the shared 2-core machine under load
@pytest.mark.slow
def test_fit_field_on_two_pixel_grids(tiny_field):
    from astropy.table import Table

    _, field, _, _ = tiny_field
    ground, space = _two_grids(field)
    truth = field.truth
    detections = Table({"ra": truth["ra"], "dec": truth["dec"]})
    run = sl.catalog.fit_field([ground, space], detections, None, workers=0, blends_per_partition=2, **_FAST)
    table = run.table
    # every detection once, in order, fitted in both grids' bands
    assert table["row"].tolist() == list(range(len(truth))) and len(set(table["blend"].tolist())) == 4
    allowed = sl.catalog.FLAGS["not_converged"] | sl.catalog.FLAGS["edge"]
    assert np.all((np.asarray(table["flag"]) & ~allowed) == 0), table["error"]
    # one compiled fit (and one of the errors) for the bucket: the second partition reused them, though
    # each blend's cutouts have WCSs and shifts of their own
    metas = [run.partitions[name] for name in run.fitted]
    assert metas[0]["fit_compilations"] <= 1 and metas[1]["fit_compilations"] == 0
    assert metas[0]["error_compilations"] <= 1 and metas[1]["error_compilations"] == 0
    for band in ("g", "r", "i"):
        measured, true = np.asarray(table[f"flux_{band}"]), np.asarray(truth[f"flux_{band}"])
        pull = (measured - true) / np.asarray(table[f"flux_err_{band}"])
        assert np.all(np.abs(pull) < 4), (band, pull)
        bright = np.asarray(truth["flux_r"]) > 2000
        assert np.all(np.abs(measured / true - 1)[bright] < 0.03), (band, measured / true)
    # centres back in the first grid's pixels: within a tenth of a pixel for these bright objects
    offset = np.hypot(np.asarray(table["y"]) - truth["y"], np.asarray(table["x"]) - truth["x"])
    assert np.all(offset < 0.1), offset
    galaxies = ~np.asarray(truth["star"])
    # sizes in the first grid's pixels too
    assert np.all(np.abs(np.asarray(table["r_half"])[galaxies] / truth["r_half"][galaxies] - 1) < 0.2)


def test_different_grids_need_a_wcs(tiny_field):
    _, field, _, _ = tiny_field
    ground, space = _two_grids(field)
    space.wcs = None
    with pytest.raises(ValueError, match="'space' has none"):
        sl.catalog.fit_field([ground, space], np.array([[16.0, 16.0]]), None, workers=0)


def test_output_is_checked_before_any_fit(tiny_field, tmp_path):
    folder, _, image, detections = tiny_field
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sl.catalog.fit_field(image, detections, tmp_path / "missing" / "out.parquet", workers=0)
    with pytest.raises(ValueError, match="Parquet"):
        sl.catalog.fit_field(image, detections, tmp_path / "out.csv", workers=0)


def test_dask_missing_names_the_extra(tiny_field, monkeypatch):
    _, _, image, detections = tiny_field
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ImportError, match=r"scarlet_like\[catalog\]"):
        sl.catalog.fit_field(image, detections, None, workers=2, progress=False)


def test_command_requires_detections_and_output(capsys):
    from scarlet_like.__main__ import main

    with pytest.raises(SystemExit):
        main(["catalog", "field.fits", "--output", "out.parquet"])
    assert "--detections" in capsys.readouterr().err


def test_friends_of_friends_links_chains_and_keeps_isolated_sources_alone():
    positions = np.array([[0.0, 0.0], [0.0, 9.0], [0.0, 18.0], [50.0, 50.0], [0.0, 40.0]])
    labels = sl.catalog.friends_of_friends(positions, linking_length=10.0)
    # 0-1-2 linked as a chain (0 and 2 are 18 apart), 3 and 4 alone
    assert labels.tolist() == [0, 0, 0, 1, 2]
    blends = sl.catalog.make_blends(positions, np.arange(5), 10.0, 10.0, sl.catalog.SIZES)
    assert [blend.rows for blend in blends] == [(0, 1, 2), (3,), (4,)]
    # the chain's box is 21 x 39 pixels: a 48-pixel cutout; the others 21 x 21: 32 pixels
    assert [blend.size for blend in blends] == [48, 32, 32]


def test_docs_example_runs(docs_section):
    namespace = docs_section("catalog.md", "Blends from detections")
    assert namespace["labels"].tolist() == [0, 0, 0, 1]
    assert [(blend.rows, blend.size) for blend in namespace["blends"]] == [((0, 1, 2), 48), ((3,), 32)]


def test_field_image_reads_cutouts_from_a_memory_map(tiny_field):
    _, field, image, _ = tiny_field
    opened = sl.catalog.FieldImage.from_fits(image)
    # the arrays are views of the file mapped into memory, not copies read from it
    base, bases = opened.data, []
    while base is not None:
        bases.append(type(base).__name__)
        base = getattr(base, "base", None)
    assert bases[-1] == "mmap" and opened.channels == field.bands
    data, weights = opened.cutout((-4, 44), 32, keep=(-10, 20, 0, 200))
    # rows before the field and columns beyond it are zero with zero weight; the rest is the field's
    assert np.all(weights[:, :4] == 0) and np.all(weights[:, :, 20:] == 0)
    assert np.allclose(data[:, 4:25, :20], field.images[:, 0:21, 44:64], atol=1e-4)
    assert np.all(weights[:, 25:] == 0)  # beyond the `keep` box


def test_missing_bands_key_names_the_fix(tmp_path):
    from astropy.io import fits

    fits.HDUList(
        [fits.PrimaryHDU(np.zeros((1, 8, 8))), fits.ImageHDU(np.ones((1, 8, 8)), name="WEIGHT")]
    ).writeto(tmp_path / "f.fits")
    with pytest.raises(ValueError, match="no PSF extension"):
        sl.catalog.FieldImage.from_fits(tmp_path / "f.fits")


# Dask with two worker processes: each starts JAX and loads or compiles its programs (40-250 s on the
# shared 2-core machine, by its load; most of it the first task of each worker)
@pytest.mark.slow
def test_fit_field_on_two_dask_workers_reuses_compiled_fits(small_field):
    folder, field, image, detections = small_field
    run = sl.catalog.fit_field(
        image, detections, folder / "dask.parquet", workers=2, blends_per_partition=2, **_FAST
    )
    _check_catalog(run.table, field, corrupt=1)
    # 5 partitions (4 of single sources, 1 of the pair) over 2 workers; on each worker, each structure
    # (1 or 2 sources) compiled at most once
    metas = list(run.partitions.values())
    assert len(metas) == 5 and len({meta["pid"] for meta in metas}) == 2
    compiled: dict[tuple[int, str], int] = {}
    for meta in metas:
        structure = meta["partition"].split("-")[1]
        compiled[meta["pid"], structure] = (
            compiled.get((meta["pid"], structure), 0) + meta["fit_compilations"]
        )
    assert all(count <= 1 for count in compiled.values()), compiled
    assert sum(meta["fit_compilations"] for meta in metas) < len(metas)


@pytest.mark.slow
def test_command_on_two_dask_workers_writes_and_resumes(small_field, capsys):
    from astropy.table import Table

    from scarlet_like.__main__ import main

    folder, field, image, detections = small_field
    output = folder / "command.parquet"
    argv = [
        "catalog",
        str(image),
        "--detections",
        str(detections),
        "--output",
        str(output),
        "--workers",
        "2",
        "--kinds",
        "extended",
        "--max-steps",
        "300",
        "--no-progress",
        "--fits",
    ]
    assert main(argv) == 0
    assert "11 detections in 9 blends" in capsys.readouterr().out
    _check_catalog(Table.read(output), field, corrupt=1)
    assert Table.read(output.with_suffix(".fits"))["id"].tolist() == [*range(1000, 1010), 9999]

    # a second run finds every partition written: nothing left to fit
    output.unlink()
    assert main(argv) == 0
    assert "0 partitions fitted, 2 resumed" in capsys.readouterr().out
    assert Table.read(output)["id"].tolist() == [*range(1000, 1010), 9999]


@pytest.mark.slow
def test_fit_field_on_a_running_scheduler(tiny_field):
    distributed = pytest.importorskip("distributed")
    folder, field, image, detections = tiny_field
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        run = sl.catalog.fit_field(
            image, detections, folder / "scheduler.parquet", scheduler=cluster.scheduler_address, **_FAST
        )
        # the cluster is the caller's: still running after the fit
        assert cluster.status.name == "running"
    _check_catalog(run.table, field, corrupt=1)


def _die_once_plugin(marker):
    """A Dask worker plugin that ends its worker's process (as a crash would: no clean-up) when the
    first catalog task starts on it, and never again once `marker` exists. Defined here, in a function,
    so that cloudpickle sends the class itself to the workers (they cannot import the test module)."""
    import os

    from distributed.diagnostics.plugin import WorkerPlugin

    class DieOnce(WorkerPlugin):
        def __init__(self, marker):
            self.marker = str(marker)

        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and str(key).startswith("catalog-") and not os.path.exists(self.marker):
                with open(self.marker, "w") as file:
                    file.write(str(os.getpid()))
                os._exit(1)

    return DieOnce(marker)


@pytest.mark.slow
def test_a_worker_that_dies_is_replaced_and_its_task_retried(tiny_field, tmp_path):
    distributed = pytest.importorskip("distributed")
    folder, field, image, detections = tiny_field
    marker = tmp_path / "died"
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        first = set(client.run(os.getpid).values())
        client.register_plugin(_die_once_plugin(marker))
        run = sl.catalog.fit_field(
            image, detections, folder / "died.parquet", client=client, blends_per_partition=2, **_FAST
        )
        # the nanny started a new worker process in place of the one that died
        assert marker.is_file() and int(marker.read_text()) in first
        assert set(client.run(os.getpid).values()).isdisjoint(first)
    # every partition was fitted by the new worker (the one the first died in included), and the table
    # is complete: the same checks as for a run without a death
    assert len(run.partitions) == 2
    assert all(meta["pid"] not in first for meta in run.partitions.values())
    _check_catalog(run.table, field, corrupt=1)

"""Benchmark: every row of issue 15's table ("speed where users wait"), measured in one run, as ratios.

Run from the repository root:

    python benchmarks/bench_table.py --scarlet2-python /work/venv-s2/bin/python --json table.json
    python benchmarks/bench_table.py --quick           # fewer repeats, no NUTS on the scene, no 300 sources
    python benchmarks/bench_table.py --rows b c        # some rows only

This script measures nothing itself: every number comes from the function or the command line of the
benchmark that owns it, run in a fresh Python process (so that a cold start is cold, and one row's
compiled programs and memory do not carry into the next):

- **a. cold start** (`scarlet_like.demo.run`, the demo's own timer: from scene construction to fitted
  model, compilation included): a fresh process with an empty persistent compilation cache, then a
  fresh process with that cache warm. Anchor: scarlet2 0.5.1's documented recipe on the same blend
  (`scarlet2_hsc.py`), in the interpreter given by `--scarlet2-python` (a virtual environment of its
  own; the row is left out without it). The same for the demo's quick free-form fit
  (`scarlet_like.demo.fit_quick`, its own timer), the model that matches scarlet2's recipe in kind.
  Every model's chi^2 per unmasked pixel is computed by `Observation.goodness_of_fit`'s definition on
  scarlet_like's observation of the blend (its mask honoured).
- **b. scene gradient** (`bench_render.py --json`): `value_and_grad` of the log density of 10 Sersic
  (and 10 Gaussian) sources with the default FFT padding, against the same physics hand-written in JAX
  at the same accuracy (`handwritten.py`); interleaved rounds, medians.
- **c. compile time** (`bench_render.compile_times`): lower + compile of that gradient for 10 and 100
  sources, each in a fresh process with the persistent cache off, `--repeats` times per profile.
- **d. Laplace** (the light-curve scene of `bench_epochs.py`, ten nights: a supernova on its host as in
  `tests/astro/test_transients.py`, 9 free entries): `sl.laplace(model, nights)` (which fits first)
  called again, against `sl.fit(model, nights)` called again; the compilations of each second call
  counted with `jax.log_compiles` (persistent cache off).
- **e. NUTS** (`bench_sample.cold`): the first call of `sl.sample` with its defaults and of numpyro's
  NUTS on the same `LogDensity`, each in a fresh process with an empty compilation cache; min bulk ESS
  per second and the largest split R-hat, eight schools (`--repeats` processes each, median), the
  small scene and the demo's HSC blend (one each; left out with `--quick`).
- **f. peak memory** (`bench_memory.run_case`): the demo's fit, and the gradient of 30, 100 and 300
  Sersic sources on 512 x 512 pixels (300 left out with `--quick`); what XLA says the gradient program
  needs is the measure of "linear in sources" (the peak of a process is mostly compilation).

Printed first: the commit, the machine and the versions; per row, the load average before and after
(the machine may be shared: ratios of numbers measured side by side are what count). Then one table in
the issue's layout: row, ours, anchor, ratio, goal, met.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "scarlet_like" / "data" / "hsc_cosmos_35.npz"
PACKAGES = ("scarlet_like", "jax", "jaxlib", "equinox", "optax", "blackjax", "numpyro", "numpy")
ROWS = ("a", "b", "c", "d", "e", "f")
NUTS_SAMPLERS = {
    "dense": "sl.sample defaults (sequential chains, dense mass matrix)",
    "numpyro": "numpyro NUTS",
}


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


class Failed(RuntimeError):
    """A measurement's process failed or ran out of time; the row says so instead of a number."""


def run_json(command: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> Any:
    """Run `command` in a fresh process (its own process group) and return the JSON of its last line.

    On timeout the whole group is killed: the benchmarks it runs may have started processes of their own.
    """
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise Failed(f"timed out after {timeout:.0f} s: {' '.join(command[1:4])}") from None
    if process.returncode != 0:
        raise Failed(f"{' '.join(command[1:4])} failed:\n{err[-2000:]}")
    lines = out.strip().splitlines()
    if not lines:
        raise Failed(f"{' '.join(command[1:4])} printed nothing:\n{err[-2000:]}")
    return json.loads(lines[-1])


def child(kind: str, *arguments: Any, env: dict[str, str] | None = None, timeout: float | None = None) -> Any:
    """One measurement of this script (`--child kind ...`) in a fresh process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *map(str, arguments)]
    return run_json(command, env=env, timeout=timeout)


@contextlib.contextmanager
def fresh_cache() -> Iterator[str]:
    """An empty folder for scarlet_like's persistent compilation cache, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench_table_cache_") as folder:
        yield folder


def load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# ----------------------------------------------------------------------------------------------
# What the child processes run (each imports what it needs, nothing else)
# ----------------------------------------------------------------------------------------------


def child_demo() -> dict[str, Any]:
    """The demo's fit: scene construction -> fitted model (SCARLET_LIKE_CACHE given by the caller)."""
    from scarlet_like.demo import run

    cpu = time.process_time()
    summary = run(progress=False, output=None, report=False, sample=False, quick=False, freeform=False)
    return {**summary, "cpu_seconds": time.process_time() - cpu}


def child_quick() -> dict[str, Any]:
    """The demo's quick free-form fit (`fit_quick`): scene construction -> fitted model, its own timers."""
    import scarlet_like as sl
    from scarlet_like.demo import fit_quick

    data = sl.datasets.hsc_cosmos()
    result, summary = fit_quick(data, data.observation(name="HSC"), progress=False)
    return {"chi2_end": summary["chi2"], **summary}


def child_chi2(model_file: str) -> dict[str, Any]:
    """chi^2 per unmasked pixel value of a model image (C, H, W) on scarlet_like's observation of the blend,
    as `Observation.goodness_of_fit` computes it for a scene."""
    import numpy as np

    import scarlet_like as sl

    observation = sl.datasets.hsc_cosmos().observation()
    weights, data = np.asarray(observation.weights, np.float64), np.asarray(observation.data, np.float64)
    model = np.load(model_file)
    return {"chi2": float(np.sum(weights * (data - model) ** 2) / np.sum(weights > 0))}


def child_compile(count: int, profile: str) -> dict[str, Any]:
    os.environ["SCARLET_LIKE_CACHE"] = "0"  # before scarlet_like is imported: compile, never read back
    sys.path.insert(0, str(HERE))
    import bench_render

    return bench_render.compile_times(count, profile, bench_render.moffat_psfs())


def child_laplace(rounds: int, count: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import bench_epochs  # first: it turns the persistent cache off before scarlet_like is imported
    import jax
    from bench_fit import CompileCounter, timed

    import scarlet_like as sl

    nights = bench_epochs.nights(count)
    density = sl.LogDensity(bench_epochs.start(), nights)
    first_fit, fitted = timed(lambda: sl.fit(bench_epochs.start(), nights, progress=False))
    first_laplace, _ = timed(lambda: sl.laplace(bench_epochs.start(), nights))
    counter = CompileCounter()
    logger = jax_logger()
    logger.addHandler(counter)
    fits, laplaces, fit_compiles, laplace_compiles, mode_only = [], [], [], [], []
    try:
        with jax.log_compiles():
            for _ in range(rounds):  # interleaved, so that other jobs' load hits both alike
                before = len(counter.messages)
                fits.append(timed(lambda: sl.fit(bench_epochs.start(), nights, progress=False))[0])
                fit_compiles.append(len(counter.messages) - before)
                before = len(counter.messages)
                laplaces.append(timed(lambda: sl.laplace(bench_epochs.start(), nights))[0])
                laplace_compiles.append(len(counter.messages) - before)
                mode_only.append(timed(lambda: sl.laplace(fitted.model, nights, fit=False))[0])
    finally:
        logger.removeHandler(counter)
    return {
        "free entries": int(density.size),
        "nights": count,
        "first fit": first_fit,
        "first laplace": first_laplace,
        "fit": statistics.median(fits),
        "fit rounds": fits,
        "laplace": statistics.median(laplaces),
        "laplace rounds": laplaces,
        "laplace, fit=False": statistics.median(mode_only),
        "fit compilations": fit_compiles,
        "laplace compilations": laplace_compiles,
        "steps": int(fitted.steps),
        "converged": bool(fitted.converged),
    }


def jax_logger() -> Any:
    import logging

    return logging.getLogger("jax")


def child_nuts(model: str, sampler: str, warmup: int, draws: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import bench_sample

    return bench_sample.cold(model, sampler, warmup, draws)


def child_memory(*case: str) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import bench_memory

    # the measured process compiles from scratch, whatever earlier runs left in the user's cache
    with fresh_cache() as folder:
        os.environ["SCARLET_LIKE_CACHE"] = folder
        return bench_memory.run_case(list(case))


CHILDREN = {
    "demo": child_demo,
    "quick": child_quick,
    "chi2": child_chi2,
    "compile": lambda count, profile: child_compile(int(count), profile),
    "laplace": lambda rounds, count: child_laplace(int(rounds), int(count)),
    "nuts": lambda model, sampler, warmup, draws: child_nuts(model, sampler, int(warmup), int(draws)),
    "memory": child_memory,
}


# ----------------------------------------------------------------------------------------------
# The rows
# ----------------------------------------------------------------------------------------------


# Row a's measurements: the demo's parametric fit, then its quick free-form fit (`demo.fit_quick`).
A_KINDS = ("empty cache", "warm cache", "quick free-form, empty cache", "quick free-form, warm cache")


def row_a(options: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {kind: [] for kind in (*A_KINDS, "scarlet2")}
    for _ in range(options.repeats):
        for kind, program in (("", "demo"), ("quick free-form, ", "quick")):
            with fresh_cache() as folder:
                for cache in ("empty cache", "warm cache"):
                    out[kind + cache].append(
                        child(program, env={"SCARLET_LIKE_CACHE": folder}, timeout=options.timeout)
                    )
        if options.scarlet2_python:
            with tempfile.TemporaryDirectory() as folder:
                model = os.path.join(folder, "model.npy")
                command = [options.scarlet2_python, str(HERE / "scarlet2_hsc.py"), str(DATA), model]
                record = run_json(command, timeout=options.timeout)
                record.update(child("chi2", model, timeout=options.timeout))
            out["scarlet2"].append(record)
    return out


def row_b(options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "render.json")
        command = [sys.executable, str(HERE / "bench_render.py"), "--json", path, "--compile-sources"]
        command += ["--rounds", str(5 if options.quick else 15)]
        process = subprocess.run(command, capture_output=True, text=True, timeout=options.timeout)
        if process.returncode != 0:
            raise Failed(f"bench_render.py failed:\n{process.stderr[-2000:]}")
        with open(path) as file:
            return json.load(file)


def row_c(options: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for profile in ("sersic", "gaussian"):
        out[profile] = []
        for _ in range(options.repeats):
            # each in a fresh process with the persistent cache off; 20 sources are past the first chunk
            # of sources (10 here, `render.CHUNK_BYTES`), where the program takes its scan over chunks
            out[profile].append(
                {
                    str(count): child("compile", count, profile, timeout=options.timeout)
                    for count in (10, 20, 100)
                }
            )
    return out


def row_d(options: argparse.Namespace) -> dict[str, Any]:
    return child("laplace", 2 if options.quick else 3, 10, timeout=options.timeout)


def row_e(options: argparse.Namespace) -> dict[str, Any]:
    # bench_sample.STEPS, without importing it
    steps = {"schools": (500, 1000), "scene": (200, 1000), "hsc": (100, 400)}
    models = ("schools",) if options.quick else ("schools", "scene", "hsc")
    out: dict[str, Any] = {}
    for model in models:
        warmup, draws = steps[model]
        repeats = options.repeats if model == "schools" else 1
        out[model] = {sampler: [] for sampler in NUTS_SAMPLERS}
        for _ in range(repeats):  # interleaved
            for sampler in NUTS_SAMPLERS:
                out[model][sampler].append(
                    child("nuts", model, sampler, warmup, draws, timeout=options.timeout)
                )
    return out


def row_f(options: argparse.Namespace) -> dict[str, Any]:
    counts = (30, 100) if options.quick else (30, 100, 300)
    out: dict[str, Any] = {"demo": child("memory", "demo", timeout=options.timeout)}
    for count in counts:
        try:
            out[str(count)] = child("memory", "crowded", count, 512, timeout=options.timeout)
        except Failed as error:
            out[str(count)] = {"error": str(error)}
    return out


RUNNERS = {"a": row_a, "b": row_b, "c": row_c, "d": row_d, "e": row_e, "f": row_f}


# ----------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    values = [value for value in values if value is not None and not math.isnan(value)]
    return statistics.median(values) if values else math.nan


def cpu_of(records: list[dict[str, Any]]) -> str:
    """ ", cpu X s" when the records have their process's CPU time (scarlet2_hsc.py since it reports it)."""
    values = [record["cpu_seconds"] for record in records if "cpu_seconds" in record]
    return f", cpu {median(values):.1f} s" if values else ""


def span(values: list[float], spec: str = ".2f") -> str:
    low, high = min(values), max(values)
    return f"{low:{spec}}" if f"{low:{spec}}" == f"{high:{spec}}" else f"{low:{spec}}-{high:{spec}}"


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(row, ours, anchor, ratio, goal, met) for every row measured."""
    rows = []
    a = results.get("a")
    if isinstance(a, dict) and "empty cache" in a:
        theirs = a["scarlet2"]
        for kind in [kind for kind in A_KINDS if a.get(kind)]:
            ours = a[kind]
            seconds = median([r["seconds"] for r in ours])
            chi2 = median([r["chi2_end"] for r in ours])
            label = f"HSC demo blend, fresh process, scene -> fitted model, {kind}"
            mine = f"{seconds:.1f} s, cpu {median([r['cpu_seconds'] for r in ours]):.1f} s (chi^2 {chi2:.3f})"
            if theirs:
                anchor_s = median([r["seconds"] for r in theirs])
                anchor_chi2 = median([r["chi2"] for r in theirs])
                ratio = seconds / anchor_s
                anchor = (
                    f"scarlet2 {theirs[0]['scarlet2']}: {anchor_s:.1f} s{cpu_of(theirs)} (init "
                    f"{median([r['init_seconds'] for r in theirs]):.1f} + fit "
                    f"{median([r['fit_seconds'] for r in theirs]):.1f}; chi^2 {anchor_chi2:.3f})"
                )
                met = "yes" if ratio <= 0.2 and chi2 <= anchor_chi2 else "no"
                rows.append((label, mine, anchor, f"{ratio:.2f}", "<= 0.2 at a chi^2 no worse", met))
            else:
                rows.append((label, mine, "scarlet2 not run (--scarlet2-python)", "-", "<= 0.2", "-"))
    b = results.get("b")
    if isinstance(b, dict) and "gradient" in b:
        for profile, entry in b["gradient"].items():
            ratios = list(entry["ratios"].values())
            timings = entry["timings"]
            mine, anchor = timings["scarlet_like"], timings[entry["reference"]]
            matched = ratios[1]["median"]
            rows.append(
                (
                    f"scene gradient, 10 {profile} sources, default padding",
                    f"{mine['median_ms']:.2f} ms (FFT grid matched: {matched:.2f}x)",
                    f"{entry['reference']}: {anchor['median_ms']:.2f} ms",
                    f"{ratios[0]['median']:.2f} (cpu {ratios[0]['cpu']:.2f})",
                    "<= 1.1",
                    "yes" if ratios[0]["median"] <= 1.1 else "no",
                )
            )
    c = results.get("c")
    if isinstance(c, dict) and "sersic" in c:
        for profile, runs in c.items():
            wall = [run["100"]["total_s"] / run["10"]["total_s"] for run in runs]
            cpu = [run["100"]["total_cpu_s"] / run["10"]["total_cpu_s"] for run in runs]
            hlo = [run["100"]["hlo_lines"] / run["10"]["hlo_lines"] for run in runs]
            past = [run["100"]["total_cpu_s"] / run["20"]["total_cpu_s"] for run in runs if "20" in run]
            beyond = f"; 100 vs 20 sources, cpu {', '.join(f'{v:.2f}' for v in past)}" if past else ""
            rows.append(
                (
                    f"compile time (lower + compile), 100 vs 10 {profile} sources, {len(runs)} runs",
                    f"{span([run['100']['total_s'] for run in runs], '.1f')} s (HLO x{span(hlo)})",
                    f"10 sources: {span([run['10']['total_s'] for run in runs], '.1f')} s",
                    ", ".join(f"{value:.2f}" for value in wall)
                    + " (cpu "
                    + ", ".join(f"{v:.2f}" for v in cpu)
                    + f"{beyond})",
                    "<= 1.2 in every run",
                    "yes" if max(wall) <= 1.2 else "no",
                )
            )
    d = results.get("d")
    if isinstance(d, dict) and "laplace" in d:
        ratio = d["laplace"] / d["fit"]
        compiled_once = max(d["laplace compilations"]) == 0
        rows.append(
            (
                f"sl.laplace, light-curve scene ({d['free entries']} entries, {d['nights']} nights), "
                "second call",
                f"{d['laplace']:.2f} s ({max(d['laplace compilations'])} compilations; "
                f"first call {d['first laplace']:.1f} s)",
                f"warm sl.fit: {d['fit']:.2f} s",
                f"{ratio:.2f}",
                "<= 2, compiled once",
                "yes" if ratio <= 2 and compiled_once else "no",
            )
        )
    e = results.get("e")
    if isinstance(e, dict) and "schools" in e:
        for model, runs in e.items():
            ours, theirs = runs["dense"], runs["numpyro"]
            rate = median([r["ess"] / r["seconds"] for r in ours])
            anchor = median([r["ess"] / r["seconds"] for r in theirs])
            r_hat = max(r["r_hat"] for r in ours)
            ratio = rate / anchor
            rows.append(
                (
                    f"NUTS min-ESS/s, first call, {model} "
                    + (f"(median of {len(ours)} processes)" if len(ours) > 1 else "(one process each)"),
                    f"{rate:.1f}/s ({median([r['seconds'] for r in ours]):.1f} s, R-hat {r_hat:.3f})",
                    f"numpyro: {anchor:.1f}/s ({median([r['seconds'] for r in theirs]):.1f} s, "
                    f"R-hat {max(r['r_hat'] for r in theirs):.3f})",
                    f"{ratio:.2f}",
                    ">= 3 at R-hat <= 1.01",
                    "yes" if ratio >= 3 and r_hat <= 1.01 else "no",
                )
            )
    f = results.get("f")
    if isinstance(f, dict) and "demo" in f:
        demo = f["demo"]
        rows.append(
            (
                "peak memory, demo fit (sl.init.scene + sl.fit)",
                f"{demo['peak_mb']:.0f} MB ({demo['import_mb']:.0f} right after the import)",
                "-",
                "-",
                "report",
                "-",
            )
        )
        base = f.get("30", {})
        for count in ("30", "100", "300"):
            entry = f.get(count)
            if entry is None:
                continue
            label = f"peak memory, {count} Sersic sources, 512 x 512, gradient"
            if "error" in entry or "error" in base:
                rows.append((label, entry.get("error", "-")[:60], "-", "-", "linear in sources", "-"))
                continue
            program = entry["program_mb"]
            per_source = (program / base["program_mb"]) / (int(count) / 30)
            rows.append(
                (
                    label,
                    f"{entry['peak_mb']:.0f} MB peak, program {program:.1f} MB",
                    f"linear from 30 sources: {base['program_mb'] * int(count) / 30:.1f} MB",
                    f"{per_source:.2f}",
                    "linear in sources (<= 1)",
                    "yes" if per_source <= 1.05 else "no",
                )
            )
    return rows


def markdown(rows: list[tuple[str, ...]]) -> str:
    lines = ["| row | ours | anchor | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def versions(scarlet2_python: str | None) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    if scarlet2_python:
        try:
            done = subprocess.run(
                [
                    scarlet2_python,
                    "-c",
                    "from importlib import metadata as m; print(m.version('scarlet2'), m.version('jax'))",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            found["scarlet2"], found["jax (scarlet2's venv)"] = done.stdout.split()
        except (OSError, subprocess.CalledProcessError, ValueError):
            found["scarlet2"] = f"not importable by {scarlet2_python}"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="rows to measure")
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat, 5 gradient rounds, no scene NUTS, no 300"
    )
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per cold measurement")
    parser.add_argument("--scarlet2-python", help="an interpreter that can import scarlet2 (its own venv)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed to one process")
    parser.add_argument("--json", help="also write every number to this file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        kind, *arguments = options.child
        print(json.dumps(CHILDREN[kind](*arguments), default=float))
        return
    if options.quick:
        options.repeats = 1

    from provenance import commit, machine

    started = datetime.datetime.now(datetime.UTC)
    report: dict[str, Any] = {
        "date": f"{started:%Y-%m-%d %H:%M} UTC",
        "commit": commit(),
        "machine": machine(),
        "cores": os.cpu_count(),
        "versions": versions(options.scarlet2_python),
        "options": {k: v for k, v in vars(options).items() if k != "child"},
        "load": {"start": load()},
        "rows": {},
    }
    print(f"{report['date']}  commit {report['commit']}  {report['machine']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"load average at the start: {report['load']['start']}", flush=True)
    for row in options.rows:
        before, clock = load(), time.perf_counter()
        try:
            results = RUNNERS[row](options)
        except Failed as error:
            results = {"error": str(error)}
        report["rows"][row] = results
        report["load"][row] = {"before": before, "after": load(), "seconds": time.perf_counter() - clock}
        note = f" ERROR {results['error'][:300]}" if "error" in results else ""
        print(
            f"row {row}: {report['load'][row]['seconds']:.0f} s, load {before} -> "
            f"{report['load'][row]['after']}{note}",
            flush=True,
        )
        if options.json:  # written after every row: a run stopped early keeps what it measured
            Path(options.json).write_text(json.dumps(report, indent=1, default=float))
    report["load"]["end"] = load()
    report["table"] = table_rows(report["rows"])
    print(f"load average at the end: {report['load']['end']}\n")
    print(markdown(report["table"]))
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()

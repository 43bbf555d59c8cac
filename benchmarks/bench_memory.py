"""Benchmark: peak memory of the demo's fit and of crowded scenes, against the number of sources.

Run from the repository root:

    python benchmarks/bench_memory.py                    # the demo's fit; 30, 100, 300 sources on 512 x 512
    python benchmarks/bench_memory.py --sources 100 300 1000 --size 1024
    python benchmarks/bench_memory.py --demo-command     # also `python -m scarlet_like demo --no-sample`

Each case runs in a fresh Python process, so that its peak resident memory (`ru_maxrss`) is its own:

- **demo fit**: the demo's first stage, `sl.init.scene` on the bundled HSC blend (7 sources, 5 bands,
  58 x 48 pixels) and `sl.fit` to convergence;
- **crowded K**: the scene of `bench_boxes.py` (K elliptical Sérsic sources in boxes of their own, 5
  bands, 41 x 41 PSF images, S x S pixels), the compiled gradient of its log density run three times.

Reported per case: the process's peak resident memory, the same right after importing
scarlet_like (JAX's runtime and the package: what any run pays), and their difference; for the
crowded scenes also what XLA's compiler says the gradient program needs (`memory_analysis()` of the
compiled program: its arguments, outputs and temporary buffers), which does not depend on the
machine's load or allocator. "Linear in sources" is read off the last column against K.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _peak_mb() -> float:
    # Linux reports ru_maxrss in kilobytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _demo_fit() -> dict:
    import scarlet_like as sl

    imported = _peak_mb()
    data = sl.datasets.hsc_cosmos()
    observation = data.observation()
    scene = sl.init.scene(observation, data.centers)
    result = sl.fit(scene, observation, progress=False)
    return {
        "case": "demo fit (HSC blend, 7 sources)",
        "import_mb": imported,
        "peak_mb": _peak_mb(),
        "chi2": float(observation.goodness_of_fit(result.model)),
    }


def _crowded(count: int, size: int) -> dict:
    import jax
    import numpy as np

    sys.path.insert(0, str(HERE))
    from bench_boxes import crowded_sources, gradient_of, observation
    from bench_render import moffat_psfs

    imported = _peak_mb()
    sources = crowded_sources(count, size)
    psfs = moffat_psfs()
    data = np.zeros((psfs.shape[0], size, size))
    obs = observation(data, psfs, boxes=None)
    gradient, density = gradient_of(sources, obs)
    compiled = gradient.lower(density.x0).compile()
    analysis = compiled.memory_analysis()
    for _ in range(3):
        jax.block_until_ready(compiled(density.x0))
    program = None
    if analysis is not None:
        program = (
            analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
        ) / 2**20
    return {
        "case": f"crowded, {count} sources, {size} x {size}",
        "import_mb": imported,
        "peak_mb": _peak_mb(),
        "program_mb": program,
        "temp_mb": None if analysis is None else analysis.temp_size_in_bytes / 2**20,
    }


def _demo_command() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "scarlet_like",
                "demo",
                "--no-sample",
                "--no-progress",
                "--output",
                folder,
            ],
            check=True,
            capture_output=True,
        )
    return {
        "case": "python -m scarlet_like demo --no-sample (whole command)",
        "import_mb": None,
        "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
    }


def run_case(arguments: list[str]) -> dict:
    """One case in a fresh process; its JSON line back."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *arguments],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, nargs="+", default=[30, 100, 300])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--demo-command", action="store_true", help="also the whole demo command (minutes)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        kind, *rest = options.child
        if kind == "demo":
            record = _demo_fit()
        elif kind == "command":
            record = _demo_command()
        else:
            record = _crowded(int(rest[0]), int(rest[1]))
        print(json.dumps(record))
        return

    from provenance import commit, machine

    print(f"commit {commit()}; {machine()}")
    cases = [["demo"]] + [["crowded", str(count), str(options.size)] for count in options.sources]
    if options.demo_command:
        cases.append(["command"])
    print("| case | peak (MB) | after import (MB) | peak - import (MB) | gradient program (MB) |")
    print("|---|---|---|---|---|")
    for case in cases:
        record = run_case(case)
        imported = record.get("import_mb")
        extra = "–" if imported is None else f"{record['peak_mb'] - imported:.0f}"
        after_import = "–" if imported is None else f"{imported:.0f}"
        program = record.get("program_mb")
        print(
            f"| {record['case']} | {record['peak_mb']:.0f} | {after_import} | "
            f"{extra} | {'–' if program is None else f'{program:.1f}'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

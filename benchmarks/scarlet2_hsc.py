"""scarlet2's documented quick-start recipe on the HSC blend that scarlet_like's demo fits: the anchor of the
cold-start row of `bench_table.py`.

Run by the interpreter of a virtual environment that has scarlet2 (never a dependency of scarlet_like):

    python -m venv /work/venv-s2 && /work/venv-s2/bin/pip install scarlet2==0.5.1
    /work/venv-s2/bin/python benchmarks/scarlet2_hsc.py scarlet_like/data/hsc_cosmos_35.npz model.npz

It imports nothing of scarlet_like, and of this folder only `scarlet2_recipe.py`: scarlet2's quick-start
recipe as of 0.5.1 (which `bench_deblend.py --method scarlet2` runs too), on the same file
(`hsc_cosmos_35.npz`, which scarlet_like bundles), with an observation of weights `1 / variance` and the PSF
images, every detection a galaxy.

Timed, in this fresh process (nothing compiled before, JAX's persistent cache left off as scarlet2 leaves
it): `init`, from the observation to the scene with its parameters (scarlet2 initialises eagerly), and
`fit`; also the process's CPU time over both (all threads). Scarlet2's validation checks stay on, its
default. Printed: one JSON line with the times, scarlet2's and JAX's versions; the rendered model (the
observation's view of the fitted scene, `(C, H, W)`) is written to the second argument, for the caller
to compute its chi^2 exactly as it does its own.
"""

from __future__ import annotations

import json
import sys
import time
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np


def main(data_file: str, model_file: str) -> None:
    import scarlet2 as s2
    import scarlet2_recipe

    with np.load(data_file) as file:
        images = jnp.asarray(file["images"])
        channels = [str(band) for band in file["filters"]]
        centers = jnp.array([(source["y"], source["x"]) for source in file["catalog"]])
        weights = jnp.asarray(1 / file["variance"])
        psfs = jnp.asarray(file["psfs"])

    observation = s2.Observation(images, weights, psf=s2.ArrayPSF(psfs), channels=channels)
    start, cpu = time.perf_counter(), time.process_time()
    scene = scarlet2_recipe.scene(observation, centers)
    jax.block_until_ready(jax.tree_util.tree_leaves(scene))
    built = time.perf_counter()
    fitted = scarlet2_recipe.fit(scene, observation)
    model = jax.block_until_ready(observation.render(fitted()))
    done = time.perf_counter()
    np.save(model_file, np.asarray(model, dtype=np.float64))
    record = {
        "init_seconds": built - start,
        "fit_seconds": done - built,
        "seconds": done - start,
        "cpu_seconds": time.process_time() - cpu,
        "scarlet2": metadata.version("scarlet2"),
        "jax": jax.__version__,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:3])

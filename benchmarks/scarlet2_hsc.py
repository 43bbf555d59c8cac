"""scarlet2's documented quick-start recipe on the HSC blend that scarlet_like's demo fits: the anchor of the
cold-start row of `bench_table.py`.

Run by the interpreter of a virtual environment that has scarlet2 (never a dependency of scarlet_like):

    python -m venv /work/venv-s2 && /work/venv-s2/bin/pip install scarlet2==0.5.1
    /work/venv-s2/bin/python benchmarks/scarlet2_hsc.py scarlet_like/data/hsc_cosmos_35.npz model.npz

It imports neither scarlet_like nor anything of this folder. The recipe is scarlet2's quick-start guide as
of 0.5.1, on the same file (`hsc_cosmos_35.npz`, which scarlet_like bundles): an observation with weights
`1 / variance` and the PSF images, the model frame from it (scarlet2's default model PSF), every detection
a free-form `Source` started by `init.from_gaussian_moments(obs, center, min_corr=0.99)` (or
`init.pixel_spectrum` and `init.compact_morphology` where that raises), spectra and morphologies positive
(steps: 5 % of the spectrum, 0.1 for the morphology), then `scene.fit(obs, max_iter=200, e_rel=1e-4)`.

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
from functools import partial
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np


def main(data_file: str, model_file: str) -> None:
    import scarlet2 as s2
    from numpyro.distributions import constraints

    with np.load(data_file) as file:
        images = jnp.asarray(file["images"])
        channels = [str(band) for band in file["filters"]]
        centers = jnp.array([(source["y"], source["x"]) for source in file["catalog"]])
        weights = jnp.asarray(1 / file["variance"])
        psfs = jnp.asarray(file["psfs"])

    observation = s2.Observation(images, weights, psf=s2.ArrayPSF(psfs), channels=channels)
    start, cpu = time.perf_counter(), time.process_time()
    frame = s2.Frame.from_observations(observation)
    with s2.Scene(frame) as scene:
        for center in centers:
            try:
                spectrum, morphology = s2.init.from_gaussian_moments(observation, center, min_corr=0.99)
            except ValueError:
                spectrum = s2.init.pixel_spectrum(observation, center)
                morphology = s2.init.compact_morphology()
            s2.Source(center, spectrum, morphology)
    step = partial(s2.relative_step, factor=0.05)
    with s2.Parameters(scene):
        for index, source in enumerate(scene.sources):
            s2.Parameter(
                source.spectrum, name=f"spectrum:{index}", constraint=constraints.positive, stepsize=step
            )
            s2.Parameter(
                source.morphology, name=f"morph:{index}", constraint=constraints.positive, stepsize=0.1
            )
    jax.block_until_ready(jax.tree_util.tree_leaves(scene))
    built = time.perf_counter()
    fitted = scene.fit(observation, max_iter=200, e_rel=1e-4, progress_bar=False)
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

"""Benchmark: free-form (pixel image) sources against parametric ones, gradient of the log density.

Run from the repository root:

    python benchmarks/bench_freeform.py            # K = 10 sources, images of 31 and 61 pixels
    python benchmarks/bench_freeform.py --quick    # fewer rounds

The scene of `bench_render.py` (5 bands, 96 x 96 pixels, a 41 x 41 Moffat PSF image per band, K random
sources, Gaussian likelihood), with every source's morphology either an elliptical Sersic profile or
an `sl.ImageMorphology` of `S x S` free pixels (started from the same Sersic profile drawn on the
model grid). Every variant is compiled and warmed up first, then timed in interleaved rounds (see
`bench_render.timed_rounds`). Reported: the gradient time of each and its ratio to the Sersic scene.

"direct sum" is the transform free-form sources had before it was made separable: the sum over the
image's pixels evaluated at every frequency of the grid (`Hk Wk h w` products per source).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_render as br  # noqa: E402

import scarlet_like as sl  # noqa: E402
from scarlet_like.astro import profiles  # noqa: E402
from scarlet_like.astro.psf import image_fourier  # noqa: E402


class DirectSumImage(sl.ImageMorphology):
    """The previous transform of a pixel image: every frequency of the broadcast grid on its own."""

    def fourier(self, ky, kx):
        ky, kx = jnp.broadcast_arrays(ky, kx)
        values = image_fourier(self.image / jnp.sum(self.image), ky, kx)
        return values * profiles.pixel_ft(ky, kx).astype(values.dtype)


def sersic_stamp(sources, k: int, side: int) -> np.ndarray:
    """Source `k`'s Sersic profile drawn on a `side` x `side` grid of model pixels (its free-form start)."""
    stamp_obs = sl.Observation(np.zeros((1, side, side)), psf=sl.GaussianPSF(np.array([1e-3])))
    with sl.Scene(sl.Frame.from_observations(stamp_obs)) as scene:
        sl.Source(
            np.array([side // 2, side // 2], np.float64),
            np.array([1.0]),
            sl.SersicMorphology(sources.n[k], sources.size[k], tuple(sources.shear[k])),
        )
    return np.maximum(np.asarray(stamp_obs.render(scene))[0], 1e-6)


def freeform_scene(sources, obs: sl.Observation, side: int, kind: type) -> sl.Scene:
    frame = sl.Frame.from_observations(obs)
    with sl.Scene(frame) as scene:
        for k in range(len(sources.n)):
            image = sl.Parameter(sersic_stamp(sources, k, side), constraint=sl.constraints.positive())
            sl.Source(
                center=sl.Parameter(sources.center[k]),
                spectrum=sl.Parameter(sources.spectrum[k], constraint=sl.constraints.positive()),
                morphology=kind(image),
            )
    return scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--sides", type=int, nargs="+", default=[31, 61])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 calls")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 5
    problem = br.Problem(args.sources, "sersic", br.moffat_psfs())
    functions = {"sersic": (problem.ours, (problem.x_ours,))}
    for side in args.sides:
        for label, kind in (("separable", sl.ImageMorphology), ("direct sum", DirectSumImage)):
            scene = freeform_scene(problem.sources, problem.obs, side, kind)
            density = sl.LogDensity(scene, problem.obs, jacobian=False)
            functions[f"image {side}x{side}, {label}"] = (jax.jit(jax.value_and_grad(density)), (density.x0,))
    timings = br.timed_rounds(functions, args.rounds, args.calls)
    base = timings["sersic"]["median_ms"]
    print(f"K = {args.sources}, {jax.devices()[0].platform}, gradient of the log density")
    print(f"{'morphology':34s} {'median ms':>10s} {'min ms':>8s} {'/ sersic':>9s}")
    for name, timing in timings.items():
        ratio = timing["median_ms"] / base
        print(f"{name:34s} {timing['median_ms']:10.2f} {timing['min_ms']:8.2f} {ratio:9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"sources": args.sources, "timings": timings}, indent=2))


if __name__ == "__main__":
    main()

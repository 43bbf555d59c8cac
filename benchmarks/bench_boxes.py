"""Benchmark: a crowded field on a large image, sources drawn in boxes against the whole frame.

Run from the repository root:

    python benchmarks/bench_boxes.py                  # K = 300 sources on 512 x 512 pixels
    python benchmarks/bench_boxes.py --quick          # fewer rounds, no whole-frame variants
    python benchmarks/bench_boxes.py --sources 1000 --size 1024

What is measured (see README.md in this folder):

1. **Gradient time** of the Gaussian log-likelihood of K elliptical Sersic sources (n 0.8-3,
   r_half 1-3 px, |g| < 0.3), 5 bands, 41x41 Moffat PSF images, on an S x S image:
   - scarlet_like as a user writes it: `sl.LogDensity(scene, obs)` with the default `boxes=None`,
     so each source is drawn in a box of its own (sized from its starting profile, in a few classes);
   - scarlet_like with `boxes=False`: every source on the whole padded frame;
   - hand-written stamps (`handwritten.py`, `method="stamps"`): the same physics, each source in a
     square FFT stamp, scatter-added into the image, all stamps of the size of our largest box;
   - hand-written whole frame (`method="fourier"`).
   Timing as in `bench_render.py`: compiled and warmed up, interleaved rounds, medians.
2. **Accuracy** of the boxes: max |boxes - whole frame| / peak of the image, and the flux left out.
3. **Compile time** of the scarlet_like gradient with boxes for K and 4 K sources.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import handwritten as hw  # noqa: E402
from bench_render import CHANNELS, moffat_psfs, timed_rounds  # noqa: E402
from provenance import commit, machine  # noqa: E402

import scarlet_like as sl  # noqa: E402
from scarlet_like.astro.render import box_shape  # noqa: E402


def crowded_sources(count: int, size: int, seed: int = 0) -> hw.Sources:
    rng = np.random.default_rng(seed)
    return hw.Sources(
        center=rng.uniform(0.0, size - 1.0, (count, 2)),
        spectrum=rng.uniform(50.0, 200.0, (count, CHANNELS)),
        n=rng.uniform(0.8, 3.0, count),
        size=rng.uniform(1.0, 3.0, count),
        shear=rng.uniform(-0.2, 0.2, (count, 2)),
    )


def observation(data: np.ndarray, psfs: np.ndarray, boxes: bool | None) -> sl.Observation:
    return sl.Observation(data, weights=np.ones_like(data), psf=sl.ArrayPSF(psfs), boxes=boxes)


def sersic_scene(sources: hw.Sources, obs: sl.Observation, box: int | str | None = "auto") -> sl.Scene:
    """The scene as a user writes it (as `bench_render.build_scene`), with every source's `box` set."""
    with sl.Scene(sl.Frame.from_observations(obs)) as scene:
        for k in range(len(sources.n)):
            sl.Source(
                center=sl.Parameter(sources.center[k]),
                spectrum=sl.Parameter(sources.spectrum[k], constraint=sl.constraints.positive()),
                morphology=sl.SersicMorphology(
                    n=sl.Parameter(sources.n[k], constraint=sl.constraints.interval(hw.N_MIN, hw.N_MAX)),
                    r_half=sl.Parameter(sources.size[k], constraint=sl.constraints.positive()),
                    ellipticity=sl.Parameter(sources.shear[k], constraint=sl.constraints.unit_disk()),
                ),
                box=box,
            )
    return scene


def gradient_of(sources: hw.Sources, obs: sl.Observation, box: int | str | None = "auto"):
    density = sl.LogDensity(sersic_scene(sources, obs, box), obs, jacobian=False)
    return jax.jit(jax.value_and_grad(density)), density


def compile_seconds(sources: hw.Sources, obs: sl.Observation) -> float:
    function, density = gradient_of(sources, obs)
    start = time.perf_counter()
    function.lower(density.x0).compile()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--box", type=int, default=32, help="the one box side of the stamp comparison")
    parser.add_argument("--quick", action="store_true", help="3 rounds, no whole-frame variants")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3

    psfs = moffat_psfs()
    sources = crowded_sources(args.sources, args.size)
    shape = (CHANNELS, args.size, args.size)
    empty = observation(np.zeros(shape), psfs, boxes=None)
    truth = np.asarray(eqx.filter_jit(empty.render)(sl.resolve(sersic_scene(sources, empty))))
    data = truth + np.random.default_rng(1).normal(size=shape)
    weights = np.ones_like(data)
    print(f"# crowded-field benchmark, commit {commit()}, jax {jax.__version__}, {machine()}")
    print(f"# K = {args.sources} Sersic sources, {CHANNELS} bands, {args.size}x{args.size} px, Moffat PSFs")

    boxed = observation(data, psfs, boxes=None)
    ours, density = gradient_of(sources, boxed)
    scene = sersic_scene(sources, boxed)
    classes: dict[tuple[int, int] | None, int] = {}
    for source in scene.sources:
        key = box_shape(boxed.grid, source.box)
        classes[key] = classes.get(key, 0) + 1
    print(
        f"automatic FFT boxes (shape: number of sources): {classes}; whole padded frame {boxed.grid.padded}"
    )
    # the implementation against hand-written stamps: one box size for all, the same on both sides
    side = args.box
    same_shape = box_shape(boxed.grid, side)
    ours_same, density_same = gradient_of(sources, boxed, box=side)
    stamps = hw.build(data, weights, psfs, "sersic", "stamps", stamp=same_shape[0])
    x_hand = jnp.asarray(hw.pack(sources))
    functions = {
        "scarlet_like (automatic boxes)": (ours, (density.x0,)),
        f"scarlet_like (all boxes {same_shape[0]})": (ours_same, (density_same.x0,)),
        f"hand-written stamps ({same_shape[0]})": (stamps.value_and_grad, (x_hand,)),
    }
    if not args.quick:
        whole_obs = observation(data, psfs, boxes=False)
        whole, whole_density = gradient_of(sources, whole_obs)
        functions["scarlet_like (whole frame)"] = (whole, (whole_density.x0,))
        fourier = hw.build(data, weights, psfs, "sersic", "fourier")
        functions["hand-written (whole frame)"] = (fourier.value_and_grad, (x_hand,))
    timings = timed_rounds(functions, args.rounds, args.calls)
    print(f"\n## value_and_grad time (ms), {args.rounds} rounds x {args.calls} calls")
    print(f"{'':36s} {'median':>9s} {'min':>9s} {'cpu':>9s}")
    for name, timing in timings.items():
        print(f"{name:36s} {timing['median_ms']:9.1f} {timing['min_ms']:9.1f} {timing['cpu_ms']:9.1f}")

    def ratio(ours_name: str, reference: str) -> None:
        a, b = timings[ours_name], timings[reference]
        print(
            f"ratio {ours_name} / {reference}: {a['median_ms'] / b['median_ms']:.3f} (medians), "
            f"{a['cpu_ms'] / b['cpu_ms']:.3f} (cpu)"
        )

    names = list(timings)
    ratio(names[1], names[2])
    for name in names[3:]:
        ratio(names[0], name)

    # accuracy: the boxes against the whole frame with a padding wide enough that nothing wraps
    wide = sl.Observation(np.zeros(shape), psf=sl.ArrayPSF(psfs), boxes=False, margin=args.size)
    reference = np.asarray(eqx.filter_jit(wide.render)(sl.resolve(scene)))
    in_boxes = np.asarray(eqx.filter_jit(boxed.render)(sl.resolve(scene)))
    error = np.abs(in_boxes - reference).max() / reference.max()
    print(
        f"\naccuracy: max |boxes - whole frame| / peak = {error:.1e}; "
        f"flux in the image: boxes {in_boxes.sum():.6g}, whole frame {reference.sum():.6g} "
        f"(relative difference {(in_boxes.sum() - reference.sum()) / reference.sum():.1e})"
    )

    few = compile_seconds(sources, boxed)
    many_sources = crowded_sources(4 * args.sources, args.size, seed=2)
    many = compile_seconds(many_sources, boxed)
    print(
        f"compile time of the gradient with boxes: K = {args.sources}: {few:.2f} s, "
        f"K = {4 * args.sources}: {many:.2f} s, ratio {many / few:.2f}"
    )


if __name__ == "__main__":
    main()

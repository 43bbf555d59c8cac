"""Benchmark: source detection, `sl.init.detect` against sep and photutils, on simulated and real blends.

Run from the repository root (sep and photutils are not dependencies: `pip install sep photutils
scikit-image`):

    python benchmarks/bench_detect.py                          # 40 standard + 40 hard blends, HSC, HST
    python benchmarks/bench_detect.py --blends 8               # quicker
    python benchmarks/bench_detect.py --output /tmp/bench_detect --json results.json

Every detector sees the same detection image and the same noise: the bands' inverse-variance weighted
mean (`sl.init`'s own detection image) and its per-pixel noise `1 / sqrt(sum of the bands' weights)`,
raised where the smoothed image's negative pixels (noise: the data are sky-subtracted) have a larger
RMS than that predicts (correlated noise of drizzled or resampled images), and the same Gaussian
smoothing kernel (`--sigma`, pixels). Thresholds are in units of the smoothed image's noise for
sep and photutils, of the unsmoothed pixel noise for DAOStarFinder; `ours` measures its noise itself.

Detectors (each library's documented recipe, on that image):

- `ours`: `sl.init.detect(observation, sigma=sigma, threshold=t)`: local maxima of the smoothed image
  above `t` sigma, at least `max(2, 2 sigma)` px apart, refined by a parabola.
- `ours-before`: the same at commit 89f25a6, whose noise was the sigma-clipped standard deviation of
  the smoothed image (sources included) and whose baseline its sigma-clipped median.
- `sep`: `sep.extract(image, t, err=noise, filter_kernel=gaussian, filter_type="matched", minarea=5,
  deblend_nthresh=32, deblend_cont=0.005)` (SExtractor's defaults), positions its isophotal
  barycentres `y, x`.
- `photutils`: `detect_sources(convolved, t * noise, n_pixels=5)`, `deblend_sources(convolved, ...,
  n_pixels=5, n_levels=32, contrast=0.001)` and `SourceCatalog(image, segments, convolved_data=convolved)`
  centroids.
- `sep-peak`, `photutils-peak`: the same detections, each at the highest pixel of the smoothed image in
  its (deblended) segment: whether a miss is the deblending's or the barycentre's (pulled by a
  neighbour beyond the matching radius).
- `dao`: photutils' `DAOStarFinder(threshold=t * pixel noise, fwhm=2.355 * sigma)`, the star finder,
  default sharpness and roundness limits.

On the simulated blends (`deblend_sims.py`, `psf="band"`, standard and hard sets), per detector and
threshold: completeness (true objects matched one-to-one within `--radius` px, by the Hungarian
assignment; the truth is each object's first moment), the completeness of the objects in close pairs
(a neighbour within 6 px), the false detections per blend split into those on an object's light (the
noiseless detection image above one pixel-noise sigma there: a knot, a bulge or a blend's middle
taken for an object) and noise peaks, the position error of the matched (median and 90th
percentile) and the time per blend. Then each detector's best completeness over the thresholds at
which it makes at most 0, 0.1, 0.25, 0.5 or 1 false detections per blend.

On the bundled data: `sl.datasets.hsc_cosmos()` against its 7 catalog detections, and
`sl.datasets.hsc_hst()` (HST F814W at sigma 3 px, HSC at sigma 1 px) against its 6 detections
(which are `sl.init.detect`'s own, so only a picture judges there). PNGs of the detection images with
every detector's positions go to `--output`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pickle
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import provenance  # noqa: E402

import scarlet_like as sl  # noqa: E402
from scarlet_like.astro import init as sl_init  # noqa: E402

THRESHOLDS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0)
CLOSE = 6.0


# --------------------------------------------------------------------------------------
# The shared detection image
# --------------------------------------------------------------------------------------


def gaussian_kernel(sigma: float) -> np.ndarray:
    half = int(math.ceil(3 * sigma))
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.exp(-0.5 * (x * x + y * y) / sigma**2)
    return kernel / kernel.sum()


class Detection:
    """The detection image of an observation, its noise and its smoothed version, computed once."""

    def __init__(self, observation: sl.Observation, sigma: float):
        from astropy.stats import sigma_clipped_stats

        data, weights, usable = sl_init._usable_pixels(observation)
        image, image_usable, weight_sum, _ = sl_init._detection_image(
            data, usable, sl_init._pixel_noise(weights, usable)
        )
        self.observation = observation
        self.sigma = sigma
        self.image = np.ascontiguousarray(np.where(image_usable, image, 0.0))
        self.usable = image_usable
        self.kernel = gaussian_kernel(sigma)
        white = 1.0 / np.sqrt(np.where(image_usable, weight_sum, 1.0))
        smoothed = sl_init._smooth(image, image_usable, sigma)
        predicted = float(np.median(white[image_usable])) * math.sqrt(float(np.sum(self.kernel**2)))
        # the noise `sl.init.detect` finds in the smoothed image: at least what the weights predict
        self.level_ours, self.smoothed_noise_ours = sl_init._smoothed_noise(
            smoothed, image_usable, weight_sum, sigma
        )
        self.noise = np.ascontiguousarray(white * max(1.0, self.smoothed_noise_ours / predicted))
        # what `sl.init.detect` used before (commit 89f25a6): the sigma-clipped statistics of the
        # smoothed image, sources included
        _, self.old_median, self.old_noise = sigma_clipped_stats(smoothed[image_usable], sigma=3.0)
        self.smoothed_noise = self.noise * math.sqrt(float(np.sum(self.kernel**2)))


def run_ours(detection: Detection, threshold: float) -> np.ndarray:
    return np.asarray(sl.init.detect(detection.observation, sigma=detection.sigma, threshold=threshold))


def run_ours_before(detection: Detection, threshold: float) -> np.ndarray:
    """`sl.init.detect` as it was at 89f25a6: peaks above the sigma-clipped median + threshold x the
    sigma-clipped standard deviation of the smoothed image (the same test, its threshold converted)."""
    converted = (
        detection.old_median - detection.level_ours + threshold * detection.old_noise
    ) / detection.smoothed_noise_ours
    return run_ours(detection, float(converted))


def _sep_objects(detection: Detection, threshold: float) -> np.ndarray:
    """sep's standard recipe on the detection image: matched filter, SExtractor's deblending defaults."""
    import sep

    return sep.extract(
        detection.image,
        threshold,
        err=detection.noise,
        mask=~detection.usable,
        minarea=5,
        filter_kernel=detection.kernel,
        filter_type="matched",
        deblend_nthresh=32,
        deblend_cont=0.005,
    )


def run_sep(detection: Detection, threshold: float) -> np.ndarray:
    objects = _sep_objects(detection, threshold)
    return np.stack([objects["y"], objects["x"]], axis=-1).reshape(-1, 2)


def run_sep_peak(detection: Detection, threshold: float) -> np.ndarray:
    """sep's detections (the same call), at the filtered image's peak pixel rather than the barycentre."""
    objects = _sep_objects(detection, threshold)
    return np.stack([objects["ycpeak"], objects["xcpeak"]], axis=-1).reshape(-1, 2).astype(np.float64)


def run_photutils(detection: Detection, threshold: float, peaks: bool = False) -> np.ndarray:
    from astropy.convolution import convolve
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources

    convolved = convolve(detection.image, detection.kernel, mask=~detection.usable, normalize_kernel=True)
    segments = detect_sources(
        convolved, threshold * detection.smoothed_noise, n_pixels=5, mask=~detection.usable
    )
    if segments is None:
        return np.zeros((0, 2))
    segments = deblend_sources(
        convolved, segments, n_pixels=5, n_levels=32, contrast=0.001, progress_bar=False
    )
    if peaks:
        # each deblended segment at the highest pixel of the smoothed image within it
        found = []
        for label in segments.labels:
            inside = np.where(segments.data == label, convolved, -np.inf)
            found.append(np.unravel_index(np.argmax(inside), inside.shape))
        return np.asarray(found, dtype=np.float64).reshape(-1, 2)
    catalog = SourceCatalog(detection.image, segments, convolved_data=convolved)
    return np.stack([catalog.y_centroid, catalog.x_centroid], axis=-1).reshape(-1, 2)


def run_dao(detection: Detection, threshold: float) -> np.ndarray:
    from photutils.detection import DAOStarFinder

    finder = DAOStarFinder(
        threshold=threshold * float(np.median(detection.noise[detection.usable])),
        fwhm=2.3548 * detection.sigma,
    )
    table = finder(detection.image, mask=~detection.usable)
    if table is None:
        return np.zeros((0, 2))
    return np.stack([np.asarray(table["y_centroid"]), np.asarray(table["x_centroid"])], axis=-1).reshape(
        -1, 2
    )


DETECTORS: dict[str, Callable[[Detection, float], np.ndarray]] = {
    "ours": run_ours,
    "ours-before": run_ours_before,
    "sep": run_sep,
    "sep-peak": run_sep_peak,
    "photutils": run_photutils,
    "photutils-peak": lambda detection, threshold: run_photutils(detection, threshold, peaks=True),
    "dao": run_dao,
}


# --------------------------------------------------------------------------------------
# Scoring against the truth
# --------------------------------------------------------------------------------------


def match(truth: np.ndarray, found: np.ndarray, radius: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs (truth index, detection index, distance) within `radius`, by least total distance."""
    from scipy.optimize import linear_sum_assignment

    if len(truth) == 0 or len(found) == 0:
        return []
    distance = np.linalg.norm(truth[:, None, :] - found[None, :, :], axis=-1)
    cost = np.where(distance <= radius, distance, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [
        (int(r), int(c), float(distance[r, c])) for r, c in zip(rows, cols, strict=True) if cost[r, c] < 1e6
    ]


def noiseless_detection_image(blend: Any) -> tuple[np.ndarray, float]:
    """The noiseless blend's detection image (the same band weights) and one pixel's noise in it."""
    weights = 1.0 / np.asarray(blend.variance)
    image = np.tensordot(weights, blend.noiseless, axes=1) / weights.sum()
    return image, 1.0 / math.sqrt(float(weights.sum()))


def score_blend(blend: Any, found: np.ndarray, radius: float) -> dict[str, Any]:
    truth = np.asarray(blend.centers)
    pairs = match(truth, found, radius)
    matched_truth = {t for t, _, _ in pairs}
    matched_found = {f for _, f, _ in pairs}
    distance = np.linalg.norm(truth[:, None, :] - truth[None, :, :], axis=-1)
    np.fill_diagonal(distance, np.inf)
    close = distance.min(axis=1) < CLOSE
    light, noise = noiseless_detection_image(blend)
    height, width = light.shape
    on_light = 0
    for index, position in enumerate(found):
        if index in matched_found:
            continue
        row, col = np.clip(np.rint(position).astype(int), 0, [height - 1, width - 1])
        on_light += int(light[row, col] > noise)
    return {
        "objects": len(truth),
        "matched": len(pairs),
        "close": int(close.sum()),
        "close_matched": int(sum(close[t] for t in matched_truth)),
        "false": len(found) - len(pairs),
        "false_on_light": on_light,
        "errors": [d for _, _, d in pairs],
    }


def evaluate_set(
    blends: list[Any], detectors: list[str], sigma: float, thresholds: tuple[float, ...], radius: float
) -> list[dict[str, Any]]:
    detections = [Detection(blend.observation(), sigma) for blend in blends]
    rows = []
    for name in detectors:
        run = DETECTORS[name]
        run(detections[0], thresholds[0])  # warm up (imports)
        for threshold in thresholds:
            scores, seconds = [], []
            for blend, detection in zip(blends, detections, strict=True):
                start = time.perf_counter()
                found = run(detection, threshold)
                seconds.append(time.perf_counter() - start)
                scores.append(score_blend(blend, np.asarray(found, dtype=np.float64).reshape(-1, 2), radius))
            errors = np.concatenate([s["errors"] for s in scores]) if scores else np.zeros(0)
            total = lambda key, scores=scores: sum(s[key] for s in scores)
            rows.append(
                {
                    "detector": name,
                    "threshold": threshold,
                    "completeness": total("matched") / total("objects"),
                    "close_completeness": total("close_matched") / max(total("close"), 1),
                    "false_per_blend": total("false") / len(blends),
                    "false_on_light_per_blend": total("false_on_light") / len(blends),
                    "error_median": float(np.median(errors)) if errors.size else math.nan,
                    "error_p90": float(np.percentile(errors, 90)) if errors.size else math.nan,
                    "ms_per_blend": 1e3 * float(np.median(seconds)),
                    "objects": total("objects"),
                    "close": total("close"),
                }
            )
    return rows


def at_false_rate(rows: list[dict[str, Any]], detector: str, rate: float) -> dict[str, float] | None:
    """The best completeness (and its close-pair completeness, threshold) of the thresholds at which the
    detector makes at most `rate` false detections per blend; `None` if none does."""
    allowed = [r for r in rows if r["detector"] == detector and r["false_per_blend"] <= rate + 1e-9]
    if not allowed:
        return None
    best = max(allowed, key=lambda r: (r["completeness"], r["close_completeness"], -r["threshold"]))
    return {
        key: float(best[key]) for key in ("completeness", "close_completeness", "threshold", "error_median")
    }


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n### {title}")
    print(
        "| detector | threshold | completeness | close pairs | false / blend (on light) "
        "| position error median / p90 (px) | ms / blend |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['detector']} | {r['threshold']:g} | {r['completeness']:.3f} "
            f"| {r['close_completeness']:.3f} "
            f"| {r['false_per_blend']:.2f} ({r['false_on_light_per_blend']:.2f}) "
            f"| {r['error_median']:.2f} / {r['error_p90']:.2f} | {r['ms_per_blend']:.1f} |"
        )


def print_matched(title: str, rows: list[dict[str, Any]], detectors: list[str], rates: list[float]) -> None:
    print(f"\n### {title}: best completeness (close pairs) with at most so many false detections per blend")
    print("| detector | " + " | ".join(f"{rate:g} false / blend" for rate in rates) + " |")
    print("|---|" + "---|" * len(rates))
    for name in detectors:
        cells = []
        for rate in rates:
            value = at_false_rate(rows, name, rate)
            cells.append(
                "–"
                if value is None
                else f"{value['completeness']:.3f} ({value['close_completeness']:.3f}), "
                f"t = {value['threshold']:.1f}"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


# --------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------


def show(
    path: str, detection: Detection, results: dict[str, np.ndarray], known: np.ndarray | None, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.4 * rows), squeeze=False)
    for axis in axes.flat[len(names) :]:
        axis.set_visible(False)
    smoothed = sl_init._smooth(detection.image, detection.usable, detection.sigma)
    scale = float(np.median(detection.smoothed_noise))
    shown = np.arcsinh(smoothed / scale)
    for axis, name in zip(axes.flat, names, strict=False):
        axis.imshow(shown, origin="upper", cmap="gray_r", vmin=-1, vmax=float(np.percentile(shown, 99.7)))
        if known is not None and len(known):
            axis.scatter(known[:, 1], known[:, 0], s=140, facecolors="none", edgecolors="tab:blue", lw=1.2)
        found = results[name]
        if len(found):
            axis.scatter(found[:, 1], found[:, 0], marker="+", s=60, color="tab:red", lw=1.3)
        axis.set_title(f"{name}: {len(found)}", fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def compare_known(found: np.ndarray, known: np.ndarray, radius: float) -> dict[str, Any]:
    pairs = match(known, found, radius)
    return {
        "found": len(found),
        "matched": len(pairs),
        "extra": len(found) - len(pairs),
        "offsets": [round(d, 2) for _, _, d in pairs],
    }


def real_data(
    detectors: list[str], thresholds: dict[str, float], radius: float, output: str
) -> list[dict[str, Any]]:
    rows = []
    cosmos = sl.datasets.hsc_cosmos()
    cosmos_obs = sl.Observation(
        cosmos.images, weights=1 / cosmos.variance, mask=cosmos.mask, psf=sl.ArrayPSF(cosmos.psfs),
        channels=cosmos.channels,
    )  # fmt: skip
    two = sl.datasets.hsc_hst()
    cases = [
        ("hsc_cosmos", cosmos_obs, 1.0, np.asarray(cosmos.centers, dtype=np.float64), 5.0),
        ("hsc_hst.hsc", two.hsc.observation("HSC"), 1.0, None, 5.0),
        ("hsc_hst.hst", two.hst.observation("HST"), 3.0, None, 10.0),
    ]
    for label, observation, sigma, known, default in cases:
        if known is None:
            wcs = two.hsc.wcs if label.endswith("hsc") else two.hst.wcs
            x, y = wcs.world_to_pixel(two.centers)
            height, width = observation.data.shape[-2:]
            inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
            known = np.stack([y, x], axis=-1)[inside]
        detection = Detection(observation, sigma)
        for scale_name, scale in (("default", None), ("sims", thresholds)):
            results = {}
            for name in detectors:
                threshold = default if scale is None else scale[name] * default / 5.0
                run = DETECTORS[name]
                run(detection, threshold)
                start = time.perf_counter()
                for _ in range(3):
                    found = np.asarray(run(detection, threshold), dtype=np.float64).reshape(-1, 2)
                seconds = (time.perf_counter() - start) / 3
                results[f"{name} t={threshold:.3g}"] = found
                rows.append(
                    {
                        "data": label,
                        "sigma": sigma,
                        "thresholds": scale_name,
                        "detector": name,
                        "threshold": threshold,
                        "ms": 1e3 * seconds,
                        **compare_known(found, known, radius * (5.0 if label.endswith("hst") else 1.0)),
                        "positions": np.round(found, 2).tolist(),
                    }
                )
            show(
                os.path.join(output, f"detect_{label}_{scale_name}.png"),
                detection,
                results,
                known,
                f"{label}, sigma {sigma:g} px, thresholds: {scale_name}; circles: the dataset's detections",
            )
    return rows


# --------------------------------------------------------------------------------------


def load_blends(count: int, difficulty: str, output: str) -> list[Any]:
    from deblend_sims import simulate

    cache = os.path.join(output, f"blends_{difficulty}_{count}.pkl")
    if os.path.exists(cache):
        with open(cache, "rb") as file:
            return pickle.load(file)  # type: ignore[no-any-return]
    blends = simulate(count, seed=0, psf="band", difficulty=difficulty)
    with open(cache, "wb") as file:
        pickle.dump(blends, file)
    return blends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", choices=sorted(DETECTORS), help="default: all")
    parser.add_argument("--blends", type=int, default=40)
    parser.add_argument("--sigma", type=float, action="append", help="smoothing, px (default 1.0 and 1.5)")
    parser.add_argument("--radius", type=float, default=2.0, help="matching radius, px")
    parser.add_argument("--output", default="/tmp/bench_detect", help="blend cache, PNGs, JSON")
    parser.add_argument("--json", help="file name (in --output) for all the numbers")
    parser.add_argument("--summary", help="print the summaries of a --json file of an earlier run, and stop")
    parser.add_argument("--no-real", action="store_true", help="skip the bundled HSC / HST data")
    arguments = parser.parse_args()
    detectors = arguments.detector or list(DETECTORS)
    if arguments.summary:
        with open(arguments.summary) as file:
            earlier = json.load(file)
        for key, rows in earlier["simulated"].items():
            names = [name for name in detectors if any(r["detector"] == name for r in rows)]
            print_matched(key, rows, names, [0.0, 0.1, 0.25, 0.5, 1.0])
        return
    sigmas = arguments.sigma or [1.0, 1.5]
    os.makedirs(arguments.output, exist_ok=True)
    print(f"# bench_detect, {datetime.date.today()}, commit {provenance.commit()}, {provenance.machine()}")
    results: dict[str, Any] = {"simulated": {}, "real": []}
    rates = [0.0, 0.1, 0.25, 0.5, 1.0]
    matched_thresholds: dict[str, list[float]] = {name: [] for name in detectors}
    for difficulty in ("standard", "hard"):
        blends = load_blends(arguments.blends, difficulty, arguments.output)
        for sigma in sigmas:
            rows = evaluate_set(blends, detectors, sigma, THRESHOLDS, arguments.radius)
            key = f"{difficulty}, sigma {sigma:g}"
            results["simulated"][key] = rows
            title = (
                f"{difficulty} ({len(blends)} blends, {rows[0]['objects']} objects, "
                f"{rows[0]['close']} in close pairs), sigma {sigma:g} px"
            )
            print_rows(title, rows)
            print_matched(title, rows, detectors, rates)
            if sigma == 1.0 and difficulty == "standard":
                # the thresholds at which each detector makes as many false detections as ours at 5
                ours = next((r for r in rows if r["detector"] == "ours" and r["threshold"] == 5.0), None)
                for name in detectors:
                    if ours is None:
                        matched_thresholds[name].append(5.0)
                        continue
                    value = at_false_rate(rows, name, ours["false_per_blend"])
                    matched_thresholds[name].append(5.0 if value is None else value["threshold"])
    if not arguments.no_real:
        thresholds = {
            name: float(np.mean(values)) if values else 5.0 for name, values in matched_thresholds.items()
        }
        thresholds["ours"] = 5.0
        real = real_data(detectors, thresholds, arguments.radius, arguments.output)
        results["real"] = real
        print("\n### bundled data (matched within 2 px of HSC, 10 px of HST, to the dataset's detections)")
        print("| data | thresholds | detector | threshold | found | matched | extra | offsets (px) | ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in real:
            print(
                f"| {r['data']} | {r['thresholds']} | {r['detector']} | {r['threshold']:.2f} | {r['found']} "
                f"| {r['matched']} | {r['extra']} | {r['offsets']} | {r['ms']:.1f} |"
            )
    if arguments.json:
        with open(os.path.join(arguments.output, arguments.json), "w") as file:
            json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()

"""Figures of scenes and observations (matplotlib).

```python
sl.plot.scene(fitted.model, obs)      # data | model | residual
sl.plot.sources(fitted.model, obs)    # one panel per source
sl.plot.light_curve(fitted.model, 1, observations=epochs)  # a source's flux against time
sl.plot.trace(posterior, ["sources[1].morphology.n"])   # draws of each chain, and their histograms
sl.plot.rank(posterior, ["sources[1].morphology.n"])    # rank histograms of each chain
sl.plot.corner(posterior, ["sources[1].center", "sources[1].morphology.r_half"])
sl.plot.predictive(posterior, obs)    # data | posterior mean model | residual | spread of the model
```

Colour images are Lupton et al. (2004) composites: three colour planes (red, green, blue) made from
the channels, all scaled by one `asinh` stretch of their mean intensity, which keeps the colours of
bright cores and shows faint light next to them. Data and model share the stretch, so they can be
compared by eye. Channels are taken to be listed from blue to red, as bands usually are.

This module does not choose a matplotlib backend: in scripts without a display, set
`MPLBACKEND=Agg` or call `matplotlib.use("Agg")` before plotting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
from jaxtyping import Float

from .astro import measure
from .astro.observation import Observation
from .astro.scene import Scene
from .core.tree import resolve

__all__ = ["scene", "sources", "light_curve", "rgb", "channel_map", "trace", "rank", "corner", "predictive"]

# Grey of masked pixels: unlike any colour of sky or residual.
MASKED_GREY = (0.55, 0.55, 0.55)
# Residual colour scale, in units of the noise standard deviation.
RESIDUAL_RANGE = 5.0
# Brightness (of 1) of one standard deviation of noise in the default colour scale: just visible.
NOISE_BRIGHTNESS = 0.03
# Without noise to go by (a model alone), the default scale shows this fraction of the peak as if it
# were the noise.
MODEL_DYNAMIC_RANGE = 1e-2


# --------------------------------------------------------------------------------------
# Colour composites
# --------------------------------------------------------------------------------------


def channel_map(
    n_channels: int, channels: Sequence[int | str] | None = None, names: Sequence[str] | None = None
) -> Float[np.ndarray, "3 C"]:
    """How the channels make the red, green and blue planes.

    **Arguments:**

    - `n_channels`: the number of channels `C`.
    - `channels`: three channels (indices or names) for red, green and blue; default: all channels,
      split in three groups from the reddest (last) to the bluest (first), each channel shared
      between neighbouring groups in proportion, so every band counts equally.
    - `names`: the channel names, to look `channels` up by name.

    **Returns:**

    `(3, C)`: row 0 makes red, 1 green, 2 blue.
    """
    if channels is not None:
        if len(channels) != 3:
            raise ValueError(f"plot: channels must name three channels (red, green, blue), got {channels!r}")
        mapping = np.zeros((3, n_channels))
        for plane, channel in enumerate(channels):
            if isinstance(channel, str):
                if names is None or channel not in names:
                    raise ValueError(f"plot: no channel named {channel!r} among {tuple(names or ())}")
                channel = list(names).index(channel)
            if not -n_channels <= int(channel) < n_channels:
                raise ValueError(f"plot: channel index {channel} out of range for {n_channels} channels")
            mapping[plane, int(channel)] = 1.0
        return mapping
    if n_channels == 1:
        return np.ones((3, 1))
    if n_channels == 2:
        return np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    # Spread the channels, blue (first) to red (last), evenly over blue, green, red: channel c covers
    # [c, c + 1) of [0, C), each plane a third of it.
    mapping = np.zeros((3, n_channels))
    for plane in range(3):
        low, high = plane * n_channels / 3, (plane + 1) * n_channels / 3
        for channel in range(n_channels):
            mapping[2 - plane, channel] = max(0.0, min(high, channel + 1) - max(low, channel))
    return mapping / mapping.sum(axis=1, keepdims=True)


def _softening_for(peak: float, stretch: float) -> float:
    """The `asinh` softening `Q` that brings intensity `peak` to brightness 1.

    It solves `sinh(Q) / Q = peak / stretch`.
    """
    ratio = peak / stretch
    if not ratio > 1.0:
        return 1e-3  # nothing brighter than the linear range: stay linear
    low, high = 1e-6, 2.0 * math.log(2.0 * ratio) + 2.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if math.sinh(middle) / middle < ratio:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


class _RgbOptions(TypedDict):
    """The arguments of `rgb` that the figures of a scene share among their colour composites."""

    stretch: float
    softening: float
    channels: Sequence[int | str] | None
    names: Sequence[str] | None


def rgb(
    image: Float[Any, "C H W"],
    *,
    stretch: float,
    softening: float = 8.0,
    channels: Sequence[int | str] | None = None,
    names: Sequence[str] | None = None,
    mask: Any = None,
) -> Float[np.ndarray, "H W 3"]:
    """A Lupton-style colour composite.

    **Arguments:**

    - `image`: `(C, H, W)`.
    - `stretch`: the intensity mapped to brightness 1 on the linear part of the scale (the scale is
      linear up to about `stretch / softening`, logarithmic beyond).
    - `softening`: the `asinh` softening `Q`; larger shows more dynamic range.
    - `channels`, `names`: as in [`scarlet_like.plot.channel_map`][].
    - `mask`: `(C, H, W)`, `True` where a channel's pixel is unusable: each colour plane is then
      made of its other channels there; where a plane has none left, the pixel is shown colourless
      at the brightness of the other planes. Pixels unusable in every channel are black.

    **Returns:**

    `(H, W, 3)` values in `[0, 1]`, for `imshow(..., origin="lower")`. Colours keep their hue where
    they saturate.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[None]
    mapping = channel_map(image.shape[0], channels, names)
    if mask is None:
        planes = np.einsum("pc,chw->phw", mapping, image)
    else:
        planes = _planes_around_mask(image, mapping, np.broadcast_to(np.asarray(mask, bool), image.shape))
    intensity = planes.mean(axis=0)
    scaled = np.arcsinh(softening * intensity / stretch) / softening
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(intensity > 0, scaled / intensity, 0.0)
    colour = np.clip(planes * factor, 0.0, None)
    brightest = colour.max(axis=0)
    colour = colour / np.maximum(brightest, 1.0)
    return np.moveaxis(colour, 0, -1)


def _planes_around_mask(image: np.ndarray, mapping: np.ndarray, mask: np.ndarray) -> np.ndarray:
    usable = (~mask).astype(np.float64)
    values = np.where(mask, 0.0, image)
    covered = np.einsum("pc,chw->phw", mapping, usable)  # how much of each plane is usable
    total = mapping.sum(axis=1)[:, None, None]
    planes = np.einsum("pc,chw->phw", mapping, values) * total / np.where(covered > 0, covered, 1.0)
    has_data = covered > 1e-9
    # Where a plane has no usable channel the pixel's colour is unknown: show it colourless, at the
    # mean of the planes that have data, rather than in a false hue.
    known = np.sum(has_data, axis=0)
    fallback = np.sum(np.where(has_data, planes, 0.0), axis=0) / np.maximum(known, 1)
    return np.where(np.all(has_data, axis=0)[None], planes, fallback[None])


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib.pyplot as plt

    return plt


def _centers_in(model: Scene, observation: Observation | None) -> np.ndarray:
    """Source centres `(K, 2)` in the pixels of the observation (or of the model frame)."""
    resolved = resolve(model)
    centers = np.array([np.asarray(source.center, dtype=np.float64) for source in resolved.sources])
    if observation is None or not len(centers):
        return centers.reshape(-1, 2)
    mapping = observation.to_pixels(model.frame)
    if mapping is None:
        return centers
    matrix, offset = (np.asarray(part, dtype=np.float64) for part in mapping)
    return centers @ matrix.T + offset


def _mark_sources(axis: Any, centers: np.ndarray, labels: Sequence[Any] | None = None) -> None:
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=2.0, foreground="black")]
    labels = range(len(centers)) if labels is None else labels
    for (y, x), label in zip(centers, labels, strict=True):
        axis.plot(x, y, marker="+", color="white", markersize=7, markeredgewidth=1.2, path_effects=outline)
        axis.annotate(
            str(label),
            (x, y),
            xytext=(4, 4),
            textcoords="offset points",
            color="white",
            fontsize=9,
            fontweight="bold",
            path_effects=outline,
        )


def _describe(source: Any) -> str:
    """`PointSource`, or the kind of morphology of a source (`Sersic`, `Gaussian`, ...)."""
    components = getattr(source, "components", None)
    if components is not None:  # a MultiComponentSource: `Sersic+Spergel`
        return "+".join(_describe(component) for component in components)
    morphology = getattr(source, "morphology", None)
    if type(source).__name__ not in ("Source", "Component") or morphology is None:
        return type(source).__name__
    return type(morphology).__name__.removesuffix("Morphology") or type(morphology).__name__


def _show(axis: Any, picture: np.ndarray, title: str) -> Any:
    height, width = picture.shape[:2]
    shown = axis.imshow(
        picture, origin="lower", interpolation="nearest", extent=(-0.5, width - 0.5, -0.5, height - 0.5)
    )
    axis.set_title(title, fontsize=10)
    axis.set_xticks([])
    axis.set_yticks([])
    return shown


def _shade(axis: Any, masked: np.ndarray) -> None:
    """Shade the pixels masked in some channel grey: their colour comes from the other channels."""
    if not masked.any():
        return
    from matplotlib.colors import ListedColormap

    height, width = masked.shape
    axis.imshow(
        np.ma.masked_array(np.ones(masked.shape), mask=~masked),
        origin="lower",
        interpolation="nearest",
        cmap=ListedColormap([MASKED_GREY]),
        alpha=0.35,
        extent=(-0.5, width - 0.5, -0.5, height - 0.5),
    )


def _grey_out(picture: np.ndarray, masked: np.ndarray) -> np.ndarray:
    picture = picture.copy()
    picture[masked] = MASKED_GREY
    return picture


def _noise_and_peak(observation: Observation, mapping: np.ndarray) -> tuple[float, float]:
    """Noise of the colour planes' mean intensity, and its brightest value, in the observation."""
    data = np.asarray(observation.data, dtype=np.float64)
    weights = np.asarray(observation.weights, dtype=np.float64)
    variances = np.array([1.0 / np.median(w[w > 0]) if np.any(w > 0) else 0.0 for w in weights])
    intensity_weights = mapping.mean(axis=0)  # how much each channel counts in the intensity
    noise = math.sqrt(float(np.sum(intensity_weights**2 * variances)))
    intensity = np.einsum("c,chw->hw", intensity_weights, data)
    return noise, float(np.max(intensity))


def _scale_for(
    observation: Observation | None,
    image: np.ndarray,
    mapping: np.ndarray,
    stretch: float | None,
    softening: float | None,
) -> tuple[float, float]:
    """`(stretch, softening)`: given values, or defaults from the noise and the brightest pixel."""
    if observation is not None:
        noise, peak = _noise_and_peak(observation, mapping)
    else:
        peak = float(np.max(np.einsum("c,chw->hw", mapping.mean(axis=0), image)))
        noise = peak * MODEL_DYNAMIC_RANGE * NOISE_BRIGHTNESS
    peak = max(peak, 1e-30)
    if stretch is None:
        stretch = noise / NOISE_BRIGHTNESS if noise > 0 else peak
    stretch = float(stretch)
    if not stretch > 0:
        raise ValueError(f"plot: stretch must be positive, got {stretch}")
    return stretch, _softening_for(peak, stretch) if softening is None else float(softening)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def scene(
    model: Scene,
    observation: Observation,
    *,
    channels: Sequence[int | str] | None = None,
    stretch: float | None = None,
    softening: float | None = None,
    show_centers: bool = True,
    ax: Sequence[Any] | np.ndarray | None = None,
) -> Any:
    """Data, model and residual of a scene, side by side.

    **Arguments:**

    - `model`: the [`scarlet_like.Scene`][] (e.g. `fitted.model`).
    - `observation`: the [`scarlet_like.Observation`][] the model is compared with; the model is
      rendered through it (its PSF, grid and channels).
    - `channels`: three channels (indices or names) for red, green and blue; default all channels,
      blue to red (see [`scarlet_like.plot.channel_map`][]).
    - `stretch`: intensity shown linearly in the colour images; default from the noise, so that one
      standard deviation of noise is just visible.
    - `softening`: the `asinh` softening; default such that the data's brightest pixel is at full
      brightness.
    - `show_centers`: mark and number the sources' centres.
    - `ax`: three matplotlib Axes to draw into (a sequence, or the array `plt.subplots` returns); default
      a new figure.

    **Returns:**

    The matplotlib `Figure`: the data and the model as colour composites with the same scale, and
    the residual `data - model` in units of the noise (channels combined as
    `sum((data - model) / sigma) / sqrt(n)` over the `n` usable channels of each pixel), with a
    colour bar. In the data, a pixel masked in some channels takes its colour from the others and is
    shaded grey; masked in all, it is grey. In the residual, pixels with no usable channel are grey.
    The residual's title gives the reduced chi-square.
    """
    plt = _pyplot()
    if not isinstance(model, Scene):
        raise TypeError(f"plot.scene: model must be an sl.Scene, got {type(model).__name__}")
    data = np.asarray(observation.data, dtype=np.float64)
    weights = np.asarray(observation.weights, dtype=np.float64)
    rendered = np.asarray(observation.render(model), dtype=np.float64)
    masked = weights <= 0
    mapping = channel_map(data.shape[0], channels, observation.channels)
    stretch, softening = _scale_for(observation, data, mapping, stretch, softening)
    options: _RgbOptions = {
        "stretch": stretch,
        "softening": softening,
        "channels": channels,
        "names": observation.channels,
    }

    if ax is None:
        height, width = data.shape[1:]
        panel = 3.6
        figure, axes = plt.subplots(
            1, 3, figsize=(3 * panel + 0.8, panel * height / width + 0.6), layout="constrained"
        )
    else:
        axes = list(ax)
        if len(axes) != 3:
            raise ValueError(f"plot.scene: ax must be three Axes (data, model, residual), got {len(axes)}")
        figure = axes[0].figure

    shown_channels = np.any(mapping > 0, axis=0)
    data_picture = rgb(data, mask=masked, **options)
    _show(
        axes[0], _grey_out(data_picture, np.all(masked[shown_channels], axis=0)), f"data ({observation.name})"
    )
    _shade(axes[0], np.any(masked[shown_channels], axis=0))
    _show(axes[1], rgb(rendered, **options), "model")

    usable_count = np.sum(~masked, axis=0)
    chi = np.sum(np.where(masked, 0.0, (data - rendered) * np.sqrt(weights)), axis=0)
    combined = np.ma.masked_array(chi / np.sqrt(np.maximum(usable_count, 1)), mask=usable_count == 0)
    colours = plt.get_cmap("RdBu_r").with_extremes(bad=MASKED_GREY)
    goodness = float(observation.goodness_of_fit(model))
    height, width = data.shape[1:]
    residual = axes[2].imshow(
        combined,
        origin="lower",
        interpolation="nearest",
        cmap=colours,
        vmin=-RESIDUAL_RANGE,
        vmax=RESIDUAL_RANGE,
        extent=(-0.5, width - 0.5, -0.5, height - 0.5),
    )
    axes[2].set_title(f"residual (χ²/ν = {goodness:.2f})", fontsize=10)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    bar = figure.colorbar(residual, ax=axes[2], shrink=0.85, pad=0.02)
    bar.set_label("(data − model) / σ", fontsize=9)

    if show_centers:
        centers = _centers_in(model, observation)
        for axis in axes:
            _mark_sources(axis, centers)
            axis.set_xlim(-0.5, width - 0.5)
            axis.set_ylim(-0.5, height - 0.5)
    return figure


def sources(
    model: Scene,
    observation: Observation | None = None,
    *,
    channels: Sequence[int | str] | None = None,
    stretch: float | None = None,
    softening: float | None = None,
    columns: int = 4,
) -> Any:
    """Each source of a scene on its own, one panel per source.

    **Arguments:**

    - `model`: the [`scarlet_like.Scene`][].
    - `observation`: render each source through it (and scale the colours to its noise, as
      [`scarlet_like.plot.scene`][] does); default: in the model frame, at the model PSF.
    - `channels`, `stretch`, `softening`: as in [`scarlet_like.plot.scene`][]; without an
      observation the default scale shows two decades below the brightest source pixel.
    - `columns`: panels per row.

    **Returns:**

    The matplotlib `Figure`, with one Axes per source (in `model.sources` order), titled with the
    source's index and kind (`PointSource`, or its morphology), its centre marked. All panels share
    one colour scale, so brightness compares across them.
    """
    plt = _pyplot()
    if not isinstance(model, Scene):
        raise TypeError(f"plot.sources: model must be an sl.Scene, got {type(model).__name__}")
    count = len(model.sources)
    if count == 0:
        raise ValueError("plot.sources: the scene has no source")
    images = [np.asarray(measure.source_image(model, index, observation)) for index in range(count)]
    names = model.frame.channels if observation is None else observation.channels
    mapping = channel_map(images[0].shape[0], channels, names)
    stretch, softening = _scale_for(observation, np.sum(images, axis=0), mapping, stretch, softening)
    options: _RgbOptions = {
        "stretch": stretch,
        "softening": softening,
        "channels": channels,
        "names": names,
    }
    columns = max(1, min(int(columns), count))
    rows = math.ceil(count / columns)
    height, width = images[0].shape[1:]
    panel = 2.6
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(columns * panel, rows * panel * height / width + 0.3),
        layout="constrained",
        squeeze=False,
    )
    centers = _centers_in(model, observation)
    for index, axis in enumerate(axes.flat):
        if index >= count:
            figure.delaxes(axis)
            continue
        kind = _describe(model.sources[index])
        _show(axis, rgb(images[index], **options), f"[{index}] {kind}")
        _mark_sources(axis, centers[index : index + 1], [index])
        axis.set_xlim(-0.5, width - 0.5)
        axis.set_ylim(-0.5, height - 0.5)
    return figure


def light_curve(
    model: Any,
    index: int,
    times: Any = None,
    *,
    observations: Sequence[Observation] | None = None,
    channels: Sequence[int | str] | None = None,
    band: tuple[float, float] = (0.16, 0.84),
    draws: int = 200,
    ax: Any = None,
) -> Any:
    """A source's flux against time, per channel: its light curve, with the posterior's spread.

    **Arguments:**

    - `model`: a [`scarlet_like.Scene`][] (e.g. `fitted.model`), or a [`scarlet_like.Posterior`][]
      of one (from [`scarlet_like.sample`][]).
    - `index`: which source, as in `scene.sources[index]`.
    - `times`: the times to draw the curve at; default 200 times spanning the observations' times
      (and a tenth of their range on each side).
    - `observations`: the observations (epochs) of the fit; their times are marked on the curve, one
      point per epoch and channel it observed.
    - `channels`: the channels (indices or names) to draw; default all of the frame's.
    - `band`: for a posterior, the lower and upper quantiles of the shaded band around the median
      curve (default 16 % and 84 %: the central 68 %).
    - `draws`: for a posterior, use at most this many draws, evenly spaced through each chain.
    - `ax`: a matplotlib Axes to draw into; default a new figure.

    **Returns:**

    The matplotlib `Figure`: one curve per channel, blue to red in the frame's channel order, from
    [`scarlet_like.measure.flux`][] at each time (the posterior's median, with its band shaded).
    A static source draws flat lines.
    """
    plt = _pyplot()
    posterior = None if isinstance(model, Scene) else model
    if posterior is not None:
        _check_posterior(posterior, "light_curve")
        scene_at = posterior.model_at(0, 0)
        if not isinstance(scene_at, Scene):
            raise TypeError(
                f"plot.light_curve: the posterior must be of an sl.Scene, not of {type(scene_at).__name__}"
            )
    else:
        scene_at = model
    measure._check_source_index("plot.light_curve", scene_at, index)
    for observation in observations or ():
        if observation.time is None:
            raise ValueError(
                f"plot.light_curve: observation '{observation.name}' has no time to mark on the curve"
            )
    epochs = [float(observation.time) for observation in observations or () if observation.time is not None]
    if times is None:
        if not epochs:
            raise ValueError(
                "plot.light_curve: give the times to draw the curve at, or observations with times"
            )
        first, last = min(epochs), max(epochs)
        margin = 0.1 * (last - first) or 1.0
        times = np.linspace(first - margin, last + margin, 200)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    names = scene_at.frame.channels
    chosen: list[int] = []
    for wanted in range(len(names)) if channels is None else channels:
        channel = names.index(wanted) if isinstance(wanted, str) and wanted in names else wanted
        if not isinstance(channel, int | np.integer) or not -len(names) <= channel < len(names):
            raise ValueError(f"plot.light_curve: no channel {wanted!r} among {names}")
        chosen.append(int(channel))

    def curve(scene: Scene, at: np.ndarray) -> Any:
        return measure.flux(scene.sources[index], time=at)

    if posterior is None:
        middle, low, high = np.asarray(curve(model, times)), None, None
        at_epochs = None if not epochs else np.asarray(curve(model, np.asarray(epochs)))
    else:
        thinned = _thinned(posterior, draws)
        every = np.asarray(thinned.map(lambda scene: curve(scene, times)), dtype=np.float64)
        every = every.reshape(-1, *every.shape[2:])  # (draw, T, C)
        middle = np.median(every, axis=0)
        low, high = np.quantile(every, band[0], axis=0), np.quantile(every, band[1], axis=0)
        if epochs:
            at = np.asarray(thinned.map(lambda scene: curve(scene, np.asarray(epochs))), dtype=np.float64)
            at_epochs = np.median(at.reshape(-1, *at.shape[2:]), axis=0)
        else:
            at_epochs = None
    figure = ax.figure if ax is not None else plt.figure(figsize=(7.0, 4.0), layout="constrained")
    axis = ax if ax is not None else figure.add_subplot()
    colours = plt.get_cmap("coolwarm")(np.linspace(0.0, 1.0, max(len(names), 2)))[: len(names)]
    for channel in chosen:
        colour = colours[channel]
        axis.plot(times, middle[:, channel], color=colour, label=str(names[channel]))
        if low is not None and high is not None:
            axis.fill_between(times, low[:, channel], high[:, channel], color=colour, alpha=0.25, lw=0)
        if at_epochs is not None and observations is not None:
            seen = [i for i, o in enumerate(observations) if names[channel] in o.channels]
            axis.plot(np.asarray(epochs)[seen], at_epochs[seen, channel], "o", color=colour, ms=4)
    kind = "posterior median" if posterior is not None else "model"
    spread = f", {band[0]:.0%}-{band[1]:.0%} shaded" if posterior is not None else ""
    axis.set_title(f"sources[{index}]: flux against time ({kind}{spread})")
    axis.set_xlabel("time")
    axis.set_ylabel("flux")
    axis.legend(title="channel", fontsize="small")
    return figure


# --------------------------------------------------------------------------------------
# Posteriors
# --------------------------------------------------------------------------------------

# Without a choice of parameters, the posterior figures show this many scalar elements at most: more
# make panels too small to read.
DEFAULT_ELEMENTS = 8


def _thinned(posterior: Any, draws: int) -> Any:
    """The posterior with at most `draws` draws in all, evenly spaced through each chain."""
    import equinox as eqx

    chains, length = np.shape(posterior.samples)[:2]
    keep = max(1, min(length, math.ceil(int(draws) / chains)))
    picked = np.unique(np.linspace(0, length - 1, keep).round().astype(int))
    return eqx.tree_at(lambda p: p.samples, posterior, posterior.samples[:, picked])


def _check_posterior(posterior: Any, caller: str) -> None:
    if not all(hasattr(posterior, field) for field in ("values", "samples", "unravel")):
        raise TypeError(
            f"plot.{caller}: posterior must be an sl.Posterior (from sl.sample), "
            f"got {type(posterior).__name__}"
        )


def _elements(posterior: Any, params: Sequence[str] | str | None, caller: str) -> dict[str, np.ndarray]:
    """`{element name: (chain, draw) constrained draws}` for the chosen parameters.

    `params` names parameters as in `posterior.values` (all their elements are taken) or single
    elements as in `posterior.summary()` (`sources[1].center[0]`); default: the first
    `DEFAULT_ELEMENTS` elements.
    """
    _check_posterior(posterior, caller)
    values = posterior.values
    columns: dict[str, np.ndarray] = {}
    of_parameter: dict[str, list[str]] = {}  # a parameter's element names
    names = iter(posterior.unravel.value_element_names())
    for parameter, value in values.items():
        value = np.asarray(value, dtype=np.float64)
        flat = value.reshape(*value.shape[:2], -1)
        of_parameter[parameter] = []
        for index in range(flat.shape[-1]):
            name = next(names)
            columns[name] = flat[..., index]
            of_parameter[parameter].append(name)
    if params is None:
        return dict(list(columns.items())[:DEFAULT_ELEMENTS])
    chosen: dict[str, np.ndarray] = {}
    for param in [params] if isinstance(params, str) else params:
        if param not in columns and param not in of_parameter:
            raise ValueError(
                f"plot.{caller}: no parameter or element named {param!r} in the posterior; the "
                f"parameters are {', '.join(values)} (or one element of them, e.g. {next(iter(columns))!r})"
            )
        for name in of_parameter.get(param, [param]):
            chosen[name] = columns[name]
    if not chosen:
        raise ValueError(f"plot.{caller}: params chose nothing; name at least one parameter")
    return chosen


def trace(posterior: Any, params: Sequence[str] | str | None = None, *, bins: int = 30) -> Any:
    """Trace plot: each chain's draws in order, and their histograms, one row per element.

    **Arguments:**

    - `posterior`: a [`scarlet_like.Posterior`][].
    - `params`: parameter names as in `posterior.values` (all their elements), or single elements as
      in `posterior.summary()` (`sources[1].center[0]`); default the first eight elements.
    - `bins`: histogram bins.

    **Returns:**

    The matplotlib `Figure`: for each element a row of two Axes, the draws of every chain against
    the draw number (divergent draws marked in red) and each chain's histogram. Chains that mix
    overlap in both.
    """
    plt = _pyplot()
    chosen = _elements(posterior, params, "trace")
    divergent = np.asarray(posterior.divergences, dtype=bool)
    rows = len(chosen)
    figure, axes = plt.subplots(
        rows, 2, figsize=(9.0, 1.6 * rows + 0.4), layout="constrained", squeeze=False, width_ratios=(3, 1)
    )
    colours = plt.get_cmap("tab10")
    for row, (name, draws) in enumerate(chosen.items()):
        edges = np.histogram_bin_edges(draws, bins=bins)
        for chain in range(draws.shape[0]):
            axes[row, 0].plot(draws[chain], lw=0.6, alpha=0.8, color=colours(chain % 10))
            axes[row, 1].hist(
                draws[chain], bins=edges, histtype="step", color=colours(chain % 10), orientation="horizontal"
            )
        where = np.nonzero(divergent)
        if len(where[0]):
            axes[row, 0].plot(where[1], draws[where], "|", color="red", markersize=8)
        axes[row, 0].set_ylabel(name, fontsize=8)
        axes[row, 1].sharey(axes[row, 0])
        axes[row, 1].tick_params(labelleft=False)
    axes[-1, 0].set_xlabel("draw")
    axes[-1, 1].set_xlabel("count")
    axes[0, 0].set_title(f"{posterior.num_chains} chains", fontsize=10)
    return figure


def rank(posterior: Any, params: Sequence[str] | str | None = None, *, bins: int = 20) -> Any:
    """Rank plot (Vehtari et al. 2021): where each chain's draws rank among all draws.

    **Arguments:**

    - `posterior`, `params`: as in [`scarlet_like.plot.trace`][].
    - `bins`: rank bins per histogram.

    **Returns:**

    The matplotlib `Figure`, one Axes per element, with one histogram of ranks per chain, stacked
    vertically. Chains drawing from the same distribution have flat histograms near the dashed line
    (the count expected per bin); a chain above it at one end sits off the others.
    """
    plt = _pyplot()
    chosen = _elements(posterior, params, "rank")
    count = len(chosen)
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.8 * columns, 2.4 * rows + 0.3), layout="constrained", squeeze=False
    )
    colours = plt.get_cmap("tab10")
    for index, axis in enumerate(axes.flat):
        if index >= count:
            figure.delaxes(axis)
            continue
        name, draws = list(chosen.items())[index]
        chains, length = draws.shape
        ranks = np.argsort(np.argsort(draws.ravel(), kind="stable"), kind="stable").reshape(draws.shape)
        edges = np.linspace(0, chains * length, bins + 1)
        expected = length / bins
        for chain in range(chains):
            heights, _ = np.histogram(ranks[chain], bins=edges)
            axis.bar(
                edges[:-1],
                0.8 * heights / expected,
                width=np.diff(edges),
                bottom=chain,
                align="edge",
                color=colours(chain % 10),
                alpha=0.8,
            )
            axis.axhline(chain + 0.8, color="black", lw=0.6, ls="--")
        axis.set_title(name, fontsize=9)
        axis.set_yticks(np.arange(chains) + 0.4, [str(chain) for chain in range(chains)])
        axis.set_xticks([])
        axis.set_xlabel("rank", fontsize=8)
        axis.set_ylabel("chain", fontsize=8)
    return figure


def corner(
    posterior: Any,
    params: Sequence[str] | str | None = None,
    *,
    bins: int = 25,
    truths: dict[str, float] | None = None,
) -> Any:
    """Corner (pair) plot: the histogram of each element, and each pair's joint draws.

    **Arguments:**

    - `posterior`, `params`: as in [`scarlet_like.plot.trace`][] (all chains pooled).
    - `bins`: histogram bins.
    - `truths`: `{element name: value}` drawn as lines (e.g. the truth of a simulation, or the fit).

    **Returns:**

    The matplotlib `Figure` with `K (K + 1) / 2` Axes for `K` elements: on the diagonal the
    histogram of each element, its mean as a solid line and its 16 / 84 % quantiles dashed (titled
    `mean ± sd`); below it the 2-D histogram of each pair. Axes share their ranges by column; the
    path all elements share (`sources[2]`) is the figure's title, the rest labels the axes.
    """
    plt = _pyplot()
    chosen = _elements(posterior, params, "corner")
    names = list(chosen)
    pooled = [chosen[name].ravel() for name in names]
    count = len(names)
    # labels without the path all elements share (`sources[2].`), which goes in the figure's title
    shared = os.path.commonprefix(names) if count > 1 else ""
    shared = shared[: shared.rfind(".") + 1]
    labels = [name[len(shared) :] for name in names]
    size = max(1.6, min(2.4, 10.0 / count))
    figure, axes = plt.subplots(count, count, figsize=(size * count, size * count), squeeze=False)
    truths = truths or {}
    limits = []
    for draws in pooled:
        low, high = np.min(draws), np.max(draws)
        pad = 0.05 * (high - low) if high > low else max(abs(low) * 1e-3, 1e-12)
        limits.append((low - pad, high + pad))
    for row in range(count):
        for column in range(count):
            axis = axes[row, column]
            if column > row:
                figure.delaxes(axis)
                continue
            if row == column:
                draws = pooled[row]
                axis.hist(draws, bins=bins, range=limits[row], histtype="bar", rwidth=1.0, color="#4878a8")
                mean, sd = float(np.mean(draws)), float(np.std(draws))
                axis.axvline(mean, color="black", lw=1.0)
                for quantile in np.quantile(draws, [0.16, 0.84]):
                    axis.axvline(quantile, color="black", lw=0.8, ls="--")
                axis.set_title(f"{mean:.4g} ± {sd:.2g}", fontsize=8)
                axis.set_yticks([])
            else:
                axis.hist2d(
                    pooled[column], pooled[row], bins=bins, range=(limits[column], limits[row]), cmap="Blues"
                )
                if names[row] in truths:
                    axis.axhline(truths[names[row]], color="tab:red", lw=0.8)
                axis.set_ylim(limits[row])
            if names[column] in truths:
                axis.axvline(truths[names[column]], color="tab:red", lw=0.8)
            axis.set_xlim(limits[column])
            axis.tick_params(labelsize=7)
            if row == count - 1:
                axis.set_xlabel(labels[column], fontsize=8)
            else:
                axis.set_xticklabels([])
            if column == 0 and row > 0:
                axis.set_ylabel(labels[row], fontsize=8)
            elif row != column:
                axis.set_yticklabels([])
    if shared:
        figure.suptitle(shared.rstrip("."), fontsize=10)
    figure.subplots_adjust(hspace=0.08, wspace=0.08)
    return figure


def predictive(
    posterior: Any,
    observation: Observation,
    *,
    draws: int = 200,
    channel: int | str | None = None,
    channels: Sequence[int | str] | None = None,
    stretch: float | None = None,
    softening: float | None = None,
) -> Any:
    """Posterior-predictive images: data, posterior mean model, residual and spread of the model.

    **Arguments:**

    - `posterior`: a [`scarlet_like.Posterior`][] of a [`scarlet_like.Scene`][].
    - `observation`: the [`scarlet_like.Observation`][] the model is rendered through.
    - `draws`: render at most this many draws, evenly spaced through each chain.
    - `channel`: one channel (index or name) for the residual and spread panels; default all
      usable channels combined.
    - `channels`, `stretch`, `softening`: the colour composites, as in [`scarlet_like.plot.scene`][].

    **Returns:**

    The matplotlib `Figure`, four panels and two colour bars: the data and the mean of the rendered
    model over the draws (colour composites on the same scale); the residual
    `(data - mean model) / sigma`; and the standard deviation of the rendered model over the draws,
    `sd / sigma`: how much the posterior lets the model move, against the noise. With all channels,
    the residual is combined as in [`scarlet_like.plot.scene`][] (`sum / sqrt(n)` over the `n`
    usable channels of a pixel) and the spread as the root mean square over them.
    """

    plt = _pyplot()
    _check_posterior(posterior, "predictive")
    thinned = _thinned(posterior, draws)
    rendered = np.asarray(thinned.map(observation.render), dtype=np.float64)
    rendered = rendered.reshape(-1, *rendered.shape[2:])  # (draw, C, H, W)
    mean = rendered.mean(axis=0)
    spread = rendered.std(axis=0)

    data = np.asarray(observation.data, dtype=np.float64)
    weights = np.asarray(observation.weights, dtype=np.float64)
    masked = weights <= 0
    sigma_inverse = np.sqrt(weights)
    chi = np.where(masked, 0.0, (data - mean) * sigma_inverse)
    relative_spread = np.where(masked, 0.0, spread * sigma_inverse)
    if channel is not None:
        names = list(observation.channels or ())
        if isinstance(channel, str):
            if channel not in names:
                raise ValueError(f"plot.predictive: no channel named {channel!r} among {tuple(names)}")
            channel = names.index(channel)
        if not -data.shape[0] <= int(channel) < data.shape[0]:
            raise ValueError(f"plot.predictive: channel {channel} out of range for {data.shape[0]} channels")
        bad = masked[channel]
        residual_map = np.ma.masked_array(chi[channel], mask=bad)
        spread_map = np.ma.masked_array(relative_spread[channel], mask=bad)
        label = f" ({names[channel] if names else channel})"
    else:
        usable = np.sum(~masked, axis=0)
        bad = usable == 0
        residual_map = np.ma.masked_array(chi.sum(axis=0) / np.sqrt(np.maximum(usable, 1)), mask=bad)
        spread_map = np.ma.masked_array(
            np.sqrt((relative_spread**2).sum(axis=0) / np.maximum(usable, 1)), mask=bad
        )
        label = ""

    mapping = channel_map(data.shape[0], channels, observation.channels)
    stretch, softening = _scale_for(observation, data, mapping, stretch, softening)
    options: _RgbOptions = {
        "stretch": stretch,
        "softening": softening,
        "channels": channels,
        "names": observation.channels,
    }
    height, width = data.shape[1:]
    panel = 3.2
    figure, axes = plt.subplots(
        1, 4, figsize=(4 * panel + 1.2, panel * height / width + 0.6), layout="constrained"
    )
    shown_channels = np.any(mapping > 0, axis=0)
    picture = rgb(data, mask=masked, **options)
    _show(axes[0], _grey_out(picture, np.all(masked[shown_channels], axis=0)), f"data ({observation.name})")
    _show(axes[1], rgb(mean, **options), f"posterior mean model ({rendered.shape[0]} draws)")
    extent = (-0.5, width - 0.5, -0.5, height - 0.5)
    shown = axes[2].imshow(
        residual_map,
        origin="lower",
        interpolation="nearest",
        cmap=plt.get_cmap("RdBu_r").with_extremes(bad=MASKED_GREY),
        vmin=-RESIDUAL_RANGE,
        vmax=RESIDUAL_RANGE,
        extent=extent,
    )
    figure.colorbar(shown, ax=axes[2], shrink=0.85, pad=0.02).set_label("(data − mean) / σ", fontsize=9)
    axes[2].set_title("residual" + label, fontsize=10)
    shown = axes[3].imshow(
        spread_map,
        origin="lower",
        interpolation="nearest",
        cmap=plt.get_cmap("magma").with_extremes(bad=MASKED_GREY),
        vmin=0.0,
        extent=extent,
    )
    figure.colorbar(shown, ax=axes[3], shrink=0.85, pad=0.02).set_label("sd of model / σ", fontsize=9)
    axes[3].set_title("spread of the model" + label, fontsize=10)
    for axis in axes[2:]:
        axis.set_xticks([])
        axis.set_yticks([])
    return figure

"""Figures of scenes and observations (matplotlib).

```python
sl.plot.scene(fitted.model, obs)      # data | model | residual
sl.plot.sources(fitted.model, obs)    # one panel per source
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
from collections.abc import Sequence
from typing import Any

import numpy as np
from jaxtyping import Float

from .astro import measure
from .astro.observation import Observation
from .astro.scene import Scene
from .core.tree import resolve

__all__ = ["scene", "sources", "rgb", "channel_map"]

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
    options = {
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
    options = {
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

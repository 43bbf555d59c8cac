"""Sources and scenes: `with sl.Scene(frame) as scene: sl.Source(...)`."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from typing import Any

import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..core.module import Module
from ..core.parameter import Parameter
from ..core.tree import resolve, walk
from .frame import Frame
from .morphology import Morphology, PointMorphology, _as_parameter
from .render import render

__all__ = ["Scene", "Source", "PointSource", "SceneError"]


class SceneError(ValueError):
    """A source that cannot join a scene; the message names the source."""


# Scenes being built, innermost last. A context variable, not a global: each thread and task sees its
# own stack.
_BUILDING: contextvars.ContextVar[tuple[Scene, ...]] = contextvars.ContextVar(
    "scarlet_like_scenes", default=()
)


def _active_scene(kind: str) -> Scene:
    stack = _BUILDING.get()
    if not stack:
        raise SceneError(
            f"sl.{kind} was created outside any Scene: create sources inside `with sl.Scene(frame) as "
            "scene:` (or re-enter an existing scene with `with scene:`)"
        )
    return stack[-1]


class Source(Module):
    """A source: total flux per channel (`spectrum`) times a unit-flux shape (`morphology`), at `center`.

    **Arguments:**

    - `center`: `(y, x)` in model-frame pixels, or an astropy `SkyCoord` (converted with the frame's
      WCS); a Parameter or a plain value (then fixed).
    - `spectrum`: total flux in each of the frame's channels, `(C,)`.
    - `morphology`: a [`scarlet_like.Morphology`][].

    Must be created inside `with sl.Scene(frame):`, which it joins.
    """

    center: Parameter
    spectrum: Parameter
    morphology: Morphology

    def __init__(self, center: Any, spectrum: ArrayLike | Parameter, morphology: Morphology):
        scene = _active_scene(type(self).__name__)
        if isinstance(center, Parameter):
            self.center = center
        else:
            self.center = _as_parameter(scene.frame.to_pixel(center))
        self.spectrum = _as_parameter(spectrum)
        if not isinstance(morphology, Morphology):
            raise SceneError(
                f"{type(self).__name__}: morphology must be an sl.Morphology, got {type(morphology).__name__}"
            )
        self.morphology = morphology

    def __check_init__(self) -> None:
        stack = _BUILDING.get()
        if stack:
            stack[-1]._add(self)


class PointSource(Source):
    """A point source (a star): the PSF scaled by `spectrum`, at `center`.

    **Arguments:**

    - `center`: `(y, x)` in model-frame pixels, or a `SkyCoord`.
    - `spectrum`: total flux per channel.
    """

    def __init__(self, center: Any, spectrum: ArrayLike | Parameter):
        super().__init__(center, spectrum, PointMorphology())


class Scene(Module):
    """Sources in a model frame: the model of a patch of sky.

    **Arguments:**

    - `frame`: the [`scarlet_like.Frame`][].
    - `sources`: sources to start with (e.g. `other_scene.sources[:3]`).

    Use it as a context manager to add the sources created in the block; enter it again to add more:

    ```python
    with sl.Scene(frame) as scene:
        sl.Source(center, spectrum, morphology)
    ```

    `scene()` is the model cube `(C, H, W)` at the frame's (narrow) model PSF. Pass a scene as the
    model to `obs.log_likelihood(scene)`, `sl.LogDensity(scene, obs)` or `sl.fit(scene, obs)`.
    """

    frame: Frame
    sources: list

    def __init__(self, frame: Frame, sources: Iterable[Source] = ()):
        if not isinstance(frame, Frame):
            raise SceneError(f"Scene: frame must be an sl.Frame, got {type(frame).__name__}")
        self.frame = frame
        self.sources = []
        for source in sources:
            self._add(source)

    def __enter__(self) -> Scene:
        _BUILDING.set((*_BUILDING.get(), self))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        stack = _BUILDING.get()
        _BUILDING.set(stack[:-1])
        # Parameters shared between the new sources get their sharing identity now.
        walk(self)

    def _add(self, source: Source) -> None:
        index = len(self.sources)
        who = f"sources[{index}] ({type(source).__name__})"
        spectrum = source.spectrum.value
        if spectrum is not None and tuple(spectrum.shape) != (self.frame.shape[0],):
            raise SceneError(
                f"{who}: spectrum has shape {tuple(spectrum.shape)}, but the frame has {self.frame.shape[0]} "
                f"channels {self.frame.channels}"
            )
        center = source.center.value
        if center is not None:
            if tuple(center.shape) != (2,):
                raise SceneError(f"{who}: center must be (y, x), got shape {tuple(center.shape)}")
            if not self.frame.contains(np.asarray(center)):
                raise SceneError(
                    f"{who}: centred at (y, x) = {tuple(round(float(v), 2) for v in np.asarray(center))}, "
                    f"outside the model frame of {self.frame.height}x{self.frame.width} pixels (and so "
                    "outside every observation)"
                )
        self.sources.append(source)

    def __call__(self) -> Float[Array, "C H W"]:
        scene = resolve(self)
        return render(scene.sources, scene.frame.grid, tuple(range(scene.frame.shape[0])))

    def __len__(self) -> int:
        return len(self.sources)

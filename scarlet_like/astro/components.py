"""Sources made of several components: `sl.MultiComponentSource(center, [sl.Component(...), ...])`.

A galaxy as a bulge and a disk, or a disk and knots: each component has its own spectrum and
morphology, placed at the source's centre plus an offset (fixed at zero by default, or a free
Parameter with a prior). The source renders, measures and is named as one object: its spectrum is
the sum of its components', and its parameters are named like `sources[0].components[1].spectrum`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import numpy as np

from ..core.derived import Derived
from ..core.module import Module, keep_parameters
from ..core.parameter import Parameter
from ..core.resolve import Resolvable
from .frame import _frame_position
from .morphology import Morphology, ParameterLike, _as_parameter
from .scene import _BUILDING, SceneError, _active_scene, _automatic_box, _current_value, _next_source
from .spectrum import is_time_dependent

__all__ = ["Component", "MultiComponentSource"]


class Component(Module):
    """One component of a [`scarlet_like.MultiComponentSource`][]: a spectrum times a morphology.

    **Arguments:**

    - `spectrum`: total flux of the component in each of the frame's channels, `(C,)`; a Parameter, an
      [`scarlet_like.Derived`][] value or a plain value (fixed).
    - `morphology`: any [`scarlet_like.Morphology`][], a user's own included.
    - `offset`: `(dy, dx)` in model-frame pixels from the source's centre; a plain value (fixed), a
      Parameter (free, with its prior) or a `Derived` value. Default `(0, 0)`: tied to the centre.
    """

    spectrum: Parameter | Resolvable
    morphology: Morphology
    offset: Parameter | Resolvable

    def __init__(
        self,
        spectrum: ParameterLike,
        morphology: Morphology,
        offset: ParameterLike = (0.0, 0.0),
    ):
        if not isinstance(morphology, Morphology):
            raise SceneError(
                f"Component: morphology must be an sl.Morphology, got {type(morphology).__name__}"
            )
        if is_time_dependent(spectrum):
            raise SceneError(
                f"Component: the spectrum ({type(spectrum).__name__}) depends on time, which components do "
                "not support yet; give the time-dependent part a source of its own (sl.Source or "
                "sl.PointSource at the same centre Parameter)"
            )
        self.spectrum = _as_parameter(spectrum)
        self.morphology = morphology
        self.offset = _as_parameter(offset)


def _add(*spectra: Any) -> Any:
    return sum(spectra[1:], spectra[0])


def _total(spectra: list[Any]) -> Any:
    if all(isinstance(spectrum, Parameter) for spectrum in spectra):
        values = [spectrum.value for spectrum in spectra]
        if any(value is None for value in values):
            return spectra[0]  # values unknown (abstract): nothing to sum
        return Parameter(sum(np.asarray(value) for value in values), fixed=True, name="total spectrum")
    if any(isinstance(spectrum, Parameter | Resolvable) for spectrum in spectra):
        return Derived(_add, *spectra, name="total spectrum")  # some derived: their sum, when resolved
    return _add(*spectra)


class MultiComponentSource(Module):
    """A source made of several components, each its own spectrum times morphology.

    **Arguments:**

    - `center`: `(y, x)` in model-frame pixels, or a `SkyCoord`; a Parameter (shared with other
      sources, say), an [`scarlet_like.Derived`][] value or a plain value.
    - `components`: a non-empty sequence of [`scarlet_like.Component`][]s, each drawn at `center` plus
      its `offset`.
    - `box`: as for [`scarlet_like.Source`][]; `"auto"` sizes one box for all the components, from
      the largest of their extents plus their offsets.

    Must be created inside `with sl.Scene(frame):`, which it joins as one source:
    `source.spectrum` (read-only) is the sum of the components' spectra, which `sl.measure.flux` and the
    plots use; parameters are named `sources[i].components[j].spectrum` and so on.
    """

    center: Parameter | Resolvable
    components: list
    box: int | None = eqx.field(static=True)

    def __init__(self, center: Any, components: Sequence[Component], box: int | str | None = "auto"):
        scene = _active_scene(type(self).__name__)
        who = f"{_next_source()} ({type(self).__name__})"
        components = list(components)
        if not components:
            raise SceneError(f"{who}: needs at least one sl.Component, got none")
        channels = scene.frame.shape[0]
        for index, component in enumerate(components):
            if not isinstance(component, Component):
                raise SceneError(
                    f"{who}: components[{index}] must be an sl.Component(spectrum, morphology), got "
                    f"{type(component).__name__}"
                )
            value = _current_value(component.spectrum, who, f"components[{index}].spectrum")
            if value is not None and tuple(value.shape) != (channels,):
                raise SceneError(
                    f"{who}: components[{index}].spectrum has shape {tuple(value.shape)}, but the frame has "
                    f"{channels} channels {scene.frame.channels}: give every component one flux per channel"
                )
            offset = _current_value(component.offset, who, f"components[{index}].offset")
            if offset is not None and tuple(offset.shape) != (2,):
                raise SceneError(
                    f"{who}: components[{index}].offset must be (dy, dx), got shape {tuple(offset.shape)}"
                )
        self.center = (
            center
            if isinstance(center, Parameter | Resolvable)
            else _as_parameter(_frame_position(scene.frame, center, who))
        )
        self.components = components
        if isinstance(box, str) and box == "auto":
            self.box = _automatic_box(_Outline(components), scene.frame, who)
        elif box is None or (isinstance(box, (int, np.integer)) and not isinstance(box, bool) and box > 0):
            self.box = None if box is None else int(box)
        else:
            raise SceneError(f"{who}: box must be 'auto', None or a positive number of pixels, got {box!r}")

    def __check_init__(self) -> None:
        # joins the scene being built in this context, if any (checked against its frame now)
        stack = _BUILDING.get()
        if stack:
            stack[-1].add(self)

    def _reboxed(self, box: int | None) -> MultiComponentSource:
        """This source, made again with another box (inside the `with` block of a scene)."""
        return MultiComponentSource(self.center, self.components, box=box)

    @property
    def morphology(self) -> Morphology:
        """The outline of all the components, for box sizes only (`Scene.rebox`): its `extent` is the
        largest of the components' extents plus their offsets. Rendering uses the components."""
        return _Outline(self.components)

    @property
    @keep_parameters  # Parameters in, a fixed Parameter out; resolved in, an array out
    def spectrum(self) -> Any:
        """The source's total flux per channel: the sum of its components' spectra (read-only)."""
        return _total([component.spectrum for component in self.components])


class _Outline(Morphology):
    """Where the light of several components reaches: for box sizes, not for rendering."""

    components: list

    def fourier(self, ky: Any, kx: Any) -> Any:
        raise NotImplementedError(
            "the light of a MultiComponentSource has one shape per component: render its components"
        )

    def extent(self, level: float) -> float | None:
        radius = 0.0
        for component in self.components:
            extent = component.morphology.extent(level)
            if extent is None or not np.isfinite(extent):
                return None
            reach = float(np.max(np.abs(np.asarray(component.offset, dtype=np.float64))))
            radius = max(radius, float(extent) + reach)
        return radius

"""Sources and scenes: `with sl.Scene(frame) as scene: sl.Source(...)`."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ..core.constraints import NumbersLike
from ..core.derived import DerivedError
from ..core.module import Module, keep_parameters
from ..core.parameter import Parameter, ParameterError, converting, deferred_checks, is_parameter
from ..core.resolve import Resolvable, resolve
from ..core.tree import any_traced, walk
from .frame import Frame, FrameError, _frame_position, _sky_parameter_input
from .morphology import Morphology, PointMorphology, _as_parameter
from .render import render
from .spectrum import is_time_dependent, spectrum_shape, time_dependent_sources

__all__ = ["Scene", "Source", "PointSource", "SceneError"]


class SceneError(ValueError):
    """A source that cannot join a scene; the message names the source."""


@dataclasses.dataclass
class _Gathering:
    """The sources created so far in the `with` block of a scene being built (not part of any model)."""

    scene: Scene
    sources: list[Any]  # sl.Source, sl.MultiComponentSource or a user's own source module
    # modules built in the block leave their parameters' problems to the scene, which names the paths
    deferral: contextlib.AbstractContextManager = dataclasses.field(default_factory=deferred_checks)
    # Parameters made in the block take sky coordinates, and prior widths in arcsec, in the frame's pixels
    conversion: contextlib.AbstractContextManager = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.conversion = converting(functools.partial(_sky_parameter_input, self.scene.frame))

    def add(self, source: Any) -> None:
        index = len(self.scene.sources) + len(self.sources)
        _check_source(self.scene.frame, index, source, where=not _REBUILDING.get())
        self.sources.append(source)


# Scenes being built, innermost last. A context variable, not a global: each thread and task sees its
# own stack.
_BUILDING: contextvars.ContextVar[tuple[_Gathering, ...]] = contextvars.ContextVar(
    "scarlet_like_scenes", default=()
)


# True while a scene is made again from the sources of a fitted one (new boxes, a source added): a
# fit may have moved a faint source's centre off the frame, which the data allow (the source then
# adds nothing), and checking it again would stop the fit that asked for new boxes.
_REBUILDING: contextvars.ContextVar[bool] = contextvars.ContextVar("scarlet_like_rebuilding", default=False)


@contextlib.contextmanager
def _rebuilding() -> Iterator[None]:
    """Sources created in this block keep the centres a fit gave them, inside the frame or not."""
    token = _REBUILDING.set(True)
    try:
        yield
    finally:
        _REBUILDING.reset(token)


def _active_scene(kind: str) -> Scene:
    stack = _BUILDING.get()
    if not stack:
        raise SceneError(
            f"sl.{kind} was created outside any Scene: create sources inside `with sl.Scene(frame) as "
            "scene:` (or, to add sources to an existing scene, `with sl.Scene(frame, "
            "sources=scene.sources) as scene:`)"
        )
    return stack[-1].scene


def _next_source() -> str:
    """`sources[i]`: what the next source created in the scene being built will be called."""
    stack = _BUILDING.get()
    if not stack:
        return "source"
    return f"sources[{len(stack[-1].scene.sources) + len(stack[-1].sources)}]"


def _current_value(node: Any, who: str, place: str) -> np.ndarray | None:
    """The value a field of a source has now: a Parameter's value, an `sl.Derived` computed from the
    current values of its inputs, a plain value as it is. `None` where it is not known here (under a
    JAX transformation, or a Parameter whose value is held in the free part of a partition)."""
    found = jax.tree_util.tree_leaves(node, is_leaf=is_parameter)
    if any(is_parameter(leaf) and leaf.value is None for leaf in found):
        return None
    try:
        value = resolve(node)
    except DerivedError as error:
        raise SceneError(
            f"{who}: {place} cannot be computed from the current values of its inputs ({error}); give "
            "its inputs starting values its function accepts"
        ) from error
    if value is None or any_traced(value):
        return None
    return np.asarray(value)


def _check_source(frame: Frame, index: int, source: Any, where: bool = True) -> None:
    """A named error for a source that does not fit the frame, or whose parameters cannot start
    (`where`: its centre is checked against the frame too). Derived values (`sl.Derived`) are checked
    at what they compute from their inputs' current values."""
    # bad initial values first, by their full path: `sources[2].morphology.r_half: ...`
    walk(source, prefix=f"sources[{index}]")
    who = f"sources[{index}] ({type(source).__name__})"
    if is_time_dependent(source.spectrum):
        _check_time_dependent(frame, who, source.spectrum)
        spectrum = None
    else:
        spectrum = _current_value(source.spectrum, who, "spectrum")
    if spectrum is not None and tuple(spectrum.shape) != (frame.shape[0],):
        raise SceneError(
            f"{who}: spectrum has shape {tuple(spectrum.shape)}, but the frame has {frame.shape[0]} "
            f"channels {frame.channels}"
        )
    center = _current_value(source.center, who, "center")
    if center is not None and where:
        if tuple(center.shape) != (2,):
            raise SceneError(f"{who}: center must be (y, x), got shape {tuple(center.shape)}")
        if not frame.contains(center):
            raise SceneError(
                f"{who}: centred at (y, x) = {tuple(round(float(v), 2) for v in center)}, "
                f"outside the model frame of {frame.height}x{frame.width} pixels (and so "
                "outside every observation)"
            )
    box = getattr(source, "box", None)
    if box is not None and box > max(frame.height, frame.width):
        raise SceneError(
            f"{who}: box={box} is larger than the model frame of {frame.height}x{frame.width} pixels; "
            "use box=None to render the source on the whole frame"
        )
    from .components import MultiComponentSource  # it imports this module

    morphologies = (
        [("morphology", source.morphology)]
        if not isinstance(source, MultiComponentSource)  # a user's own source has a morphology too
        else [(f"components[{i}].morphology", part.morphology) for i, part in enumerate(source.components)]
    )
    for place, morphology in morphologies:
        image = getattr(morphology, "image", None)
        values = None if image is None else _current_value(image, who, f"{place}.image")
        if values is None:
            continue
        problem = (
            f"has shape {values.shape}, not (height, width)"
            if values.ndim != 2
            else f"has {int(np.sum(~np.isfinite(values)))} non-finite values"
            if not np.all(np.isfinite(values))
            else f"has {int(np.sum(values < 0))} negative values"
            if np.any(values < 0)
            else "sums to zero"
            if not values.sum() > 0
            else None
        )
        if problem is not None:
            raise SceneError(
                f"{who}: {place}.image {problem}; a free-form image starts from finite, non-negative "
                "values with a positive sum (sl.init.freeform makes one from a fitted source)"
            )


def _check_time_dependent(frame: Frame, who: str, spectrum: Any) -> None:
    """A named error for a time-dependent spectrum that cannot be called with a time, or whose
    `__call__` does not return one flux per channel of the frame (checked by shapes alone)."""
    kind = type(spectrum).__name__
    try:
        shape = spectrum_shape(spectrum)
    except Exception as error:  # noqa: BLE001 - any failure of the user's method, reported with its cause
        raise SceneError(
            f"{who}: its spectrum ({kind}) depends on time, but calling it with a time failed "
            f"({type(error).__name__}: {error}); `__call__(self, time)` must take the time as a JAX "
            "scalar and compute with jax.numpy (jnp.where, not Python `if`, on the time)"
        ) from error
    if shape is not None and shape != (frame.shape[0],):
        raise SceneError(
            f"{who}: its spectrum ({kind}) returns shape {shape} when called with a time, but the frame "
            f"has {frame.shape[0]} channels {frame.channels}: `__call__(self, time)` must return shape "
            f"({frame.shape[0]},), one flux per channel"
        )


#: Where a source's automatic box ends: where its profile is fainter than this times its brightness at
#: the half-light radius (see `Morphology.extent`).
BOX_LEVEL = 1e-3
#: Frames smaller than this (pixels, shorter side) give no automatic boxes. On such cutouts, the usual
#: blends, boxes save little; without them every blend of a survey has the same structure, which
#: batched fits (`sl.fit_many`) need.
BOX_MIN_FRAME = 128


def box_side(radius: float) -> int:
    """The side of the box holding a radius: the power of two at or above `2 radius + 1`.

    Few sizes, so that sources of one kind in boxes of different sizes still stack into few groups:
    each box size is compiled on its own.
    """
    side = 2 * math.ceil(radius) + 1
    return 1 << (side - 1).bit_length()


def _automatic_box(morphology: Morphology, frame: Frame, who: str = "source") -> int | None:
    """A box from the morphology's current extent, or None where a box cannot pay or is unknown.

    Derived values in the morphology are computed from their inputs' current values; one that cannot
    be is a `SceneError` naming `who` and asking for an explicit box.
    """
    try:
        values = resolve(morphology)
    except DerivedError as error:
        raise SceneError(
            f"{who}: box='auto' sizes the box from the morphology's current extent, which cannot be "
            f"computed ({error}); give the box explicitly (box=<pixels>, or box=None for the whole frame)"
        ) from error
    if any_traced(values):
        return None  # created under a transformation: no concrete size to go by
    radius = values.extent(BOX_LEVEL)
    if radius is None or not math.isfinite(radius):
        return None
    side = box_side(radius)
    shorter = min(frame.height, frame.width)
    # boxes half the frame's size or more cannot be cheaper than the frame itself
    return side if shorter >= BOX_MIN_FRAME and 2 * side <= shorter else None


class Source(Module):
    """A source: total flux per channel (`spectrum`) times a unit-flux shape (`morphology`), at `center`.

    **Arguments:**

    - `center`: `(y, x)` in model-frame pixels, or an astropy `SkyCoord` (converted with the frame's
      WCS); a Parameter, an [`scarlet_like.Derived`][] value, or a plain value (then fixed).
    - `spectrum`: total flux in each of the frame's channels, `(C,)`; a Parameter, a `Derived` value
      or a plain value. Or a spectrum that changes with time: an [`scarlet_like.Module`][] with a
      `__call__(self, time)` method returning the `(C,)` fluxes (a light curve, or a
      [`scarlet_like.PerEpochSpectrum`][]), which each observation calls with its own `time`.
    - `morphology`: a [`scarlet_like.Morphology`][]; its fields take Parameters, `Derived` values and
      plain values too.
    - `box`: side in model-frame pixels of the square that holds the source's light, before the PSF.
      On frames much larger than the box, the source is rendered in a box of its own (this side plus
      the PSF's) and pasted into the image, which costs far less than the whole frame; light beyond
      the box is left out. `"auto"` (default) takes it from the morphology's
      [`extent`][scarlet_like.Morphology.extent] at the starting values (out to 1e-3 of the
      brightness at the half-light radius), rounded up to a power of two, and leaves it out
      (`None`) when it is at least half the frame, or the frame is smaller than `BOX_MIN_FRAME`
      (128) pixels on a side. `None` renders on the whole frame. The box is fixed:
      a source that grows a lot during a fit needs a larger one.

    Must be created inside `with sl.Scene(frame):`, which it joins.

    **Sharing.** One Parameter object passed to several sources (or fields) is one free entry of the
    model, fitted as one: a galaxy and its nucleus at one `center`, one morphology in the sources of
    several epochs. So are the Parameters a `Derived` value is computed from:

    ```python
    host = sl.Parameter(jnp.array([20.0, 20.0]))
    offset = sl.Parameter(jnp.array([1.5, -2.0]))
    with sl.Scene(frame) as scene:
        sl.Source(host, galaxy_spectrum, galaxy_morphology)  # the host galaxy
        sl.PointSource(host, nucleus_spectrum)  # its nucleus, at the same centre
        sl.PointSource(sl.Derived(jnp.add, host, offset), supernova_spectrum)  # a supernova nearby
    ```

    Sharing is decided when the model is built: create the shared Parameters and modules once and
    build the sources with them. `eqx.tree_at` on a built scene keeps copies of one Parameter one
    entry, but an object made anew in each edit (a light curve per epoch) is a new parameter, and a
    value replaced at one spot only is no longer shared with the others.

    Where the scene needs a number when the source is built (its checks, the automatic box), a
    `Derived` is computed from its inputs' current values; one that cannot be is a
    [`scarlet_like.SceneError`][] naming the source and the field.
    """

    center: Parameter | Resolvable
    spectrum: Parameter | Resolvable | Module
    morphology: Morphology
    box: int | None = eqx.field(static=True)

    def __init__(
        self,
        center: Any,
        spectrum: NumbersLike | Parameter | Resolvable | Module,
        morphology: Morphology,
        box: int | str | None = "auto",
    ):
        scene = _active_scene(type(self).__name__)
        # a Parameter, or a value derived from Parameters (sl.Derived), is kept as it is
        if isinstance(center, Parameter | Resolvable):
            self.center = center
        else:
            who = f"{_next_source()} ({type(self).__name__})"
            self.center = _as_parameter(_frame_position(scene.frame, center, who))
        if isinstance(spectrum, Module):
            # a spectrum that changes with time: called by each observation with its time
            if not is_time_dependent(spectrum):
                raise SceneError(
                    f"{type(self).__name__}: the spectrum is a {type(spectrum).__name__}, a module without a "
                    "`__call__(self, time)` method: a spectrum is a (C,) value or Parameter, or a module "
                    "called with each observation's time"
                )
            self.spectrum = spectrum
        else:
            self.spectrum = _as_parameter(spectrum)
        if not isinstance(morphology, Morphology):
            raise SceneError(
                f"{type(self).__name__}: morphology must be an sl.Morphology, got {type(morphology).__name__}"
            )
        self.morphology = morphology
        if isinstance(box, str) and box == "auto":
            self.box = _automatic_box(morphology, scene.frame, f"{_next_source()} ({type(self).__name__})")
        elif box is None or (isinstance(box, (int, np.integer)) and not isinstance(box, bool) and box > 0):
            self.box = None if box is None else int(box)
        else:
            raise SceneError(
                f"{type(self).__name__}: box must be 'auto', None or a positive number of pixels, got {box!r}"
            )

    def __check_init__(self) -> None:
        # joins the scene being built in this context, if any (checked against its frame now)
        stack = _BUILDING.get()
        if stack:
            stack[-1].add(self)

    def _reboxed(self, box: int | None) -> Source:
        """This source, made again with another box (inside the `with` block of a scene)."""
        return dataclasses.replace(self, box=box)


class PointSource(Source):
    """A point source (a star): the PSF scaled by `spectrum`, at `center`.

    **Arguments:**

    - `center`: `(y, x)` in model-frame pixels, or a `SkyCoord`; a Parameter (one shared with a
      galaxy's [`scarlet_like.Source`][] puts the point at the galaxy's centre), a
      [`scarlet_like.Derived`][] value, or a plain value.
    - `spectrum`: total flux per channel; a Parameter, a `Derived` value or a plain value, or a
      module called with each observation's time (a supernova's light curve), as for
      [`scarlet_like.Source`][].
    - `box`: as for [`scarlet_like.Source`][]; automatically a single pixel, so that on large frames
      the star is drawn in a box the size of the PSF.
    """

    def __init__(
        self,
        center: Any,
        spectrum: NumbersLike | Parameter | Resolvable | Module,
        box: int | str | None = "auto",
    ):
        super().__init__(center, spectrum, PointMorphology(), box=box)

    def _reboxed(self, box: int | None) -> PointSource:
        return PointSource(self.center, self.spectrum, box=box)


def _shifts(frame: Frame, shifts: Mapping[str, Any] | None) -> dict[str, Any]:
    """The scene's `shifts` argument as `{observation name: Parameter or derived value}`, checked."""
    if shifts is None:
        return {}
    if not isinstance(shifts, Mapping):
        raise SceneError(
            f"Scene: shifts must be a dict {{observation name: shift}}, got {type(shifts).__name__}"
        )
    out = {}
    for name, shift in shifts.items():
        who = f"Scene: shifts[{name!r}]"
        if not isinstance(name, str):
            raise SceneError(f"{who}: the keys of shifts are observation names, strings")
        if isinstance(shift, Parameter | Resolvable):
            value = _current_value(shift, who, "the shift")
        elif "astropy" in sys.modules and isinstance(shift, sys.modules["astropy.units"].Quantity):
            # a width on the sky: a free shift from zero with that prior, in the frame's pixels
            with converting(functools.partial(_sky_parameter_input, frame)):
                try:
                    shift = Parameter(jnp.zeros(2), prior=shift)
                except (FrameError, ParameterError) as error:
                    raise SceneError(f"{who}: {error}") from error
            value = np.zeros(2)
        else:
            try:
                shift = _as_parameter(shift)
            except ParameterError as error:
                raise SceneError(f"{who}: {error}") from error
            value = np.asarray(shift.value) if isinstance(shift, Parameter) else None
        if value is not None and tuple(np.shape(value)) != (2,):
            raise SceneError(
                f"{who}: a shift is (dy, dx) in model-frame pixels, shape (2,); got shape "
                f"{tuple(np.shape(value))}"
            )
        out[name] = shift
    return out


class Scene(Module):
    """Sources in a model frame: the model of a patch of sky.

    **Arguments:**

    - `frame`: the [`scarlet_like.Frame`][].
    - `sources`: sources to start with (e.g. `other_scene.sources[:3]`).
    - `shifts`: astrometric offsets of observations, `{observation name: shift}`: where that
      observation sees the scene, `(dy, dx)` in model-frame pixels (a source at `q` appears there at
      `q + shift`; for an observation on the frame's grid, its own pixels). A shift is a
      Parameter of shape `(2,)`, fitted with the rest (`sl.Parameter(jnp.zeros(2), prior=...)`); an
      astropy angle `Quantity` (`0.05 * u.arcsec`, or two for RA cos Dec and Dec), which makes a free
      shift starting at zero with that Gaussian prior on the sky, carried into pixels by the frame's
      WCS; or a plain `(2,)` value (a known, fixed shift). Observations named in no key are not
      shifted. The likelihood checks that every key names one of its observations, and only one.

    Use it as a context manager: the sources created in the block join it, and the scene is complete
    when the block ends:

    ```python
    with sl.Scene(frame) as scene:
        sl.Source(center, spectrum, morphology)
    ```

    A scene is built once; to add sources to an existing one, build a new scene from its sources:
    `with sl.Scene(frame, sources=scene.sources) as scene:`.

    `scene()` is the model cube `(C, H, W)` at the frame's (narrow) model PSF; `scene(time=t)` at time
    `t`, for scenes with time-dependent spectra. Pass a scene as the
    model to `obs.log_likelihood(scene)`, `sl.LogDensity(scene, obs)` or `sl.fit(scene, obs)`.
    """

    frame: Frame
    sources: list
    shifts: dict[str, Any]

    def __init__(self, frame: Frame, sources: Iterable[Any] = (), shifts: Mapping[str, Any] | None = None):
        if not isinstance(frame, Frame):
            raise SceneError(f"Scene: frame must be an sl.Frame, got {type(frame).__name__}")
        self.frame = frame
        self.sources = list(sources)
        self.shifts = _shifts(frame, shifts)
        for index, source in enumerate(self.sources):
            _check_source(frame, index, source)
        # Construction goes on in a `with` block, if there is one; a scene that has had its block (or
        # that is a copy made by a pytree operation) cannot take more sources.
        object.__setattr__(self, "_open", True)

    def __enter__(self) -> Scene:
        if not getattr(self, "_open", False):
            raise SceneError(
                f"this scene of {len(self.sources)} sources is already built, and a scene does not "
                "change once built: to add sources, build a new one from its sources, `with "
                "sl.Scene(scene.frame, sources=scene.sources) as scene:`"
            )
        object.__setattr__(self, "_open", False)
        gathering = _Gathering(self, [])
        gathering.deferral.__enter__()
        gathering.conversion.__enter__()
        _BUILDING.set((*_BUILDING.get(), gathering))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        *outer, gathering = _BUILDING.get()
        _BUILDING.set(tuple(outer))
        gathering.conversion.__exit__(*exc_info)
        gathering.deferral.__exit__(*exc_info)
        # the end of construction: the sources created in the block become part of the scene
        object.__setattr__(self, "sources", [*self.sources, *gathering.sources])
        if exc_info[0] is None:
            # the whole scene, now that every path is known (names unique, initial values good)
            walk(self)

    @keep_parameters  # works on the Parameters, not on their values
    def rebox(self) -> Scene:
        """The scene with every source's box sized again from its current values.

        **Returns:**

        A new scene, its sources' `box` set as `box="auto"` would set it now (user-set boxes
        included), everything else unchanged, Parameters and their sharing included. Boxes are
        fixed when sources are created: after a fit in which sources grew (or shrank) a lot, rebox
        and fit again, `sl.fit(fitted.model.rebox(), obs)`.
        """
        with _rebuilding(), Scene(self.frame, shifts=self.shifts) as scene:
            for index, source in enumerate(self.sources):
                source._reboxed(_automatic_box(source.morphology, self.frame, f"sources[{index}]"))
        return scene

    @keep_parameters  # works on the Parameters, not on their values
    def grown(self) -> Scene:
        """The scene with the boxes that its sources have outgrown made larger; itself if none has.

        **Returns:**

        `self` when every source's light still fits its box (as `box="auto"` would size it now); else
        a new scene in which those sources get the larger box, the others keeping theirs (boxes only
        grow, so a fit cannot go back and forth), Parameters and their sharing unchanged.
        [`scarlet_like.fit`][] calls it between stretches (its `adapt="auto"`), so a galaxy that grows
        during a fit keeps all its light and the fit continues from where it was.
        """
        sizes = []
        for index, source in enumerate(self.sources):
            wanted = (
                _automatic_box(source.morphology, self.frame, f"sources[{index}]")
                if source.box is not None
                else None
            )
            sizes.append(source.box if wanted is not None and wanted <= source.box else wanted)
        if all(size == source.box for size, source in zip(sizes, self.sources, strict=True)):
            return self
        with _rebuilding(), Scene(self.frame, shifts=self.shifts) as scene:
            for source, size in zip(self.sources, sizes, strict=True):
                source._reboxed(size)
        return scene

    @keep_parameters
    def adapted(self) -> Scene:
        """What `sl.fit(..., adapt="auto")` calls between stretches: [`grown`][scarlet_like.Scene.grown]."""
        return self.grown()

    def __call__(self, time: Real[ArrayLike, ""] | None = None) -> Float[Array, "C H W"]:
        scene = resolve(self)
        if time is None:
            changing = time_dependent_sources(scene.sources)
            if changing:
                source, kind = changing[0]
                raise SceneError(
                    f"{source} has a spectrum that depends on time ({kind}): render the scene at a "
                    "time, scene(time=t)"
                )
        at = None if time is None else jnp.asarray(time, jnp.float32)
        return render(scene.sources, scene.frame.grid, tuple(range(scene.frame.shape[0])), time=at)

    def __len__(self) -> int:
        return len(self.sources)

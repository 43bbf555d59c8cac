"""Spectra that change with time: light curves of transients, fluxes free per epoch.

A source's `spectrum` is usually a `(C,)` Parameter: its flux in each channel of the frame, the
same in every observation. It may instead be an [`scarlet_like.Module`][] with a `__call__(self,
time)` method returning that `(C,)` spectrum: each observation calls it with its own `time` (see
[`scarlet_like.Observation`][]). A user's light curve, a module with Parameters as fields, plugs in
this way:

```python
class GaussianBurst(sl.Module):
    t0: sl.Parameter
    width: sl.Parameter
    peak: sl.Parameter  # (C,): the flux at maximum in each channel

    def __call__(self, time):
        return self.peak * jnp.exp(-0.5 * ((time - self.t0) / self.width) ** 2)
```

[`scarlet_like.PerEpochSpectrum`][] is the model-free alternative: a flux of its own at each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ..core.module import Module
from ..core.parameter import Parameter, is_parameter
from ..core.plate import Plate, Stacked
from ..core.resolve import Resolvable, resolve

__all__ = ["PerEpochSpectrum", "is_time_dependent", "time_dependent_sources"]


def is_time_dependent(spectrum: Any) -> bool:
    """Whether a source's `spectrum` is a function of time: an `sl.Module` that can be called.

    Parameters, `sl.Derived` values and arrays are static spectra; so is a module that is not callable.
    True both for the module with its Parameters and for the resolved one.
    """
    return isinstance(spectrum, Module) and callable(spectrum)


def time_dependent_sources(sources: Sequence[Any] | Stacked) -> list[tuple[str, str]]:
    """`("sources[i] (Kind)", spectrum's class name)` for every source whose spectrum depends on time,
    in list order.

    Works on a scene's list of sources and on the stacked layout `LogDensity` computes with (where
    like sources are held by a plate), resolved or not.
    """
    if isinstance(sources, Stacked):
        # One look per part, not per source: this runs while a density is traced, and the members of a
        # plate share their structure (and so whether their spectrum is a function of time).
        parts = [part.members if isinstance(part, Plate) else part for part in sources.parts]
        found = [
            (type(node).__name__, type(node.spectrum).__name__)
            if is_time_dependent(getattr(node, "spectrum", None))
            else None
            for node in parts
        ]
        return [
            (f"sources[{index}] ({kinds[0]})", kinds[1])
            for index, (part, _) in enumerate(sources.order)
            if (kinds := found[part]) is not None
        ]
    return [
        (f"sources[{index}] ({type(source).__name__})", type(source.spectrum).__name__)
        for index, source in enumerate(sources)
        if is_time_dependent(getattr(source, "spectrum", None))
    ]


def spectrum_shape(spectrum: Any) -> tuple[int, ...] | None:
    """The shape of what a time-dependent spectrum returns, from its current values (no computation).

    `None` where the values are not known here (a Parameter whose value is held in the free part of a
    partition). Raises `TypeError` (or whatever the module raises) where it cannot be called with a
    traced float32 time: a `__call__` taking no time, or branching on its value in Python.
    """
    if any(
        is_parameter(leaf) and leaf.value is None
        for leaf in jax.tree_util.tree_leaves(spectrum, is_leaf=is_parameter)
    ):
        return None
    out = jax.eval_shape(
        lambda module, time: module(time), resolve(spectrum), jax.ShapeDtypeStruct((), jnp.float32)
    )
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(f"it returned {type(out).__name__}, not an array")
    return tuple(out.shape)


class PerEpochSpectrum(Module):
    """A spectrum free at every epoch: row `i` of `fluxes` is the spectrum at `times[i]`.

    **Arguments:**

    - `times`: `(T,)` the times of the epochs, in the units of the observations' `time`; distinct.
    - `fluxes`: `(T, C)` the flux in each of the frame's channels at each epoch; a Parameter (usually
      without constraint, so that an epoch where the source is not there can come out at zero, as
      forced photometry does), an [`scarlet_like.Derived`][] value or a plain value (fixed).
    - `tolerance`: how far an observation's time may be from the epoch it is matched with, in the
      units of `times`; default `1e-5 * max(1, max |times|)`, a few float32 roundings.

    Called with an observation's `time`, it returns the row whose time is nearest; an observation
    further than `tolerance` from every epoch stops the computation with an error (raised when the
    compiled program runs, by `eqx.error_if`). Give each observation the time of its row:

    ```python
    times = [0.0, 3.0, 7.5]
    transient = sl.PerEpochSpectrum(times, sl.Parameter(jnp.zeros((3, 1))))
    epochs = [sl.Observation(images[i], weights=w[i], psf=psfs[i], time=t) for i, t in enumerate(times)]
    ```

    **Returns** (when called):

    `(C,)`, the fluxes of the matched epoch.
    """

    times: Parameter | Resolvable
    fluxes: Parameter | Resolvable
    tolerance: float = eqx.field(static=True)

    def __init__(
        self,
        times: Real[ArrayLike, " T"] | Sequence[float],
        fluxes: Any,
        tolerance: float | None = None,
    ):
        table = np.asarray(times, dtype=np.float64)
        if table.ndim != 1 or table.size == 0 or not np.all(np.isfinite(table)):
            raise ValueError(
                f"PerEpochSpectrum: times must be a non-empty 1-d array of finite numbers, got {table!r}"
            )
        if tolerance is None:
            tolerance = 1e-5 * max(1.0, float(np.max(np.abs(table))))
        if not tolerance > 0:
            raise ValueError(f"PerEpochSpectrum: tolerance must be positive, got {tolerance!r}")
        ordered = np.sort(table)
        if table.size > 1 and np.min(np.diff(ordered)) <= 2 * tolerance:
            close = int(np.argmin(np.diff(ordered)))
            raise ValueError(
                f"PerEpochSpectrum: the times {ordered[close]} and {ordered[close + 1]} are within twice the "
                f"tolerance ({tolerance:g}) of each other, so an observation could not be told which it "
                "is; give each epoch its own time (or a smaller tolerance)"
            )
        value = (
            fluxes.value
            if isinstance(fluxes, Parameter)
            else None
            if isinstance(fluxes, Resolvable)
            else fluxes
        )
        if value is not None and (np.ndim(value) != 2 or np.shape(value)[0] != table.size):
            raise ValueError(
                f"PerEpochSpectrum: fluxes must be (T, C) with one row for each of the {table.size} times, "
                f"got shape {np.shape(value)}"
            )
        self.times = Parameter(jnp.asarray(table, jnp.float32), fixed=True)
        self.fluxes = fluxes if isinstance(fluxes, Parameter | Resolvable) else Parameter(fluxes, fixed=True)
        self.tolerance = float(tolerance)

    def __call__(self, time: Real[ArrayLike, ""]) -> Float[Array, " C"]:
        times = jnp.asarray(self.times)
        distance = jnp.abs(times - jnp.asarray(time, times.dtype))
        row = jnp.argmin(distance)
        fluxes = jnp.asarray(self.fluxes)[row]
        return eqx.error_if(
            fluxes,
            distance[row] > self.tolerance,
            "PerEpochSpectrum: an observation's time matches none of the epochs' times (within the "
            "tolerance); give it the time of its epoch, or add the epoch to `times`",
        )

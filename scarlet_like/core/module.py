"""`sl.Module`: an Equinox module whose methods see plain arrays instead of Parameters."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx

from .graph import tree
from .parameter import deferring
from .resolve import resolve
from .tree import walk

__all__ = ["Module", "keep_parameters"]

_Function = TypeVar("_Function", bound=Callable[..., Any])
_KEEP = "__scarlet_like_keep_parameters__"
_RESOLVING = "__scarlet_like_resolving__"


def keep_parameters(method: _Function) -> _Function:
    """Mark a method of an [`scarlet_like.Module`][] to receive `self` with its Parameters intact.

    Framework methods that inspect or rebuild the parameter structure use this; model physics should
    not need it.
    """
    setattr(method, _KEEP, True)
    return method


def _resolving(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def with_plain_arrays(self: Any, *args: Any, **kwargs: Any) -> Any:
        return method(resolve(self), *args, **kwargs)

    setattr(with_plain_arrays, _RESOLVING, True)
    return with_plain_arrays


def _wants_resolution(name: str, attribute: Any) -> bool:
    if name != "__call__" and name.startswith("_"):
        return False
    if isinstance(attribute, staticmethod | classmethod):
        return False
    if not callable(attribute) or getattr(attribute, _KEEP, False):
        return False
    return not getattr(attribute, _RESOLVING, False)


class Module(eqx.Module):
    """Base class for models: an `equinox.Module` whose methods see resolved values.

    Declare fields as usual; any field may hold a [`scarlet_like.Parameter`][], a plain value, or
    another module. Inside `__call__`, public methods and properties, `self` is already resolved:
    every Parameter is replaced by its value and every `Derived` by its result, so model code is
    plain JAX:

    ```python
    class LightCurve(sl.Module):
        t0: sl.Parameter
        width: sl.Parameter
        peak: sl.Parameter

        def __call__(self, t):
            return self.peak * jnp.exp(-0.5 * ((t - self.t0) / self.width) ** 2)
    ```

    Private methods (leading underscore, other than `__call__`) and methods decorated with
    [`scarlet_like.keep_parameters`][] receive `self` unchanged.
    """

    def __repr__(self) -> str:
        return tree(self)

    def __check_init__(self) -> None:
        # Two different parameters with one name are caught as soon as a module holds them, and so
        # are bad initial values, named by their path in this module (`LightCurve.width`) unless a
        # builder that knows more of the path takes them (a scene's sources: `sources[2].center`).
        walk(self, check=not deferring(), prefix=type(self).__name__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, attribute in list(vars(cls).items()):
            if isinstance(attribute, property) and attribute.fget is not None:
                if not name.startswith("_") and not getattr(attribute.fget, _KEEP, False):
                    if not getattr(attribute.fget, _RESOLVING, False):
                        setattr(cls, name, property(_resolving(attribute.fget), doc=attribute.__doc__))
            elif _wants_resolution(name, attribute):
                setattr(cls, name, _resolving(attribute))

"""`Derived`: a value computed from other parts of a model, with no free entry of its own."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .resolve import Resolvable, resolve_with

__all__ = ["Derived", "DerivedError", "Meta"]


class DerivedError(ValueError):
    """A derived value could not be computed; the message names it."""


# The derived values being computed in this context, innermost last. A derived function may resolve
# other parts of a model it refers to (a closure over another model, a caskade-style link); if that
# leads back to a value still being computed, the values depend on each other in a cycle.
_COMPUTING: contextvars.ContextVar[tuple[Derived, ...]] = contextvars.ContextVar(
    "scarlet_like_computing", default=()
)


class Derived(Resolvable):
    """A value computed by `fn` from `inputs` each time the model is resolved.

    **Arguments:**

    - `fn`: a function of the resolved inputs (plain arrays, resolved modules).
    - `*inputs`: Parameters, other `Derived` values, whole modules, arrays or any pytree. A module
      passed here that is also used elsewhere in the model keeps its parameters shared.
    - `name`: a display name for graphs and errors (default: the function's name).

    ```python
    def flux_at(curve, time):
        return curve(time)

    curve = LightCurve(t0=..., width=..., peak=...)
    fluxes = [sl.Derived(flux_at, curve, time) for time in (0.0, 5.0, 10.0)]
    ```

    A `Derived` adds no entry to the flat vector; its inputs' parameters are found through it.
    `fn` is static metadata compared by identity: define it once (not a fresh `lambda` per model) for
    models that should share compiled code or be stacked.
    """

    fn: Callable[..., Any] = eqx.field(static=True)
    inputs: tuple[Any, ...]
    name: str | None = eqx.field(static=True)

    def __init__(self, fn: Callable[..., Any], *inputs: Any, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"Derived: the first argument must be a function, got {type(fn).__name__}")
        self.fn = fn
        self.inputs = tuple(inputs)
        self.name = name

    @property
    def label(self) -> str:
        """The display name: `name`, else the function's name."""
        return self.name or str(getattr(self.fn, "__name__", type(self.fn).__name__))

    def resolved(self, values: Mapping[str, Any], path: str) -> Any:
        """`fn` of the resolved inputs; a `DerivedError` naming this value if it fails or loops."""
        computing = _COMPUTING.get()
        if any(self is other for other in computing):
            start = next(i for i, other in enumerate(computing) if other is self)
            chain = " -> ".join(d.label for d in (*computing[start:], self))
            raise DerivedError(f"derived values form a cycle: {chain}")
        reset = _COMPUTING.set((*computing, self))
        try:
            inputs = resolve_with(self.inputs, values)
            try:
                return self.fn(*inputs)
            except DerivedError:
                raise
            except Exception as error:
                shapes = ", ".join(
                    str(jax.tree_util.tree_map(lambda a: tuple(jnp.shape(a)), x)) for x in inputs
                )
                where = f" at '{path}'" if path else ""
                raise DerivedError(
                    f"Derived '{self.label}'{where} failed on its resolved inputs (shapes {shapes}): "
                    f"{type(error).__name__}: {error}"
                ) from error
        finally:
            _COMPUTING.reset(reset)


class _Opaque:
    """Holds an object as static metadata, hashed and compared by identity."""

    __slots__ = ("content",)

    def __init__(self, content: Any):
        self.content = content

    def __hash__(self) -> int:
        return id(self.content)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Opaque) and other.content is self.content


class Meta(eqx.Module):
    """Attach an object to a model without making it part of the model's parameter space.

    The object (a static field, a lookup table, another model used for reference) is invisible to
    `partition`, `ravel`, `resolve` and transformations: its Parameters are neither free nor resolved,
    and its arrays are constants. Access it as `.content`.

    **Arguments:**

    - `content`: anything.
    """

    _held: _Opaque = eqx.field(static=True)

    def __init__(self, content: Any):
        self._held = _Opaque(content)

    @property
    def content(self) -> Any:
        """The attached object, as given."""
        return self._held.content

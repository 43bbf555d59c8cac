"""`HierarchicalPrior`: a prior whose arguments are parameters of the model."""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import Array, PRNGKeyArray

from .constraints import is_distrax
from .priors import DistributionPrior
from .resolve import resolve

__all__ = ["HierarchicalPrior"]


class HierarchicalPrior(DistributionPrior):
    """A prior whose arguments are themselves parameters (or derived values) of the model.

    **Arguments:**

    - `family`: a distribution class or any callable returning a distribution (numpyro, distrax, or
      anything with `log_prob`), e.g. `numpyro.distributions.Normal`.
    - `*args`, `**kwargs`: its arguments: [`scarlet_like.Parameter`][]s, [`scarlet_like.Derived`][]
      values, arrays or numbers.

    Each time the log density is evaluated, the arguments are resolved to their current values and the
    distribution is built from them. Use the same Parameter objects elsewhere in the model (population
    mean and scale as fields of the top-level model, say) and they stay one free parameter each:

    ```python
    mu = sl.Parameter(0.0, prior=nd.Normal(0.0, 5.0))
    tau = sl.Parameter(1.0, constraint=sl.constraints.positive(), prior=nd.HalfCauchy(5.0))
    theta = sl.Parameter(jnp.zeros(8), prior=sl.HierarchicalPrior(nd.Normal, mu, tau))
    ```
    """

    family: Any = eqx.field(static=True)
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __init__(self, family: Any, *args: Any, **kwargs: Any):
        if not callable(family):
            raise TypeError(f"HierarchicalPrior: `family` must be callable, got {type(family).__name__}")
        self.family = family
        self.args = tuple(args)
        self.kwargs = dict(kwargs)

    @property
    def distribution(self) -> Any:
        """The distribution at the arguments' current values."""
        args, kwargs = resolve((self.args, self.kwargs))
        return self.family(*args, **kwargs)

    def sample(self, key: PRNGKeyArray, sample_shape: tuple[int, ...] = ()) -> Array:
        distribution = self.distribution
        if is_distrax(distribution, "Distribution"):
            return distribution.sample(seed=key, sample_shape=sample_shape)
        return distribution.sample(key, sample_shape)

    def __repr__(self) -> str:
        name = getattr(self.family, "__name__", repr(self.family))
        return f"{name}(<{len(self.args) + len(self.kwargs)} linked arguments>)"

"""`LogDensity`: the one log posterior that fitting, sampling and interop all use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from .._programs import stored_eval_shape
from .layout import stacked_lists, unstacked_lists
from .resolve import resolve
from .tree import Unravel, canonical_tokens, entry_names, has_parameters, ravel, walk

__all__ = ["LogDensity", "Likelihood"]


class Likelihood(eqx.Module):
    """A log-likelihood of a resolved model, built from what users pass as `likelihood`.

    Accepted: a callable `resolved_model -> scalar`; an object with a `log_likelihood(model)` method
    (e.g. an observation); or a list/tuple of those (their log-likelihoods add up). Any arrays the
    likelihood holds (data, weights) are pytree leaves, not constants baked into compiled code.

    **Terms evaluated together.** A term's class may define a classmethod
    `log_likelihood_of_many(terms, model)`: given every term of the likelihood that is of that class
    (in the order given) and the resolved model, it returns the sum of their `log_likelihood(model)`
    as one scalar. The likelihood then calls it once per such class instead of each term's own
    method, which lets the class evaluate like terms in one program (observations of one shape
    render as a stack, see [`scarlet_like.Observation`][]) and check them together. Other terms are
    evaluated one by one. The sum is taken over the classes in the order of their first term.
    """

    terms: tuple[Any, ...]

    def __init__(self, likelihood: Any):
        if isinstance(likelihood, Likelihood):
            self.terms = likelihood.terms
            return
        terms = tuple(likelihood) if isinstance(likelihood, Sequence) else (likelihood,)
        if not terms:
            raise TypeError("likelihood: got an empty list")
        for term in terms:
            if not (callable(term) or callable(getattr(term, "log_likelihood", None))):
                raise TypeError(
                    "likelihood must be a callable of the resolved model, an object with a "
                    f"`log_likelihood(model)` method, or a list of those; got {type(term).__name__}"
                )
        self.terms = terms

    def __call__(self, model: PyTree) -> Float[Array, ""]:
        # terms whose class evaluates many at once, gathered by class at the place of the first
        together: dict[Any, list[Any]] = {}
        parts: list[tuple[Any, Any]] = []
        for term in self.terms:
            if callable(getattr(type(term), "log_likelihood_of_many", None)):
                if type(term) not in together:
                    together[type(term)] = []
                    parts.append((type(term), None))
                together[type(term)].append(term)
            else:
                parts.append((None, term))
        values = []
        for kind, term in parts:
            if kind is not None:
                value, who = kind.log_likelihood_of_many(tuple(together[kind]), model), kind.__name__
            else:
                method = getattr(term, "log_likelihood", None)
                value, who = (method(model) if callable(method) else term(model)), type(term).__name__
            value = jnp.asarray(value)
            if value.shape != ():
                raise ValueError(
                    f"the likelihood must return a scalar log-likelihood, got shape {value.shape} from {who}"
                )
            values.append(value)
        # `terms` is never empty; added in order, as the terms were given
        return sum(values[1:], start=values[0])


class LogDensity(eqx.Module):
    """Log posterior of a model, as a function of its flat unconstrained vector.

    `density(x) = likelihood(resolved model) + sum of log priors at the constrained values
    + sum of log|det J| of the constraints` (the last term can be left out for MAP fitting).

    **Arguments:**

    - `model`: any pytree holding [`scarlet_like.Parameter`][]s.
    - `likelihood`: a callable of the resolved model returning a scalar, an object with a
      `log_likelihood(model)` method (an observation), or a list of those.
    - `jacobian`: include the constraints' log|det J|. Keep it for sampling (it makes the density of
      the unconstrained vector the correct change of variables); MAP fitting in constrained space
      leaves it out.

    **Attributes:**

    - `x0`: the model's current flat unconstrained vector.
    - `names`: one readable name per entry of `x` (`sources[0].center[1]`).
    - `unravel`: maps `x` back to the model in the layout the density computes with.

    A `LogDensity` is a pytree; `jax.jit(density)`, `jax.grad(density)` and `jax.vmap(density)` work,
    and a jitted density traces once for any number of calls with new `x`.

    **Layout.** The density computes with every list of like sub-models (the sources of a scene)
    stacked into a plate (see `scarlet_like.core.layout`), so that its compiled program, and the
    time to compile it, do not grow with their number. Entries of `x` follow that layout: the
    centres of all like sources, then their spectra, and so on; `names` says which is which, and
    `model(x)` gives the model back as it was written.
    """

    unravel: Unravel
    likelihood: Likelihood
    x0: Float[Array, " n"]
    names: tuple[str, ...] = eqx.field(static=True)
    jacobian: bool = eqx.field(static=True)

    def __init__(self, model: PyTree, likelihood: Any, *, jacobian: bool = True):
        model = stacked_lists(model)
        self.x0, self.unravel = ravel(model)
        self.likelihood = Likelihood(likelihood)
        self.names = entry_names(model)
        self.jacobian = bool(jacobian)
        # on numbered identities: the same check for a model built again the same way, in any process
        out = stored_eval_shape(_log_likelihood_at, canonical_tokens(self)[0], self.x0)
        if out.shape != ():
            raise ValueError(f"the likelihood must return a scalar, got shape {out.shape}")

    # Hashed by identity so that `jax.jit(density)` works (its fields hold arrays).
    __hash__ = object.__hash__

    @property
    def size(self) -> int:
        """Number of entries of the flat vector."""
        return self.unravel.size

    def model(self, x: Float[Array, " n"]) -> PyTree:
        """The model (with Parameters) at `x`, in the layout it was written in (lists as lists)."""
        return unstacked_lists(self.unravel(x))

    def log_likelihood(self, x: Float[Array, " n"]) -> Float[Array, ""]:
        """The likelihood term alone."""
        return self.likelihood(resolve(self.unravel(x)))

    def log_prior(self, x: Float[Array, " n"]) -> Float[Array, ""]:
        """Sum of the log priors at the constrained values: of the free parameters, plus of fixed
        parameters whose prior depends on other parameters (observed nodes of a hierarchy)."""
        return _sum(self._prior_terms(self.unravel(x)).values(), x)

    def log_jacobian(self, x: Float[Array, " n"]) -> Float[Array, ""]:
        """Sum of the constraints' log|det J| at `x` (included in `__call__` iff `jacobian`)."""
        return _sum(self._jacobian_terms(x).values(), x)

    def terms(self, x: Float[Array, " n"]) -> dict[str, Float[Array, ""]]:
        """Every term of the density at `x`, by name: for finding which one is not finite.

        **Returns:**

        `{"likelihood": ..., "prior: <name>": ..., "jacobian: <name>": ...}`.
        """
        model = self.unravel(x)
        out = {"likelihood": self.likelihood(resolve(model))}
        out.update({f"prior: {k}": v for k, v in self._prior_terms(model).items()})
        if self.jacobian:
            out.update({f"jacobian: {k}": v for k, v in self._jacobian_terms(x).items()})
        return out

    def __call__(self, x: Float[Array, " n"]) -> Float[Array, ""]:
        model = self.unravel(x)
        total = self.likelihood(resolve(model)) + _sum(self._prior_terms(model).values(), x)
        if self.jacobian:
            total = total + self.log_jacobian(x)
        return total

    def at_bounds(self, x: Float[Array, " n"]) -> Bool[Array, " n"]:
        """Which entries of `x` have run to a bound of their parameter's constraint, measured from
        `x0` (see [`scarlet_like.constraints.Constraint.at_bound`][]): one flag per entry. Entries
        whose prior expects values at a bound (`Prior.expects_values_at_bound`) are never flagged."""
        start = self.unravel.free(self.x0)
        return self._flags(x, lambda constraint, name, value: constraint.at_bound(value, start[name]))

    def flat_at_bounds(self, x: Float[Array, " n"]) -> Bool[Array, " n"]:
        """Which entries of `x` sit where their constraint's map has flattened against a bound (see
        [`scarlet_like.constraints.Constraint.flat_at_bound`][]), so that no gradient brings them
        back: one flag per entry, never for entries whose prior expects values at a bound. One-sided
        bounds are measured from `x0`."""
        start = self.unravel.free(self.x0)
        return self._flags(x, lambda constraint, name, value: constraint.flat_at_bound(value, start[name]))

    def _flags(self, x: Float[Array, " n"], flag: Any) -> Bool[Array, " n"]:
        """`flag(constraint, name, unconstrained value)` of each free parameter, flattened as `x`."""
        free = self.unravel.free(x)
        constraints = self._constraints()
        expected = {
            group.name
            for group in walk(self.unravel.rest).groups
            if group.free and getattr(group.parameter.prior, "expects_values_at_bound", False)
        }
        flags = [
            jnp.zeros(free[name].size, bool)
            if name in expected
            else flag(constraints[name], name, free[name]).reshape(-1)
            for name in self.unravel.names
        ]
        return jnp.concatenate(flags) if flags else jnp.zeros((0,), bool)

    def _constraints(self) -> dict[str, Any]:
        """The constraint of each free parameter, by name."""
        return {
            group.name: group.parameter.constraint for group in walk(self.unravel.rest).groups if group.free
        }

    def _prior_terms(self, model: PyTree) -> dict[str, Array]:
        # Free parameters' priors, plus those of fixed parameters whose prior depends on other
        # parameters (observed nodes of a hierarchical model); plain fixed priors are constants.
        return {
            group.name: group.log_prior()
            for group in walk(model).groups
            if group.parameter.prior is not None and (group.free or has_parameters(group.parameter.prior))
        }

    def _jacobian_terms(self, x: Float[Array, " n"]) -> dict[str, Array]:
        free = self.unravel.free(x)
        constraints = self._constraints()
        return {name: constraints[name].log_abs_det_jacobian(value) for name, value in free.items()}


def _log_likelihood_at(density: LogDensity, x: Array) -> Array:
    return density.log_likelihood(x)


def _sum(values: Any, like: Array) -> Array:
    total = jnp.zeros((), dtype=like.dtype)
    for value in values:
        total = total + value
    return total

"""`sl.laplace`: a Gaussian approximation of the posterior at its mode.

Which Gaussian. The mode is that of the posterior of the *constrained* parameters (what `sl.fit`
finds: the density without the constraints' log|det J|). Around it the log density is expanded to
second order in the *unconstrained* coordinates `u`, with the same MAP density. At the mode its
gradient vanishes, so the Hessian in `u` is `J^T H J` (`H` the Hessian in the constrained values,
`J = d forward / du`), and the Gaussian in `u` is the usual constrained-space Laplace approximation
carried through the constraints to first order. The standard deviations reported per parameter are
that Gaussian's, mapped back by the delta method: the covariance of a constrained value is
`J Σ_u J^T` (elementwise constraints: `sd = |d forward / du| sd_u`). Draws from
[`scarlet_like.Laplace.sample`][] are Gaussian in `u` and so always respect the constraints.

When a parameter's posterior is far from Gaussian (a flux measured at a few sigma, a width near
zero), prefer [`scarlet_like.sample`][]; the Laplace widths are then only indicative.
"""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..core import LogDensity, Unravel, canonical_tokens, walk
from .compiled_code import release_if_near_limit
from .fit_loop import require_free_parameters
from .optimize import FitWarning
from .optimize import fit as fit_mode

__all__ = ["Laplace", "laplace"]


class Laplace(eqx.Module):
    """A Gaussian approximation of the posterior, from [`scarlet_like.laplace`][] (a pytree).

    **Fields:**

    - `mode`: the model at the posterior mode.
    - `x`: the mode as a flat unconstrained vector.
    - `covariance`: `(n, n)` covariance of the Gaussian in the unconstrained coordinates.
    - `std`: `{name: array shaped like the value}` standard deviations of the constrained values (delta
      method), for every free parameter (names as in [`scarlet_like.get_values`][]).
    - `unravel`: maps a flat vector to a model.
    - `names`: names of the entries of `x` (as `LogDensity.names`).
    """

    mode: PyTree
    x: Float[Array, " n"]
    covariance: Float[Array, "n n"]
    std: dict[str, Array]
    unravel: Unravel
    names: tuple[str, ...] = eqx.field(static=True)

    def sample(self, key: PRNGKeyArray, n: int, *, flat: bool = False) -> PyTree:
        """Draw from the Gaussian.

        **Arguments:**

        - `key`: a JAX random key.
        - `n`: number of draws.
        - `flat`: return the `(n, size)` flat unconstrained draws instead of models.

        **Returns:**

        One model holding all the draws: every array of it has a leading axis of length `n`
        (`sl.get_values(draws)` gives `{name: (n, *shape)}`; `jax.tree.map(lambda a: a[i], draws)` is the
        i-th model). Or the flat draws.
        """
        draws = _gaussian_draws(self.x, self.covariance, key, n)
        return draws if flat else jax.vmap(self.unravel)(draws)


def _gaussian_draws(mean: Array, covariance: Array, key: PRNGKeyArray, n: int) -> Array:
    # eigh rather than Cholesky: it also copes with covariances that are singular to rounding
    eigenvalues, vectors = jnp.linalg.eigh(covariance)
    root = vectors * jnp.sqrt(jnp.clip(eigenvalues, 0.0))[None, :]
    normal = jax.random.normal(key, (n, mean.shape[0]), mean.dtype)
    return mean[None, :] + normal @ root.T


@eqx.filter_jit
def _hessian(density: LogDensity) -> Array:
    return jax.hessian(density)(density.x0)


@eqx.filter_jit
def _constrained_std(unravel: Unravel, x: Array, covariance: Array) -> dict[str, Array]:
    """Delta method, one parameter at a time: `J Σ J^T` with `J` the Jacobian of its constraint."""
    constraints = {
        group.name: group.parameter.constraint for group in walk(unravel.rest).groups if group.free
    }
    std = {}
    start = 0
    for name, u in unravel.free(x).items():
        constraint, size = constraints[name], u.size
        block = covariance[start : start + size, start : start + size]
        forward = lambda flat, c=constraint, shape=u.shape: c.forward(flat.reshape(shape)).ravel()  # noqa: E731
        jacobian = jax.jacfwd(forward)(u.ravel())
        variance = jnp.einsum("ij,jk,ik->i", jacobian, block, jacobian)
        std[name] = jnp.sqrt(jnp.clip(variance, 0.0)).reshape(constraint.constrained_shape(u.shape))
        start += size
    return std


def _split_std(unravel: Unravel, std: dict[str, Array]) -> dict[str, Array]:
    """Per free parameter as the model is written (a stacked list's elements apart), in flat order."""
    out: dict[str, Array] = {}
    for group in walk(unravel.rest).groups:
        if group.free:
            out.update(group.entries(std[group.name]))
    return out


def _covariance(precision: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Inverse of a precision matrix that must be positive definite; else a `ValueError` naming the
    entries along the directions that are not curved downwards."""
    if not np.all(np.isfinite(precision)):
        bad = [name for name, row in zip(names, precision, strict=True) if not np.all(np.isfinite(row))]
        raise FloatingPointError(f"laplace: the Hessian is not finite for {', '.join(bad)}")
    # Judged scale-free, on the matrix with a unit diagonal: fluxes over many decades make the Hessian
    # ill-conditioned without making it any less definite.
    diagonal = np.diag(precision)
    positive = diagonal > 0
    scale = 1.0 / np.sqrt(np.where(positive, diagonal, 1.0))
    eigenvalues, vectors = np.linalg.eigh(precision * scale[:, None] * scale[None, :])
    flat = eigenvalues <= 1e-6
    if flat.any() or not positive.all():
        weight = np.abs(vectors[:, flat]).max(axis=1) if flat.any() else np.zeros(len(names))
        bad = [name for name, w, p in zip(names, weight, positive, strict=True) if w > 0.3 or not p]
        raise ValueError(
            "laplace: the log posterior is not curved downwards at the mode along directions made of "
            f"{', '.join(bad)} (not a mode, or left flat by the data and priors: give them a prior)"
        )
    return (vectors / eigenvalues) @ vectors.T * scale[:, None] * scale[None, :]


def laplace(model: PyTree, likelihood: Any, *, fit: bool = True) -> Laplace:
    """Laplace approximation: a Gaussian at the posterior mode, with the curvature there.

    **Arguments:**

    - `model`: any model with free [`scarlet_like.Parameter`][]s.
    - `likelihood`: an Observation, a list of them, or a callable of the resolved model.
    - `fit`: first find the mode with [`scarlet_like.fit`][] (without a progress bar). With
      `fit=False`, `model` is taken to be at the mode already (e.g. `fitted.model`).

    **Returns:**

    A [`scarlet_like.Laplace`][]. The Gaussian lives in the unconstrained coordinates, at the mode of
    the posterior of the constrained parameters, with the Hessian of the MAP density (no log|det J|);
    see the module documentation for why, and for the delta-method standard deviations in `std`.

    Raises `ValueError` naming the model's type when it has no free parameters, and naming the entries
    along which the log posterior is not curved downwards (not a mode, or a direction the data and
    priors leave flat). Warns when the fit did not converge. Ctrl-C during the fit raises
    `KeyboardInterrupt`: there is no Gaussian to return before the mode is found.
    """
    require_free_parameters(LogDensity(model, likelihood, jacobian=False), "laplace", model)
    release_if_near_limit("laplace", model)
    if fit:
        with warnings.catch_warnings():
            # an interrupted fit warns that it returns its best point; here there is nothing to return
            warnings.filterwarnings("ignore", "fit was interrupted", FitWarning)
            result = fit_mode(model, likelihood, progress=False)
        if bool(result.interrupted):
            # Ctrl-C while a scene's fit adapted its boxes: a Gaussian away from the mode is no answer
            raise KeyboardInterrupt("laplace: interrupted while fitting the mode")
        nonfinite = np.asarray(result.nonfinite)
        if nonfinite.any():
            names = LogDensity(model, likelihood, jacobian=False).names
            bad = [name for name, flag in zip(names, nonfinite, strict=True) if flag]
            raise FloatingPointError(f"laplace: the fit hit non-finite values for {', '.join(bad)}")
        if not bool(result.converged):
            warnings.warn(
                f"laplace: the fit did not converge in {int(result.steps)} steps; the Gaussian may not be "
                "centred at the mode",
                RuntimeWarning,
                stacklevel=2,
            )
        model = result.model
    density = LogDensity(model, likelihood, jacobian=False)
    hessian = np.asarray(_hessian(canonical_tokens(density)[0]), np.float64)
    covariance = jnp.asarray(_covariance(-0.5 * (hessian + hessian.T), density.names), density.x0.dtype)
    std = _constrained_std(canonical_tokens(density.unravel)[0], density.x0, covariance)
    return Laplace(
        mode=model,
        x=density.x0,
        covariance=covariance,
        # in flat-vector order (a dict coming out of `jit` has its keys sorted)
        std=_split_std(density.unravel, std),
        unravel=density.unravel,
        names=density.names,
    )

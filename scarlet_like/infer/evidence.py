"""Model comparison: the Laplace evidence and the BIC of a fitted model.

```python
fitted = sl.fit(model, likelihood)
score = sl.evidence(fitted.model, likelihood, n_data=len(y))
score.log_evidence, score.bic          # compare with another model's: larger evidence, smaller BIC wins
```

Both work on any model and likelihood that [`scarlet_like.LogDensity`][] takes; nothing here knows
about astronomy.

**Laplace evidence.** The log posterior is expanded to second order at its mode `θ*` (the mode of the
constrained values, what `sl.fit` finds), and the Gaussian integrated:

`log Z ≈ log L(θ*) + log π(θ*) + n/2 log 2π − ½ log det H_θ`,

`H_θ` the Hessian of `−log L − log π` in the constrained values, `n` the number of free entries.
[`scarlet_like.laplace`][] gives the Hessian in the unconstrained coordinates `u`, `H_u = Jᵀ H_θ J`
at the mode (`J = dθ/du`), so `−½ log det H_θ = −½ log det H_u + log|det J|`: the log density with the
constraints' Jacobian (`LogDensity(..., jacobian=True)`) plus `½ log det` of the Laplace covariance.
Exact for a model linear in its parameters with a Gaussian likelihood and prior (tested against the
closed form). Its value depends on the priors' normalisation: compare models whose parameters all
have proper priors, or whose improper ones (flat, no prior) are common to all of them; `improper`
lists the free parameters without a prior.

**BIC.** `−2 log L(θ*) + k ln N`, `k` the free entries, `N` the number of data values (`n_data`):
the large-sample limit of `−2 log Z` that forgets the priors. It needs only the fit, and so also
works where the Hessian does not (a parameter at a bound, a direction the data leave flat).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import PyTree

from ..core.density import LogDensity
from ..core.tree import walk
from .laplace import laplace
from .sample import score_only_parameters

__all__ = ["Evidence", "evidence", "bic"]


class Evidence(NamedTuple):
    """What [`scarlet_like.evidence`][] found about a fitted model.

    **Fields:**

    - `log_likelihood`: `log L` at the model's values.
    - `log_prior`: `log π` there (sum over the parameters with a prior).
    - `log_evidence`: the Laplace approximation of `log Z` (NaN when the Hessian is not negative
      definite there; `error` says why).
    - `bic`: `−2 log L + k ln N` (NaN without `n_data`).
    - `n_free`: `k`, the free entries.
    - `n_data`: `N`, or `None`.
    - `improper`: names of the free parameters without a prior (flat).
    - `error`: why `log_evidence` is NaN, else `None`.
    """

    log_likelihood: float
    log_prior: float
    log_evidence: float
    bic: float
    n_free: int
    n_data: int | None
    improper: tuple[str, ...]
    error: str | None


def bic(log_likelihood: float, n_free: int, n_data: int) -> float:
    """The Bayesian information criterion `−2 log L + k ln N` (smaller is better).

    **Arguments:**

    - `log_likelihood`: the maximum log likelihood (normalised or not, alike for the models compared).
    - `n_free`: `k`, the number of free entries.
    - `n_data`: `N`, the number of data values.
    """
    if n_data <= 0:
        raise ValueError(f"bic: n_data must be a positive number of data values, got {n_data}")
    return -2.0 * float(log_likelihood) + int(n_free) * math.log(int(n_data))


def evidence(model: PyTree, likelihood: Any, *, n_data: int | None = None, hessian: bool = True) -> Evidence:
    """The Laplace evidence and the BIC of a model at its posterior mode.

    **Arguments:**

    - `model`: a model at its MAP values (e.g. `sl.fit(...).model`); the evidence is only meaningful
      there.
    - `likelihood`: what `sl.fit` takes: an Observation, a list of them, or a callable of the
      resolved model returning `log L`.
    - `n_data`: the number of data values, for the BIC.
    - `hessian`: compute the Laplace evidence (one Hessian of the log density: `n` forward-over-
      reverse passes). With `False`, only the BIC and the terms at the mode.

    **Returns:**

    An [`scarlet_like.Evidence`][]; see the module documentation for the formulas.
    When [`scarlet_like.laplace`][] finds the log posterior not curved downwards (not a mode, or a
    direction left flat), `log_evidence` is NaN and `error` holds its message, so that candidates
    can still be compared by BIC.
    """
    score_only = score_only_parameters(model)
    if score_only:
        raise ValueError(
            f"evidence: the prior of {', '.join(score_only)} is a score (sl.ScorePrior), whose log density's "
            "value, and so the evidence, is unknown; use a prior with a log density (sl.FlowPrior)"
        )
    density = LogDensity(model, likelihood, jacobian=True)
    x = density.x0
    log_likelihood = float(density.log_likelihood(x))
    log_prior = float(density.log_prior(x))
    n_free = int(density.size)
    improper = tuple(
        group.name for group in walk(model).groups if group.free and group.parameter.prior is None
    )
    score = bic(log_likelihood, n_free, n_data) if n_data is not None else math.nan
    log_evidence, error = math.nan, None
    if hessian and n_free > 0:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                approximation = laplace(model, likelihood, fit=False)
        except (ValueError, FloatingPointError) as problem:
            error = str(problem)
        else:
            covariance = np.asarray(approximation.covariance, np.float64)
            sign, log_det = np.linalg.slogdet(0.5 * (covariance + covariance.T))
            if sign > 0:
                log_evidence = float(density(x)) + 0.5 * n_free * math.log(2 * math.pi) + 0.5 * log_det
            else:
                error = "the Laplace covariance is not positive definite"
    elif n_free == 0:
        log_evidence = log_likelihood + log_prior
    return Evidence(
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        log_evidence=log_evidence,
        bic=score,
        n_free=n_free,
        n_data=n_data,
        improper=improper,
        error=error,
    )

"""The inference layer: fitting and sampling any model through `sl.LogDensity`.

Nothing here knows about astronomy.
"""

from .batch import fit_many
from .evidence import Evidence, bic, evidence
from .laplace import Laplace, laplace
from .optimize import FitResult, fit, preconditioner
from .sample import ImproperPriorWarning, Posterior, sample
from .simulate import sample_prior

__all__ = [
    "Evidence",
    "bic",
    "evidence",
    "FitResult",
    "ImproperPriorWarning",
    "Laplace",
    "Posterior",
    "fit",
    "fit_many",
    "laplace",
    "preconditioner",
    "sample",
    "sample_prior",
]

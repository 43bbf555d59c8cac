"""The inference layer: fitting and sampling any model through `sl.LogDensity`.

Nothing here knows about astronomy.
"""

from .batch import fit_many
from .evidence import Evidence, bic, evidence
from .fit_loop import FitLoop, FitResult, FitState, default_optimizer, preconditioner, run
from .laplace import Laplace, laplace
from .line_search import wolfe_line_search
from .optimize import FitWarning, Starts, fit, fit_starts, fit_warnings
from .sample import ImproperPriorWarning, Posterior, sample
from .simulate import sample_prior

__all__ = [
    "Evidence",
    "bic",
    "evidence",
    "FitLoop",
    "FitResult",
    "FitState",
    "FitWarning",
    "ImproperPriorWarning",
    "Laplace",
    "Posterior",
    "Starts",
    "fit",
    "default_optimizer",
    "fit_many",
    "fit_starts",
    "fit_warnings",
    "laplace",
    "preconditioner",
    "run",
    "sample",
    "sample_prior",
    "wolfe_line_search",
]

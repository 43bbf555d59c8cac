"""The inference layer: fitting and sampling any model through `sl.LogDensity`.

Nothing here knows about astronomy.
"""

from .optimize import FitResult, fit, preconditioner

__all__ = ["FitResult", "fit", "preconditioner"]

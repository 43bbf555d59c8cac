"""The core layer: parameters, constraints, priors, modules, and the flat-vector view of a model.

Nothing here knows about astronomy.
"""

from . import constraints
from .constraints import Constraint, as_constraint
from .density import Likelihood, LogDensity
from .derived import Derived, DerivedError, Meta
from .module import Module, keep_parameters
from .parameter import Parameter, ParameterError, is_parameter
from .plate import Plate, PlateError, stack, unstack
from .priors import HierarchicalPrior, Prior, as_prior
from .serialization import load, save
from .tree import (
    combine,
    entry_names,
    fix,
    free,
    get_values,
    parameters,
    partition,
    ravel,
    resolve,
    set_values,
)

__all__ = [
    "Constraint",
    "Derived",
    "DerivedError",
    "HierarchicalPrior",
    "Meta",
    "Plate",
    "PlateError",
    "Likelihood",
    "LogDensity",
    "Module",
    "Parameter",
    "ParameterError",
    "Prior",
    "as_constraint",
    "as_prior",
    "combine",
    "constraints",
    "entry_names",
    "fix",
    "free",
    "get_values",
    "is_parameter",
    "keep_parameters",
    "load",
    "parameters",
    "partition",
    "ravel",
    "resolve",
    "save",
    "set_values",
    "stack",
    "unstack",
]

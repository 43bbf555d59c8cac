"""scarlet_like: differentiable forward models with priors and constraints, in JAX.

The public API is re-exported here: `import scarlet_like as sl`.
"""

from importlib.metadata import PackageNotFoundError, version

from .astro import datasets
from .core import (
    Constraint,
    Derived,
    DerivedError,
    HierarchicalPrior,
    Likelihood,
    LogDensity,
    Meta,
    Module,
    Parameter,
    ParameterError,
    Plate,
    PlateError,
    Prior,
    combine,
    constraints,
    entry_names,
    fix,
    free,
    get_values,
    is_parameter,
    load,
    parameters,
    partition,
    ravel,
    resolve,
    save,
    set_values,
    stack,
    unstack,
)
from .core.graph import graph, tree

try:
    __version__ = version("scarlet_like")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
    "__version__",
    "combine",
    "constraints",
    "datasets",
    "entry_names",
    "fix",
    "free",
    "get_values",
    "graph",
    "is_parameter",
    "load",
    "parameters",
    "partition",
    "ravel",
    "resolve",
    "save",
    "set_values",
    "stack",
    "tree",
    "unstack",
]

"""The core layer: parameters, constraints, priors, modules, and the flat-vector view of a model.

Nothing here knows about astronomy. Modules import one way, each only from those above it in this
list: `constraints`; `priors`; `networks`; `parameter`; `resolve`; `derived`; `hierarchical`; `plate`; `tree`;
`stacking`; `layout`; `graph`; `module`; `density`; `serialization`.
"""

from . import constraints, priors
from .constraints import Constraint, as_constraint
from .density import Likelihood, LogDensity
from .derived import Derived, DerivedError, Meta
from .hierarchical import HierarchicalPrior
from .layout import stacked_lists, unstacked_lists
from .module import Module, keep_parameters
from .networks import FlowPrior, NetworkPrior, ScorePrior, has_log_density
from .parameter import Parameter, ParameterError, is_parameter
from .plate import Plate, PlateError, Stacked, member_axes
from .priors import Prior, SumPrior, as_prior
from .serialization import load, save
from .stacking import stack, unstack
from .tree import (
    Group,
    Path,
    PlateAxis,
    Unravel,
    Walk,
    canonical_tokens,
    combine,
    entry_names,
    fix,
    free,
    get_values,
    has_parameters,
    parameters,
    partition,
    ravel,
    rename_tokens,
    resolve,
    set_values,
    walk,
)

__all__ = [
    "Constraint",
    "Derived",
    "DerivedError",
    "Group",
    "HierarchicalPrior",
    "FlowPrior",
    "NetworkPrior",
    "ScorePrior",
    "has_log_density",
    "Likelihood",
    "LogDensity",
    "Meta",
    "Module",
    "Parameter",
    "ParameterError",
    "Path",
    "Plate",
    "PlateAxis",
    "PlateError",
    "Prior",
    "SumPrior",
    "Stacked",
    "Unravel",
    "Walk",
    "as_constraint",
    "as_prior",
    "canonical_tokens",
    "combine",
    "constraints",
    "priors",
    "entry_names",
    "fix",
    "free",
    "get_values",
    "has_parameters",
    "is_parameter",
    "keep_parameters",
    "load",
    "member_axes",
    "parameters",
    "partition",
    "ravel",
    "rename_tokens",
    "resolve",
    "save",
    "set_values",
    "stack",
    "stacked_lists",
    "unstack",
    "unstacked_lists",
    "walk",
]

"""skmoe: scikit-learn compatible mixtures of (P)ReLU MLP experts."""

from ._estimators import MoEClassifier, MoERegressor
from ._theory import count_parameters, param_grid_for_budget, vc_dimension_bound

__version__ = "0.1.0"

__all__ = [
    "MoEClassifier",
    "MoERegressor",
    "__version__",
    "count_parameters",
    "param_grid_for_budget",
    "vc_dimension_bound",
]

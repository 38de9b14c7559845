"""skmoe: scikit-learn compatible mixtures of (P)ReLU MLP experts."""

import os

# MKL's strict reproducibility mode makes CPU matrix products, hence fitted
# models, independent of the number of threads (so of n_jobs). MKL reads this
# before its first matrix product; a value the user set is kept.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from ._dask import predict_dask
from ._estimators import MoEClassifier, MoERegressor
from ._persistence import InconsistentVersionWarning, load
from ._search import search_space
from ._torch.state import ModelFileError
from ._theory import count_parameters, param_grid_for_budget, vc_dimension_bound

__version__ = "0.1.0"

__all__ = [
    "MoEClassifier",
    "MoERegressor",
    "InconsistentVersionWarning",
    "ModelFileError",
    "__version__",
    "count_parameters",
    "load",
    "param_grid_for_budget",
    "predict_dask",
    "search_space",
    "vc_dimension_bound",
]

"""skmoe: scikit-learn compatible mixtures of (P)ReLU MLP experts."""

import os

# What importing skmoe changes in the process: one environment variable, and
# only when it is unset. MKL's strict reproducibility mode makes CPU matrix
# products, hence fitted models, independent of the number of threads (so of
# n_jobs). MKL reads it before its first matrix product, which is why this
# happens at import rather than at the first fit. Nothing else is changed:
# torch's threads, seeds and defaults are left as they are
# (docs/architecture.md, "What importing skmoe changes").
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from ._dask import predict_dask
from ._estimators import MoEClassifier, MoERegressor
from ._loading import load
from ._onnx import register_skl2onnx, to_onnx
from ._search import search_space
from ._theory import count_parameters, param_grid_for_budget, vc_dimension_bound
from ._version import __version__
from .exceptions import InconsistentVersionWarning, ModelFileError

#: The types a skops file (or an MLflow model saved with skops) of a fitted
#: skmoe estimator holds beyond skops' own trusted ones: the estimators
#: themselves. Their fitted state is plain Python values and NumPy arrays.
#: ``skops.io.load(path, trusted=skmoe.TRUSTED_TYPES)``;
#: ``mlflow.sklearn.log_model(model, name=..., skops_trusted_types=skmoe.TRUSTED_TYPES)``.
TRUSTED_TYPES = ["skmoe.MoEClassifier", "skmoe.MoERegressor"]

__all__ = [
    "MoEClassifier",
    "MoERegressor",
    "InconsistentVersionWarning",
    "ModelFileError",
    "TRUSTED_TYPES",
    "__version__",
    "count_parameters",
    "load",
    "param_grid_for_budget",
    "predict_dask",
    "register_skl2onnx",
    "search_space",
    "to_onnx",
    "vc_dimension_bound",
]

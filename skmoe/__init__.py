"""skmoe: scikit-learn compatible mixtures of (P)ReLU MLP experts."""

from ._estimators import MoEClassifier, MoERegressor

__version__ = "0.1.0"

__all__ = ["MoEClassifier", "MoERegressor", "__version__"]

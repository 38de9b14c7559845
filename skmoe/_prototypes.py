"""Prototypes of the Voronoi router: weighted k-means in the preprocessed space."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning


def fit_prototypes(
    Z: np.ndarray, w: np.ndarray, n_experts: int, seed: int
) -> np.ndarray:
    """Centres of ``n_experts`` Voronoi cells fitted by weighted k-means.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Preprocessed training rows.
    w : ndarray of shape (n_samples,)
        Sample weights.
    n_experts : int
    seed : int

    Returns
    -------
    ndarray of shape (n_experts, n_features), float32
    """
    if n_experts == 1:
        return (w @ Z / w.sum())[None, :].astype(np.float32)
    kmeans = KMeans(n_clusters=n_experts, n_init=1, random_state=seed)
    with warnings.catch_warnings():
        # Fewer distinct rows than cells leaves duplicate centres: those experts
        # simply receive no rows, which expert_usage_ reports.
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans.fit(Z, sample_weight=w)
    return kmeans.cluster_centers_.astype(np.float32)

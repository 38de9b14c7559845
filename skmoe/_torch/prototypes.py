"""Prototypes of the Voronoi router and the tree that searches them.

Both are fitted in the preprocessed space with scikit-learn's k-means.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from .device import limit_threads
from .routing import nearest_prototype_numpy

# The prototypes are fitted on at most max(_KMEANS_MIN_SAMPLE,
# _KMEANS_ROWS_PER_CELL * n_experts) training rows.
_KMEANS_MIN_SAMPLE = 10_000
_KMEANS_ROWS_PER_CELL = 50


def _kmeans(Z: np.ndarray, w: np.ndarray, n_clusters: int, seed: int) -> KMeans:
    kmeans = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed)
    # One OpenMP thread: k-means sums its centres thread by thread, so their
    # last bits followed the thread count (n_threads, or the fewer threads of
    # a GridSearchCV worker). On at most a 10,000-row sample it costs little.
    with warnings.catch_warnings(), limit_threads(1):
        # Fewer distinct points than clusters leaves duplicate centres: those
        # cells simply receive no rows, which expert_usage_ reports.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return kmeans.fit(Z, sample_weight=w)


def fit_prototypes(Z: np.ndarray, w: np.ndarray, n_experts: int, seed: int) -> np.ndarray:
    """Centres of ``n_experts`` Voronoi cells fitted by weighted k-means.

    Large tables are sampled uniformly down to ``max(10_000, 50 * n_experts)``
    rows first (keeping their weights).

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
    # k-means on a uniform sample (weights kept): measured as accurate on the
    # California and adult tables and 20-25% faster to fit at 8 experts; at
    # 64 experts on 100k rows k-means had taken 28% of the fit.
    size = max(_KMEANS_MIN_SAMPLE, _KMEANS_ROWS_PER_CELL * n_experts)
    if len(Z) > size:
        rows = np.random.default_rng(seed).choice(len(Z), size, replace=False)
        Z, w = Z[rows], w[rows]
    return _kmeans(Z, w, n_experts, seed).cluster_centers_.astype(np.float32)


def split_cell(Z: np.ndarray, w: np.ndarray, seed: int) -> np.ndarray:
    """Two prototypes that split one cell's rows ``Z`` (2-means), shape (2, d)."""
    if len(np.unique(Z, axis=0)) < 2:  # nothing to split: two copies of the centre
        return np.repeat(fit_prototypes(Z, w, 1, seed), 2, axis=0)
    return _kmeans(Z, w, 2, seed).cluster_centers_.astype(np.float32)


def fit_routing_tree(
    prototypes: np.ndarray, Z: np.ndarray, w: np.ndarray, seed: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A two-level search tree over ``prototypes``.

    The prototypes are grouped by k-means (weighted by the training weight of
    their cells) into about ``sqrt(n_prototypes)`` groups. A row descends to
    the group of its nearest group centre, then to the nearest prototype among
    that group's members. The members of a group are its own prototypes plus
    the exact nearest prototype of every training row that descends into it,
    so the tree routes every training row exactly as an exhaustive search
    would; new rows near a group boundary can differ.

    Parameters
    ----------
    prototypes : ndarray of shape (n_prototypes, d)
    Z : ndarray of shape (n_samples, d)
        Training rows, used to weight the grouping and to add members.
    w : ndarray of shape (n_samples,)
    seed : int

    Returns
    -------
    centres : ndarray of shape (n_groups, d), float32
    members : list of n_groups int64 arrays of prototype indices
    """
    n_prototypes = len(prototypes)
    nearest = nearest_prototype_numpy(Z, prototypes)
    mass = np.bincount(nearest, weights=w, minlength=n_prototypes)
    n_groups = int(np.clip(round(np.sqrt(n_prototypes)), 1, n_prototypes))
    # A little mass for empty cells, so that every prototype belongs to a group.
    grouping = _kmeans(prototypes, mass + 1e-3 * max(mass.max(), 1.0), n_groups, seed)
    centres = grouping.cluster_centers_.astype(np.float32)
    group_of_row = nearest_prototype_numpy(Z, centres)
    members = [
        np.union1d(np.flatnonzero(grouping.labels_ == g), nearest[group_of_row == g])
        for g in range(n_groups)
    ]
    # Groups that neither own a prototype nor receive a row are dropped.
    keep = [g for g in range(n_groups) if len(members[g])]
    return centres[keep], [members[g].astype(np.int64) for g in keep]

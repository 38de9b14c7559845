"""Plots of a fitted mixture: expert usage, training history, routed rows.

Needs matplotlib (``pip install "skmoe[plot]"``); it is imported only when a
plot is drawn. Every function draws on ``ax`` (a new figure when ``None``)
and returns the axes.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._torch import api as engine

__all__ = ["plot_expert_usage", "plot_routing_2d", "plot_training_history"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "skmoe.plotting needs matplotlib, an optional dependency: "
            'pip install "skmoe[plot]" (or pip install matplotlib).'
        ) from exc
    return plt


def _check_fitted(model) -> None:
    """matplotlib is there and ``model`` is fitted: checked before any work."""
    _pyplot()
    check_is_fitted(model, "network_")


def _axes(ax):
    if ax is None:
        # Constrained layout keeps a twin axis' label and an outside legend in the figure.
        _, ax = _pyplot().subplots(layout="constrained")
    return ax


def plot_expert_usage(model, X=None, *, ax=None):
    """Bar chart of each expert's share of rows.

    Parameters
    ----------
    model : fitted MoERegressor or MoEClassifier
    X : array-like, default=None
        Rows to route; without it, the training shares (``expert_usage_``).
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
    """
    _check_fitted(model)
    share = model.routing_report(X)["share"].to_numpy()
    ax = _axes(ax)
    from matplotlib.ticker import MaxNLocator

    ax.bar(np.arange(len(share)), share, color="tab:blue")
    ax.axhline(1.0 / len(share), color="grey", linestyle="--", linewidth=1, label="balanced")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # experts are whole numbers
    ax.set_xlabel("expert")
    ax.set_ylabel("share of rows")
    dead = int((share == 0).sum())
    ax.set_title(f"Expert usage ({len(share)} experts, {dead} unused)")
    ax.legend()
    return ax


def plot_training_history(model, *, ax=None):
    """Training and validation loss per epoch, with routing health.

    The loss curves are on the left axis; the coefficient of variation of the
    expert load (0 when balanced) on the right. The shared and specialisation
    phases are separated by a vertical line.

    Parameters
    ----------
    model : fitted MoERegressor or MoEClassifier
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
        The loss axes; the load axes is its ``twinx``.
    """
    _pyplot()
    check_is_fitted(model, "history_")
    h = model.history_
    epochs = np.arange(len(h["train_loss"]))
    ax = _axes(ax)
    ax.plot(epochs, h["train_loss"], label="train loss", color="tab:blue")
    val = np.asarray(h["validation_loss"], dtype=float)
    if np.isfinite(val).any():
        ax.plot(epochs, val, label="validation loss", color="tab:orange")
    starts = [i for i in range(1, len(epochs)) if h["phase"][i] != h["phase"][i - 1]]
    for start in starts:
        ax.axvline(start - 0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    load_ax = ax.twinx()
    load_ax.plot(epochs, h["load_cv"], color="tab:green", linestyle="--", label="load CV")
    load_ax.set_ylabel("load coefficient of variation")
    lines = ax.get_legend_handles_labels()
    more = load_ax.get_legend_handles_labels()
    # Below the axes: inside, the legend would hide part of a curve.
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    ax.set_title("Training history")
    return ax


def plot_routing_2d(model, X, *, max_rows: int = 5_000, random_state=0, ax=None):
    """Rows in the plane of the first two principal components, coloured by expert.

    The projection is a PCA of the rows as the network sees them (after the
    estimator's encoding), so the cells of the routing appear as they are;
    prototypes are drawn as black crosses with Voronoi routing.

    Parameters
    ----------
    model : fitted MoERegressor or MoEClassifier
    X : array-like of shape (n_samples, n_features)
    max_rows : int, default=5000
        Rows drawn at most (a random subset beyond).
    random_state : int, default=0
        Seed of the subset and of the PCA.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
    """
    from sklearn.decomposition import PCA

    _check_fitted(model)
    experts = model._route(X)[0][:, 0]  # each row's first expert
    Z = model._encoded(X)
    rng = np.random.default_rng(random_state)
    rows = rng.permutation(len(Z))[:max_rows]
    pca = PCA(n_components=2, random_state=random_state).fit(Z[rows])
    P = pca.transform(Z[rows])
    ax = _axes(ax)
    ax.scatter(P[:, 0], P[:, 1], c=experts[rows], cmap="tab20", s=4, alpha=0.7)
    prototypes = engine.prototypes(model.network_)
    if prototypes is not None:
        C = pca.transform(prototypes)
        ax.scatter(C[:, 0], C[:, 1], marker="x", color="black", s=30, label="prototypes")
        ax.legend()
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(f"Routing of {len(rows)} rows over {model.n_experts_} experts")
    return ax

"""A search space for users who tune skmoe's hyperparameters.

The values are the ones the accuracy suite (``benchmarks/accuracy.py``)
showed to matter in opposite directions on different tables: what helps one
table hurts another, so these are worth a cross-validated choice, while the
rest of the defaults did not gain from changing.
"""

from __future__ import annotations

from scipy.stats import loguniform

# Each entry: the values of a modest grid and a distribution (or list) for a
# randomized search. The defaults are always among the grid values.
_SPACE = {
    # With ensemble experts 4 (the default) led on five tables, 8 on bank and
    # ames; with single-MLP experts 2 led on three small tables.
    "n_experts": ([4, 8], [1, 2, 4, 8, 16]),
    # With averaged weights 2e-3 fits faster than 1e-3 at the same accuracy;
    # 1e-3 (the earlier default) stays a candidate.
    "learning_rate": ([1e-3, 2e-3], loguniform(3e-4, 1e-2)),
    # 64 bins (the default) led on california, adult, credit and telco; 32 on
    # loan_grade and bikeshare, at about 0.7x the fit time (docs/benchmarks.md).
    "numeric_bins": ([32, 64], [0, 8, 16, 32, 64]),
    # Narrower experts regularise small tables.
    "expert_width": ([128, 256], [64, 128, 256, 512]),
}
_RANDOM_ONLY = {
    # More members cost arithmetic per row; one is a plain MLP expert.
    "expert_members": [1, 4, 8, 16],
    "expert_depth": [1, 2, 3],
    "weight_decay": loguniform(1e-5, 1e-1),
    "batch_size": ["auto", 64, 128, 512],
}


def search_space(kind: str = "grid", *, prefix: str = "") -> dict:
    """Hyperparameters worth tuning, for :class:`~sklearn.model_selection.GridSearchCV`
    or :class:`~sklearn.model_selection.RandomizedSearchCV`.

    Parameters
    ----------
    kind : {"grid", "random"}, default="grid"
        ``"grid"``: a ``param_grid`` of 16 candidates (2 values each of
        ``n_experts``, ``learning_rate``, ``numeric_bins`` and
        ``expert_width``, the defaults among them), for a grid search of
        modest size: with 3-fold cross-validation, 48 fits. ``"random"``:
        ``param_distributions`` for a randomized search over those
        parameters and also ``expert_members``, ``expert_depth``,
        ``weight_decay`` and ``batch_size``; continuous parameters are drawn
        log-uniformly.
    prefix : str, default=""
        Put before every name, for an estimator inside a
        :class:`~sklearn.pipeline.Pipeline`: ``prefix="moe__"`` for a step
        named ``"moe"``.

    Returns
    -------
    dict
        Parameter name to a list of values (grid) or to a list or a
        ``scipy.stats`` distribution (random). The same for
        :class:`~skmoe.MoERegressor` and :class:`~skmoe.MoEClassifier`.

    Notes
    -----
    The parameters were chosen on the accuracy suite of
    ``docs/benchmarks.md``: each of them helped some tables and hurt others
    when changed from its default, so no single value is best everywhere.
    Training-length parameters (``max_epochs``, ``n_iter_no_change``) are
    left out because early stopping already chooses the length per fit.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skmoe import MoERegressor, search_space
    >>> grid = search_space()
    >>> sorted(grid)
    ['expert_width', 'learning_rate', 'n_experts', 'numeric_bins']
    >>> search = GridSearchCV(MoERegressor(random_state=0), grid, cv=3)
    >>> search_space(prefix="moe__")["moe__n_experts"]
    [4, 8]
    """
    if kind == "grid":
        space = {name: grid for name, (grid, _) in _SPACE.items()}
    elif kind == "random":
        space = {name: dist for name, (_, dist) in _SPACE.items()} | _RANDOM_ONLY
    else:
        raise ValueError(f"kind must be 'grid' or 'random', got {kind!r}.")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}.")
    # Fresh lists, so that editing the result cannot change the next call's.
    return {prefix + name: list(v) if isinstance(v, list) else v for name, v in space.items()}

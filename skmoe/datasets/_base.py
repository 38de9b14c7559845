"""Loaders for the datasets shipped inside the package."""

from __future__ import annotations

from importlib import resources

import pandas as pd


def load_california_housing(*, numeric_only: bool = False) -> tuple[pd.DataFrame, pd.Series]:
    """The California housing table (1990 census block groups, 20,640 rows).

    The copy of Géron's ``housing.csv`` (StatLib; Pace and Barry, 1997): eight
    numeric columns, 207 missing values in ``total_bedrooms``, the categorical
    ``ocean_proximity``, and the target ``median_house_value`` in dollars
    (capped at 500,001).

    Parameters
    ----------
    numeric_only : bool, default=False
        Keep only the numeric columns and drop the rows with a missing value.

    Returns
    -------
    X : pandas.DataFrame of shape (n_samples, n_features)
    y : pandas.Series of shape (n_samples,)
        ``median_house_value``.

    Examples
    --------
    >>> from skmoe.datasets import load_california_housing
    >>> X, y = load_california_housing(numeric_only=True)
    >>> X.shape
    (20433, 8)
    """
    path = resources.files("skmoe.datasets") / "data" / "california_housing.csv.gz"
    with resources.as_file(path) as file:
        frame = pd.read_csv(file)
    if numeric_only:
        frame = frame.select_dtypes("number").dropna().reset_index(drop=True)
    y = frame.pop("median_house_value")
    return frame, y

"""Raw business tables: categorical columns, missing values, odd dtypes."""

import numpy as np
import pandas as pd
import pytest

from skmoe import MoEClassifier, MoERegressor
from skmoe._preprocessing import NumericEncoder

FAST = dict(n_experts=2, expert_width=32, max_epochs=30, random_state=0)


def make_table(n=600, seed=0):
    rng = np.random.RandomState(seed)
    city = rng.choice(["paris", "rome", "oslo", "lima"], size=n)
    effect = pd.Series(city).map({"paris": 2.0, "rome": -1.0, "oslo": 0.5, "lima": -2.0})
    age = rng.uniform(18, 80, size=n)
    income = np.exp(rng.normal(10, 1, size=n))
    y = effect.to_numpy() + 0.05 * age + rng.normal(scale=0.3, size=n)
    X = pd.DataFrame({"city": city, "age": age, "income": income})
    return X, y


def test_categorical_column_is_detected_and_used():
    X, y = make_table()
    model = MoERegressor(**FAST).fit(X, y)
    np.testing.assert_array_equal(model.schema_.is_categorical_, [True, False, False])
    np.testing.assert_array_equal(model.schema_.levels_[0], ["lima", "oslo", "paris", "rome"])
    assert model.score(X, y) > 0.9
    numeric_only = MoERegressor(**FAST).fit(X[["age", "income"]], y)
    assert model.score(X, y) > numeric_only.score(X[["age", "income"]], y) + 0.3


def test_unseen_category_at_predict_does_not_crash():
    X, y = make_table()
    model = MoERegressor(**FAST).fit(X, y)
    X_new = X.head(5).copy()
    X_new["city"] = ["tokyo", "paris", None, "berlin", "rome"]
    pred = model.predict(X_new)
    assert np.isfinite(pred).all()


def test_all_missing_column_and_missing_numbers():
    X, y = make_table()
    X["empty"] = np.nan
    X.loc[::7, "age"] = np.nan
    model = MoERegressor(**FAST).fit(X, y)
    assert model.encoder_.numeric_.has_missing_.tolist() == [True, False, True]
    assert np.isfinite(model.predict(X)).all()
    assert model.score(X, y) > 0.8


def test_category_with_one_level():
    X, y = make_table()
    X["country"] = "fr"
    model = MoERegressor(**FAST).fit(X, y)
    assert np.isfinite(model.predict(X)).all()


def test_nullable_dtypes_and_missing_markers():
    X, y = make_table()
    X["age"] = X["age"].round().astype("Int64")
    X.loc[::5, "age"] = pd.NA
    X["income"] = X["income"].astype("Float64")
    X["member"] = pd.array([True, False, None] * 200, dtype="boolean")
    X["city"] = X["city"].astype("string")
    X.loc[::11, "city"] = pd.NA
    X["segment"] = pd.Series(["a", None, "b"] * 200, dtype=object)
    X["tier"] = pd.Categorical(["gold", "silver", "gold"] * 200)
    model = MoERegressor(**FAST).fit(X, y)
    np.testing.assert_array_equal(
        model.schema_.is_categorical_, [True, False, False, True, True, True]
    )
    assert np.isfinite(model.predict(X)).all()
    assert model.score(X, y) > 0.8


def test_high_cardinality_column_with_5000_levels():
    rng = np.random.RandomState(0)
    n = 24_000
    # Every store four times in training, test rows from random stores.
    ids = np.concatenate([rng.permutation(np.arange(20_000) % 5000), rng.randint(0, 5000, 4000)])
    X = pd.DataFrame({"store": [f"s{i}" for i in ids], "x": rng.normal(size=n)})
    y = X["x"].to_numpy() + (ids % 2) + rng.normal(scale=0.1, size=n)
    X_tr, X_te, y_tr, y_te = X[:20_000], X[20_000:], y[:20_000], y[20_000:]
    model = MoERegressor(**{**FAST, "max_epochs": 5}).fit(X_tr, y_tr)
    assert len(model.schema_.levels_[0]) == 5000
    # The cap keeps the encoding small: no level is frequent enough for a slot
    # of its own, so the column becomes "other" plus one target-encoded column
    # that still tells the 5,000 levels apart.
    assert model.encoder_.categorical_.n_outputs == 2
    assert model.encoder_.categorical_.target_columns_ == [0]
    # The odd/even store effect (a fifth of the variance) is learnt only
    # through the target encoding: without it R2 could not exceed 0.80.
    assert model.score(X_te, y_te) > 0.85


def test_reordered_and_extra_columns_are_matched_by_name():
    X, y = make_table()
    model = MoERegressor(**FAST).fit(X, y)
    expected = model.predict(X)
    np.testing.assert_array_equal(model.predict(X[["income", "city", "age"]]), expected)
    with pytest.warns(UserWarning, match="not seen during fit.*'bonus'"):
        extra = model.predict(X.assign(bonus=1.0))
    np.testing.assert_array_equal(extra, expected)


def test_missing_columns_are_named_in_the_error():
    X, y = make_table()
    model = MoERegressor(**FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"missing columns seen during fit: \['age'\]"):
        model.predict(X.drop(columns="age"))


def test_only_categorical_columns():
    X, _ = make_table()
    X = X[["city"]].assign(size=np.where(np.arange(len(X)) % 3, "big", "small"))
    labels = np.where(X["city"].isin(["paris", "oslo"]), "north", "south")
    model = MoEClassifier(**FAST).fit(X, labels)
    assert model.score(X, labels) == 1.0


def test_numpy_input_with_categorical_indices():
    X, y = make_table()
    array = X.to_numpy(dtype=object)
    model = MoERegressor(categorical_features=[0], **FAST).fit(array, y)
    assert model.schema_.is_categorical_.tolist() == [True, False, False]
    frame_model = MoERegressor(**FAST).fit(X, y)
    np.testing.assert_allclose(model.predict(array), frame_model.predict(X))


@pytest.mark.parametrize("spec", [["city"], [0], [True, False, False]])
def test_categorical_features_by_name_index_or_mask(spec):
    X, y = make_table()
    X["city"] = X["city"].map({"paris": 1, "rome": 2, "oslo": 3, "lima": 4})
    model = MoERegressor(categorical_features=spec, **FAST).fit(X, y)
    assert model.schema_.is_categorical_.tolist() == [True, False, False]
    none = MoERegressor(categorical_features=None, **FAST).fit(X, y)
    assert not none.schema_.is_categorical_.any()


@pytest.mark.parametrize(
    "spec, message",
    [(["town"], "'town', which is not a column"), ([7], "index 7 is out of range"), ([True], "boolean mask")],
)
def test_bad_categorical_features_are_named(spec, message):
    X, y = make_table()
    with pytest.raises(ValueError, match=message):
        MoERegressor(categorical_features=spec, **FAST).fit(X, y)


def test_datetime_and_timedelta_columns_get_a_clear_error():
    X, y = make_table()
    X["signup"] = pd.date_range("2020-01-01", periods=len(X), freq="D")
    with pytest.raises(TypeError, match="'signup' has datetime dtype.*dt.year"):
        MoERegressor(**FAST).fit(X, y)
    X = X.drop(columns="signup").assign(tenure=pd.to_timedelta(np.arange(len(X)), unit="D"))
    with pytest.raises(TypeError, match="'tenure' has timedelta dtype.*total_seconds"):
        MoERegressor(**FAST).fit(X, y)


def test_free_text_column_gets_a_clear_error():
    rng = np.random.RandomState(0)
    n = 3000
    X = pd.DataFrame({"comment": [f"note {i} {rng.rand():.6f}" for i in range(n)], "x": rng.rand(n)})
    with pytest.raises(ValueError, match="'comment' has 3000 distinct values.*free text"):
        MoERegressor(**FAST).fit(X, rng.rand(n))


def test_numeric_column_of_mixed_strings_is_named():
    X, y = make_table()
    X["age"] = X["age"].astype(object)
    X.loc[3, "age"] = "unknown"
    X = X.astype({"age": object})
    with pytest.raises(ValueError, match="age"):
        MoERegressor(categorical_features=["city"], **FAST).fit(X, y)


def test_infinity_is_rejected_with_the_column_name():
    X, y = make_table()
    X.loc[2, "income"] = np.inf
    with pytest.raises(ValueError, match="infinity.*'income'"):
        MoERegressor(**FAST).fit(X, y)


def test_voronoi_routing_works_on_mixed_tables():
    X, y = make_table(n=1200)
    model = MoERegressor(**{**FAST, "n_experts": 4}).fit(X, y)
    used = np.bincount(model.apply(X), minlength=4)
    assert (used > 0).sum() >= 2
    prototypes = model.network_.router.prototypes
    assert prototypes.shape[1] == model.encoder_.n_outputs


def test_quantile_view_matches_interpolation_with_ties():
    """The batched quantile view equals the average of the forward and
    backward linear interpolations of the stored quantiles (the tie rule)."""
    from scipy.special import ndtri

    rng = np.random.default_rng(0)
    n = 20_000
    X = np.c_[
        rng.normal(size=n), rng.integers(0, 5, n), rng.poisson(0.3, n), np.ones(n), rng.choice([0, 1e6], n)
    ]
    enc = NumericEncoder().fit(X, np.ones(n))
    new = np.r_[X[:3000], 10 * rng.normal(size=(300, 5)), X[:10] + 0.5]
    expected = np.empty_like(new)
    for j in range(new.shape[1]):
        q, levels = enc.quantiles_[:, j], enc.levels_
        up = np.interp(new[:, j], q, levels)
        down = -np.interp(-new[:, j], -q[::-1], -levels[::-1])
        expected[:, j] = ndtri(np.clip(0.5 * (up + down), 1e-7, 1 - 1e-7))
    np.testing.assert_allclose(enc._quantile_normal(new), expected, rtol=0, atol=1e-12)


def test_piecewise_linear_view_fills_quantile_bins():
    """Each value fills the bins below it, part of its own bin (linearly) and
    none above; tied edges are steps; values outside the training range are
    clipped to [0, 1]."""
    rng = np.random.default_rng(0)
    n, bins = 5_000, 8
    X = np.c_[rng.exponential(size=n), rng.integers(0, 3, n), np.ones(n)]
    enc = NumericEncoder(bins).fit(X, np.ones(n))
    edges = enc.bin_edges()
    assert edges.shape == (bins + 1, 3)
    np.testing.assert_allclose(edges[[0, -1], 0], [X[:, 0].min(), X[:, 0].max()])
    new = np.r_[X[:500], [[-5.0, -1.0, 0.0], [1e6, 9.0, 2.0]]]
    Z = enc.transform(new)
    assert Z.shape == (len(new), enc.n_outputs) == (len(new), (2 + bins) * 3)
    fill = Z[:, 6:].reshape(len(new), 3, bins)  # after the robust and quantile views
    assert fill.min() >= 0.0 and fill.max() <= 1.0
    # Column 0 (continuous): recover the value from its fills.
    lo, hi = edges[:-1, 0], edges[1:, 0]
    inside = (new[:, 0] >= lo[0]) & (new[:, 0] <= hi[-1])
    recovered = lo[0] + fill[:, 0] @ (hi - lo)
    np.testing.assert_allclose(recovered[inside], new[inside, 0], rtol=1e-12)
    # Fills are ordered: a later bin is only entered once the earlier are full.
    assert (np.diff(fill[:, 0], axis=1) <= 1e-12).all()
    np.testing.assert_array_equal(fill[-2, 0], 0.0)  # below the range
    np.testing.assert_array_equal(fill[-1, 0], 1.0)  # far above it
    # Column 1 has three levels, so most bins are single points: 0/1 steps.
    assert set(np.unique(fill[:-2, 1])) <= {0.0, 1.0}
    # A constant column is all steps at its value.
    np.testing.assert_array_equal(fill[:-2, 2], 1.0)
    np.testing.assert_array_equal(fill[-2, 2], 0.0)


def test_heavy_values_end_one_bin_and_leave_the_rest_to_the_other_values():
    """A value holding more than one bin's share of the rows (zeros of an
    amount, a sentinel) ends a bin instead of taking several tied edges; the
    other values share the remaining bins. Columns without such a value keep
    the plain quantile edges."""
    rng = np.random.default_rng(0)
    n, bins = 20_000, 16
    amount = np.where(rng.random(n) < 0.9, 0.0, rng.lognormal(8.0, 1.0, n))
    sentinel = np.where(rng.random(n) < 0.5, 999.0, rng.normal(50.0, 10.0, n))
    X = np.c_[amount, sentinel, rng.normal(size=n)]
    enc = NumericEncoder(bins).fit(X, np.ones(n))
    edges, plain = enc.bin_edges(), enc._quantile_edges()
    assert (np.diff(edges, axis=0) >= 0).all()
    # The plain rule gives the amount's nonzero tenth two bins; now the
    # zeros end the first bin and every other bin spans nonzero values.
    assert (np.diff(plain[:, 0]) > 0).sum() == 2
    assert edges[0, 0] == 0.0 and (np.diff(edges[:, 0]) > 0).all()
    nonzero = amount[amount > 0]
    assert edges[1, 0] <= nonzero.min() and edges[-1, 0] == nonzero.max()
    inner = np.histogram(nonzero, bins=edges[1:, 0])[0]
    assert inner.min() > 0.5 * inner.mean()  # quantile bins of the nonzero values
    # The sentinel at the top ends the last bin; the normal part gets 15.
    assert edges[-1, 1] == 999.0 and (np.diff(edges[:, 1]) > 0).all()
    assert sentinel[sentinel < 999].max() <= edges[-2, 1] < 999.0  # the last bin holds 999 alone
    np.testing.assert_array_equal(edges[:, 2], plain[:, 2])  # no heavy value
    Z = enc.transform(X)
    fill = Z[:, 6:].reshape(n, 3, bins)
    # Rows at the heavy value fill no bin of the amount; others fill at least one.
    assert (fill[amount == 0, 0] == 0).all() and (fill[amount > 0, 0, 0] == 1).all()


def test_capped_weights_solve_the_cap():
    from skmoe._preprocessing import capped_weights

    weights = np.array([50.0, 10.0, 1.0, 1.0, 1.0, 1.0])
    capped = capped_weights(weights, 4)
    cap = capped.max()
    np.testing.assert_allclose(cap, capped.sum() / 4)
    np.testing.assert_array_equal(capped[2:], weights[2:])
    plain = np.array([1.0, 2.0, 1.0, 2.0])
    assert capped_weights(plain, 3) is plain  # no weight above a third
    np.testing.assert_array_equal(capped_weights(np.array([5.0, 1.0]), 4), [1.0, 1.0])


def test_numeric_bins_sets_the_input_width():
    df, y = make_table(400)
    narrow = MoERegressor(numeric_bins=0, n_experts=2, max_epochs=2, random_state=0).fit(df, y)
    wide = MoERegressor(numeric_bins=4, n_experts=2, max_epochs=2, random_state=0).fit(df, y)
    n_numeric = int((~wide.schema_.is_categorical_).sum())
    assert wide.encoder_.n_outputs - narrow.encoder_.n_outputs == 4 * n_numeric
    assert wide.network_.bank.n_inputs == wide.encoder_.n_outputs
    # A small table gets at most one bin per 32 distinct rows.
    small = MoERegressor(n_experts=2, max_epochs=2, random_state=0).fit(df[:200], y[:200])
    assert small.encoder_.numeric_.n_bins_ == 200 // 32
    assert small.get_params()["numeric_bins"] == 64
    with pytest.raises(ValueError, match="numeric_bins"):
        MoERegressor(numeric_bins=-1).fit(df, y)


@pytest.mark.parametrize(("n_rows", "n_bins", "expected"), [
    (200, 64, 6), (1_000, 64, 31), (2_047, 64, 32), (2_048, 64, 32),
    (3_000, 64, 46), (4_096, 64, 64), (50_000, 64, 64), (50_000, 16, 16), (3_000, 40, 40), (500, 0, 0),
])
def test_bins_need_32_rows_each_up_to_32_and_64_rows_each_beyond(n_rows, n_bins, expected):
    """One bin per 32 distinct rows up to 32 bins, then one per 64 rows: the
    bins past the 32nd cost the smallest suite table accuracy at 36 rows a bin."""
    X = np.random.default_rng(0).normal(size=(n_rows, 2))
    numeric = NumericEncoder(n_bins).fit(X, np.ones(n_rows))
    assert numeric.n_bins_ == expected
    assert numeric.n_outputs == (2 + expected) * 2


def test_encoding_written_in_place_equals_the_views_concatenated():
    """TableEncoder.transform writes each view into one float32 array: the
    same numbers as concatenating the float64 views and casting once, with
    high-cardinality (target-encoded) columns, tied bins and missing values."""
    from skmoe._preprocessing import TableEncoder

    rng = np.random.default_rng(0)
    n = 3000
    numeric = rng.normal(size=(n, 3))
    numeric[:, 1] = rng.integers(0, 3, n)  # tied quantiles: bins that are steps
    numeric[rng.random(n) < 0.1, 2] = np.nan
    codes = np.column_stack([rng.integers(0, 4, n), rng.integers(0, 200, n)]).astype(float)
    codes[rng.random(n) < 0.05, 0] = -1.0  # missing level
    X = np.hstack([numeric, codes])
    is_categorical = np.array([False, False, False, True, True])
    encoder = TableEncoder(is_categorical, n_bins=16)
    encoder.fit_transform(X, np.ones(n), rng.normal(size=n), "continuous", 0)
    assert encoder.categorical_.target_columns_  # the 200-level column is target-encoded
    new = X[:500] + np.r_[0.5, 0.0, 0.0, 0.0, 0.0]  # values off the training grid
    new[0, 3] = 9.0  # unseen level
    expected = np.hstack([
        encoder.numeric_.transform(new[:, ~is_categorical]),
        encoder.categorical_.transform(new[:, is_categorical]),
    ]).astype(np.float32)
    out = encoder.transform(new)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def _mixed_codes(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, 3))
    numeric[:, 1] = rng.integers(0, 3, n)
    numeric[rng.random(n) < 0.1, 2] = np.nan
    codes = np.column_stack([rng.integers(0, 4, n), rng.integers(0, 200, n)]).astype(float)
    return np.hstack([numeric, codes]), rng.normal(size=n), np.array([False, False, False, True, True])


def test_fitting_the_encoding_writes_the_training_and_validation_rows_into_one_array():
    """``fit_transform(X, then=X_val)``: the training rows' encoding (target
    columns cross-fitted, as before the in-place writing: the float64 blocks
    stacked and cast once), then ``transform(X_val)``, in one float32 array."""
    from skmoe._preprocessing import TableEncoder

    X, y, is_categorical = _mixed_codes(3000)
    X_tr, X_val = X[:2500], X[2500:]
    encoder = TableEncoder(is_categorical, n_bins=16)
    Z = encoder.fit_transform(X_tr, np.ones(2500), y[:2500], "continuous", 0, then=X_val)
    assert Z.dtype == np.float32 and Z.shape == (3000, encoder.n_outputs) and Z.flags.c_contiguous
    np.testing.assert_array_equal(Z[2500:], encoder.transform(X_val))
    # The training rows as the blocks of fit, stacked in float64 and cast once.
    categorical = encoder.categorical_
    cross_fitted = categorical.fit(X_tr[:, is_categorical], np.ones(2500), y[:2500], "continuous", 0)
    expected = np.hstack([
        encoder.numeric_.transform(X_tr[:, ~is_categorical]),
        categorical.transform(X_tr[:, is_categorical], cross_fitted=cross_fitted),
    ]).astype(np.float32)
    np.testing.assert_array_equal(Z[:2500], expected)
    # Cross-fitted: not the tables' lookups that transform gives new rows.
    assert not np.array_equal(Z[:2500], encoder.transform(X_tr))
    alone = TableEncoder(is_categorical, n_bins=16).fit_transform(X_tr, np.ones(2500), y[:2500], "continuous", 0)
    np.testing.assert_array_equal(alone, Z[:2500])


def test_fitting_the_encoding_holds_little_more_than_the_encoding():
    """The fit's encoding is written block by block into its float32 array:
    its peak is the array and temporaries of the raw columns' size (the
    quantile view's search), no float64 copy of the whole encoding (which,
    stacked and cast, held it about four times)."""
    import tracemalloc

    from skmoe._preprocessing import TableEncoder

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 20))
    encoder = TableEncoder(np.zeros(20, dtype=bool), n_bins=32)
    tracemalloc.start()
    try:
        Z = encoder.fit_transform(X, np.ones(len(X)), then=X[:2000])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert Z.shape == (22_000, 34 * 20)
    assert peak < 2.5 * Z.nbytes, (peak / Z.nbytes)  # 1.8 here

"""ONNX export: onnxruntime gives what predict and predict_proba give."""

import numpy as np
import pandas as pd
import pytest

import skmoe
from skmoe import MoEClassifier, MoERegressor
from skmoe._onnx import onnx_feeds
from skmoe.datasets import load_california_housing

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

FAST = dict(n_experts=3, expert_width=16, max_epochs=4, random_state=0)


@pytest.fixture(scope="module")
def table():
    X, y = load_california_housing()
    X = X.iloc[:2500].copy()
    X["old"] = X["housing_median_age"] > 30
    return X, y.iloc[:2500].to_numpy()


def _run(model, X):
    session = ort.InferenceSession(skmoe.to_onnx(model).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, onnx_feeds(model, X))


def _check_regressor(model, X):
    (out,) = _run(model, X)
    expected = model.predict(X).reshape(len(X), -1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def _check_classifier(model, X):
    label, proba = _run(model, X)
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)
    agree = (label == model.predict(X)).mean()
    assert agree >= 0.999  # a tie of two classes within float32 rounding may differ


@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(expert_members=1, prelu=False),
        dict(expert_depth=0),
        dict(router="learned", top_k=2),
        dict(router="learned", top_k=1, expert_members=1),
        dict(n_experts=6, voronoi_search="tree"),
        dict(numeric_bins=0),
    ],
)
def test_regressor_with_categories_and_missing_values(table, params):
    X, y = table
    model = MoERegressor(**{**FAST, **params}).fit(X[:2000], y[:2000])
    test = X[2000:].copy()
    test.loc[test.index[:5], "ocean_proximity"] = "NEVER SEEN"
    test.loc[test.index[5:10], "ocean_proximity"] = np.nan
    test.loc[test.index[10:15], "median_income"] = np.nan
    _check_regressor(model, test)


def test_numeric_regressor_takes_one_matrix_and_multi_output(table):
    X, y = table
    numbers = X.select_dtypes("number").to_numpy()
    model = MoERegressor(**FAST).fit(numbers[:2000], np.c_[y[:2000], np.log(y[:2000])])
    (out,) = _run(model, numbers[2000:])
    assert out.shape == (500, 2)
    _check_regressor(model, numbers[2000:])


def test_regressor_clips_as_predict_does(table):
    X, y = table
    numbers = X.select_dtypes("number").to_numpy()
    Y = np.c_[y[:2000], np.log(y[:2000])]
    far = np.vstack([numbers[2000:] * 8, numbers[2000:] * -3])
    for clip in (True, False):
        model = MoERegressor(**FAST, clip_predictions=clip).fit(numbers[:2000], Y)
        (out,) = _run(model, far)
        assert ((out >= Y.min(axis=0)) & (out <= Y.max(axis=0))).all() == clip
        _check_regressor(model, far)


def test_classifiers_binary_with_string_labels_and_multiclass(table):
    X, y = table
    binary = MoEClassifier(**FAST).fit(X[:2000], np.where(y[:2000] > np.median(y), "high", "low"))
    _check_classifier(binary, X[2000:])
    assert _run(binary, X[2000:])[0].dtype == object
    multi = MoEClassifier(**FAST).fit(X[:2000], np.digitize(y[:2000], np.quantile(y, [0.25, 0.5, 0.75])))
    _check_classifier(multi, X[2000:])
    assert _run(multi, X[2000:])[0].dtype == np.int64


def test_categorical_columns_only(table):
    X, y = table
    model = MoEClassifier(**FAST).fit(X[["ocean_proximity", "old"]][:2000], y[:2000] > np.median(y))
    _check_classifier(model, X[["ocean_proximity", "old"]][2000:])


def test_high_cardinality_target_encoding(table):
    X, y = table
    X = X.assign(block=(X["longitude"] * 10).round().astype(int).astype(str) + "_"
                 + (X["latitude"] * 10).round().astype(int).astype(str))
    model = MoERegressor(**FAST).fit(X[:2000], y[:2000])
    assert model.encoder_.categorical_.target_columns_  # more levels than one-hot slots
    _check_regressor(model, X[2000:])


def test_pruned_and_lazily_loaded_models_export(table, tmp_path):
    X, y = table
    model = MoERegressor(**{**FAST, "n_experts": 5}).fit(X[:2000], y[:2000])
    model.prune_experts(min_share=np.sort(model.expert_usage_)[1])  # the two least used
    assert model.n_experts_ == 3
    _check_regressor(model, X[2000:])
    lazy = skmoe.load(model.save(tmp_path / "m"), lazy=True)
    _check_regressor(lazy, X[2000:])


def test_skl2onnx_converts_a_pipeline_ending_in_skmoe(table):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = table
    numbers = X.select_dtypes("number").dropna().to_numpy()
    target = numbers[:, 2] * 3 + numbers[:, 7]
    skmoe.register_skl2onnx()
    for est, yy, options in [
        (MoERegressor, target, None),
        (MoEClassifier, (target > np.median(target)).astype(int), {MoEClassifier: {"zipmap": False}}),
    ]:
        pipe = make_pipeline(StandardScaler(), est(**FAST)).fit(numbers[:2000], yy[:2000])
        proto = skl2onnx.to_onnx(pipe, numbers[:1], options=options)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: numbers[2000:]})
        if est is MoERegressor:
            np.testing.assert_allclose(out[0][:, 0], pipe.predict(numbers[2000:]), rtol=1e-5)
        else:
            np.testing.assert_array_equal(out[0], pipe.predict(numbers[2000:]))
            np.testing.assert_allclose(out[1], pipe.predict_proba(numbers[2000:]), atol=1e-5)


def test_skl2onnx_refuses_categorical_columns_with_the_way_out(table):
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import DoubleTensorType

    X, y = table
    model = MoERegressor(**FAST).fit(X[:500], y[:500])
    skmoe.register_skl2onnx()
    with pytest.raises(NotImplementedError, match="skmoe.to_onnx"):
        skl2onnx.to_onnx(model, initial_types=[("X", DoubleTensorType([None, X.shape[1]]))])


def test_export_needs_a_fitted_model():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        skmoe.to_onnx(MoERegressor())


def test_feeds_match_columns_by_name(table):
    X, y = table
    model = MoERegressor(**FAST).fit(X[:2000], y[:2000])
    shuffled = X[2000:][list(X.columns[::-1])]
    (out,) = _run(model, shuffled)
    np.testing.assert_allclose(out[:, 0], model.predict(X[2000:]), rtol=1e-5)
    assert isinstance(pd.DataFrame(out), pd.DataFrame)

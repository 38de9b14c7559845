"""Bad input, table-driven: every case gives a correct result or a clear error.

A case is ``(call, expected)``: ``call`` builds and runs an estimator, and
``expected`` is ``"ok"`` (the result is then checked for sanity: right shape,
finite, labels from the training labels) or ``(exception type, regex)``; the
regex must name the problem.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skmoe import MoEClassifier, MoERegressor

rng = np.random.default_rng(0)
X = rng.normal(size=(60, 3))
Y = X[:, 0] - X[:, 1]
LABELS = np.where(Y > 0, "up", "down")
DF = pd.DataFrame(X, columns=["a", "b", "c"])
FAST = dict(n_experts=2, expert_width=8, max_epochs=2, random_state=0)


def R(**params):
    return MoERegressor(**{**FAST, **params})


def C(**params):
    return MoEClassifier(**{**FAST, **params})


def _with(column, values, frame=DF):
    out = frame.copy()
    out[column] = values
    return out


MIXED = pd.Series([1, "a", 2.5] * 20, dtype=object)
NO_GPU = not torch.cuda.is_available()

CASES = {
    # -- the target --------------------------------------------------------------
    "NaN in y (regressor)": (lambda: R().fit(X, np.r_[np.nan, Y[1:]]), (ValueError, "NaN")),
    "inf in y (regressor)": (lambda: R().fit(X, np.r_[np.inf, Y[1:]]), (ValueError, "infinity")),
    "NaN in y (classifier)": (lambda: C().fit(X, np.r_[np.nan, Y[1:] > 0]), (ValueError, "NaN")),
    "y near 1e300": (lambda: R().fit(X, Y * 1e300).predict(X) / 1e300, "ok"),
    "y whose spread overflows": (
        lambda: R().fit(X, np.where(np.arange(60) < 50, 1.5e308, -1.5e308)),
        (ValueError, "too large to standardise"),
    ),
    "y near 1e30": (lambda: R().fit(X, Y * 1e30).predict(X) / 1e30, "ok"),
    "y with no column": (lambda: R().fit(X, Y[:, None][:, :0]), (ValueError, "0 feature|no output")),
    "complex y": (lambda: R().fit(X, Y + 1j), (ValueError, "Complex data not supported")),
    "string y for the regressor": (lambda: R().fit(X, LABELS), (ValueError, "could not convert string to float")),
    "one class": (lambda: C().fit(X, np.ones(60)), (ValueError, "at least two classes")),
    "regression target to the classifier": (lambda: C().fit(X, Y), (ValueError, "Unknown label type: continuous")),
    "y is None": (lambda: R().fit(X, None), (ValueError, "requires y")),
    "y as a column vector (classifier)": (lambda: C().fit(X, LABELS[:, None]).predict(X), "ok"),
    "string labels as a list": (lambda: C().fit(X.tolist(), LABELS.tolist()).predict(X), "ok"),
    # -- shapes and sizes ----------------------------------------------------------
    "mismatched lengths": (lambda: R().fit(X, Y[:-1]), (ValueError, "inconsistent numbers of samples")),
    "empty X": (lambda: R().fit(X[:0], Y[:0]), (ValueError, "0 sample")),
    "X without columns": (lambda: R().fit(X[:, :0], Y), (ValueError, "0 feature")),
    "empty DataFrame": (lambda: R().fit(DF.iloc[:0], Y[:0]), (ValueError, "at least 1 sample")),
    "one row, default n_experts": (lambda: R().fit(X[:1], Y[:1]), (ValueError, "lower n_experts")),
    "one row, one expert": (lambda: R(n_experts=1).fit(X[:1], Y[:1]).predict(X), "ok"),
    "n_experts above the number of rows": (lambda: R(n_experts=50).fit(X[:20], Y[:20]), (ValueError, "n_experts=50 needs at least")),
    "3-D X": (lambda: R().fit(X.reshape(60, 3, 1), Y), (ValueError, "dim 3")),
    "1-D X": (lambda: R().fit(X[:, 0], Y), (ValueError, "Expected 2D array")),
    "wrong number of features at predict": (lambda: R().fit(X, Y).predict(X[:, :2]), (ValueError, "has 2 features")),
    "missing column at predict": (lambda: R().fit(DF, Y).predict(DF[["a", "b"]]), (ValueError, r"missing columns.*'c'")),
    "reordered columns at predict": (lambda: R().fit(DF, Y).predict(DF[["c", "a", "b"]]), "ok"),
    "empty X at predict": (lambda: R().fit(X, Y).predict(X[:0]), (ValueError, "0 sample")),
    "predict before fit": (lambda: R().predict(X), (NotFittedError, "not fitted")),
    "save before fit": (lambda: R().save("unused"), (NotFittedError, "not fitted")),
    # -- values and types ----------------------------------------------------------
    "inf in X": (lambda: R().fit(np.r_[X[:1] * np.inf, X[1:]], Y), (ValueError, "infinity")),
    "inf in a DataFrame column": (lambda: R().fit(_with("b", np.r_[np.inf, X[1:, 1]]), Y), (ValueError, "infinity.*'b'")),
    "inf in X at predict": (lambda: R().fit(X, Y).predict(X * np.inf), (ValueError, "infinity")),
    "NaN in X": (lambda: R().fit(np.where(X > 1.5, np.nan, X), Y).predict(np.full((2, 3), np.nan)), "ok"),
    "an all-NaN column": (lambda: R().fit(np.c_[X, np.full(60, np.nan)], Y).predict(np.c_[X, X[:, :1]]), "ok"),
    "complex X": (lambda: R().fit(X + 1j, Y), (ValueError, "Complex data not supported")),
    "values near 1e30 in X": (lambda: R().fit(X * 1e30, Y).predict(X * 1e30), "ok"),
    "a constant column": (lambda: R().fit(np.c_[X, np.ones(60)], Y).predict(np.c_[X, np.zeros(60)]), "ok"),
    "all columns constant": (lambda: R(n_experts=1).fit(np.ones((60, 3)), Y).predict(np.ones((3, 3))), "ok"),
    "numbers and strings in an object column": (lambda: R().fit(_with("m", MIXED), Y).predict(_with("m", MIXED)), "ok"),
    "numbers and strings in an object array": (
        lambda: R().fit(np.c_[X[:, :1], MIXED.to_numpy()[:, None]].astype(object), Y),
        (ValueError, "Column 1 of the object array X mixes kinds of values"),
    ),
    "strings in a column declared numeric": (
        lambda: R(categorical_features=None).fit(_with("m", MIXED), Y),
        (ValueError, "Column 'm' could not be converted to numbers"),
    ),
    "datetime column": (lambda: R().fit(_with("d", pd.date_range("2020", periods=60)), Y), (TypeError, "Column 'd' has datetime")),
    "duplicated column names": (lambda: R().fit(DF.set_axis(["a", "a", "b"], axis=1), Y), (ValueError, r"duplicated column names: \['a'\]")),
    "an unseen category at predict": (lambda: R().fit(_with("k", list("xyz") * 20), Y).predict(_with("k", ["new"] * 60)), "ok"),
    "nullable Int64 with pd.NA": (lambda: R().fit(_with("n", pd.array([1, None, 3] * 20, dtype="Int64")), Y).predict(DF.assign(n=pd.NA)), "ok"),
    "float16 and bool X": (lambda: R().fit(np.c_[X.astype(np.float16), X > 0], Y).predict(np.c_[X, X > 0]), "ok"),
    # -- sample weights ---------------------------------------------------------------
    "negative sample_weight": (lambda: R().fit(X, Y, sample_weight=np.r_[-1.0, np.ones(59)]), (ValueError, "non-negative")),
    "NaN sample_weight": (lambda: R().fit(X, Y, sample_weight=np.r_[np.nan, np.ones(59)]), (ValueError, "sample_weight contains NaN")),
    "sample_weight of the wrong length": (lambda: R().fit(X, Y, sample_weight=np.ones(5)), (ValueError, r"sample_weight.shape == \(5,\)")),
    "all-zero sample_weight": (lambda: R().fit(X, Y, sample_weight=np.zeros(60)), (ValueError, "zero")),
    "X_val without y_val": (lambda: R().fit(X, Y, X_val=X), (ValueError, "given together")),
    "class_weight naming an unknown class": (lambda: C(class_weight={"sideways": 2.0}).fit(X, LABELS), (ValueError, "not in class_weight|sideways")),
    # -- hyperparameters ------------------------------------------------------------------
    "n_experts=0": (lambda: R(n_experts=0).fit(X, Y), (InvalidParameterError, "'n_experts' parameter")),
    "negative expert_width": (lambda: R(expert_width=-8).fit(X, Y), (InvalidParameterError, "'expert_width' parameter")),
    "negative expert_depth": (lambda: R(expert_depth=-1).fit(X, Y), (InvalidParameterError, "'expert_depth' parameter")),
    "top_k above n_experts": (lambda: R(n_experts=1, router="learned", top_k=2).fit(X, Y), (ValueError, "top_k=2 must be <= n_experts=1")),
    "top_k=3": (lambda: R(top_k=3).fit(X, Y), (InvalidParameterError, "'top_k' parameter")),
    "top_k=2 with Voronoi routing": (lambda: R(top_k=2).fit(X, Y), (ValueError, "top_k must be 1")),
    "unknown router": (lambda: R(router="random").fit(X, Y), (InvalidParameterError, "'router' parameter")),
    "unknown voronoi_search": (lambda: R(voronoi_search="ball").fit(X, Y), (InvalidParameterError, "'voronoi_search' parameter")),
    "unknown device": (lambda: R(device="tpu").fit(X, Y), (ValueError, "device='tpu' is not a valid device")),
    "learning_rate=0": (lambda: R(learning_rate=0.0).fit(X, Y), (InvalidParameterError, "'learning_rate' parameter")),
    "batch_size=0": (lambda: R(batch_size=0).fit(X, Y), (InvalidParameterError, "'batch_size' parameter")),
    "max_epochs=0": (lambda: R(max_epochs=0).fit(X, Y), (InvalidParameterError, "'max_epochs' parameter")),
    "validation_fraction=1": (lambda: R(validation_fraction=1.0).fit(X, Y), (InvalidParameterError, "'validation_fraction' parameter")),
    "negative weight_decay": (lambda: R(weight_decay=-1e-4).fit(X, Y), (InvalidParameterError, "'weight_decay' parameter")),
    "unknown categorical_features string": (lambda: R(categorical_features="auto").fit(X, Y), (InvalidParameterError, "'categorical_features' parameter")),
    "categorical_features naming a missing column": (lambda: R(categorical_features=["zz"]).fit(DF, Y), (ValueError, "names 'zz', which is not a column")),
    "categorical_features index out of range": (lambda: R(categorical_features=[7]).fit(X, Y), (ValueError, "index 7 is out of range")),
    "random_state of the wrong type": (lambda: R(random_state="seed").fit(X, Y), (InvalidParameterError, "'random_state' parameter")),
    "unknown class_weight string": (lambda: C(class_weight="equal").fit(X, LABELS), (InvalidParameterError, "'class_weight' parameter")),
    "device='cuda' without a GPU": (
        lambda: R(device="cuda").fit(X, Y) if NO_GPU else pytest.skip("this machine has a GPU"),
        (ValueError, "CUDA is not available"),
    ),
}


def _check_ok(result):
    result = np.asarray(result)
    assert result.ndim in (1, 2) and len(result) > 0
    if result.dtype.kind == "f":
        assert np.isfinite(result).all()
    else:
        assert set(np.unique(result)) <= set(LABELS)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, expected = CASES[case]
    if expected == "ok":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DataConversionWarning & co. are fine
            _check_ok(call())
        return
    error, message = expected
    with pytest.raises(error, match=message):
        call()


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


# -- property-based: any finite numeric table fits and predicts sanely -------------------
shapes = st.tuples(st.integers(2, 40), st.integers(1, 5))
dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_])


@st.composite
def tables(draw):
    n, d = draw(shapes)
    dtype = draw(dtypes)
    elements = None
    if np.dtype(dtype).kind == "f":
        width = np.dtype(dtype).itemsize * 8
        elements = st.one_of(st.floats(-1e6, 1e6, width=width), st.just(np.nan))
    X = draw(hnp.arrays(dtype, (n, d), elements=elements))
    y = draw(hnp.arrays(np.float64, (n,), elements=st.floats(-1e3, 1e3)))
    return X, y


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_any_finite_table_fits_or_refuses_clearly(data):
    X, y = data
    model = MoERegressor(n_experts=2, expert_width=4, max_epochs=2, random_state=0)
    try:
        model.fit(X, y)
    except ValueError as exc:  # only refusal allowed: too few distinct rows
        assert "needs at least as many distinct training rows" in str(exc)
        return
    pred = model.predict(X)
    assert pred.shape == y.shape and np.isfinite(pred).all()
    # Predictions stay within a generous band around the target's range.
    span = np.ptp(y) + 1.0
    assert np.all(np.abs(pred - np.mean(y)) <= 100 * span)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(4, 40).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, (n, 2), elements=st.floats(-100, 100)),
            hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)),
        )
    )
)
def test_any_labels_give_probabilities_or_a_clear_error(data):
    X, y = data
    model = MoEClassifier(n_experts=1, expert_width=4, max_epochs=2, random_state=0)
    if len(np.unique(y)) < 2:
        with pytest.raises(ValueError, match="at least two classes"):
            model.fit(X, y)
        return
    proba = model.fit(X, y).predict_proba(X)
    assert proba.shape == (len(y), len(np.unique(y)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert set(model.predict(X)) <= set(np.unique(y))

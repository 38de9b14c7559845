"""MoERegressor clips its predictions to the training targets' range (``clip_predictions``)."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import make_friedman1

import skmoe
from skmoe import MoEClassifier, MoERegressor

SMALL = dict(n_experts=3, expert_width=16, max_epochs=6, random_state=0, n_threads=1)


@pytest.fixture(scope="module")
def data():
    X, y = make_friedman1(n_samples=600, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def pair(data):
    """The same fit with and without clipping (clipping changes no training)."""
    X, y = data
    return MoERegressor(**SMALL).fit(X, y), MoERegressor(**SMALL, clip_predictions=False).fit(X, y)


def test_far_rows_are_clipped_to_the_training_range(data, pair):
    X, y = data
    clipped, free = pair
    far = np.vstack([X * 6, -5 * X])  # rows far outside the unit cube of training
    raw = free.predict(far)
    assert raw.max() > y.max() or raw.min() < y.min()  # the experts do extrapolate
    np.testing.assert_array_equal(clipped.predict(far), np.clip(raw, y.min(), y.max()))
    assert clipped.y_min_ == pytest.approx([y.min()]) and clipped.y_max_ == pytest.approx([y.max()])
    # inside the range nothing changes
    inside = (raw >= y.min()) & (raw <= y.max())
    np.testing.assert_array_equal(clipped.predict(far)[inside], raw[inside])


def test_the_range_ignores_rows_of_zero_weight(data):
    X, y = data
    w = np.ones(len(y))
    w[np.argmax(y)] = 0.0
    w[np.argmin(y)] = 0.0
    model = MoERegressor(**SMALL).fit(X, y, sample_weight=w)
    assert model.y_max_[0] == np.sort(y)[-2] and model.y_min_[0] == np.sort(y)[1]
    assert model.predict(X * 6).max() <= np.sort(y)[-2]


def test_multi_output_gets_one_range_per_output(data):
    X, y = data
    Y = np.c_[y, -100 * y]
    model = MoERegressor(**SMALL).fit(X, Y)
    np.testing.assert_array_equal(model.y_min_, Y.min(axis=0))
    np.testing.assert_array_equal(model.y_max_, Y.max(axis=0))
    pred = model.predict(np.vstack([X * 6, -5 * X]))
    assert (pred >= Y.min(axis=0)).all() and (pred <= Y.max(axis=0)).all()


def test_a_grown_model_keeps_the_range_of_all_its_fits(data):
    X, y = data
    model = MoERegressor(**SMALL, warm_start=True).fit(X[:300], y[:300])
    first = (model.y_min_.copy(), model.y_max_.copy())
    model.set_params(max_epochs=2).fit(X[300:], y[300:] + 100.0)
    assert model.y_min_[0] == first[0][0]
    assert model.y_max_[0] == y[300:].max() + 100.0


def test_the_range_survives_files_and_pickles(data, pair, tmp_path):
    X, _ = data
    model = pair[0]
    far = X * 6
    loaded = skmoe.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.y_max_, model.y_max_)
    np.testing.assert_array_equal(loaded.predict(far), model.predict(far))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(far), model.predict(far))


def test_a_model_from_before_the_range_is_not_clipped(data, pair, tmp_path):
    """A file or pickle without the range (and without the parameter) predicts
    as it did: unclipped, and says so in its parameters."""
    import json

    X, _ = data
    clipped, free = pair
    far = np.vstack([X * 6, -5 * X])
    path = clipped.save(tmp_path / "old")
    header = json.loads((path / "model.json").read_text())
    del header["params"]["clip_predictions"]
    (path / "model.json").write_text(json.dumps(header))
    with np.load(path / "arrays.npz") as f:
        assert "fitted/y_min_" in f.files
    loaded = skmoe.load(path)
    assert loaded.clip_predictions is False
    np.testing.assert_array_equal(loaded.predict(far), free.predict(far))
    state = clipped.__getstate__()
    for key in ("clip_predictions", "y_min_", "y_max_"):
        del state[key]
    old = MoERegressor.__new__(MoERegressor)
    old.__setstate__(state)
    assert old.clip_predictions is False and getattr(old, "y_min_", None) is None
    np.testing.assert_array_equal(old.predict(far), free.predict(far))


def test_the_classifier_has_no_such_parameter(data):
    X, y = data
    assert "clip_predictions" not in MoEClassifier().get_params()
    model = MoEClassifier(**SMALL).fit(X, y > np.median(y))
    old = MoEClassifier.__new__(MoEClassifier)
    old.__setstate__(model.__getstate__())
    assert "clip_predictions" not in vars(old)

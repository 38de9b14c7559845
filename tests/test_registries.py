"""skops files and MLflow models: what a model registry stores and loads."""

import pickle

import numpy as np
import pytest

import skmoe
from skmoe import MoEClassifier, MoERegressor
from skmoe.datasets import load_california_housing

FAST = dict(n_experts=2, expert_depth=1, expert_width=8, expert_members=2, max_epochs=3, random_state=0)


@pytest.fixture(scope="module")
def table():
    X, y = load_california_housing()
    return X.iloc[:400], y.iloc[:400].to_numpy()


@pytest.fixture(scope="module")
def models(table):
    X, y = table
    labels = np.where(y > np.median(y), "high", "low")
    return MoERegressor(**FAST).fit(X, y), MoEClassifier(**FAST).fit(X, labels)


def test_pickled_state_is_plain_values_and_arrays(models):
    """No skmoe object but the estimator itself, so skops trusts the rest."""
    allowed = (str, int, float, bool, type(None), np.ndarray, np.generic)

    def walk(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        else:
            module = type(value).__module__
            assert isinstance(value, allowed) or module.startswith("sklearn"), (path, type(value))

    for model in models:
        walk(model.__getstate__(), type(model).__name__)


def test_skops_round_trip_with_the_trusted_types(models, table, tmp_path):
    sio = pytest.importorskip("skops.io")
    X, _ = table
    for model in models:
        path = tmp_path / f"{type(model).__name__}.skops"
        sio.dump(model, path)
        untrusted = sio.get_untrusted_types(file=path)
        assert set(untrusted) <= set(skmoe.TRUSTED_TYPES)
        loaded = sio.load(path, trusted=skmoe.TRUSTED_TYPES)
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        if hasattr(model, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_pickles_of_the_earlier_layout_still_load(models, table):
    """Pickles written before the plain layout held the schema and encoder as objects."""
    X, _ = table
    model = models[0]
    state = model.__getstate__()
    state["schema_"], state["encoder_"] = model.schema_, model.encoder_
    old = MoERegressor.__new__(MoERegressor)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict(X), model.predict(X))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(old)).predict(X), model.predict(X))


def test_pickles_name_the_public_classes(models):
    assert b"skmoe._estimators" not in pickle.dumps(models[0])
    assert [f"skmoe.{type(m).__name__}" for m in models] == sorted(skmoe.TRUSTED_TYPES, reverse=True)


def test_mlflow_log_and_load_with_the_documented_setting(models, table, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("skops")
    import mlflow.sklearn

    X, _ = table
    monkeypatch.chdir(tmp_path)  # MLflow writes artifacts under ./mlruns
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for model in models:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", skops_trusted_types=skmoe.TRUSTED_TYPES, input_example=X.iloc[:3]
            )
        loaded = mlflow.sklearn.load_model(info.model_uri)
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        served = mlflow.pyfunc.load_model(info.model_uri)
        np.testing.assert_array_equal(np.asarray(served.predict(X)), model.predict(X))
    mlflow.set_tracking_uri(None)

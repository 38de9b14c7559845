"""Expert-parallel training and scoring on a real Dask cluster (LocalCluster).

The cluster has two worker processes on the loopback address, as a small
real cluster would: every job and model crosses a process boundary.
"""

import os

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_friedman1
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from skmoe import MoEClassifier, MoERegressor, predict_dask

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

PARAMS = dict(n_experts=6, expert_width=32, max_epochs=8, n_iter_no_change=3, random_state=0)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=":0", silence_logs=50,
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def data():
    X, y = make_friedman1(n_samples=3000, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def local(data):
    return MoERegressor(**PARAMS).fit(*data)


def _assert_same_model(a, b):
    for p, q in zip(a.network_.parameters(), b.network_.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    np.testing.assert_array_equal(a.best_epoch_, b.best_epoch_)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)


@pytest.mark.parametrize("validation", [True, False])
def test_expert_jobs_in_local_processes_equal_one_process(data, validation):
    # n_jobs=3 splits the experts into 12 groups (here: 6 of one expert).
    params = dict(PARAMS, early_stopping=validation)
    one = MoERegressor(**params).fit(*data)
    many = MoERegressor(**params, n_jobs=3).fit(*data)
    _assert_same_model(one, many)
    assert (one.best_epoch_ > one.history_["phase"].count("shared") - 1).any()  # experts trained


def test_parallel_expert_jobs_write_loadable_checkpoints(data, tmp_path):
    import skmoe

    model = MoERegressor(**PARAMS, n_jobs=2, checkpoint_dir=tmp_path / "ckpt").fit(*data)
    saved = skmoe.load(tmp_path / "ckpt")  # written as groups of experts finished
    # The last checkpoint came after the last group: the final experts.
    np.testing.assert_array_equal(saved.predict(data[0]), model.predict(data[0]))


def test_expert_parallel_fit_on_dask_equals_local_fit(client, data, local):
    with joblib.parallel_backend("dask"):
        remote = MoERegressor(**PARAMS).fit(*data)
    _assert_same_model(local, remote)
    np.testing.assert_array_equal(local.predict(data[0]), remote.predict(data[0]))


def test_grid_search_runs_on_dask(client, data):
    X, y = data[0][:1000], data[1][:1000]
    grid = {"n_experts": [2, 4], "expert_width": [16, 32]}
    estimator = MoERegressor(max_epochs=4, random_state=0)
    expected = GridSearchCV(estimator, grid, cv=2).fit(X, y)
    with joblib.parallel_backend("dask"):
        search = GridSearchCV(estimator, grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"]
    )
    assert search.best_params_ == expected.best_params_
    n_workers = len(client.scheduler_info()["workers"])
    assert n_workers == 2


def _frame(X, npartitions=4):
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame.index = frame.index * 10  # a non-default index survives scoring
    return frame, dd.from_pandas(frame, npartitions=npartitions)


def test_dask_dataframe_scored_as_pandas(client, data):
    frame, ddf = _frame(data[0])
    model = MoERegressor(**PARAMS).fit(frame, data[1])
    scores = predict_dask(model, ddf)
    assert isinstance(scores, dd.Series)
    result = scores.compute()
    pd.testing.assert_index_equal(result.index, frame.index)
    np.testing.assert_array_equal(result.to_numpy(), model.predict(frame))


def test_saved_model_scored_with_experts_loaded_on_demand(client, data, tmp_path):
    frame, ddf = _frame(data[0])
    y = np.digitize(data[1], np.quantile(data[1], [0.33, 0.66]))
    model = MoEClassifier(**PARAMS).fit(frame, np.array(["low", "mid", "high"])[y])
    model.save(tmp_path / "model")
    proba = predict_dask(tmp_path / "model", ddf, method="predict_proba", max_experts_in_memory=2)
    result = proba.compute()
    assert list(result.columns) == [f"proba_{c}" for c in model.classes_]
    np.testing.assert_array_equal(result.to_numpy(), model.predict_proba(frame))
    labels = predict_dask(tmp_path / "model", ddf).compute()
    np.testing.assert_array_equal(labels.to_numpy(), model.predict(frame))


def test_predict_dask_refuses_what_it_cannot_score(data, tmp_path):
    frame, ddf = _frame(data[0][:100])
    with pytest.raises(NotFittedError):
        predict_dask(MoERegressor(), ddf)
    model = MoERegressor(**dict(PARAMS, n_experts=2, max_epochs=2)).fit(frame, data[1][:100])
    with pytest.raises(ValueError, match="predict_proba.*regressor"):
        predict_dask(model, ddf, method="predict_proba")
    with pytest.raises(TypeError, match="dask.dataframe.DataFrame"):
        predict_dask(model, frame)
    with pytest.raises(ValueError, match="not a saved skmoe model"):
        predict_dask(tmp_path, ddf)


# -- a worker dies while it trains experts -----------------------------------------
def _kill_worker_in_expert_jobs(marker: str | None):
    """Make expert jobs on this worker kill its process: once if ``marker`` is a
    path (the first job to run creates it), else always."""
    import skmoe._torch.specialise as specialise

    real = specialise.train_experts

    def train_experts(job, on_epoch=None):
        if marker is None or not os.path.exists(marker):
            if marker is not None:
                open(marker, "w").close()
            os._exit(1)
        return real(job, on_epoch)

    specialise.train_experts = train_experts


def test_killed_worker_is_retried_and_the_model_is_complete(client, data, local, tmp_path):
    client.run(_kill_worker_in_expert_jobs, str(tmp_path / "killed-once"))
    with joblib.parallel_backend("dask"):
        remote = MoERegressor(**PARAMS).fit(*data)
    assert (tmp_path / "killed-once").exists()  # a worker did die
    _assert_same_model(local, remote)


def test_worker_deaths_beyond_retries_are_a_clear_error(client, data):
    client.run(_kill_worker_in_expert_jobs, None)
    scheduler = client.cluster.scheduler
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0
    model = MoERegressor(**PARAMS)
    try:
        with joblib.parallel_backend("dask"):
            with pytest.raises(RuntimeError, match="expert jobs had finished; no model was kept"):
                model.fit(*data)
    finally:
        scheduler.allowed_failures = allowed
        client.restart()  # fresh workers, without the fault
    assert not hasattr(model, "network_")
    with pytest.raises(NotFittedError):
        model.predict(data[0])

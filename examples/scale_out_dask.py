"""Train a 64-expert mixture on a Dask cluster, search it, and score a dask.dataframe.

Needs the ``dask`` extra (``pip install "skmoe[dask]"``). A LocalCluster of
two worker processes stands in for a real cluster: point ``Client`` at your
scheduler's address instead.

Run: ``python examples/scale_out_dask.py``
"""

import time

import dask.dataframe as dd
import joblib
import numpy as np
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, train_test_split

from skmoe import MoERegressor, predict_dask
from skmoe.datasets import load_california_housing


def main() -> None:
    X, y = load_california_housing()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster):
        params = dict(n_experts=64, max_epochs=20, random_state=0)
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            model = MoERegressor(**params).fit(X_train, y_train)
        print(f"fit on the cluster: {time.perf_counter() - start:.1f} s, "
              f"test R2 {model.score(X_test, y_test):.4f}")

        start = time.perf_counter()
        local = MoERegressor(**params).fit(X_train, y_train)
        print(f"fit in this process: {time.perf_counter() - start:.1f} s, "
              f"same model: {np.array_equal(local.predict(X_test), model.predict(X_test))}")

        search = GridSearchCV(
            MoERegressor(max_epochs=10, random_state=0),
            {"n_experts": [8, 32], "expert_width": [64, 256]},
            cv=2,
            n_jobs=-1,
        )
        with joblib.parallel_backend("dask"):
            search.fit(X_train, y_train)
        print(f"grid search on the cluster: best {search.best_params_}, "
              f"CV R2 {search.best_score_:.4f}")

        rows = dd.from_pandas(X_test, npartitions=4)
        scores = predict_dask(model, rows).compute()  # from_pandas sorted the index
        print(f"scored {len(scores)} rows partition by partition; equal to predict: "
              f"{np.array_equal(scores.loc[X_test.index].to_numpy(), model.predict(X_test))}")


if __name__ == "__main__":
    main()

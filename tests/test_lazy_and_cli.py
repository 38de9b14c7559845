"""Experts loaded on demand, and the command line (predict, info)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import skmoe
from skmoe import MoEClassifier, MoERegressor
from skmoe._cli import main
from skmoe._torch.lazy import LazyExpertBank


def _table(n=800, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"])
    df["region"] = pd.Series(rng.choice(["north", "south", "east"], n), dtype=object)
    df.loc[rng.random(n) < 0.05, "region"] = None
    df["id"] = np.arange(n)
    y = 3 * df["x0"] + np.abs(df["x1"]) + (df["region"] == "south") + rng.normal(0, 0.1, n)
    return df, y.to_numpy()


FAST = dict(n_experts=8, expert_width=16, max_epochs=4, random_state=0)


@pytest.fixture(scope="module")
def data():
    return _table()


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    df, y = data
    model = MoERegressor(**FAST).fit(df.drop(columns="id"), y)
    return model, model.save(tmp_path_factory.mktemp("m") / "model")


@pytest.mark.parametrize("router", ["voronoi", "learned"])
def test_lazy_predictions_equal_eager_ones(data, tmp_path, router):
    df, y = data
    X = df.drop(columns="id")
    params = dict(FAST, router=router) if router == "voronoi" else dict(FAST, router=router, top_k=2)
    model = MoERegressor(**params).fit(X, y)
    path = model.save(tmp_path / "m")
    lazy = skmoe.load(path, lazy=True, max_experts_in_memory=3)
    assert isinstance(lazy.network_.bank, LazyExpertBank)
    assert lazy.network_.bank.loaded_experts == []  # nothing read yet
    np.testing.assert_array_equal(lazy.predict(X), model.predict(X))
    np.testing.assert_array_equal(lazy.apply(X), model.apply(X))
    assert len(lazy.network_.bank.loaded_experts) <= 3
    assert lazy.n_params_total_ == model.n_params_total_


def test_lazy_loads_only_the_experts_a_batch_needs(saved, data):
    model, path = saved
    X = data[0].drop(columns="id")
    experts = model.apply(X)
    one_cell = X[experts == experts[0]]
    lazy = skmoe.load(path, lazy=True)
    lazy.predict(one_cell)
    bank = lazy.network_.bank
    assert bank.loaded_experts == [experts[0]] and bank.n_loads == 1
    lazy.predict(one_cell)  # cached: no new read
    assert bank.n_loads == 1


def test_lazy_cache_evicts_the_least_recently_used(saved, data):
    model, path = saved
    X = data[0].drop(columns="id")
    experts = model.apply(X)
    lazy = skmoe.load(path, lazy=True, max_experts_in_memory=2)
    a, b, c = np.unique(experts)[:3]
    for e in (a, b, a, c):  # c evicts b, the least recently used
        lazy.predict(X[experts == e])
    assert lazy.network_.bank.loaded_experts == [a, c]


def test_lazy_model_pickles_saves_and_prunes_like_an_eager_one(saved, data, tmp_path):
    import pickle

    model, path = saved
    X = data[0].drop(columns="id")
    lazy = skmoe.load(path, lazy=True)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy)).predict(X), model.predict(X))
    np.testing.assert_array_equal(skmoe.load(lazy.save(tmp_path / "again")).predict(X), model.predict(X))
    kept = lazy.prune_experts(min_share=0.05)
    assert kept.n_experts_ <= model.n_experts_


def test_lazy_shard_is_checked_when_read(saved, data, tmp_path):
    import shutil

    _, path = saved
    copy = tmp_path / "m"
    shutil.copytree(path, copy)
    lazy = skmoe.load(copy, lazy=True)
    shard = sorted((copy / "experts").iterdir())[0]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(skmoe.ModelFileError, match="truncated or was modified"):
        lazy.predict(data[0].drop(columns="id"))
    shard.unlink()
    with pytest.raises(skmoe.ModelFileError, match="is missing"):
        skmoe.load(copy, lazy=True)


def test_load_checks_its_arguments(saved):
    _, path = saved
    with pytest.raises(ValueError, match="max_experts_in_memory must be a positive int"):
        skmoe.load(path, lazy=True, max_experts_in_memory=0)
    with pytest.raises(ValueError, match="not a valid device"):
        skmoe.load(path, device="tpu")


# -- command line -------------------------------------------------------------------------
def test_cli_predict_csv_in_chunks_keeps_row_order(saved, data, tmp_path):
    model, path = saved
    df = data[0]
    src = tmp_path / "in.csv"
    df.sample(frac=1.0, random_state=1).to_csv(src, index=False)  # shuffled ids
    out = tmp_path / "out.csv"
    code = main(["predict", str(path), str(src), "-o", str(out), "--chunk-size", "97",
                 "--keep", "id", "--expert", "--lazy", "--max-experts-in-memory", "2"])
    assert code == 0
    result = pd.read_csv(out)
    expected_input = pd.read_csv(src)
    assert result["id"].tolist() == expected_input["id"].tolist()
    X = expected_input.drop(columns="id").astype({"region": "string"})
    np.testing.assert_allclose(result["prediction"], model.predict(X), rtol=1e-12)
    np.testing.assert_array_equal(result["expert"], model.apply(X))


def test_cli_category_codes_survive_chunks_with_missing_values(tmp_path):
    """A code column read in chunks must not turn into floats where a chunk
    has a missing value (its levels would no longer match)."""
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"x": rng.normal(size=n), "plan": rng.choice(["10", "20", "30"], n)})
    df.loc[::50, "plan"] = None
    y = df["x"] + df["plan"].map({"10": 0.0, "20": 5.0, "30": 10.0}).fillna(2.0)
    model = MoERegressor(**{**FAST, "n_experts": 2}).fit(df, y)
    path = model.save(tmp_path / "m")
    df.to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(path), str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"),
                 "--chunk-size", "50"]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "o.csv")["prediction"], model.predict(df), rtol=1e-12)


def test_cli_classifier_probabilities_and_parquet(data, tmp_path):
    pytest.importorskip("pyarrow")
    df, y = data
    X = df.drop(columns="id")
    clf = MoEClassifier(**FAST).fit(X, np.where(y > 1, "high", "low"))
    path = clf.save(tmp_path / "clf")
    df.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    assert main(["predict", str(path), str(tmp_path / "in.parquet"), "-o", str(out), "--proba",
                 "--chunk-size", "128"]) == 0
    result = pd.read_parquet(out)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(result[["proba_high", "proba_low"]].to_numpy(), proba, rtol=1e-12)
    np.testing.assert_array_equal(result["prediction"], clf.predict(X))


def test_cli_errors_are_clear_and_leave_no_partial_output(saved, data, tmp_path, capsys):
    _, path = saved
    src = tmp_path / "in.csv"
    data[0].drop(columns="x2").to_csv(src, index=False)
    out = tmp_path / "out.csv"
    assert main(["predict", str(path), str(src), "-o", str(out)]) == 2
    assert "missing columns seen during fit: ['x2']" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "out.csv.partial").exists()
    out.write_text("old")
    assert main(["predict", str(path), str(src), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["predict", str(path), str(src), "-o", str(tmp_path / "o.xlsx")]) == 2
    assert "unknown format" in capsys.readouterr().err
    assert main(["predict", str(path), str(src), "-o", str(tmp_path / "o.csv"), "--proba"]) == 2
    assert "--proba is for classifiers" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert "model.json is missing" in capsys.readouterr().err
    data[0].iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    assert main(["predict", str(path), str(tmp_path / "empty.csv"), "-o", str(tmp_path / "e.csv")]) == 2
    assert "has no rows to score" in capsys.readouterr().err
    assert not (tmp_path / "e.csv").exists()


def test_cli_names_the_columns_an_input_lacks(saved, tmp_path, capsys):
    """A file sharing no column with the model: its columns are named, not 'no rows'."""
    model, path = saved
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(tmp_path / "other.csv", index=False)
    assert main(["predict", str(path), str(tmp_path / "other.csv"), "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert f"missing columns seen during fit: {list(model.feature_names_in_)}" in err
    assert "no rows" not in err and not (tmp_path / "o.csv").exists()


def test_cli_info(saved, capsys):
    model, path = saved
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "MoERegressor" in text and "8 x (P)ReLU MLP, depth 2, width 16" in text
    assert f"{model.n_params_total_:,} total" in text and "size on disk" in text
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_experts"] == 8 and info["categorical_features"] == ["region"]
    np.testing.assert_allclose(info["expert_usage"], model.expert_usage_)


def test_python_dash_m_entry_point(saved):
    _, path = saved
    out = subprocess.run([sys.executable, "-m", "skmoe", "info", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "MoERegressor" in out.stdout

"""Model files and pickles: round trips, version stamps, tampered files."""

import hashlib
import io
import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

import skmoe
from skmoe import InconsistentVersionWarning, ModelFileError, MoEClassifier, MoERegressor


def _table(n=600, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    df.loc[rng.random(n) < 0.05, "b"] = np.nan
    df["plan"] = pd.Series(rng.choice(["basic", "pro", "team"], n)).astype("category")
    # More levels than the one-hot cap: exercises the target-encoding tables.
    df["zip"] = pd.Series(rng.integers(0, 120, n).astype(str), dtype=object)
    y = df["a"] * 2 + np.sin(3 * df["c"]) + (df["plan"] == "pro") + rng.normal(0, 0.1, n)
    return df, y.to_numpy()


SMALL = dict(n_experts=4, expert_width=16, max_epochs=4, random_state=0)
CASES = {
    "regressor": lambda df, y: MoERegressor(**SMALL).fit(df, y),
    "regressor-tree-2d": lambda df, y: MoERegressor(**SMALL, voronoi_search="tree").fit(
        df, np.c_[y, -2 * y]
    ),
    "classifier-str": lambda df, y: MoEClassifier(**SMALL).fit(
        df, pd.Series(np.where(y > 0, "yes", "no"), dtype=object)
    ),
    "classifier-learned-top2": lambda df, y: MoEClassifier(
        **SMALL, router="learned", top_k=2, class_weight={0: 1.0, 1: 2.0, 2: 1.0}
    ).fit(df, np.digitize(y, [-1, 1])),
    # Pruning leaves retired gate rows (expert_id -1) in the learned router.
    "regressor-learned-pruned": lambda df, y: MoERegressor(
        **{**SMALL, "n_experts": 6}, router="learned", expert_depth=1
    )
    .fit(df, y)
    .prune_experts(min_share=0.12),
}


@pytest.fixture(scope="module")
def table():
    return _table()


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request, table):
    return CASES[request.param](*table)


def _same_fitted_state(a, b):
    for attr in ("n_experts_", "n_params_total_", "n_params_active_", "n_iter_", "n_features_in_"):
        assert getattr(a, attr) == getattr(b, attr), attr
    np.testing.assert_array_equal(a.best_epoch_, b.best_epoch_)
    np.testing.assert_array_equal(a.expert_usage_, b.expert_usage_)
    np.testing.assert_array_equal(a.feature_names_in_, b.feature_names_in_)
    assert a.history_["phase"] == b.history_["phase"]
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    assert a.get_params() == b.get_params()
    if hasattr(a, "classes_"):
        np.testing.assert_array_equal(a.classes_, b.classes_)
        assert a.classes_.dtype == b.classes_.dtype


def _outputs(model, X):
    out = [model.predict(X), model.apply(X)]
    if hasattr(model, "predict_proba"):
        out.append(model.predict_proba(X))
    return out


def test_save_load_round_trip_is_exact(fitted, table, tmp_path):
    X = table[0]
    path = fitted.save(tmp_path / "model")
    assert (path / "model.json").is_file()
    assert len(list((path / "experts").glob("*.npz"))) == fitted.n_experts_
    loaded = skmoe.load(path)
    assert type(loaded) is type(fitted)
    _same_fitted_state(fitted, loaded)
    for a, b in zip(_outputs(fitted, X), _outputs(loaded, X)):
        np.testing.assert_array_equal(a, b)
    # The loaded model is a full estimator: reports and refits work.
    assert len(loaded.routing_report(X)) == fitted.n_experts_


def test_pickle_round_trip_is_exact_and_holds_no_tensor(fitted, table):
    X = table[0]
    state = fitted.__getstate__()
    assert not _holds_tensor(state)
    # Pickling does not touch the live model.
    assert isinstance(fitted.network_, torch.nn.Module)
    loaded = pickle.loads(pickle.dumps(fitted))
    _same_fitted_state(fitted, loaded)
    for a, b in zip(_outputs(fitted, X), _outputs(loaded, X)):
        np.testing.assert_array_equal(a, b)


def _holds_tensor(obj) -> bool:
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return True
    if isinstance(obj, dict):
        return any(_holds_tensor(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_holds_tensor(v) for v in obj)
    return False


def test_pickle_of_a_cuda_model_loads_without_a_gpu(table, monkeypatch):
    """Tensors pickled from a GPU carry the tag 'cuda:0' and fail to load on a
    CPU-only machine; skmoe's pickles hold arrays, so no tag is ever written."""
    df, y = table
    model = MoERegressor(**SMALL).fit(df, y)
    tags = []

    def cuda_tag(storage):  # pretend every tensor lives on the GPU
        tags.append(storage)
        return "cuda:0"

    monkeypatch.setattr(torch.serialization, "location_tag", cuda_tag)
    data = pickle.dumps(model)
    monkeypatch.undo()
    assert tags == []  # no torch storage was pickled
    np.testing.assert_array_equal(pickle.loads(data).predict(df), model.predict(df))

    # A raw torch network pickled under the same fake would not load here.
    monkeypatch.setattr(torch.serialization, "location_tag", cuda_tag)
    raw = pickle.dumps(model.network_)
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            pickle.loads(raw)


def test_pickle_warns_when_versions_differ(table, monkeypatch):
    model = MoERegressor(**SMALL).fit(*table)
    real = skmoe._persistence.versions()
    monkeypatch.setattr(skmoe._persistence, "versions", lambda: {**real, "skmoe": "0.0.1"})
    data = pickle.dumps(model)
    monkeypatch.undo()
    with pytest.warns(InconsistentVersionWarning, match=r"skmoe 0\.0\.1 \(running "):
        pickle.loads(data)


def test_load_warns_when_versions_differ(table, tmp_path):
    path = MoERegressor(**SMALL).fit(*table).save(tmp_path / "m")
    header = json.loads((path / "model.json").read_text())
    header["versions"]["torch"] = "1.0.0"
    (path / "model.json").write_text(json.dumps(header))
    with pytest.warns(InconsistentVersionWarning, match=r"torch 1\.0\.0"):
        skmoe.load(path)


def test_save_refuses_to_clobber(table, tmp_path):
    model = MoERegressor(**SMALL).fit(*table)
    path = model.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(path)
    other = tmp_path / "not-a-model"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a saved skmoe model"):
        model.save(other, overwrite=True)
    assert (other / "keep.txt").read_text() == "precious"
    model.save(path, overwrite=True)
    skmoe.load(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "not-a-model"]  # no leftovers
    with pytest.raises(NotFittedError):
        MoERegressor().save(tmp_path / "unfitted")


def test_save_rejects_unserialisable_values(table, tmp_path):
    df, y = table
    model = MoERegressor(**{**SMALL, "random_state": np.random.RandomState(0)}).fit(df, y)
    with pytest.warns(UserWarning, match="RandomState instance"):
        path = model.save(tmp_path / "m")
    assert skmoe.load(path).random_state is None
    clf = MoEClassifier(**SMALL).fit(df, y > 0)
    clf.classes_ = np.array([frozenset(), frozenset({1})], dtype=object)
    with pytest.raises(TypeError, match="Class labels of mixed or non-scalar"):
        clf.save(tmp_path / "c")


# -- tampered files ---------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(table, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model"
    MoERegressor(**SMALL, voronoi_search="tree").fit(*table).save(path)
    return path


@pytest.fixture
def copy(saved, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(saved, path)
    return path


def _header(path):
    return json.loads((path / "model.json").read_text())


def _write_header(path, header):
    (path / "model.json").write_text(json.dumps(header))


def _rewrite(path, name, arrays, fix_checksum=True):
    """Replace an array file and (as an attacker would) its header entry."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    (path / name).write_bytes(data)
    if fix_checksum:
        header = _header(path)
        entries = [header["files"]["arrays"], *header["files"]["experts"]]
        entry = next(e for e in entries if e["path"] == name)
        entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        _write_header(path, header)


def _arrays(path, name):
    with np.load(path / name) as f:
        return dict(f)


def _tamper_shape(path):
    shard = _arrays(path, "experts/00001.npz")
    shard["weights0"] = shard["weights0"][:, :-1]
    _rewrite(path, "experts/00001.npz", shard)


def _tamper_truncate(path):
    data = (path / "experts/00002.npz").read_bytes()
    (path / "experts/00002.npz").write_bytes(data[: len(data) // 2])


def _tamper_truncate_and_fix_checksum(path):
    data = (path / "arrays.npz").read_bytes()[:-200]
    (path / "arrays.npz").write_bytes(data)
    header = _header(path)
    header["files"]["arrays"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    _write_header(path, header)


def _tamper_outside(path):
    shutil.copy(path / "arrays.npz", path.parent / "evil.npz")
    header = _header(path)
    header["files"]["arrays"]["path"] = "../evil.npz"
    _write_header(path, header)


def _tamper_absolute(path):
    header = _header(path)
    header["files"]["arrays"]["path"] = str((path / "arrays.npz").resolve())
    _write_header(path, header)


def _tamper_symlink(path):
    shutil.copy(path / "experts/00000.npz", path.parent / "elsewhere.npz")
    (path / "experts/00000.npz").unlink()
    (path / "experts/00000.npz").symlink_to(path.parent / "elsewhere.npz")


def _tamper_missing_shard(path):
    (path / "experts/00003.npz").unlink()


def _tamper_object_array(path):
    arrays = _arrays(path, "arrays.npz")
    arrays["router/prototypes"] = np.array([{"__reduce__": "os.system"}], dtype=object)
    _rewrite(path, "arrays.npz", arrays)


def _tamper_nan_weights(path):
    shard = _arrays(path, "experts/00000.npz")
    shard["biases1"][0] = np.nan
    _rewrite(path, "experts/00000.npz", shard)


def _tamper_tree(path):
    arrays = _arrays(path, "arrays.npz")
    arrays["router/tree_members"] = arrays["router/tree_members"] + 100
    _rewrite(path, "arrays.npz", arrays)


def _tamper_encoder(path):
    arrays = _arrays(path, "arrays.npz")
    arrays["encoder/numeric/center_"] = arrays["encoder/numeric/center_"][:-1]
    _rewrite(path, "arrays.npz", arrays)


def _tamper_bins(path, bins):
    header = _header(path)
    header["encoder"]["numeric_bins"] = bins
    _write_header(path, header)


def _tamper_quantiles(path):
    arrays = _arrays(path, "arrays.npz")
    arrays["encoder/numeric/quantiles_"] = arrays["encoder/numeric/quantiles_"][::-1].copy()
    _rewrite(path, "arrays.npz", arrays)


def _tamper_edges(path):
    arrays = _arrays(path, "arrays.npz")
    arrays["encoder/numeric/edges_"] = arrays["encoder/numeric/edges_"][::-1].copy()
    _rewrite(path, "arrays.npz", arrays)


def _tamper_bins_of_an_old_file(path, bins):
    """A file from before ``edges_`` existed, with another bin count."""
    arrays = _arrays(path, "arrays.npz")
    del arrays["encoder/numeric/edges_"]
    _rewrite(path, "arrays.npz", arrays)
    _tamper_bins(path, bins)


def _tamper_slots(path):
    arrays = _arrays(path, "arrays.npz")
    arrays["encoder/slots/0"] = arrays["encoder/slots/0"] + 50
    _rewrite(path, "arrays.npz", arrays)


def _tamper_estimator(path):
    header = _header(path)
    header["estimator"] = "os.system"
    _write_header(path, header)


def _tamper_params(path):
    header = _header(path)
    header["params"]["exec"] = "print('hi')"
    _write_header(path, header)


def _tamper_format(path):
    header = _header(path)
    header["format_version"] = 99
    _write_header(path, header)


def _tamper_history(path):
    header = _header(path)
    header["fitted"]["history_"]["train_loss"] = 3
    _write_header(path, header)


def _tamper_json(path):
    (path / "model.json").write_text('{"format": "skmoe-model", ')


def _tamper_network_spec(path):
    header = _header(path)
    header["network"]["n_inputs"] += 1
    _write_header(path, header)


TAMPERING = {
    "wrong shape": (_tamper_shape, r"'weights0' has shape \(\d+, 15\), expected"),
    "truncated shard": (_tamper_truncate, "truncated or was modified"),
    "truncated, checksum fixed": (_tamper_truncate_and_fix_checksum, "not a readable array file"),
    "path outside the folder": (_tamper_outside, "outside the model folder"),
    "absolute path": (_tamper_absolute, "outside the model folder"),
    "symlink outside": (_tamper_symlink, "outside the model folder"),
    "missing shard": (_tamper_missing_shard, "00003.npz is missing"),
    "pickled object array": (_tamper_object_array, "not a readable array file"),
    "NaN weights": (_tamper_nan_weights, "NaN or infinite"),
    "tree indices out of range": (_tamper_tree, "routing tree"),
    "encoder shape": (_tamper_encoder, "center_' has shape"),
    "one-hot slots": (_tamper_slots, "slots of column"),
    "unsorted quantiles": (_tamper_quantiles, "finite and sorted"),
    "negative bins": (lambda path: _tamper_bins(path, -1), "numeric bins must be >= 0"),
    "other bins": (lambda path: _tamper_bins(path, 3), r"edges_' has shape \(\d+, 4\), expected \(4, 4\)"),
    "other bins, old file": (lambda path: _tamper_bins_of_an_old_file(path, 3), "The experts take"),
    "unsorted edges": (_tamper_edges, "edges_' must be finite and sorted"),
    "unknown estimator": (_tamper_estimator, "Unknown estimator 'os.system'"),
    "unknown parameter": (_tamper_params, "header is incomplete or malformed"),
    "newer format": (_tamper_format, "Upgrade skmoe"),
    "broken JSON": (_tamper_json, "not valid JSON"),
    "malformed history": (_tamper_history, "history is malformed"),
    "inconsistent spec": (_tamper_network_spec, "shape"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_files_are_refused(copy, case):
    tamper, message = TAMPERING[case]
    skmoe.load(copy)  # intact before
    tamper(copy)
    with pytest.raises(ModelFileError, match=message):
        skmoe.load(copy)


def test_file_from_before_numeric_bins_loads_without_them(table, tmp_path):
    """A model file written before the piecewise-linear view (no bins in its
    encoder or parameters) loads as a model without that view."""
    X, y = table
    model = MoERegressor(**SMALL, numeric_bins=0).fit(X, y)
    path = model.save(tmp_path / "old")
    header = _header(path)
    del header["encoder"]["numeric_bins"], header["params"]["numeric_bins"]
    _write_header(path, header)
    loaded = skmoe.load(path)
    assert loaded.numeric_bins == 0
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_target_range_whose_minimum_exceeds_its_maximum_is_refused(copy):
    with np.load(copy / "arrays.npz") as f:
        arrays = dict(f)
    arrays["fitted/y_min_"], arrays["fitted/y_max_"] = arrays["fitted/y_max_"] + 1, arrays["fitted/y_min_"]
    _rewrite(copy, "arrays.npz", arrays)
    with pytest.raises(ModelFileError, match="target range"):
        skmoe.load(copy)


def test_file_from_before_stored_bin_edges_derives_them(table, tmp_path):
    """A file without ``edges_`` (written before the heavy-value rule) bins as
    it was fitted: on edges read off its stored quantiles."""
    X, y = table
    model = MoERegressor(**SMALL).fit(X, y)
    path = model.save(tmp_path / "old")
    arrays = _arrays(path, "arrays.npz")
    del arrays["encoder/numeric/edges_"]
    _rewrite(path, "arrays.npz", arrays)
    numeric = skmoe.load(path).encoder_.numeric_
    assert numeric.edges_ is None
    np.testing.assert_array_equal(numeric.bin_edges(), model.encoder_.numeric_._quantile_edges())
    fresh = skmoe.load(model.save(tmp_path / "new")).encoder_.numeric_
    np.testing.assert_array_equal(fresh.bin_edges(), model.encoder_.numeric_.edges_)


@pytest.mark.parametrize(("param", "before"), [
    ("weight_averaging", 0.0), ("refit", False), ("probe_members", None), ("numeric_bins", 0),
])
def test_files_and_pickles_from_before_a_parameter_say_it_was_off(table, tmp_path, param, before):
    """Models fitted before ``weight_averaging``, ``refit`` or the probe
    existed had none of them (the early-stopped fit ran all members):
    loaded, their parameters say so, so fitting them again fits them as they
    were fitted."""
    import pickle

    X, y = table
    model = MoERegressor(**SMALL).fit(X, y)
    assert model.get_params()[param] != before
    path = model.save(tmp_path / "old")
    header = _header(path)
    del header["params"][param]
    _write_header(path, header)
    assert skmoe.load(path).get_params()[param] == before
    state = model.__getstate__()
    del state[param]
    old = MoERegressor.__new__(MoERegressor)
    old.__setstate__(state)
    assert old.get_params()[param] == before
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(old)).predict(X), model.predict(X))


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelFileError, match="model.json is missing"):
        skmoe.load(tmp_path)

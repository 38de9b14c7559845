"""Hostile inputs: memory follows the data's real size, and nothing is silently wrong."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import skmoe
from skmoe import MoEClassifier, MoERegressor

TINY = dict(n_experts=2, expert_width=8, expert_members=2, max_epochs=1, random_state=0)


def _frame(n=2000, long_value="x" * 100_000):
    rng = np.random.default_rng(0)
    plan = rng.choice(["basic", "plus", "pro"], n).astype(object)
    plan[7] = long_value  # one long value among short ones
    return pd.DataFrame({"plan": plan, "usage": rng.normal(size=n)}), rng.normal(size=n)


def _peak_mib(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_one_long_category_value_costs_its_own_size_at_fit_and_predict():
    """A 100,000-character value in 2,000 rows: category labels are held as
    Python strings, not as a fixed-width array of rows times the longest
    value (which took 2,000 x 100,000 x 4 bytes = 763 MiB at predict)."""
    X, y = _frame()
    model = MoERegressor(**TINY)
    assert _peak_mib(lambda: model.fit(X, y)) < 100
    assert _peak_mib(lambda: model.predict(X)) < 20
    assert model.schema_.levels_[0].dtype == object


def test_a_long_level_is_saved_in_its_own_size(tmp_path):
    """A 1 MB level: the model folder holds its bytes once, not every level
    padded to the longest (which made an 80 MB folder)."""
    X, y = _frame(long_value="é" * 500_000)  # 1 MB in UTF-8
    for _ in range(5):  # frequent enough for a slot of its own
        X.loc[len(X)] = ["é" * 500_000, 0.0]
        y = np.append(y, 0.0)
    model = MoERegressor(**TINY).fit(X, y)
    path = model.save(tmp_path / "model")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size < 3 * 2**20
    loaded = skmoe.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert "é" * 500_000 in set(loaded.schema_.levels_[0])


def test_labels_keep_their_exact_text():
    """Levels differing only by trailing NUL characters or case stay apart
    (a fixed-width NumPy string array drops trailing NULs)."""
    X = pd.DataFrame({"c": ["a", "a\x00", "A", "a"] * 50, "x": np.arange(200.0)})
    y = np.arange(200.0)
    model = MoERegressor(**TINY).fit(X, y)
    assert sorted(model.schema_.levels_[0]) == ["A", "a", "a\x00"]


def test_tampered_levels_are_refused(tmp_path):
    import io
    import json
    import hashlib

    X, y = _frame(n=300, long_value="long")
    path = MoEClassifier(**TINY).fit(X, y > 0).save(tmp_path / "model")
    with np.load(path / "arrays.npz") as f:
        arrays = dict(f)
    arrays["schema/levels/0/ends"] = arrays["schema/levels/0/ends"][::-1].copy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (path / "arrays.npz").write_bytes(buffer.getvalue())
    header = json.loads((path / "model.json").read_text())
    header["files"]["arrays"].update(bytes=len(buffer.getvalue()),
                                     sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    (path / "model.json").write_text(json.dumps(header))
    with pytest.raises(skmoe.ModelFileError, match="levels of column 0"):
        skmoe.load(path)


# -- model files whose numbers would predict inf or NaN ------------------------------
def _rewrite_arrays(path, name, change):
    import hashlib
    import io
    import json

    with np.load(path / name) as f:
        arrays = dict(f)
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    (path / name).write_bytes(data)
    header = json.loads((path / "model.json").read_text())
    entry = next(e for e in [header["files"]["arrays"], *header["files"]["experts"]] if e["path"] == name)
    entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (path / "model.json").write_text(json.dumps(header))


def _set(key, value, index=0):
    def change(arrays):
        arrays[key] = arrays[key].astype(np.float64)
        arrays[key].reshape(-1)[index] = value
    return change


NUMBERS = {
    "weight beyond float32": ("experts/00000.npz", _set("weights0", 1e300), "weights0.*NaN or infinite"),
    "zero target scale": ("arrays.npz", _set("fitted/y_scale_", 0.0), "y_scale_.*finite and positive"),
    "infinite target mean": ("arrays.npz", _set("fitted/y_mean_", np.inf), "y_mean_.*finite"),
    "zero input scale": ("arrays.npz", _set("encoder/numeric/scale_", 0.0), "scale_.*finite and positive"),
    "NaN centre": ("arrays.npz", _set("encoder/numeric/center_", np.nan), "center_.*finite"),
    "NaN median": ("arrays.npz", _set("encoder/numeric/median_", np.nan), "median_.*finite"),
    "quantile levels": ("arrays.npz", _set("encoder/numeric/levels_", 0.5, index=3), "levels_.*rise"),
}


@pytest.fixture(scope="module")
def saved_regressor(tmp_path_factory):
    X, y = _frame(n=400, long_value="long")
    path = tmp_path_factory.mktemp("numbers") / "model"
    MoERegressor(**TINY).fit(X, y).save(path)
    return path


@pytest.mark.parametrize("case", sorted(NUMBERS))
def test_numbers_that_would_predict_inf_or_nan_are_refused(saved_regressor, tmp_path, case):
    import shutil

    name, change, message = NUMBERS[case]
    path = tmp_path / "model"
    shutil.copytree(saved_regressor, path)
    skmoe.load(path)  # intact before
    _rewrite_arrays(path, name, change)
    with pytest.raises(skmoe.ModelFileError, match=message):
        skmoe.load(path)


def test_duplicated_header_keys_are_refused(saved_regressor, tmp_path):
    import shutil

    path = tmp_path / "model"
    shutil.copytree(saved_regressor, path)
    text = (path / "model.json").read_text()
    (path / "model.json").write_text(text.replace('"fitted": {', '"fitted": {"n_iter_": 1, ', 1))
    with pytest.raises(skmoe.ModelFileError, match=r"\['n_iter_'\] appear more than once"):
        skmoe.load(path)


@pytest.mark.parametrize("corrupt", [
    lambda h: h.update(network=[]),                       # a list where an object belongs
    lambda h: h["files"]["experts"][0].update(path="experts/\x00.npz"),   # embedded NUL
    lambda h: h.update(fitted=None),
    lambda h: h["network"].update(router=7),
])
def test_malformed_headers_give_model_file_errors(saved_regressor, tmp_path, corrupt):
    import json
    import shutil

    path = tmp_path / "model"
    shutil.copytree(saved_regressor, path)
    header = json.loads((path / "model.json").read_text())
    corrupt(header)
    (path / "model.json").write_text(json.dumps(header))
    with pytest.raises(skmoe.ModelFileError):
        skmoe.load(path)


def test_deeply_nested_header_is_a_model_file_error(saved_regressor, tmp_path):
    import shutil

    path = tmp_path / "model"
    shutil.copytree(saved_regressor, path)
    (path / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(skmoe.ModelFileError):
        skmoe.load(path)


def test_complex_dataframe_columns_are_refused_like_complex_arrays():
    X = pd.DataFrame({"z": np.arange(50) * (1 + 1j), "x": np.arange(50.0)})
    with pytest.raises(ValueError, match="'z' holds complex numbers"):
        MoERegressor(**TINY).fit(X, np.arange(50.0))
    with pytest.raises(ValueError, match="[Cc]omplex"):
        MoERegressor(**TINY).fit(X.to_numpy(), np.arange(50.0))


def test_a_second_concurrent_fit_of_one_estimator_is_refused():
    """Two threads fitting one estimator: the second gets a clear error, the
    first finishes with a consistent model (no hybrid of the two fits)."""
    import threading

    started, release = threading.Event(), threading.Event()

    class Slow(MoERegressor):
        def _loss(self, out, y):
            started.set()
            release.wait(30)
            return super()._loss(out, y)

    X = np.random.default_rng(0).normal(size=(300, 3))
    model = Slow(**TINY)
    first = threading.Thread(target=model.fit, args=(X, X[:, 0]))
    first.start()
    assert started.wait(30)
    try:
        with pytest.raises(RuntimeError, match="being fitted in another thread.*clone"):
            model.fit(X, 100 * X[:, 1])
    finally:
        release.set()
        first.join(60)
    assert model.score(X, X[:, 0]) > model.score(X, 100 * X[:, 1])  # the first fit's target
    model.fit(X, X[:, 1])  # one after the other is fine


# -- the command line ---------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 600
    plan = rng.choice(["NA", "None", "basic", "pro"], n)  # words pandas reads as missing
    df = pd.DataFrame({"usage": rng.normal(size=n), "plan": plan})
    y = df["usage"] + pd.Series(plan).map({"NA": 3.0, "None": -3.0, "basic": 0.0, "pro": 1.0})
    model = MoERegressor(**{**TINY, "max_epochs": 20}).fit(df, y)
    path = model.save(tmp_path_factory.mktemp("cli") / "model")
    return model, path, df


def test_cli_reads_category_words_as_predict_sees_them(cli_model, tmp_path):
    from skmoe._cli import main

    model, path, df = cli_model
    df.to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(path), str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv")]) == 0
    scored = pd.read_csv(tmp_path / "o.csv")["prediction"]
    np.testing.assert_allclose(scored, model.predict(df), rtol=1e-12)


@pytest.mark.parametrize("line, fields", [("1.5,basic,extra", 3), ("1.5", 1)])
def test_cli_refuses_a_row_with_the_wrong_number_of_fields(cli_model, tmp_path, capsys, line, fields):
    from skmoe._cli import main

    _, path, df = cli_model
    text = df.head(5).to_csv(index=False).splitlines()
    text.insert(3, line)
    (tmp_path / "in.csv").write_text("\n".join(text) + "\n")
    out = tmp_path / "o.csv"
    assert main(["predict", str(path), str(tmp_path / "in.csv"), "-o", str(out)]) == 2
    assert f"line 4: {fields} fields, but the header has 2" in capsys.readouterr().err
    assert not out.exists()


def test_cli_refuses_kept_columns_that_collide_with_outputs(cli_model, tmp_path, capsys):
    from skmoe._cli import main

    _, path, df = cli_model
    df.assign(prediction=1.0).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(path), str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"),
                 "--keep", "prediction"]) == 2
    assert "--keep names columns that the output writes itself: ['prediction']" in capsys.readouterr().err


def test_cli_os_errors_are_clean(cli_model, tmp_path, capsys):
    import os

    from skmoe._cli import main

    _, path, df = cli_model
    (tmp_path / "bad.csv.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    assert main(["predict", str(path), str(tmp_path / "bad.csv.gz"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "error:" in capsys.readouterr().err
    df.to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(path), str(tmp_path / "in.csv"), "-o", str(tmp_path / "no" / "o.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["predict", str(path), str(tmp_path / "in.csv"), "-o", str(locked / "o.csv")]) == 2
        assert "Permission denied" in capsys.readouterr().err


# -- a loader that checks before it allocates -----------------------------------------
def _copy(saved, tmp_path):
    import shutil

    path = tmp_path / "model"
    shutil.copytree(saved, path)
    return path


def _header_edit(path, edit):
    import json

    header = json.loads((path / "model.json").read_text())
    edit(header)
    (path / "model.json").write_text(json.dumps(header))


def test_a_zip_bomb_member_is_refused_before_it_is_decompressed(saved_regressor, tmp_path):
    import zipfile

    path = _copy(saved_regressor, tmp_path)

    def bomb(arrays):
        arrays["junk"] = np.zeros(50_000_000, dtype=np.uint8)  # 50 MB of zeros

    # Written deflated, as an attacker would: a few kB on disk.
    with np.load(path / "arrays.npz") as f:
        arrays = dict(f)
    bomb(arrays)
    np.savez_compressed(path / "arrays.npz", **arrays)
    import hashlib

    data = (path / "arrays.npz").read_bytes()
    assert len(data) < 1_000_000
    _header_edit(path, lambda h: h["files"]["arrays"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
    assert zipfile.ZipFile(path / "arrays.npz").getinfo("junk.npy").file_size > 50_000_000
    assert _peak_mib(lambda: _load_refused(path, "decompress to more")) < 20


def _load_refused(path, message):
    with pytest.raises(skmoe.ModelFileError, match=message):
        skmoe.load(path, lazy=True)


def test_a_shard_larger_than_its_header_entry_is_refused_unread(saved_regressor, tmp_path):
    path = _copy(saved_regressor, tmp_path)
    with open(path / "experts" / "00001.npz", "ab") as f:
        f.truncate(200 * 2**20)  # 200 MiB (sparse)
    peak = _peak_mib(lambda: _load_refused_eager(path, "00001.npz has 209715200 bytes, but the model header says"))
    assert peak < 20


def _load_refused_eager(path, message):
    with pytest.raises(skmoe.ModelFileError, match=message):
        skmoe.load(path)


# The child's own peak resident memory. Linux keeps ``ru_maxrss`` across
# exec, so there a child reports at least its parent's (pytest's) peak;
# ``VmHWM`` belongs to the new address space alone.
_PEAK_MIB = """
def peak_mib():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
"""

_LOAD_AND_REPORT_RSS = _PEAK_MIB + """
import sys
import skmoe
try:
    skmoe.load(sys.argv[1])
except skmoe.ModelFileError as exc:
    print("refused:", exc)
print("maxrss_mib", peak_mib())
"""


@pytest.mark.parametrize("key, value", [("members", 100_000), ("width", 1_000_000), ("n_inputs", 10**7)])
def test_header_sizes_cannot_make_the_loader_allocate(saved_regressor, tmp_path, key, value):
    """Sizes in the header are checked against the arrays before any tensor
    is allocated (torch's allocations are outside tracemalloc: the load runs
    in a subprocess that reports its peak resident memory)."""
    import subprocess
    import sys

    path = _copy(saved_regressor, tmp_path)
    _header_edit(path, lambda h: h["network"].update({key: value}))
    out = subprocess.run([sys.executable, "-c", _LOAD_AND_REPORT_RSS, str(path)],
                         capture_output=True, text=True, timeout=300).stdout
    assert "refused:" in out and "shape" in out
    assert int(out.split("maxrss_mib")[1]) < 1500  # a bank of that size would take 2-40 GiB


def test_a_huge_declared_array_shape_is_a_model_file_error(saved_regressor, tmp_path):
    """A member whose own header declares (1e6, 1e6) floats: refused, no MemoryError."""
    import hashlib
    import io
    import zipfile

    path = _copy(saved_regressor, tmp_path)
    npz = path / "arrays.npz"
    with zipfile.ZipFile(npz) as z:
        members = {n: z.read(n) for n in z.namelist()}
    member = io.BytesIO()  # a valid .npy header declaring 10^12 float64s, then 8 bytes
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f8", "fortran_order": False, "shape": (1_000_000, 1_000_000)}
    )
    members["fitted/y_mean_.npy"] = member.getvalue() + bytes(8)
    with zipfile.ZipFile(npz, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    data = npz.read_bytes()
    _header_edit(path, lambda h: h["files"]["arrays"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
    with pytest.raises(skmoe.ModelFileError, match="declares shape"):
        skmoe.load(path)


def test_a_header_that_links_outside_the_folder_is_refused(saved_regressor, tmp_path):
    import shutil

    path = _copy(saved_regressor, tmp_path)
    shutil.move(path / "model.json", tmp_path / "elsewhere.json")
    (path / "model.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(skmoe.ModelFileError, match="outside the model folder"):
        skmoe.load(path)


def test_a_huge_header_is_refused_unread(saved_regressor, tmp_path):
    path = _copy(saved_regressor, tmp_path)
    with open(path / "model.json", "ab") as f:
        f.truncate(250 * 2**20)  # 250 MB (sparse)
    assert _peak_mib(lambda: _load_refused_eager(path, "more than a model header's 64 MiB")) < 20


# -- killed processes: saves and checkpoints ------------------------------------------
_SAVE_KILLED_AT_STEP = """
import os, shutil, sys
from pathlib import Path
import skmoe
from skmoe import _persistence

source, target, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = skmoe.load(source)
steps = [0]

def step(fn):
    def run(*args, **kwargs):
        steps[0] += 1
        if steps[0] == kill_at:
            os._exit(17)  # killed before this filesystem step
        return fn(*args, **kwargs)
    return run

Path.mkdir = step(Path.mkdir)
Path.write_bytes = step(Path.write_bytes)
Path.write_text = step(Path.write_text)
Path.rename = step(Path.rename)
shutil.rmtree = step(shutil.rmtree)
_persistence._exchange = step(_persistence._exchange)
model.save(target, overwrite=True)
print("steps", steps[0])
"""


def test_a_save_killed_at_any_step_leaves_a_complete_model(tmp_path):
    """Kill ``save(overwrite=True)`` before each of its filesystem steps, in a
    subprocess: the path always loads, as the old model or the new one, and
    the next save leaves nothing behind."""
    import subprocess
    import sys

    X, y = _frame(n=300, long_value="long")
    old = MoERegressor(**TINY).fit(X, y)
    new = MoERegressor(**{**TINY, "random_state": 1}).fit(X, y)
    new.save(tmp_path / "new")
    expected = {"old": old.predict(X), "new": new.predict(X)}
    run = [sys.executable, "-c", _SAVE_KILLED_AT_STEP, str(tmp_path / "new"), str(tmp_path / "m")]
    old.save(tmp_path / "m")
    done = subprocess.run(run + ["0"], capture_output=True, text=True, timeout=120)
    n_steps = int(done.stdout.split("steps")[1])
    assert n_steps >= 5
    for kill_at in range(1, n_steps + 1):
        old.save(tmp_path / "m", overwrite=True)
        killed = subprocess.run(run + [str(kill_at)], capture_output=True, text=True, timeout=120)
        assert killed.returncode == 17, killed.stderr
        predictions = skmoe.load(tmp_path / "m").predict(X)
        assert any(np.array_equal(predictions, e) for e in expected.values()), kill_at
    old.save(tmp_path / "m", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "new"]  # leftovers cleared


def test_resume_finds_the_checkpoint_a_killed_swap_left_beside_the_folder(tmp_path):
    """Without an atomic exchange a kill between the two renames leaves the
    last checkpoint in ``.NAME.old*``: warm_start resumes from it, it does
    not silently start over."""
    X = np.random.default_rng(0).normal(size=(400, 3))
    y = X[:, 0]
    ckpt = tmp_path / "ckpt"
    fitted = MoERegressor(**{**TINY, "max_epochs": 4}, checkpoint_dir=ckpt, checkpoint_every=2).fit(X, y)
    ckpt.rename(tmp_path / ".ckpt.old123-abcd")  # the state a kill between the renames leaves
    resumed = MoERegressor(**{**TINY, "max_epochs": 1}, checkpoint_dir=ckpt, checkpoint_every=1,
                           warm_start=True)
    resumed.fit(X, y)
    assert resumed.n_iter_ > fitted.n_iter_ - 1  # went on from the checkpoint's epochs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # its next checkpoint cleared it


def test_a_failed_checkpoint_write_warns_and_training_goes_on(tmp_path, monkeypatch):
    from skmoe import _persistence

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_persistence, "_write_folder", full_disk)
    X = np.random.default_rng(0).normal(size=(300, 3))
    with pytest.warns(UserWarning, match="Could not write a checkpoint.*No space left"):
        model = MoERegressor(**{**TINY, "max_epochs": 4}, checkpoint_dir=tmp_path / "c",
                             checkpoint_every=2).fit(X, X[:, 0])
    assert model.predict(X).shape == (300,)


def test_parallel_grid_search_with_one_checkpoint_dir(tmp_path):
    """GridSearchCV(n_jobs=2) fits checkpointing into one folder at once: the
    saves are serialised (no 'Directory not empty'), and a model is left."""
    from sklearn.model_selection import GridSearchCV

    X = np.random.default_rng(0).normal(size=(400, 3))
    search = GridSearchCV(
        MoERegressor(**{**TINY, "max_epochs": 6}, checkpoint_dir=str(tmp_path / "c"), checkpoint_every=1),
        {"expert_width": [8, 12]}, cv=2, n_jobs=2,
    ).fit(X, X[:, 0])
    assert np.isfinite(search.best_score_)
    skmoe.load(tmp_path / "c")


_CLI_AND_REPORT_RSS = _PEAK_MIB + """
import sys
from skmoe._cli import main
code = main(sys.argv[1:])
print("rc", code, "maxrss_mib", peak_mib())
"""


def test_cli_memory_with_a_long_value_follows_the_file(tmp_path):
    """A CSV of 2 MB with one 30,000-character value (the command line took
    3.9 GB scoring it): the run stays near the interpreter's own footprint."""
    import subprocess
    import sys

    X, y = _frame(n=60_000, long_value="z" * 30_000)
    path = MoERegressor(**TINY).fit(X.iloc[:3000], y[:3000]).save(tmp_path / "m")
    X.to_csv(tmp_path / "in.csv", index=False)
    out = subprocess.run(
        [sys.executable, "-c", _CLI_AND_REPORT_RSS, "predict", str(path), str(tmp_path / "in.csv"),
         "-o", str(tmp_path / "o.csv")], capture_output=True, text=True, timeout=300,
    ).stdout
    assert "rc 0" in out, out
    assert int(out.split("maxrss_mib")[1]) < 1000

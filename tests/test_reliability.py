"""Training and prediction faults, determinism and checkpoints."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import make_friedman1
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import KFold, cross_val_predict

import skmoe
from skmoe import MoEClassifier, MoERegressor
from skmoe._torch.routing import MoENetwork
from skmoe._torch.training import Trainer

FAST = dict(n_experts=4, expert_width=32, max_epochs=6, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_friedman1(n_samples=1500, random_state=0)


@pytest.fixture(scope="module")
def model(data):
    return MoERegressor(**FAST).fit(*data)


# -- out of GPU memory (simulated: torch raises the same error type) ----------------
def _oom_above(limit):
    real = MoENetwork.forward

    def forward(self, x):
        if x.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x)

    return forward


def test_predict_out_of_memory_retries_with_smaller_chunks(model, data, monkeypatch):
    X = data[0]
    expected = model.predict(X)
    monkeypatch.setattr(MoENetwork, "forward", _oom_above(300))
    np.testing.assert_array_equal(model.predict(X), expected)


def test_predict_out_of_memory_at_the_smallest_chunk_says_what_to_do(model, data, monkeypatch):
    monkeypatch.setattr(MoENetwork, "forward", _oom_above(0))
    with pytest.raises(torch.OutOfMemoryError, match="Out of GPU memory predicting 256 rows.*Free GPU memory"):
        model.predict(data[0])


def test_fit_out_of_memory_names_the_settings_to_lower(data, monkeypatch):
    def epoch(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "_global_epoch", epoch)
    with pytest.raises(torch.OutOfMemoryError, match=r"batch_size=\d+.*Lower batch_size first"):
        MoERegressor(**FAST).fit(*data)


def test_failed_refit_leaves_the_estimator_unfitted_not_half_new(data, monkeypatch):
    X, y = data
    model = MoERegressor(**FAST).fit(X, y)
    monkeypatch.setattr(Trainer, "_global_epoch", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(X[:, ::-1], y)  # a new encoding would not match the old network
    assert not [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]
    with pytest.raises(NotFittedError):
        model.predict(X)


def test_failed_warm_start_fit_keeps_the_fitted_model(data, monkeypatch):
    X, y = data
    model = MoERegressor(**FAST).fit(X, y)
    before = model.predict(X)
    monkeypatch.setattr(Trainer, "_specialise_voronoi", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        model.set_params(warm_start=True, n_experts=6).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), before)
    assert model.network_.bank.n_experts == 4


# -- determinism --------------------------------------------------------------------
_FIT_IN_A_FRESH_PROCESS = """
import hashlib, sys
from sklearn.datasets import make_friedman1
from skmoe import MoERegressor
X, y = make_friedman1(n_samples=1500, random_state=0)
model = MoERegressor(n_experts=4, expert_width=32, max_epochs=6, random_state=0).fit(X, y)
print(hashlib.sha256(model.predict(X).tobytes()).hexdigest())
"""


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_same_seed_same_predictions_in_a_fresh_process(model, data):
    out = subprocess.run(
        [sys.executable, "-c", _FIT_IN_A_FRESH_PROCESS], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == _digest(model.predict(data[0]))


@pytest.mark.parametrize("router", ["voronoi", "learned"])
def test_same_seed_same_predictions_whatever_the_thread_count(data, router):
    X, y = data
    before = torch.get_num_threads()
    digests = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fitted = MoEClassifier(**FAST, router=router).fit(X, y > 14)
            digests.append(_digest(fitted.predict_proba(X)))
    finally:
        torch.set_num_threads(before)
    assert digests[0] == digests[1]


def test_cross_validation_is_identical_across_n_jobs(data):
    X, y = data
    cv = KFold(3, shuffle=True, random_state=0)
    est = MoERegressor(**{**FAST, "max_epochs": 3})
    serial = cross_val_predict(est, X, y, cv=cv, n_jobs=1)
    parallel = cross_val_predict(est, X, y, cv=cv, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)


# -- checkpoints ------------------------------------------------------------------------
@pytest.mark.parametrize("router", ["voronoi", "learned"])
def test_checkpoints_are_loadable_models(data, tmp_path, router):
    X, y = data
    path = tmp_path / "ckpt"
    fitted = MoERegressor(**FAST, router=router, checkpoint_dir=path, checkpoint_every=4).fit(X, y)
    saved = skmoe.load(path)
    assert saved.n_iter_ % 4 == 0 and 0 < saved.n_iter_ <= fitted.n_iter_
    assert saved.history_["phase"] == fitted.history_["phase"][: saved.n_iter_]
    assert saved.score(X, y) > 0.5
    # Checkpoints do not change the fit, beyond running the early-stopped
    # fit with all members (no probe), so that its checkpoints can resume.
    plain = MoERegressor(**FAST, router=router, probe_members=None).fit(X, y)
    np.testing.assert_array_equal(plain.predict(X), fitted.predict(X))


class _CrashingRegressor(MoERegressor):
    """Training dies (a lost machine, say) after a set number of loss calls."""

    def __init__(self, *, crash_after=10**9, **params):
        super().__init__(**params)
        self.crash_after = crash_after

    def _loss(self, out, y):
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls > self.crash_after:
            raise RuntimeError("the machine went away")
        return super()._loss(out, y)


def test_resume_from_a_checkpoint_after_a_crash(data, tmp_path):
    X, y = data
    X_tr, y_tr, X_te, y_te = X[:1200], y[:1200], X[1200:], y[1200:]
    path = tmp_path / "ckpt"
    params = dict(FAST, max_epochs=8, checkpoint_dir=path, checkpoint_every=2)
    with pytest.raises(RuntimeError, match="went away"), pytest.warns(UserWarning, match="crash_after"):
        _CrashingRegressor(crash_after=200, **params).fit(X_tr, y_tr)
    crashed = skmoe.load(path)
    assert crashed.n_iter_ >= 2
    resumed = MoERegressor(**params, warm_start=True).fit(X_tr, y_tr)
    assert resumed.n_iter_ > crashed.n_iter_
    assert resumed.history_["phase"][: crashed.n_iter_] == crashed.history_["phase"]
    assert resumed.score(X_te, y_te) >= crashed.score(X_te, y_te) - 0.01


def test_checkpoint_dir_that_is_not_a_model_is_refused(data, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a saved skmoe model"):
        MoERegressor(**FAST, checkpoint_dir=tmp_path).fit(*data)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_checkpoint_of_another_estimator_is_refused(data, tmp_path):
    X, y = data
    MoEClassifier(**FAST, checkpoint_dir=tmp_path / "c", checkpoint_every=2).fit(X, y > 14)
    with pytest.raises(ValueError, match="holds a MoEClassifier, not a MoERegressor"):
        MoERegressor(**FAST, checkpoint_dir=tmp_path / "c", warm_start=True).fit(X, y)


@pytest.mark.parametrize("width, n_inputs", [(16, 5), (256, 30), (1024, 119)])
def test_a_rows_prediction_does_not_depend_on_its_batch_or_threads(width, n_inputs):
    """Bit for bit: the same row alone, in small chunks or in one big batch,
    on one thread or two."""
    from skmoe._torch.experts import ExpertBank

    bank = ExpertBank(1, n_inputs, 2, 2, width, True)
    bank.reset_parameters(torch.Generator().manual_seed(0))
    X = torch.randn(1000, n_inputs, generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    try:
        with torch.inference_mode():
            full = bank.forward_groups([X])[0]
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for n in (1, 7, 16, 333):
                    chunked = torch.cat([bank.forward_groups([x])[0] for x in X.split(n)])
                    assert torch.equal(chunked, full), (threads, n)
    finally:
        torch.set_num_threads(before)


def test_predict_in_chunks_equals_predict_at_once(model, data, monkeypatch):
    X = data[0]
    expected = model.predict(X)
    monkeypatch.setattr("skmoe._torch.device.CHUNK_ROWS", 97)
    np.testing.assert_array_equal(model.predict(X), expected)
    np.testing.assert_array_equal(np.concatenate([model.predict(X[i : i + 1]) for i in range(50)]), expected[:50])


class _ThreadProbe(MoERegressor):
    """Records the torch threads its training ran with."""

    def _loss(self, out, y):
        self.threads_seen_ = torch.get_num_threads()
        return super()._loss(out, y)


def test_n_threads_limits_torch_during_fit_and_restores_it(data):
    X, y = data
    before = torch.get_num_threads()
    for _ in range(2):  # the thread pools are found once, then limited on every call
        model = _ThreadProbe(**{**FAST, "max_epochs": 1}, n_threads=1).fit(X, y)
        assert model.threads_seen_ == 1
        assert torch.get_num_threads() == before


def test_parallel_search_workers_do_not_oversubscribe(data):
    """In GridSearchCV(n_jobs=2) each worker's torch gets n_cpus // 2 threads."""
    import os

    from sklearn.model_selection import GridSearchCV

    X, y = data
    search = GridSearchCV(
        _ThreadProbe(**{**FAST, "max_epochs": 1}),
        {"n_experts": [2, 3]},
        cv=2,
        n_jobs=2,
        scoring=lambda est, X, y: est.threads_seen_,
    ).fit(X, y)
    expected = max(1, (os.cpu_count() or 2) // 2)
    assert set(search.cv_results_["mean_test_score"]) == {expected}


@pytest.mark.parametrize("router", ["voronoi", "learned"])
def test_bf16_autocast_trains_and_routes_as_float32(data, router):
    X, y = data
    params = dict(FAST, router=router, max_epochs=3)
    plain = MoERegressor(**params, autocast=False).fit(X, y)
    bf16 = MoERegressor(**params, autocast=True).fit(X, y)
    # The experts trained in bfloat16 (different weights), the routing did not.
    assert not np.array_equal(plain.predict(X), bf16.predict(X))
    if router == "voronoi":
        np.testing.assert_array_equal(plain.apply(X), bf16.apply(X))
        np.testing.assert_array_equal(
            plain.network_.router.prototypes.numpy(), bf16.network_.router.prototypes.numpy()
        )
    assert bf16.score(X, y) > plain.score(X, y) - 0.05


@pytest.mark.parametrize(
    "flags, expected",
    [(frozenset({"avx2", "avx512f", "avx512_bf16"}), torch.bfloat16),
     (frozenset({"avx2", "amx_bf16"}), torch.bfloat16),
     (frozenset({"avx2", "avx512f"}), None),  # bfloat16 emulated: slower than float32
     (frozenset(), None)],  # flags unknown (no /proc/cpuinfo)
)
def test_auto_autocast_follows_the_cpus_bfloat16_instructions(monkeypatch, flags, expected):
    from skmoe._torch import device as device_module

    monkeypatch.setattr(device_module, "_cpu_flags", lambda: flags)
    cpu = torch.device("cpu")
    x = torch.randn(4, 3)
    with device_module.training_autocast("auto", cpu):
        assert (x @ x.T).dtype == (expected or torch.float32)
        with device_module.full_precision(x):  # routing and the validation losses
            assert (x @ x.T).dtype == torch.float32
    with device_module.training_autocast(False, cpu):
        assert (x @ x.T).dtype == torch.float32
    with device_module.training_autocast(True, cpu):
        assert (x @ x.T).dtype == torch.bfloat16


def _recording_loss(seen):
    from skmoe._torch import api

    def loss(out, y):
        seen.append((torch.is_grad_enabled(), torch.is_autocast_enabled("cpu")))
        return api.squared_error(out, y)

    return loss


def test_validation_losses_are_float32_under_bfloat16_training(data, monkeypatch, capture_expert_jobs):
    """Early stopping judges the float32 numbers prediction will give: every
    loss computed without gradients (validation: the shared phase, the expert
    jobs in a loop or batched) runs with autocast off, while the training
    steps' losses run under it."""
    from dataclasses import replace

    from skmoe._torch.specialise import train_experts

    seen = []
    monkeypatch.setattr(MoERegressor, "_loss", staticmethod(_recording_loss(seen)))
    X, y = data
    (job,) = capture_expert_jobs(MoERegressor(**FAST, autocast=True), X, y)
    assert job.val is not None
    for batched in (False, True):
        train_experts(replace(job, batched=batched, autocast=True, loss_fn=_recording_loss(seen)))
    assert {autocast for grad, autocast in seen if not grad} == {False}
    assert {autocast for grad, autocast in seen if grad} == {True}


def test_fits_are_bit_identical_whatever_n_threads(data):
    """The same seed gives the same model on one thread or two, bfloat16
    products (oneDNN, outside MKL's strict mode) and k-means prototypes
    (whose sums over threads followed the thread count) included."""
    X, y = data
    for autocast in (False, True):
        a = MoERegressor(**FAST, autocast=autocast, n_threads=1).fit(X, y)
        b = MoERegressor(**FAST, autocast=autocast, n_threads=2).fit(X, y)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
        one, two = a.network_.state_dict(), b.network_.state_dict()
        assert one.keys() == two.keys()
        assert [key for key in one if not torch.equal(one[key], two[key])] == []

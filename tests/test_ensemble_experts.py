"""Ensemble experts (``expert_members``): forward pass, loss, fitting, files."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

import skmoe
from skmoe import MoEClassifier, MoERegressor, count_parameters
from skmoe._torch.experts import ExpertBank, MemberLoss, _MembersFirstLayer, mlp_forward
from skmoe._torch.training import log_loss, squared_error

SMALL = dict(n_experts=3, expert_width=16, max_epochs=5, random_state=0)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 4)), columns=list("abcd"))
    X["plan"] = pd.Series(rng.choice(["basic", "pro"], 400)).astype("category")
    y = X["a"] * 2 + np.sin(3 * X["c"]) + (X["plan"] == "pro") + rng.normal(0, 0.1, 400)
    return X, y.to_numpy()


def _bank(members, n_outputs=2, depth=2):
    bank = ExpertBank(2, 5, n_outputs, depth, 8, prelu=True, members=members)
    bank.reset_parameters(torch.Generator().manual_seed(0))
    return bank


def test_members_are_separate_mlps_sharing_hidden_layers():
    """Each member is the MLP that sees the inputs scaled by its adapter and
    whose output layer is its own block of columns; the expert predicts the
    members' mean, and forward_members gives every member's output, whatever
    the gradient mode."""
    k, o = 3, 2
    bank = _bank(k, o)
    x = torch.randn(7, 5)
    e = 1
    w = [p[e] for p in bank.weights]
    b = [p[e] for p in bank.biases]
    a = [p[e] for p in bank.slopes]
    adapter = bank.adapters[0][e]
    assert set(adapter.detach().unique().tolist()) <= {-1.0, 1.0}  # random signs
    with torch.no_grad():
        members = [
            mlp_forward(x * adapter[j], w[:-1] + [w[-1][:, j * o : (j + 1) * o]],
                        b[:-1] + [b[-1][j * o : (j + 1) * o]], a, True)
            for j in range(k)
        ]
        mean = bank.forward_groups([None, x])[1]
    torch.testing.assert_close(mean, torch.stack(members).mean(0))
    torch.testing.assert_close(bank.forward_groups([None, x])[1].detach(), mean)  # gradients on: the same
    each = bank.forward_members([None, x])  # every member's output
    assert each[1].shape == (7, k, o)
    torch.testing.assert_close(each[1].detach(), torch.stack(members, dim=1))
    with torch.no_grad():
        torch.testing.assert_close(bank.forward_members([None, x])[1], each[1].detach())


@pytest.mark.parametrize("o", [2, 20])  # heads as one block-diagonal product / a batched product
def test_members_first_layers_as_one_product_equal_the_scaled_inputs(o):
    """The members' first layers run as one product with scaled weights; values
    and gradients (weights, adapters, biases, heads, rows) equal those of each
    member's scaled inputs, for any scales, whichever form the heads take."""
    k = 4
    bank = _bank(k, o)
    with torch.no_grad():
        bank.adapters[0].copy_(torch.randn_like(bank.adapters[0]))  # trained, not +-1
    x = torch.randn(9, 5, requires_grad=True)
    e = 1
    params = [bank.weights[0], bank.adapters[0], bank.biases[0], bank.weights[-1], bank.biases[-1], x]

    def explicit():
        w = [p[e] for p in bank.weights]
        b = [p[e] for p in bank.biases]
        h = (x.unsqueeze(1) * bank.adapters[0][e]).flatten(0, 1)  # (n * k, in)
        for i in range(len(w) - 1):
            h = torch.nn.functional.prelu(h @ w[i] + b[i], bank.slopes[i][e])
        heads = w[-1].view(w[-1].shape[0], k, o).transpose(0, 1)
        return torch.baddbmm(b[-1].view(k, 1, -1), h.view(-1, k, h.shape[1]).transpose(0, 1), heads).transpose(0, 1)

    expected = explicit()
    grads = torch.autograd.grad(expected.square().sum(), params)
    fused = bank.forward_members([None, x])[1]
    torch.testing.assert_close(fused, expected)
    for got, want in zip(torch.autograd.grad(fused.square().sum(), params), grads):
        torch.testing.assert_close(got, want)
    with torch.no_grad():
        torch.testing.assert_close(bank.forward_groups([None, x])[1], expected.mean(dim=1))


def test_linear_ensemble_experts_scale_their_inputs():
    bank = _bank(4, n_outputs=1, depth=0)
    x = torch.randn(3, 5)
    w, b, adapter = bank.weights[0][0], bank.biases[0][0], bank.adapters[0][0]
    with torch.no_grad():
        members = torch.stack([(x * adapter[j]) @ w[:, j : j + 1] + b[j] for j in range(4)])
        torch.testing.assert_close(bank.forward_groups([x, None])[0], members.mean(0))


@pytest.mark.parametrize("base, y", [
    (squared_error, torch.randn(6, 2)),
    (log_loss, torch.tensor([0, 1, 1, 0, 2, 1])),
])
def test_member_loss_is_the_mean_of_each_members_loss(base, y):
    k = 4
    n_out = 2 if base is squared_error else 3
    loss = MemberLoss(base)
    out = torch.randn(6, k, n_out)  # every member's output
    expected = torch.stack([base(out[:, j], y) for j in range(k)]).mean(0)
    torch.testing.assert_close(loss(out, y), expected)
    single = torch.randn(6, 1, n_out)  # a plain MLP is one member: the plain loss
    torch.testing.assert_close(loss(single, y), base(single[:, 0], y))
    assert pickle.loads(pickle.dumps(loss))(out, y).shape == (6,)  # goes to worker processes


@pytest.mark.parametrize("Estimator", [MoERegressor, MoEClassifier])
def test_fit_predict_and_parameter_count(Estimator, table):
    X, y = table
    target = y if Estimator is MoERegressor else np.digitize(y, [-1, 1])
    model = Estimator(**SMALL, expert_members=4).fit(X, target)
    bank = model.network_.bank
    assert bank.members == 4 and bank.adapters[0].shape == (3, 4, bank.n_inputs)
    total, active = count_parameters(
        bank.n_inputs, bank.n_outputs, n_experts=3, expert_width=16, expert_members=4
    )
    assert (model.n_params_total_, model.n_params_active_) == (total, active)
    pred = model.predict(X)
    assert pred.shape == (len(X),)
    if Estimator is MoEClassifier:
        proba = model.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # The same seed gives the same model.
    again = Estimator(**SMALL, expert_members=4).fit(X, target)
    np.testing.assert_array_equal(again.predict(X), pred)


def test_members_stay_different_after_training(table):
    X, y = table
    bank = MoERegressor(**SMALL, expert_members=4).fit(X, y).network_.bank
    heads = bank.weights[-1].detach()[0].T  # (members * 1, width): one row per member
    assert torch.cdist(heads, heads).triu(1).max() > 1e-3


def test_expert_jobs_in_workers_give_the_same_model(table):
    X, y = table
    one = MoERegressor(**SMALL, expert_members=3, n_jobs=1).fit(X, y)
    two = MoERegressor(**SMALL, expert_members=3, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(one.predict(X), two.predict(X))


def test_warm_start_refuses_a_new_member_count(table):
    X, y = table
    model = MoERegressor(**SMALL, expert_members=2, warm_start=True).fit(X, y)
    model.set_params(expert_members=4, n_experts=4)
    with pytest.raises(ValueError, match="expert_members=4 \\(fitted: 2\\)"):
        model.fit(X, y)


def test_files_pickles_and_lazy_loading_keep_the_members(table, tmp_path):
    X, y = table
    model = MoERegressor(**SMALL, expert_members=3).fit(X, y)
    path = model.save(tmp_path / "m")
    for loaded in (skmoe.load(path), skmoe.load(path, lazy=True), pickle.loads(pickle.dumps(model))):
        assert loaded.expert_members == 3
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_file_from_before_members_loads_as_single_mlps(table, tmp_path):
    X, y = table
    model = MoERegressor(**SMALL, expert_members=1).fit(X, y)
    path = model.save(tmp_path / "old")
    header = json.loads((path / "model.json").read_text())
    del header["network"]["members"], header["params"]["expert_members"]
    (path / "model.json").write_text(json.dumps(header))
    loaded = skmoe.load(path)
    assert loaded.expert_members == 1 and loaded.network_.bank.members == 1
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_prelu_backward_matches_torchs():
    """The expert's PReLU has torch's forward and gradients (its slope
    gradient summed in another order), and passes gradcheck."""
    import torch.nn.functional as F

    from skmoe._torch.experts import _PReLU, parametric_relu

    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(0), requires_grad=True)
    slope = torch.rand(16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    g = torch.randn(200, 16, generator=torch.Generator().manual_seed(2))
    torch.autograd.backward(F.prelu(x, slope), g)
    expected = x.grad.clone(), slope.grad.clone()
    x.grad = slope.grad = None
    out = parametric_relu(x, slope)
    assert torch.equal(out, F.prelu(x, slope))
    torch.autograd.backward(out, g)
    assert torch.equal(x.grad, expected[0])
    torch.testing.assert_close(slope.grad, expected[1], rtol=1e-5, atol=1e-6)
    double = (torch.randn(12, 5, dtype=torch.double, requires_grad=True),
              torch.rand(5, dtype=torch.double, requires_grad=True))
    assert torch.autograd.gradcheck(_PReLU.apply, double)
    with torch.no_grad():  # inference: torch's own kernel
        assert torch.equal(parametric_relu(x, slope), F.prelu(x, slope))


def test_prepared_first_layers_follow_the_weights_and_stay_out_of_copies():
    """Inference builds the members' first layer once per expert and weights:
    the same numbers as building it per call, rebuilt after an in-place
    update or a loaded state, in each dtype asked for, and never pickled."""
    import copy

    bank = _bank(members=4)
    rows = [torch.randn(7, 5), torch.randn(3, 5)]

    params = [[getattr(bank, g)[i] for i in range(len(getattr(bank, g)))] for g in ("weights", "biases", "slopes")]

    def expected(x):
        return [mlp_forward(h, [w[e] for w in params[0]], [b[e] for b in params[1]], [s[e] for s in params[2]],
                            True, bank.adapters[0][e]) for e, h in enumerate(x)]

    with torch.inference_mode():
        first = bank.forward_groups(rows)
        for got, want in zip(first, expected(rows)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert set(bank._first_cache) == {(0, torch.float32, None), (1, torch.float32, None)}
    with torch.no_grad():
        bank.weights[0].mul_(2.0)  # an optimizer step, in place
        bank.adapters[0][1].neg_()
        after = bank.forward_groups(rows)
        for got, want in zip(after, expected(rows)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert not torch.equal(after[0], first[0])
        bank.load_state_dict(_bank(members=4).state_dict())
        for got, want in zip(bank.forward_groups(rows), expected(rows)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        wide = bank.forward_groups([h.double() for h in rows])  # float64 rows: a float64 layer
        assert wide[0].dtype == torch.float64 and (0, torch.float64, None) in bank._first_cache
    assert "_first_cache" not in pickle.loads(pickle.dumps(bank)).__dict__
    assert "_first_cache" not in copy.deepcopy(bank).__dict__


def test_a_fused_optimizer_step_rebuilds_the_prepared_first_layers():
    """torch's fused AdamW writes the weights without bumping their version;
    ``adamw`` bumps it, so validation after a step sees the new weights."""
    from skmoe._torch.optim import adamw

    bank = _bank(members=4)
    rows = [torch.randn(7, 5), torch.randn(3, 5)]
    optimizer = adamw(bank.parameters(), lr=0.1, weight_decay=0.0)
    with torch.no_grad():
        before = bank.forward_groups(rows)  # prepares and caches the first layers
    sum(m.square().sum() for m in bank.forward_members(rows)).backward()
    optimizer.step()
    with torch.no_grad():
        after = bank.forward_groups(rows)
        del bank.__dict__["_first_cache"]
        fresh = bank.forward_groups(rows)
    for b, a, f in zip(before, after, fresh):
        assert not torch.equal(a, b)
        torch.testing.assert_close(a, f, rtol=0, atol=0)


def test_bfloat16_training_keeps_float32_gradients_near_the_float32_ones():
    """Under bfloat16 autocast the training path's products take bfloat16
    operands (and PReLU, on torch's autocast list, bfloat16 values), while the
    first layer's product, the loss and every gradient stay float32 and near
    the float32 path's."""
    bank = _bank(members=4)
    rows = [torch.randn(64, 5), torch.randn(32, 5)]
    target = torch.randn(64, 4, 2)

    def loss_and_grads():
        out = bank.forward_members(rows)
        loss = torch.nn.functional.mse_loss(out[0], target) + out[1].float().square().mean()
        return out, loss, torch.autograd.grad(loss, list(bank.parameters()))

    exact, exact_loss, exact_grads = loss_and_grads()
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        weight, bias, adapter = bank.weights[0][0], bank.biases[0][0], bank.adapters[0][0]
        assert _MembersFirstLayer.apply(rows[0], weight, bias, adapter, torch.bfloat16).dtype == torch.float32
        low, low_loss, low_grads = loss_and_grads()
    assert low_loss.dtype == torch.float32
    torch.testing.assert_close(low_loss, exact_loss, rtol=0.05, atol=0)
    for a, b in zip(exact + list(exact_grads), low + list(low_grads)):
        # bfloat16 keeps 8 bits of mantissa: each tensor within 3% of the float32 one, in norm
        assert float((b.float() - a).detach().norm()) <= 0.03 * float(a.detach().norm()), a.shape
    assert all(g.dtype == torch.float32 for g in low_grads)
    assert not all(torch.equal(a, b.float()) for a, b in zip(exact, low))  # bfloat16 did round

"""Routing you can see and steer: apply, reports, health, pruning, growth, tree."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_friedman1
from sklearn.model_selection import train_test_split

from skmoe import MoEClassifier, MoERegressor

SMALL = dict(expert_width=16, max_epochs=15, random_state=0)


@pytest.fixture(scope="module")
def friedman_split():
    X, y = make_friedman1(n_samples=1500, n_features=5, noise=0.3, random_state=0)
    return train_test_split(X, y, test_size=0.3, random_state=0)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 800
    X = pd.DataFrame(
        {
            "size": rng.lognormal(3, 1, n),
            "city": pd.Categorical(rng.choice(["Lyon", "Paris", "Nice"], n)),
        }
    )
    y = np.log(X["size"]) + (X["city"] == "Paris") * 2.0 + rng.normal(0, 0.1, n)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def learned_top2(friedman_split):
    X_tr, _, y_tr, _ = friedman_split
    return MoERegressor(router="learned", top_k=2, n_experts=4, **SMALL).fit(X_tr, y_tr)


# -- apply ---------------------------------------------------------------------
def test_apply_top1_returns_indices_and_unit_gates(friedman_split):
    X_tr, X_te, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=4, **SMALL).fit(X_tr, y_tr)
    experts, gates = model.apply(X_te, return_gates=True)
    assert experts.shape == gates.shape == (len(X_te),)
    assert experts.min() >= 0 and experts.max() < 4
    np.testing.assert_array_equal(gates, 1.0)
    np.testing.assert_array_equal(model.apply(X_te), experts)


def test_apply_top2_returns_both_experts_and_their_gates(friedman_split, learned_top2):
    _, X_te, _, _ = friedman_split
    experts, gates = learned_top2.apply(X_te, return_gates=True)
    assert experts.shape == gates.shape == (len(X_te), 2)
    assert (experts[:, 0] != experts[:, 1]).all()
    np.testing.assert_allclose(gates.sum(axis=1), 1.0)
    assert (gates[:, 0] >= gates[:, 1]).all()


def test_apply_top2_gates_reproduce_the_prediction(friedman_split, learned_top2):
    """The prediction is the gate-weighted sum of the two experts' outputs."""
    _, X_te, _, _ = friedman_split
    model = learned_top2
    experts, gates = model.apply(X_te[:50], return_gates=True)
    Z = torch.from_numpy(np.concatenate(model._map_chunks(X_te[:50], lambda x: x.numpy())))
    bank = model.network_.bank
    mixed = np.zeros(50)
    for k in range(2):
        for e in np.unique(experts[:, k]):
            rows = np.flatnonzero(experts[:, k] == e)
            groups = [None] * bank.n_experts
            groups[e] = Z[rows]
            with torch.no_grad():  # inference: ensemble experts give their members' mean
                out = bank.forward_groups(groups)[e].numpy()[:, 0]
            mixed[rows] += gates[rows, k] * out
    # Then back to the target's units and into the training range (clip_predictions).
    expected = np.clip(mixed * model.y_scale_[0] + model.y_mean_[0], model.y_min_[0], model.y_max_[0])
    # The model mixes in float32; this sum is in float64.
    np.testing.assert_allclose(model.predict(X_te[:50]), expected, rtol=1e-6)


# -- usage, report, health -----------------------------------------------------
def test_routing_report_without_data_uses_training_shares(table):
    X, y = table
    model = MoERegressor(n_experts=3, **SMALL).fit(X, y)
    report = model.routing_report()
    assert list(report.index) == [0, 1, 2]
    np.testing.assert_allclose(report["share"], model.expert_usage_)
    np.testing.assert_allclose(report["share"].sum(), 1.0)
    assert (report["n_params"] == model.network_.bank.n_params_per_expert()).all()
    # Prototypes come back in the original units and levels.
    assert set(report["prototype[city]"]) <= {"Lyon", "Paris", "Nice", "(other)", "(missing)"}
    sizes = report["prototype[size]"]
    assert (sizes >= X["size"].min()).all() and (sizes <= X["size"].max()).all()


def test_routing_report_scores_each_expert_on_its_rows(table):
    X, y = table
    model = MoERegressor(n_experts=3, **SMALL).fit(X, y)
    report = model.routing_report(X, y)
    experts = model.apply(X)
    np.testing.assert_array_equal(report["n_rows"], np.bincount(experts, minlength=3))
    e = int(report["n_rows"].idxmax())
    rows = experts == e
    assert report.loc[e, "score"] == pytest.approx(model.score(X[rows], y[rows]))


def test_routing_report_needs_x_for_scores(table):
    X, y = table
    model = MoERegressor(n_experts=2, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="needs X"):
        model.routing_report(y=y)


def test_routing_report_for_a_classifier_with_a_learned_router(table):
    X, y = table
    model = MoEClassifier(router="learned", n_experts=3, **SMALL).fit(X, y > np.median(y))
    report = model.routing_report(X, y > np.median(y))
    assert {"share", "n_rows", "score", "n_params"} <= set(report.columns)
    assert not any(c.startswith("prototype") for c in report.columns)
    assert report["score"].dropna().between(0, 1).all()


def test_history_records_routing_health(friedman_split):
    X_tr, _, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=6, **SMALL).fit(X_tr, y_tr)
    h = model.history_
    n = model.n_iter_
    assert len(h["load_cv"]) == len(h["dead_experts"]) == len(h["routing_entropy"]) == n
    for load, cv, dead, entropy in zip(
        h["expert_load"], h["load_cv"], h["dead_experts"], h["routing_entropy"]
    ):
        assert dead == int((load == 0).sum())
        assert cv == pytest.approx(load.std() / load.mean())
        assert 0.0 <= entropy <= np.log(len(load)) + 1e-9
    assert h["routing_entropy"][-1] > 0  # the mixture phase routes to several experts


# -- pruning -------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        dict(router="voronoi", voronoi_search="exact"),
        dict(router="voronoi", voronoi_search="tree"),
        dict(router="learned", top_k=1),
        dict(router="learned", top_k=2),
    ],
    ids=["exact", "tree", "learned-top1", "learned-top2"],
)
def test_pruning_keeps_the_kept_experts_predictions_bit_identical(friedman_split, params):
    X_tr, X_te, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=8, **params, **SMALL).fit(X_tr, y_tr)
    before_pred = model.predict(X_te)
    before = np.atleast_2d(model.apply(X_te).T).T
    share = model.expert_usage_
    threshold = np.sort(share)[2]  # retire the three least used experts
    retired = np.flatnonzero(share <= threshold)
    total_before = model.n_params_total_

    assert model.prune_experts(min_share=threshold) is model
    assert model.n_experts_ == 8 - len(retired) and model.n_experts == 8
    assert model.n_params_total_ < total_before
    np.testing.assert_allclose(model.expert_usage_.sum(), 1.0)
    after = np.atleast_2d(model.apply(X_te).T).T
    kept = ~np.isin(before, retired).any(axis=1)
    assert kept.sum() > 0.2 * len(X_te)
    np.testing.assert_array_equal(model.predict(X_te)[kept], before_pred[kept])
    # Kept experts are renumbered in order; moved rows go to kept experts.
    renumber = np.cumsum(~np.isin(np.arange(8), retired)) - 1
    np.testing.assert_array_equal(after[kept], renumber[before[kept]])
    assert after.max() < model.n_experts_


def test_pruning_sends_rows_to_the_next_nearest_prototype(friedman_split):
    X_tr, X_te, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=6, voronoi_search="exact", **SMALL).fit(X_tr, y_tr)
    Z = model.encoder_.transform(X_te).astype(np.float64)
    P = model.network_.router.prototypes.numpy().astype(np.float64)
    retired = int(np.argmin(model.expert_usage_))
    model.prune_experts(min_share=model.expert_usage_[retired])
    kept = np.delete(np.arange(6), retired)
    np.testing.assert_array_equal(model.network_.router.prototypes.numpy(), P[kept])
    # Each row goes to its nearest prototype among the kept ones.
    distance = ((Z[:, None, :] - P[None, kept]) ** 2).sum(-1)
    np.testing.assert_array_equal(model.apply(X_te), distance.argmin(1))


def test_pruning_on_given_rows_and_its_errors(friedman_split):
    X_tr, X_te, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=4, **SMALL).fit(X_tr, y_tr)
    model.prune_experts(min_share=0.0, X=X_te)
    assert model.n_experts_ == 4  # every expert serves some rows
    np.testing.assert_allclose(
        model.expert_usage_, np.bincount(model.apply(X_te), minlength=4) / len(X_te)
    )
    with pytest.raises(ValueError, match="would leave 0 expert"):
        model.prune_experts(min_share=0.99)
    with pytest.raises(ValueError, match="min_share must be in"):
        model.prune_experts(min_share=1.5)


def test_pruning_retires_experts_that_serve_nobody():
    # Three distinct rows, six experts: k-means leaves duplicate, unused cells.
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 30, axis=0)
    X = np.vstack([X, [[1.0, 1.0], [6.0, 5.0], [8.0, 1.0]]])
    y = X.sum(axis=1)
    model = MoERegressor(n_experts=6, **SMALL).fit(X, y)
    dead = int((model.expert_usage_ == 0).sum())
    before = model.predict(X)
    model.prune_experts()
    assert model.n_experts_ == 6 - dead
    assert (model.expert_usage_ > 0).all()
    np.testing.assert_array_equal(model.predict(X), before)


# -- growth --------------------------------------------------------------------
@pytest.mark.parametrize("router", ["voronoi", "learned"])
def test_warm_start_growth_keeps_the_validation_score(friedman_split, router):
    X_tr, X_te, y_tr, y_te = friedman_split
    params = dict(expert_width=32, max_epochs=60, random_state=0, router=router)
    small = MoERegressor(n_experts=2, warm_start=True, **params).fit(X_tr, y_tr)
    before, n_iter = small.score(X_te, y_te), small.n_iter_
    grown = small.set_params(n_experts=5).fit(X_tr, y_tr)
    assert grown is small and grown.n_experts_ == 5
    assert grown.n_iter_ > n_iter
    assert len(grown.history_["train_loss"]) == grown.n_iter_
    assert grown.best_epoch_.shape == (5,) and grown.best_epoch_.max() < grown.n_iter_
    assert grown.score(X_te, y_te) >= before - 0.01


def test_growth_splits_the_busiest_cell(friedman_split):
    X_tr, _, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=3, warm_start=True, **SMALL).fit(X_tr, y_tr)
    busiest = int(np.argmax(model.expert_usage_))
    old = model.network_.router.prototypes.clone()
    model.set_params(n_experts=4).fit(X_tr, y_tr)
    new = model.network_.router.prototypes
    others = [e for e in range(3) if e != busiest]
    np.testing.assert_array_equal(new[others].numpy(), old[others].numpy())
    assert not np.allclose(new[busiest].numpy(), old[busiest].numpy())


def test_warm_start_refuses_architecture_changes(friedman_split):
    X_tr, _, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=3, warm_start=True, **SMALL).fit(X_tr, y_tr)
    with pytest.raises(ValueError, match="expert_depth=3 \\(fitted: 2\\)"):
        model.set_params(expert_depth=3).fit(X_tr, y_tr)
    with pytest.raises(ValueError, match="can only grow"):
        model.set_params(expert_depth=2, n_experts=2).fit(X_tr, y_tr)


def test_warm_start_classifier_refuses_new_classes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    model = MoEClassifier(n_experts=2, warm_start=True, **SMALL).fit(X, y)
    y_new = y.copy()
    y_new[:10] = 2
    with pytest.raises(ValueError, match="classes not seen in the first fit"):
        model.fit(X, y_new)


def test_warm_start_false_starts_over(friedman_split):
    X_tr, _, y_tr, _ = friedman_split
    model = MoERegressor(n_experts=2, **SMALL).fit(X_tr, y_tr)
    first = model.n_iter_
    model.set_params(n_experts=3).fit(X_tr, y_tr)
    assert model.n_experts_ == 3
    assert model.history_["phase"][0] == "shared" and model.n_iter_ != first + model.n_iter_


# -- routing tree --------------------------------------------------------------
def test_tree_routing_is_exact_on_training_rows_and_close_on_new_rows():
    X, y = make_friedman1(n_samples=3000, n_features=8, noise=0.3, random_state=1)
    X_tr, X_te, y_tr, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    tree = MoERegressor(n_experts=64, voronoi_search="tree", expert_width=8, max_epochs=2, random_state=0)
    tree.fit(X_tr, y_tr)
    router = tree.network_.router
    assert router.tree is not None
    # The tree's training rows: the split keeps 90% of X_tr for training.
    P = router.prototypes.numpy().astype(np.float64)

    def exact(X):
        Z = tree.encoder_.transform(X).astype(np.float64)
        return ((Z[:, None, :] - P[None]) ** 2).sum(-1).argmin(1)

    agree_train = (tree.apply(X_tr) == exact(X_tr)).mean()
    agree_test = (tree.apply(X_te) == exact(X_te)).mean()
    assert agree_train > 0.98  # all but the held-out validation rows are exact
    assert agree_test > 0.9


def test_auto_search_uses_the_tree_from_256_experts():
    X, y = make_friedman1(n_samples=700, n_features=5, random_state=0)
    few = MoERegressor(n_experts=64, expert_width=8, max_epochs=1, random_state=0).fit(X, y)
    many = MoERegressor(n_experts=256, expert_width=8, max_epochs=1, random_state=0).fit(X, y)
    assert few.network_.router.tree is None
    assert many.network_.router.tree is not None


def test_growing_a_learned_router_copies_only_fitted_experts():
    """When one expert holds most rows, growth splits it, then splits its
    copies again: every new expert must still come from a fitted one (the
    copies' own indices do not exist in the fitted network)."""
    from skmoe._torch.experts import ExpertBank
    from skmoe._torch.routing import LearnedRouter, MoENetwork
    from skmoe._torch.steering import grow_network

    router = LearnedRouter(3, 2, 1, 0.0)
    with torch.no_grad():
        router.gate.weight.zero_()
        router.gate.bias.copy_(torch.tensor([0.0, 10.0]))  # every row to expert 1
    bank = ExpertBank(2, 3, 1, 1, 4, True)
    bank.reset_parameters(torch.Generator().manual_seed(0))
    Z = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    grown, source = grow_network(MoENetwork(router, bank), Z, np.ones(100), 5, 0, False)
    np.testing.assert_array_equal(source, [0, 1, 1, 1, 1])
    assert grown.bank.n_experts == 5
    for e in range(1, 5):  # every copy has expert 1's weights
        np.testing.assert_array_equal(grown.bank.weights[0][e].detach(), bank.weights[0][1].detach())

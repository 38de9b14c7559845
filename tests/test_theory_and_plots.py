"""Theory helpers (parameter counts, VC bound, budget grids) and the plots."""

import numpy as np
import pytest
from sklearn.datasets import make_friedman1
from sklearn.model_selection import GridSearchCV

from skmoe import (
    MoEClassifier,
    MoERegressor,
    count_parameters,
    param_grid_for_budget,
    vc_dimension_bound,
)

SMALL = dict(expert_width=16, max_epochs=5, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_friedman1(n_samples=400, n_features=5, random_state=0)


@pytest.mark.parametrize(
    "params",
    [
        dict(n_experts=3, expert_depth=2, prelu=True),
        dict(n_experts=2, expert_depth=1, prelu=False),
        dict(n_experts=4, expert_depth=0),
        dict(n_experts=4, router="learned", top_k=2),
        dict(n_experts=3, expert_members=4),
        dict(n_experts=2, expert_depth=0, expert_members=3),
    ],
)
def test_count_parameters_matches_the_fitted_model(data, params):
    X, y = data
    model = MoERegressor(**params, **SMALL).fit(X, y)
    n_inputs = model.network_.bank.weights[0].shape[1]
    shape = {k: v for k, v in params.items()}
    total, active = count_parameters(n_inputs, 1, expert_width=16, **shape)
    assert (total, active) == (model.n_params_total_, model.n_params_active_)
    torch_total = sum(p.numel() for p in model.network_.parameters())
    torch_total += sum(b.numel() for n, b in model.network_.named_buffers() if "prototypes" in n)
    assert total == torch_total


def test_count_parameters_for_multiclass_outputs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    model = MoEClassifier(n_experts=2, **SMALL).fit(X, y)
    n_inputs = model.network_.bank.n_inputs  # 4 columns, 2 views and 300 // 32 bins each
    assert n_inputs == 4 * (2 + 300 // 32)
    total, _ = count_parameters(n_inputs, 3, n_experts=2, expert_depth=2, expert_width=16)
    assert total == model.n_params_total_


def test_vc_dimension_bound_follows_the_paper(data):
    X, y = data
    unfitted = MoERegressor(n_experts=4, expert_depth=3, expert_width=10)
    assert vc_dimension_bound(unfitted, n_inputs=2) == 4 * max(2 * 4, 3 * 10)
    assert vc_dimension_bound(unfitted, n_inputs=100) == 4 * (100 * 4)
    with pytest.raises(ValueError, match="needs n_inputs"):
        vc_dimension_bound(unfitted)
    fitted = MoERegressor(n_experts=3, **SMALL).fit(X, y)
    n = fitted.network_.bank.weights[0].shape[1]
    assert vc_dimension_bound(fitted) == 3 * max(n * 3, 2 * 16)
    fitted.prune_experts(min_share=np.sort(fitted.expert_usage_)[0])
    assert vc_dimension_bound(fitted) == 2 * max(n * 2, 2 * 16)


@pytest.mark.parametrize("kind", ["total", "active"])
def test_param_grid_for_budget_gives_the_widest_shape_within_budget(kind):
    budget = 30_000
    grid = param_grid_for_budget(budget, n_inputs=12, kind=kind, n_experts=(1, 4, 16))
    assert grid, "some shapes fit"
    pick = 0 if kind == "total" else 1
    for point in grid:
        L, J, W = point["n_experts"][0], point["expert_depth"][0], point["expert_width"][0]
        shape = dict(n_experts=L, expert_depth=J, expert_members=point["expert_members"][0])
        assert point["expert_members"] == [1]  # the paper's model unless asked
        assert count_parameters(12, expert_width=W, **shape)[pick] <= budget
        assert count_parameters(12, expert_width=W + 1, **shape)[pick] > budget
    widths = {p["n_experts"][0]: p["expert_width"][0] for p in grid if p["expert_depth"] == [2]}
    if kind == "total":  # more experts share the budget: each is narrower
        assert widths[1] > widths[4] > widths[16]


def test_param_grid_for_budget_counts_and_fixes_the_members():
    grid = param_grid_for_budget(30_000, n_inputs=12, n_experts=(4,), expert_depth=(2,), expert_members=8)
    (point,) = grid
    assert point["expert_members"] == [8]
    W = point["expert_width"][0]
    assert count_parameters(12, n_experts=4, expert_width=W, expert_members=8)[0] <= 30_000
    assert count_parameters(12, n_experts=4, expert_width=W + 1, expert_members=8)[0] > 30_000


def test_param_grid_for_budget_errors():
    with pytest.raises(ValueError, match="kind must be"):
        param_grid_for_budget(1000, n_inputs=3, kind="dense")
    with pytest.raises(ValueError, match="positive integer"):
        param_grid_for_budget(-5, n_inputs=3)


def test_param_grid_for_budget_drives_a_grid_search(data):
    X, y = data
    grid = param_grid_for_budget(3_000, n_inputs=10, n_experts=(1, 2), expert_depth=(1,))
    search = GridSearchCV(MoERegressor(max_epochs=3, random_state=0), grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == len(grid) == 2


# -- plots ---------------------------------------------------------------------
def test_plots_draw_on_given_axes(data):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skmoe.plotting import plot_expert_usage, plot_routing_2d, plot_training_history

    X, y = data
    model = MoERegressor(n_experts=3, **SMALL).fit(X, y)
    fig, axes = plt.subplots(1, 3)
    assert plot_expert_usage(model, ax=axes[0]) is axes[0]
    assert len(axes[0].patches) == 3
    assert plot_training_history(model, ax=axes[1]) is axes[1]
    assert len(axes[1].lines[0].get_xdata()) == model.n_iter_
    assert plot_routing_2d(model, X, max_rows=100, ax=axes[2]) is axes[2]
    assert len(axes[2].collections[0].get_offsets()) == 100
    plt.close(fig)


def test_plots_read_cleanly(data):
    """Integer expert ticks; the history's twin-axis label inside the figure and
    its legend outside the axes, so that it hides no curve."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skmoe.plotting import plot_expert_usage, plot_training_history

    X, y = data
    model = MoERegressor(n_experts=3, **SMALL).fit(X, y)
    ax = plot_expert_usage(model)
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks == [0, 1, 2]
    ax = plot_training_history(model)
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    twin = [other for other in fig.axes if other is not ax][0]
    label_box = twin.yaxis.label.get_window_extent(renderer)
    assert label_box.x1 <= figure_box.x1 and label_box.x0 >= figure_box.x0
    legend_box = ax.get_legend().get_window_extent(renderer)
    assert legend_box.y1 <= ax.get_window_extent(renderer).y0  # below the axes
    assert legend_box.y0 >= figure_box.y0
    plt.close("all")


def test_plots_explain_a_missing_matplotlib(data, monkeypatch):
    import builtins

    from skmoe import plotting

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    X, y = data
    with pytest.raises(ImportError, match=r'pip install "skmoe\[plot\]"'):
        plotting.plot_expert_usage(MoERegressor())


def test_theory_docstring_examples_run():
    import doctest

    import skmoe._theory

    result = doctest.testmod(skmoe._theory)
    assert result.attempted >= 3 and result.failed == 0

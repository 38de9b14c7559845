"""Parameter counts, the paper's VC-dimension bound and budget-matched grids.

Kratsios, Sáez de Ocáriz Borde, Furuya and Law (*Approximation Rates and
VC-Dimension Bounds for (P)ReLU MLP Mixture of Experts*, TMLR 2025) bound the
VC dimension of a MoMLP of ``L`` experts, each a (P)ReLU MLP of depth ``J``
and width ``W`` on ``n`` inputs, by ``Õ(L · max(n·L, J·W))``: the ``n·L``
term is the routing (the Voronoi partition by ``L`` prototypes in ``R^n``),
the ``J·W`` term the capacity of one expert. The helpers here make that
trade-off between many small experts and few large ones concrete.
"""

from __future__ import annotations

from numbers import Integral

from sklearn.utils.validation import check_is_fitted

from ._torch import api as engine

__all__ = ["count_parameters", "param_grid_for_budget", "vc_dimension_bound"]


def count_parameters(
    n_inputs,
    n_outputs: int = 1,
    *,
    n_experts: int = 4,
    expert_depth: int = 2,
    expert_width: int = 128,
    prelu: bool = True,
    router: str = "voronoi",
    top_k: int = 1,
    expert_members: int = 8,
) -> tuple[int, int]:
    """Total and active parameters of a mixture of this shape.

    Parameters
    ----------
    n_inputs : int or fitted MoERegressor or MoEClassifier
        Width of the network's input (after the estimator's encoding). Given a
        fitted estimator, its exact counts (``n_params_total_``,
        ``n_params_active_``) are returned and the other arguments must be
        left out.
    n_outputs : int, default=1
        Outputs of each expert: 1 for regression and binary classification,
        the number of classes for multiclass.
    n_experts, expert_depth, expert_width, prelu, router, top_k, expert_members
        As in :class:`~skmoe.MoERegressor`.

    Returns
    -------
    total : int
        All experts plus the router.
    active : int
        What one row touches: its ``top_k`` experts plus the router (exact
        Voronoi routing compares a row with every prototype).

    Examples
    --------
    >>> from skmoe import count_parameters
    >>> count_parameters(10, n_experts=4, expert_depth=1, expert_width=8, expert_members=1)
    (460, 145)
    >>> count_parameters(10, n_experts=4, expert_depth=1, expert_width=8)  # 8 members each
    (1032, 288)
    """
    if hasattr(n_inputs, "get_params"):  # an estimator, not a width
        return _fitted_counts(n_inputs)
    if not isinstance(n_inputs, Integral) or isinstance(n_inputs, bool) or n_inputs < 1:
        raise TypeError(
            "count_parameters takes the width of the encoded input (a positive int) "
            f"or a fitted skmoe estimator, got {n_inputs!r}."
        )
    per_expert = engine.expert_params(n_inputs, n_outputs, expert_depth, expert_width, prelu, expert_members)
    router_params = engine.router_params(n_inputs, n_experts, router)
    return n_experts * per_expert + router_params, top_k * per_expert + router_params


def _fitted_counts(estimator) -> tuple[int, int]:
    try:
        check_is_fitted(estimator, "network_")
    except Exception:
        raise ValueError(
            f"count_parameters needs a fitted estimator; this {type(estimator).__name__} "
            "is not fitted. Fit it first, or pass the encoded input width and its "
            "shape parameters."
        ) from None
    return int(estimator.n_params_total_), int(estimator.n_params_active_)


def vc_dimension_bound(estimator, n_inputs: int | None = None) -> int:
    """The paper's VC-dimension bound ``L · max(n·L, J·W)`` for this shape.

    Kratsios et al. (TMLR 2025, Theorem on the VC dimension of MoMLPs) show
    that a MoMLP with ``L`` experts of depth ``J`` and width ``W`` on ``n``
    inputs has VC dimension ``Õ(L · max(n·L, J·W))``. The value returned is
    that expression without its constants and logarithmic factors: an
    *order of magnitude* of the capacity, to compare shapes with one another,
    not a number of samples to collect. It grows linearly in the size of an
    expert but quadratically in the number of experts, because the routing
    itself (``L`` prototypes in ``R^n``) adds capacity.

    Parameters
    ----------
    estimator : MoERegressor or MoEClassifier
        Fitted or not. When fitted, ``L`` is the number of experts in the
        fitted model (after any pruning or growth) and ``n`` the width of the
        encoded input the experts see.
    n_inputs : int, default=None
        ``n`` for an unfitted estimator; ignored when it is fitted.

    Returns
    -------
    int

    Examples
    --------
    >>> from skmoe import MoERegressor, vc_dimension_bound
    >>> vc_dimension_bound(MoERegressor(n_experts=4, expert_depth=2, expert_width=64), n_inputs=10)
    512
    """
    try:
        check_is_fitted(estimator, "network_")
    except Exception:
        if n_inputs is None:
            raise ValueError(
                "vc_dimension_bound needs n_inputs for an unfitted estimator "
                "(the width of its encoded input)."
            ) from None
        L, n = estimator.n_experts, n_inputs
    else:
        fitted = engine.architecture(estimator.network_)
        L, n = fitted["n_experts"], fitted["n_inputs"]
    J, W = estimator.expert_depth, estimator.expert_width
    return int(L * max(n * L, J * W))


def param_grid_for_budget(
    budget: int,
    *,
    n_inputs: int,
    n_outputs: int = 1,
    kind: str = "total",
    n_experts=(1, 2, 4, 8, 16, 32, 64),
    expert_depth=(1, 2, 3),
    prelu: bool = True,
    router: str = "voronoi",
    top_k: int = 1,
    expert_members: int = 1,
    min_width: int = 8,
) -> list[dict]:
    """Shapes ``(n_experts, expert_depth, expert_width)`` that fit a parameter budget.

    For every number of experts and depth, the widest expert whose model stays
    within ``budget`` parameters (``kind="total"``: all experts and the
    router; ``kind="active"``: what one row touches) is listed, so that the
    shapes can be compared at equal cost, as in the paper's trade-off between
    more experts and bigger ones.

    Parameters
    ----------
    budget : int
        Parameter budget.
    n_inputs : int
        Width of the network's input (the encoded features).
    n_outputs : int, default=1
        Outputs per expert.
    kind : {"total", "active"}, default="total"
        Which count must stay within the budget.
    n_experts, expert_depth : sequence of int
        Values to combine.
    prelu, router, top_k
        As in the estimators.
    expert_members : int, default=1
        Members per expert, counted in the budget and written into every
        shape (so the estimator searched over has them whatever its own
        setting). The default, plain MLP experts, is the paper's model.
    min_width : int, default=8
        Shapes whose width would fall below this are left out.

    Returns
    -------
    list of dict
        One ``{"n_experts": [L], "expert_depth": [J], "expert_width": [W],
        "expert_members": [expert_members]}`` per shape, ready to be the ``param_grid`` of
        :class:`~sklearn.model_selection.GridSearchCV`.

    Examples
    --------
    >>> from skmoe import param_grid_for_budget
    >>> grid = param_grid_for_budget(20_000, n_inputs=10, n_experts=(1, 4), expert_depth=(1,))
    >>> [(g["n_experts"][0], g["expert_width"][0]) for g in grid]
    [(1, 1537), (4, 383)]
    """
    if kind not in ("total", "active"):
        raise ValueError(f"kind must be 'total' or 'active', got {kind!r}.")
    if not isinstance(budget, Integral) or budget <= 0:
        raise ValueError(f"budget must be a positive integer, got {budget!r}.")
    pick = 0 if kind == "total" else 1
    grid = []
    for L in n_experts:
        for J in expert_depth:

            def cost(W: int) -> int:
                return count_parameters(
                    n_inputs, n_outputs, n_experts=L, expert_depth=J, expert_width=W,
                    prelu=prelu, router=router, top_k=min(top_k, L), expert_members=expert_members,
                )[pick]

            if J == 0:
                continue  # linear experts have no width to trade
            # The count grows with W: bisect for the widest shape within budget.
            lo, hi = 0, 1
            while cost(hi) <= budget:
                lo, hi = hi, hi * 2
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid)
            if lo >= min_width:
                grid.append({
                    "n_experts": [int(L)], "expert_depth": [int(J)], "expert_width": [int(lo)],
                    "expert_members": [int(expert_members)],
                })
    return grid


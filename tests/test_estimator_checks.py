"""scikit-learn's own API contract, with nothing skipped or marked xfail."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import MoEClassifier, MoERegressor


# Small instances (2 members, at most 30 epochs): the checks test the API
# contract, whose accuracy thresholds these still clear; with 8 members and
# 100 epochs the 246 checks took 506 s, with these 161 s (measured side by side).
@parametrize_with_checks(
    [
        MoERegressor(n_experts=2, expert_width=32, expert_members=2, max_epochs=30, random_state=0),
        MoEClassifier(n_experts=2, expert_width=32, expert_members=2, max_epochs=30, random_state=0),
        MoERegressor(n_experts=3, router="learned", top_k=2, expert_width=32, expert_members=2, max_epochs=30),
        MoEClassifier(n_experts=2, router="learned", expert_width=32, expert_members=2, max_epochs=30),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

"""scikit-learn's own API contract, with nothing skipped or marked xfail."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import MoEClassifier, MoERegressor


@parametrize_with_checks(
    [
        MoERegressor(n_experts=2, expert_width=32, max_epochs=100, random_state=0),
        MoEClassifier(n_experts=2, expert_width=32, max_epochs=100, random_state=0),
        MoERegressor(n_experts=3, router="learned", top_k=2, expert_width=32, max_epochs=100),
        MoEClassifier(n_experts=2, router="learned", expert_width=32, max_epochs=100),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

import os

import pytest

# scikit-learn's array API check (run with NumPy inputs for every estimator)
# skips itself unless SciPy's array API support is switched on before import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


@pytest.fixture
def capture_expert_jobs(monkeypatch):
    """``fit(model, X, y)``: fits ``model`` and returns the expert jobs
    (:class:`skmoe._torch.specialise.ExpertJob`) its early-stopped fit
    trained (not those of the refit on all rows that follows it)."""
    from skmoe._torch import training

    def fit(model, X, y) -> list:
        jobs = []
        real = training.train_experts

        def capture(job, on_epoch=None):
            if job.epochs is None:
                jobs.append(job)
            return real(job, on_epoch)

        monkeypatch.setattr(training, "train_experts", capture)
        try:
            model.fit(X, y)
        finally:
            monkeypatch.setattr(training, "train_experts", real)
        return jobs

    return fit

import os

# scikit-learn's array API check (run with NumPy inputs for every estimator)
# skips itself unless SciPy's array API support is switched on before import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

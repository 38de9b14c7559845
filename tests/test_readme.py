"""The README's Python examples, run as written, one after another.

They run in a temporary folder on a 1,500-row sample of the bundled
California housing table (``load_california_housing`` is the only thing
replaced), so that the whole README takes minutes. The shell examples
(``python -m skmoe ...``) are covered by the CLI tests.
"""

import re
from pathlib import Path

import numpy as np
import pytest

import skmoe.datasets

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_examples():
    blocks = _python_blocks()
    assert len(blocks) >= 7
    assert any("to_onnx" in b for b in blocks) and any("ColumnTransformer" in b or "column_transformer" in b for b in blocks)


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path, monkeypatch):
    for module in ("polars", "onnxruntime", "mlflow", "distributed", "matplotlib"):
        pytest.importorskip(module)
    real = skmoe.datasets.load_california_housing

    def sample(*, numeric_only=False):
        X, y = real(numeric_only=numeric_only)
        rows = np.random.default_rng(0).choice(len(X), 1500, replace=False)
        return X.iloc[rows].reset_index(drop=True), y.iloc[rows].reset_index(drop=True)

    monkeypatch.setattr(skmoe.datasets, "load_california_housing", sample)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(_python_blocks()):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"README python block {i + 1} failed:\n{block}") from exc
    assert (tmp_path / "housing-model" / "model.json").is_file()
    namespace["client"].close()

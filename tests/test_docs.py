"""The Sphinx documentation builds without a single warning."""

import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[1] / "docs"


def test_docs_build_without_warnings(tmp_path):
    sphinx_cmd = pytest.importorskip("sphinx.cmd.build")
    pytest.importorskip("numpydoc")
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "generated"))
    status = sphinx_cmd.build_main(
        ["-W", "--keep-going", "-q", "-b", "html", str(source), str(tmp_path / "html")]
    )
    assert status == 0
    assert (tmp_path / "html" / "generated" / "skmoe.MoERegressor.html").exists()

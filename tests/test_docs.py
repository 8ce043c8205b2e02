"""The ```python blocks of docs/api.md run as written, in order, in one namespace (on `tiny`)."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(path):
    with open(path, encoding="utf-8") as f:
        return BLOCK.findall(f.read())


pytestmark = pytest.mark.usefixtures("fast_compile_module")


def test_api_md_python_blocks_run(monkeypatch, capsys):
    blocks = python_blocks(os.path.join(ROOT, "docs", "api.md"))
    assert len(blocks) >= 8  # the reference sections and the walk-through
    # the docs use the default cache: conftest points IDMVAE_DATA_DIR at the tests' shared folder
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "api_md"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/api.md block {i}", "exec"), namespace)
        except Exception as error:  # name the failing block
            raise AssertionError(f"docs/api.md python block {i} failed:\n{code}") from error
    # the walk-through trained: parameters moved and every term is finite
    assert "train_step" in namespace and namespace["step"] == 2
    assert set(namespace["aux"]) >= {"elbo", "cross_mi", "genaug", "total"}

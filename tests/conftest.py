import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def tiny_params():
    from pipeline.config.params import load

    return load(ROOT / "tests" / "params.tiny.yaml")


def pytest_collection_modifyitems(items):
    """The end-to-end run is by far the longest test: first, so parallel workers (`make test` runs
    pytest-xdist) share out the rest around it instead of waiting for it at the end."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/test_e2e_dvc.py"), reverse=True)

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

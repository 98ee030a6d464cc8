from pathlib import Path

import pytest
import yaml

from arc_bridge.config import parse_config
from arc_bridge.grami import parse_grami

EXAMPLES = Path(__file__).resolve().parents[2] / "arc_bridge" / "examples"


@pytest.fixture
def raw_config():
    """The shipped example configuration, as a dict a test may modify."""
    return yaml.safe_load((EXAMPLES / "bridge.yaml").read_text())


@pytest.fixture
def config(raw_config):
    return parse_config(raw_config)


@pytest.fixture
def fields():
    """The shipped example GRAMI, parsed, as a dict a test may modify."""
    return parse_grami((EXAMPLES / "job.grami").read_bytes())

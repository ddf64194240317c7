import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))


@pytest.fixture
def db(tmp_path):
    """A fresh queue file for one test."""
    return str(tmp_path / "events.db")


@pytest.fixture
def rre_cli():
    """The rre command-line tool of the build under test."""
    path = os.environ.get("RRE_CLI") or os.path.join(ROOT, "build", "rre")
    if not os.path.exists(path):
        pytest.skip("the rre tool is not built (set RRE_CLI)")
    return path


@pytest.fixture(autouse=True)
def _fresh_module_router():
    yield
    from rre import event_router

    event_router.reset_router()


def payload_training(**over):
    p = {
        "config_key": "hex8_2p",
        "board_type": "hex8",
        "num_players": 2,
        "model_path": "/models/canonical_hex8_2p.pth",
        "epochs": 50,
        "final_loss": 0.0423,
        "samples_trained": 85000,
    }
    p.update(over)
    return p

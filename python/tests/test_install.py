import os
import subprocess
import sys

from conftest import HERE


def test_pip_installs_the_package_with_its_library_without_network(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = dict(os.environ)
    env["PIP_NO_INDEX"] = "1"  # nothing may come from an index
    env.pop("PYTHONPATH", None)
    subprocess.run([py, "-m", "pip", "install", "-q", os.path.dirname(HERE)], check=True,
                   env=env, cwd=str(tmp_path))
    env.pop("RRE_LIBRARY", None)
    db = str(tmp_path / "q.db")
    code = ("import rre, os; from rre.event_router import Router\n"
            "lib = rre._lib.lib._name\n"
            "assert lib.startswith(os.path.dirname(rre.__file__)), lib\n"
            "with Router(db_path=%r) as r:\n"
            "    print(rre.__version__, r.publish_sync('TRAINING_STARTED',"
            " {'config_key': 'hex8_2p'}).event_id)\n" % db)
    out = subprocess.run([py, "-c", code], check=True, env=env, cwd=str(tmp_path),
                         capture_output=True, text=True)
    version, event_id = out.stdout.split()
    assert version.count(".") == 2 and version != "0.0.0" and event_id == "1"

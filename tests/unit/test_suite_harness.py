"""The suite's own harness: a worker that dies must not stop the suite from ending.

Runs a small pytest session in a subprocess with three xdist workers under ``--dist loadfile``
(as `make test` does); one test ends its worker the way the hard per-test limit does
(``os._exit``) after that worker has already finished other files. With the released
pytest-xdist scheduler this session never ends (checked by hand: ``STOCK=1`` below hangs);
with ``tests/support/xdist_recovery.py`` it ends, reports the dead test once and runs the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import os
import pytest

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if os.environ.get("STOCK"):
        return None
    from tests.support.xdist_recovery import RecoveringLoadFileScheduling
    return RecoveringLoadFileScheduling(config, log)
"""

QUICK = "import time\n" + "".join(f"def test_{i}(): time.sleep(0.05)\n" for i in range(3))
DIES = """import os, time
def test_before(): time.sleep(0.05)
def test_dies():
    time.sleep(1.5)  # the other workers finish their files meanwhile
    os._exit(1)
def test_after(): time.sleep(0.05)
"""


def test_a_dead_worker_is_reported_and_the_session_still_ends(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name in "abcdefgh":
        (tmp_path / f"test_{name}.py").write_text(QUICK)
    (tmp_path / "test_dies.py").write_text(DIES)
    # Only xdist is loaded: the workers start in a second instead of several.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("STOCK", None)
    args = ["-p", "xdist", "-p", "no:cacheprovider", "-n", "3", "--dist", "loadfile", "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-o", "addopts=", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert "crashed while running 'test_dies.py::test_dies'" in out, out[-3000:]
    assert "1 failed, 26 passed" in out, out[-3000:]  # test_after ran; test_dies ran once

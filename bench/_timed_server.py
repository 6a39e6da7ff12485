"""Run a Codeyard server with its turn milestones (``codeyard.agents.timing``) written to a file.

``bench/overhead.py`` starts its server through this script (``ServerProcess(wrap=...)``):
the remaining arguments are the server's own command line (``python -c <code>``), whose code
is run in this process (the pid stays the server's). Each line of ``CODEYARD_TIMING_FILE`` is
``<run id> <milestone> <unix time>``. With ``BENCH_SQL_COUNT_FILE`` set (not a ``CODEYARD_``
variable: the test server does not pass those on), the server's SQL
statements are counted there too (``bench/_sql_count.py``), and with ``BENCH_LOOP_FILE`` set,
its event loop's lag and GC pauses (``bench/_loop_lag.py``); with ``BENCH_THREADS`` set, each
thread names its OS thread by its kind, for the server's CPU by thread (``bench/_threads.py``).
``CODEYARD_TIMING_FILE`` may be left unset when only those are wanted. With
``BENCH_OWN_SESSION`` set, the server starts a session of its own (``setsid``): with the
kernel's autogroups, its own scheduling group, apart from the bench's client and fake model
(``bench/agents_scale.py``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codeyard.agents.timing import LOGGER


def main() -> None:
    if os.environ.get("BENCH_OWN_SESSION"):
        os.setsid()  # before any thread or loop: the whole server in the new session
    if os.environ.get("CODEYARD_TIMING_FILE"):
        handler = logging.FileHandler(os.environ["CODEYARD_TIMING_FILE"])
        handler.setFormatter(logging.Formatter("%(message)s"))
        timing = logging.getLogger(LOGGER)
        timing.setLevel(logging.DEBUG)
        timing.addHandler(handler)
        timing.propagate = False
    counting = os.environ.get("BENCH_SQL_COUNT_FILE")
    if counting:  # SQL statements by caller (bench/_sql_count.py)
        from bench._sql_count import install

        install(Path(counting))
    lag = os.environ.get("BENCH_LOOP_FILE")
    if lag:  # the event loop's lag and GC pauses (bench/_loop_lag.py)
        from bench import _loop_lag

        _loop_lag.install(Path(lag))
    if os.environ.get("BENCH_THREADS"):  # each thread names its OS thread (bench/_threads.py)
        from bench import _threads

        _threads.install()
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "-c":
        raise SystemExit("usage: _timed_server.py <python> -c <code>")
    sys.argv = ["-c"]
    exec(compile(args[2], "<server>", "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main()

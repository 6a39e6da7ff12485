"""The ``serve`` path stays light: heavy libraries load when first used, not at start-up.

Start-up is almost all imports (issue 15). Each module below cost tens to hundreds of
milliseconds and serves one feature that a server may never use during its life; an import
added at module level anywhere on the serve path brings it back, and this test names it.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Loaded on first use: the MCP SDK (first /mcp request, or a warm-up thread after start-up),
#: the Claude Agent SDK (a turn, a utility-model call), web push (a push), the GitHub client
#: (a GitHub request), Temporal (the temporal executor), the terminal emulator (a terminal).
LAZY = (
    "mcp",
    "claude_agent_sdk",
    "pywebpush",
    "aiohttp",
    "requests",
    "githubkit",
    "temporalio",
    "pyte",
)

PROBE = """
import json, sys
import codeyard.server
from codeyard.app import create_app
create_app()
print(json.dumps(sorted(m for m in {lazy!r} if m in sys.modules)))
"""


def test_creating_the_app_imports_no_lazy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(lazy=LAZY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], (
        f"{loaded} imported while the app is created: import it inside the function that "
        "uses it (see codeyard/mcp_server/mount.py for a feature loaded after start-up)"
    )

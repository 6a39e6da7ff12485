"""A workaround for Gemini CLI 0.61.0 losing a session it is asked to load.

Gemini CLI records a session in ``<home>/.gemini/tmp/<project>/chats/`` as
``session-<YYYY-MM-DDTHH-MM>-<first 8 characters of the id>.jsonl``. Its ACP ``session/load``
starts a fresh recording for the same id *before* reading the saved one (observed here):

- when both fall in the same minute they share the file name and the fresh recording
  overwrites the history;
- otherwise its start-up clean-up sees the fresh, empty recording and deletes every file whose
  name ends in the same short id, the saved one included;

and the load fails with "No previous sessions found for this project.". Renaming the saved file
to ``session-…-<short id>.codeyard.jsonl`` first keeps it: the clean-up matches names by
``-<8 characters>.jsonl``, while the session list reads every ``session-*`` file and finds the
renamed one by the id inside. Later turns append to the file that was loaded.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

__all__ = ["gemini_home", "protect_saved_session"]

log = logging.getLogger(__name__)
_SUFFIX = ".codeyard"


def gemini_home(env: dict[str, str]) -> Path:
    """The home Gemini CLI uses with this environment (``GEMINI_CLI_HOME``, else ``HOME``)."""
    home = env.get("GEMINI_CLI_HOME") or os.environ.get("GEMINI_CLI_HOME")
    home = home or env.get("HOME") or os.environ.get("HOME") or str(Path.home())
    return Path(home)


def protect_saved_session(home: Path, session_id: str) -> list[Path]:
    """Rename the session's files named in Gemini CLI's own pattern; return the new paths."""
    short = session_id[:8]
    pattern = re.compile(rf"^session-\d{{4}}-\d\d-\d\dT\d\d-\d\d-{re.escape(short)}\.jsonl?$")
    moved: list[Path] = []
    for path in (home / ".gemini" / "tmp").glob(f"*/chats/session-*-{short}.json*"):
        if not pattern.match(path.name):
            continue
        target = path.with_name(f"{path.stem}{_SUFFIX}{path.suffix}")
        if target.exists():
            continue
        try:
            path.rename(target)
        except OSError as exc:  # the load may still work; Gemini CLI says so if not
            log.warning("could not set Gemini CLI's session file %s aside: %s", path, exc)
            continue
        moved.append(target)
    return moved

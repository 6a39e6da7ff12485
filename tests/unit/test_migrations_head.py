"""The start-up shortcut's idea of the newest migration matches Alembic's."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from codeyard.store.db import HEAD_REVISION, MIGRATIONS


def test_head_revision_constant_is_alembics_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD_REVISION]

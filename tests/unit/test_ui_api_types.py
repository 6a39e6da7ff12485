"""The UI's typed API client is generated from the server's OpenAPI schema: both committed files
must match the server as it is now (regenerate: ``python scripts/dump_openapi.py`` then
``npm run gen:api`` in ui/)."""

from __future__ import annotations

import hashlib
import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "ui" / "src" / "api" / "openapi.json"
TYPES = ROOT / "ui" / "src" / "api" / "schema.d.ts"
FIX = "run `python scripts/dump_openapi.py && (cd ui && npm run gen:api)`"


def test_committed_openapi_schema_matches_the_server() -> None:
    dump = runpy.run_path(str(ROOT / "scripts" / "dump_openapi.py"))
    assert SCHEMA.read_text() == dump["schema_text"](), f"ui/src/api/openapi.json is stale: {FIX}"


def test_generated_types_come_from_the_committed_schema() -> None:
    stamp = re.search(r"^// openapi\.json sha256: ([0-9a-f]{64})$", TYPES.read_text(), re.M)
    assert stamp, f"schema.d.ts has no schema stamp: {FIX}"
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert stamp[1] == digest, f"ui/src/api/schema.d.ts is stale: {FIX}"

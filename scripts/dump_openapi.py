"""Write the server's OpenAPI schema to ui/src/api/openapi.json (or the path given).

The web UI's typed client is generated from this file (``npm run gen:api`` in ui/), and
``tests/unit/test_ui_api_types.py`` fails when the committed copy no longer matches the server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from codeyard.app import create_app
from codeyard.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "ui" / "src" / "api" / "openapi.json"


def schema_text() -> str:
    """The schema as stable, sorted JSON (the app is built, never started)."""
    schema: dict[str, Any] = create_app(Settings()).openapi()
    schema["info"]["version"] = "0"  # the package version must not make the file stale
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    out.write_text(schema_text())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

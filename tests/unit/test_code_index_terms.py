"""Symbol-aware terms and the project map's pure parts."""

from __future__ import annotations

from codeyard.codeindex import projectmap as pm
from codeyard.codeindex.tokens import match_expression, parts, query_terms, symbol_terms


def test_identifiers_split_into_their_words() -> None:
    assert parts("computeInvoiceTotal") == ["compute", "invoice", "total"]
    assert parts("HTTPServerError") == ["http", "server", "error"]
    assert parts("MAX_RETRY_BUDGET") == ["max", "retry", "budget"]
    assert parts("x") == []
    assert set(symbol_terms("def getUserName(): return user_id").split()) == {
        "get",
        "user",
        "name",
        "id",
    }
    assert query_terms("getUser") == ["getuser", "get", "user"]
    assert match_expression("  ") is None
    assert match_expression('a "quoted" thing') == '"quoted" OR "thing"'


def test_modules_entry_points_dependencies_and_import_graph() -> None:
    files = [
        ("README.md", 10, 2),
        ("app/main.py", 100, 10),
        ("app/api/routes.py", 200, 20),
        ("app/api/deps.py", 50, 5),
        ("app/db/models.py", 300, 30),
    ]
    mods = {m["module"]: m for m in pm.modules(files)}
    assert mods["app/api"] == {"module": "app/api", "files": 2, "bytes": 250, "lines": 25}
    assert mods["(root)"]["files"] == 1 and mods["app"]["files"] == 1
    assert pm.entry_points([f[0] for f in files], {"serve": "app.main:run"}) == [
        {"path": "app/main.py", "kind": "file"},
        {"path": "app.main:run", "kind": "script:serve"},
    ]
    manifests = {
        "package.json": '{"dependencies": {"react": "^18"}, "bin": {"x": "cli.js"}}',
        "go.mod": "module x\n\nrequire (\n\tgithub.com/pkg/errors v0.9.1\n)\n",
        "requirements.txt": "fastapi>=0.1  # web\n-r other.txt\n",
    }
    deps, scripts = pm.dependencies(manifests.get)
    assert {"ecosystem": "npm", "spec": "react@^18"} in deps
    assert {"ecosystem": "go", "spec": "github.com/pkg/errors v0.9.1"} in deps
    assert {"ecosystem": "pypi", "spec": "fastapi>=0.1"} in deps
    assert scripts == {"x": "cli.js"}
    edges = pm.import_edges(
        [
            ("app/api/routes.py", "from app.db.models import User\nimport os\n"),
            ("app/db/models.py", "import sqlalchemy\n"),
        ]
    )
    assert edges == [("app/api", "app/db")]
    chart = pm.mermaid(pm.modules(files), edges)
    assert "-->" in chart and '"app/api (2 files)"' in chart

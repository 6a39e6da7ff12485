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


def test_schema_from_sql_sqlalchemy_django_and_laravel() -> None:
    from codeyard.codeindex import dbschema

    found = dbschema.tables(
        [
            (
                "db/init.sql",
                "CREATE TABLE IF NOT EXISTS invoices (\n  id INTEGER PRIMARY KEY,\n"
                "  total NUMERIC(10, 2) NOT NULL,\n  PRIMARY KEY (id)\n);",
            ),
            (
                "app/schema.py",
                'users = Table("users", metadata, Column("id", String(40)), Column("name", Text))\n'
                'op.create_table("orders", sa.Column("id", sa.Integer()))\n',
            ),
            (
                "shop/models.py",
                "class Product(models.Model):\n    title = models.CharField(max_length=9)\n",
            ),
            (
                "database/migrations/x.php",
                "Schema::create('posts', function (Blueprint $table) {\n"
                "    $table->string('title');\n    $table->text('body');\n});",
            ),
            ("README.md", "CREATE TABLE nope (a int);"),
        ]
    )
    by_name = {t["name"]: t for t in found}
    assert set(by_name) == {"invoices", "users", "orders", "product", "posts"}
    assert by_name["invoices"]["columns"] == [
        {"name": "id", "type": "INTEGER"},
        {"name": "total", "type": "NUMERIC(10,2)"},
    ]
    assert by_name["invoices"]["source"] == "db/init.sql"
    assert [c["name"] for c in by_name["users"]["columns"]] == ["id", "name"]
    assert by_name["posts"]["columns"] == [
        {"name": "title", "type": "string"},
        {"name": "body", "type": "text"},
    ]
    assert by_name["product"]["columns"] == [{"name": "title", "type": "CharField"}]
    assert dbschema.mermaid_er(found).startswith("erDiagram\n")

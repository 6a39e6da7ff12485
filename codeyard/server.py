"""``codeyard serve``: run the app under Uvicorn and tell the CLI where it is."""

from __future__ import annotations

import logging

import uvicorn

from codeyard.app import create_app
from codeyard.config import Settings


def run_server(settings: Settings) -> None:
    """Serve until interrupted. Writes ``server.json`` so the CLI finds this server."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings.prepare_data_dir()
    settings.ensure_admin_token()
    app = create_app(settings)
    url = f"http://{settings.host}:{settings.port}"
    settings.write_server_file(url)
    print(f"Codeyard is serving {url}  (data: {settings.data_dir})", flush=True)
    where = "CODEYARD_ADMIN_TOKEN" if settings.admin_token else settings.data_dir / "admin.token"
    print(f"API docs: {url}/api/docs · admin token: {where}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)

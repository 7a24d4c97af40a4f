"""Run the web service under gunicorn.

The app is named by string ("service:create_app()") and imported by gunicorn,
so ``indexer`` itself never imports Flask.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.util import import_app

APP_SPEC = "service:create_app()"


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return import_app(APP_SPEC)


def run_server(host: str = "127.0.0.1", port: int = 8000, workers: int = 2, timeout: int = 30) -> None:
    """Serve ``service.create_app()`` with gunicorn until interrupted."""
    _Server(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            # Load jieba's dictionary once in the master; forked workers share it.
            "preload_app": True,
            "timeout": timeout,
            # The longest request line gunicorn allows: a query of 256 Chinese characters
            # is 2,300 bytes percent-encoded, before any filters.
            "limit_request_line": 8190,
            "accesslog": "-",
            "errorlog": "-",
            "proc_name": "zhsearch",
        }
    ).run()

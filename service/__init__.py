"""zhsearch's web service: a thin Flask layer over the ``indexer`` package.

``create_app()`` reads settings from ``service.config`` and ``ZHSEARCH_*``
environment variables; tests pass a dict instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from indexer import (
    PAGE_SIZE_CAP,
    IndexerError,
    Searcher,
    SuggesterCache,
    init_jieba,
    load_user_dict,
    open_store,
    store_settings,
)

from . import errors, http, security, views


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app. Tests pass test_config; deployments set ZHSEARCH_* variables."""
    app = Flask(__name__)
    app.config.from_object("service.config")
    if test_config is None:
        app.config.from_prefixed_env("ZHSEARCH")
        # Never from the environment: debug mode shows tracebacks to anyone. `flask run --debug` still works.
        app.config["DEBUG"] = False
    else:
        app.config.update(test_config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if app.config.get("USER_DICT"):
        load_user_dict(app.config["USER_DICT"])
    init_jieba()
    if int(app.config["MAX_PAGE_SIZE"]) > PAGE_SIZE_CAP:
        raise IndexerError(
            f"ZHSEARCH_MAX_PAGE_SIZE is {app.config['MAX_PAGE_SIZE']}, above zhsearch's limit of {PAGE_SIZE_CAP} "
            f"results per page; set it to {PAGE_SIZE_CAP} or less"
        )
    # The backend and its settings (ZHSEARCH_BACKEND, ZHSEARCH_TYPESENSE_*) come from the
    # environment, like every other setting; INDEX_DIR is the directory of a local index.
    settings = store_settings(app.config["INDEX_DIR"], backend=app.config.get("BACKEND") or None, environ=os.environ)
    searcher = Searcher(settings, synonyms=app.config.get("SYNONYMS") or None)
    # Fail at start-up with a clear message if the index is missing or stale.
    for warning in searcher.info().warnings:
        app.logger.warning("zhsearch: %s", warning)
    # After an index change, a worker rebuilds suggestions in a thread, reading through a store of its own.
    suggester = SuggesterCache(searcher.store, reopen=lambda: open_store(settings))
    # Build suggestions (pinyin for every title term) once here, in gunicorn's
    # master, so forked workers share them; then close, so each worker opens its own files.
    suggester.get()
    searcher.close()
    app.extensions["zhsearch.searcher"] = searcher
    app.extensions["zhsearch.suggester"] = suggester
    app.register_blueprint(views.bp)
    errors.register(app)
    security.register(app)
    http.register(app, searcher)
    return app

"""Two `zhsearch serve` instances over one index start and stop independently, and leave no control socket.

gunicorn's control socket lives at one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
~/.gunicorn/gunicorn.ctl), so with it on, stopping one server would delete the socket of every
other; indexer/server.py turns it off. The servers run with HOME and XDG_RUNTIME_DIR in temporary
folders, so the test sees anything gunicorn would put there and touches nothing of the user's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from harness import zhsearch_server

pytestmark = pytest.mark.slow


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        data: dict[str, object] = json.loads(resp.read().decode("utf-8"))
        return data


def answers(base: str) -> bool:
    """True if /healthz answers 200 and a search finds its article."""
    health = get_json(base + "/healthz")
    results = get_json(base + "/api/search?q=%E6%B7%B7%E5%90%88%E4%B8%93%E5%AE%B6")["results"]  # 混合专家
    assert isinstance(results, list)
    return bool(health) and [r["id"] for r in results][:1] == ["moe-intro"]


def refused(base: str) -> bool:
    try:
        urllib.request.urlopen(base + "/healthz", timeout=5).close()
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def test_two_servers_on_one_index_stop_independently(index_dir: Path, tmp_path: Path) -> None:
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir()
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    with zhsearch_server(index_dir, tmp_path / "second.log", env=env) as second:
        with zhsearch_server(index_dir, tmp_path / "first.log", env=env) as first:
            assert first.port != second.port
            assert answers(first.url) and answers(second.url)
        # The first is stopped: its port is closed, and the second still serves.
        assert first.proc.returncode is not None and refused(first.url)
        assert answers(second.url)
        # Nor did starting and stopping the first leave anything for the second to lose.
        assert list(home.iterdir()) == [] and list(runtime.iterdir()) == []
    assert second.proc.returncode is not None and refused(second.url)
    # No control socket, at either of gunicorn's default places, and no ~/.gunicorn folder.
    assert not (home / ".gunicorn").exists()
    assert not (runtime / "gunicorn.ctl").exists()
    assert list(home.iterdir()) == [] and list(runtime.iterdir()) == []

"""Make the README's pictures: the results page, an article's page, and the results on a phone.

Indexes corpus/ into a temporary directory, runs `zhsearch serve` on a free
port, and photographs a search with Debian's Chromium (apt-get install
chromium fonts-noto-cjk):

    .venv/bin/python docs/screenshot.py [QUERY]
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OUT = ROOT / "docs" / "screenshot-results.png"
DOCUMENT = ROOT / "docs" / "screenshot-document.png"
PHONE = ROOT / "docs" / "screenshot-phone.png"


def main(query: str = "混合专家") -> None:
    """Build, serve, photograph, stop."""
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        subprocess.run([str(BIN / "zhsearch"), "build", "-q", "--index", str(index), str(ROOT / "corpus")], check=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [str(BIN / "zhsearch"), "serve", "--index", str(index), "--port", str(port), "--workers", "1"],
            env={**os.environ, "ZHSEARCH_PER_PAGE": "4"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).close()
                    break
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.2)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    headless=True,
                    args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--lang=zh-CN"],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="zh-CN")
                url = base + "/?" + urllib.parse.urlencode({"q": query})
                page.goto(url)  # the first search opens the index; show a warm one
                page.goto(url)
                page.screenshot(path=str(OUT))
                # The first result's own page (全文, or the title of an article without a url).
                page.locator("ol.hits > li.hit").first.locator("a[href^='/doc/']").first.click()
                page.wait_for_load_state()
                page.screenshot(path=str(DOCUMENT))
                phone = browser.new_page(viewport={"width": 360, "height": 740}, locale="zh-CN")
                phone.goto(url)
                phone.screenshot(path=str(PHONE))
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    for path in (OUT, DOCUMENT, PHONE):
        print(f"{path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(*sys.argv[1:2])

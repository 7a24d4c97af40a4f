"""The search page in a real browser: Debian's Chromium, driven by Playwright, against `zhsearch serve`.

Locally these tests skip, saying why, when /usr/bin/chromium, the Chinese fonts
or the playwright package are missing; with CI=true they fail instead.
Screenshots at 1280 px and 360 px go to test-output/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import zhsearch_server

from .conftest import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
MOBILE = {"width": 360, "height": 740}
PER_PAGE = 3
# axe-core, from npm: .ci/run installs it with `npm install --prefix .ci/node axe-core@4.14.1`.
AXE_VERSION = "4.14.1"
AXE = ROOT / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so the browser tests must run (.ci/run installs what they need)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    fonts = shutil.which("fc-list") and subprocess.run(["fc-list", ":lang=zh-cn"], capture_output=True, text=True)
    if not fonts or "Noto Sans CJK" not in fonts.stdout:
        _unavailable("no Chinese font: Chinese would render as boxes (apt-get install fonts-noto-cjk)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        # Never `playwright install`: Debian's Chromium is the browser.
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("browser-server") / "server.log"
    with zhsearch_server(index_dir, log, env={"ZHSEARCH_PER_PAGE": str(PER_PAGE)}) as server:
        yield server.url


class Page:
    """A browser tab on the server that records console errors (a CSP violation is one)."""

    def __init__(
        self, browser: Any, base: str, viewport: dict[str, int], javascript: bool = True, bypass_csp: bool = False
    ) -> None:
        self.context = browser.new_context(
            viewport=viewport, locale="zh-CN", java_script_enabled=javascript, bypass_csp=bypass_csp
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def goto(self, path: str) -> Any:
        self.page.goto(self.base + path)
        # The empty page focuses its box (autofocus), which a busy machine may do a moment after the
        # load event: wait for it as a person would, rather than type into nothing.
        if self.page.locator("[autofocus]").count():
            self.page.wait_for_function("document.activeElement?.hasAttribute('autofocus')")
        return self.page

    def shot(self, name: str, full_page: bool = True) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)

    def close(self) -> None:
        self.context.close()
        assert self.errors == []


@pytest.fixture
def desktop(browser: Any, server: str) -> Iterator[Page]:
    tab = Page(browser, server, DESKTOP)
    yield tab
    tab.close()


@pytest.fixture
def mobile(browser: Any, server: str) -> Iterator[Page]:
    tab = Page(browser, server, MOBILE)
    yield tab
    tab.close()


def active(page: Any) -> dict[str, str]:
    """What has keyboard focus: tag, id, class, text and the closest hit's index."""
    result: dict[str, str] = page.evaluate(
        """() => {
            const el = document.activeElement;
            const hits = [...document.querySelectorAll('ol.hits > li.hit')];
            return {tag: el.tagName, id: el.id, cls: el.className, text: el.textContent.trim(),
                    hit: String(hits.indexOf(el.closest('li.hit')))};
        }"""
    )
    return result


def hit_titles(page: Any) -> list[str]:
    titles: list[str] = page.locator("ol.hits .title").all_inner_texts()
    return titles


def test_typed_query_shows_visible_highlights(desktop: Page) -> None:
    page = desktop.goto("/")
    desktop.shot("home-1280", full_page=False)
    assert active(page)["id"] == "q"  # the empty page focuses the box
    page.keyboard.type("混合专家")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert re.search(r"[?&]q=%E6%B7%B7", page.url)
    assert page.title() == "混合专家 - zhsearch"
    assert page.input_value("#q") == "混合专家"
    marks = page.locator("ol.hits mark")
    assert marks.count() >= 2
    assert marks.first.is_visible() and marks.first.inner_text() == "混合专家"
    colour = marks.first.evaluate("m => getComputedStyle(m).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
    stats = page.locator("#stats").inner_text()
    assert "找到 1 条结果" in stats and "毫秒" in stats
    meta = page.locator("ol.hits li").first.locator(".meta").inner_text()
    assert "2025-03-02" in meta and "模型周刊" in meta and "MoE" in meta
    desktop.shot("results-1280")


def test_results_on_a_phone(mobile: Page) -> None:
    for path, name in [("/", "home-360"), ("/?q=混合专家", "results-360"), ("/?q=dmx", "empty-360")]:
        page = mobile.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= MOBILE["width"], f"{path} scrolls sideways ({width}px)"
        mobile.shot(name)
    page = mobile.goto("/?q=混合专家")
    assert page.locator("ol.hits mark").first.is_visible()
    # The filters follow the results on a phone, one tap away.
    page.click("a.to-filters")
    assert page.locator("#filters").is_visible()


def test_pagination(desktop: Page) -> None:
    page = desktop.goto("/?q=大模型 OR 汽车 OR Python OR 云原生")
    first = hit_titles(page)
    assert len(first) == PER_PAGE
    with page.expect_navigation():
        page.click("nav.pages a[rel=next]")
    assert "page=2" in page.url
    assert page.locator("nav.pages [aria-current=page]").inner_text() == "2"
    second = hit_titles(page)
    assert second and not set(first) & set(second)
    with page.expect_navigation():
        page.click("nav.pages a[rel=prev]")
    assert hit_titles(page) == first


def test_facets_chips_sort_and_dates(desktop: Page) -> None:
    page = desktop.goto("/?q=大模型")
    assert "找到 2 条结果" in page.locator("#stats").inner_text()
    with page.expect_navigation():
        page.click("aside.filters a:has(.value:text-is('MoE'))")
    assert "tag=MoE" in page.url and "找到 1 条结果" in page.locator("#stats").inner_text()
    assert page.title() == "大模型 · MoE - zhsearch"
    desktop.shot("filtered-1280", full_page=False)
    with page.expect_navigation():
        page.click("ul.chips a:has-text('标签：MoE')")
    assert "tag=" not in page.url and "找到 2 条结果" in page.locator("#stats").inner_text()

    with page.expect_navigation():
        page.click("nav.sort a:text-is('最新')")
    assert "sort=date" in page.url
    dates = page.locator("ol.hits time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))")
    assert dates == sorted(dates, reverse=True)

    page.fill("#from", "2025-06-01")
    page.fill("#to", "2025-06-30")
    with page.expect_navigation():
        page.click("form.dates button")
    assert "from=2025-06-01" in page.url and "to=2025-06-30" in page.url and "sort=date" in page.url
    assert hit_titles(page) == ["文心大模型4.5系列宣布开源"]
    assert page.input_value("#from") == "2025-06-01"


def test_a_typed_date_shows_in_the_date_inputs_and_as_a_chip(desktop: Page) -> None:
    page = desktop.goto("/")
    page.fill("#q", "大模型 date:2025")
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert page.input_value("#from") == "2025-01-01" and page.input_value("#to") == "2025-12-31"
    assert page.locator("ul.chips a", has_text="日期：2025").is_visible()
    # Narrowing in the inputs replaces the typed date rather than adding to it.
    page.fill("#from", "2025-06-01")
    with page.expect_navigation():
        page.click("form.dates button")
    assert page.input_value("#q") == "大模型"
    assert "from=2025-06-01" in page.url and "to=2025-12-31" in page.url
    assert page.locator("ul.chips a", has_text="日期：2025-06-01 至 2025-12-31").is_visible()


def facet_counts(page: Any, name: str) -> dict[str, int]:
    """The values listed under one facet (来源, 标签) with their counts."""
    links = page.locator(f"section.facet:has(h3:text-is('{name}')) li a")
    pairs = links.evaluate_all(
        "els => els.map(e => [e.querySelector('.value').textContent, e.querySelector('.count').textContent])"
    )
    return {value: int(count) for value, count in pairs}


def test_choosing_two_sources(desktop: Page) -> None:
    page = desktop.goto("/?q=大模型 OR Python")
    sources = facet_counts(page, "来源")
    assert len(sources) >= 2
    first, second = sorted(sources)[:2]
    with page.expect_navigation():
        page.click(f"aside.filters a:has(.value:text-is('{first}'))")
    assert f"找到 {sources[first]} 条结果" in page.locator("#stats").inner_text()
    # The other sources stay listed with the counts they had, so a second can be added.
    assert facet_counts(page, "来源") == sources
    with page.expect_navigation():
        page.click(f"aside.filters a:has(.value:text-is('{second}'))")
    assert f"找到 {sources[first] + sources[second]} 条结果" in page.locator("#stats").inner_text()
    chips = page.locator("ul.chips li").all_inner_texts()
    assert any(first in c for c in chips) and any(second in c for c in chips)
    chosen = page.locator("section.facet a[aria-current='true'] .value").all_inner_texts()
    assert sorted(chosen) == [first, second]
    assert set(page.locator("ol.hits .source").all_inner_texts()) <= {first, second}
    desktop.shot("two-sources-1280", full_page=False)
    # Removing one keeps the other.
    with page.expect_navigation():
        page.click(f"aside.filters a:has(.value:text-is('{first}'))")
    assert f"找到 {sources[second]} 条结果" in page.locator("#stats").inner_text()


def test_suggestions_with_the_keyboard(desktop: Page) -> None:
    page = desktop.goto("/")
    box = page.locator("#q")
    assert box.get_attribute("role") == "combobox" and box.get_attribute("aria-expanded") == "false"
    page.keyboard.type("dmx", delay=50)
    # Wait for the answer to the whole word, not to "d" or "dm" on a slow machine.
    page.locator("#q-suggestions[data-query='dmx'] [role=option]").first.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    assert box.get_attribute("aria-controls") == "q-suggestions"
    texts = page.locator("#q-suggestions [role=option] .text").all_inner_texts()
    assert "大模型" in texts
    desktop.shot("suggest-1280", full_page=False)
    for _ in range(texts.index("大模型") + 1):
        page.keyboard.press("ArrowDown")
    chosen = box.get_attribute("aria-activedescendant")
    assert chosen and page.locator(f"#{chosen}").get_attribute("aria-selected") == "true"
    assert page.locator(f"#{chosen} .text").inner_text() == "大模型"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.input_value("#q") == "大模型"
    assert page.locator("ol.hits mark").first.is_visible()


def test_escape_closes_suggestions_and_keeps_the_text(desktop: Page) -> None:
    page = desktop.goto("/")
    page.keyboard.type("hh", delay=50)
    listbox = page.locator("#q-suggestions")
    page.locator("#q-suggestions[data-query='hh'] [role=option]").first.wait_for()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    assert listbox.is_hidden()
    assert page.locator("#q").get_attribute("aria-expanded") == "false"
    assert page.locator("#q").get_attribute("aria-activedescendant") is None
    assert page.input_value("#q") == "hh" and active(page)["id"] == "q"
    # A second Escape, with the list closed, leaves the text (a type=search box would clear it).
    page.keyboard.press("Escape")
    assert page.input_value("#q") == "hh" and listbox.is_hidden() and active(page)["id"] == "q"
    # Enter now searches for what was typed.
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.input_value("#q") == "hh"


def suggest_requests(page: Any) -> list[str]:
    """The q of every /api/suggest request the page makes from now on, in order."""
    asked: list[str] = []

    def record(request: Any) -> None:
        if "/api/suggest" in request.url:
            asked.append(request.url.split("q=", 1)[1].split("&", 1)[0])

    page.on("request", record)
    return asked


def option_texts(page: Any, query: str) -> list[str]:
    page.locator(f"#q-suggestions[data-query='{query}'] [role=option]").first.wait_for()
    texts: list[str] = page.locator("#q-suggestions [role=option] .text").all_inner_texts()
    return texts


def test_no_suggestions_while_an_input_method_composes(desktop: Page) -> None:
    page = desktop.goto("/")
    asked = suggest_requests(page)
    box = page.locator("#q")
    # Chromium's own IME events, as a pinyin input method makes them: compositionstart, the
    # letters as compositionupdate + input (isComposing), then the chosen words and compositionend.
    ime = desktop.context.new_cdp_session(page)
    for letters in ["m", "mo", "mox", "moxi", "moxin", "moxing"]:
        ime.send("Input.imeSetComposition", {"text": letters, "selectionStart": 6, "selectionEnd": 6})
        page.wait_for_timeout(60)
    page.wait_for_timeout(500)  # several debounce periods
    assert page.input_value("#q") == "moxing"
    assert asked == [] and box.get_attribute("aria-expanded") == "false"
    ime.send("Input.insertText", {"text": "模型"})  # the candidate chosen: compositionend
    assert "模型" in option_texts(page, "模型")
    page.wait_for_timeout(300)
    assert asked == ["%E6%A8%A1%E5%9E%8B"]  # one request, for 模型
    assert box.get_attribute("aria-expanded") == "true"


def test_no_suggestions_between_synthetic_composition_events(desktop: Page) -> None:
    page = desktop.goto("/")
    asked = suggest_requests(page)
    # Input events that do not say they are composing (keyboard.insert_text) between
    # compositionstart and compositionend are held back too.
    page.dispatch_event("#q", "compositionstart", {"data": ""})
    page.keyboard.insert_text("hh")
    page.wait_for_timeout(500)
    assert asked == []
    page.dispatch_event("#q", "compositionend", {"data": "hh"})
    assert "混合" in option_texts(page, "hh")
    assert asked == ["hh"]


def test_keys_belong_to_the_input_method_while_it_composes(desktop: Page) -> None:
    page = desktop.goto("/")
    page.keyboard.type("hh", delay=50)
    option_texts(page, "hh")
    page.dispatch_event("#q", "compositionstart", {"data": ""})
    listbox = page.locator("#q-suggestions")
    assert listbox.is_hidden()  # the input method shows its own candidates
    page.keyboard.press("ArrowDown")  # moves through the input method's candidates, not ours
    assert listbox.is_hidden() and page.locator("#q").get_attribute("aria-activedescendant") is None
    page.dispatch_event("#q", "compositionend", {"data": ""})
    assert option_texts(page, "hh")  # asked again once composition ends


@pytest.mark.parametrize("abortable", [True, False], ids=["abort", "no-abort"])
def test_a_late_answer_never_replaces_a_newer_one(desktop: Page, abortable: bool) -> None:
    page = desktop.page
    if not abortable:
        # Even when the old request cannot be cancelled and its answer arrives.
        page.add_init_script("delete window.AbortController;")
    held: list[Any] = []

    def hold_the_first_hh(route: Any) -> None:
        if route.request.url.endswith("q=hh") and not held:
            held.append(route)  # answered below, after the newer requests
        else:
            route.continue_()

    page.route("**/api/suggest?*", hold_the_first_hh)
    desktop.goto("/")
    page.keyboard.type("hh", delay=50)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the request for hh was not made"
    page.keyboard.type("x")
    page.locator("#q-suggestions[data-query='hhx']").wait_for(state="attached")
    page.keyboard.press("Backspace")  # back to hh: asked again, answered at once
    fresh = option_texts(page, "hh")
    old = {"query": "hh", "suggestions": [{"text": "旧答案", "pinyin": "", "documents": 99, "query": "旧答案"}]}
    try:
        held[0].fulfill(status=200, content_type="application/json", body=json.dumps(old, ensure_ascii=False))
    except Exception:  # noqa: BLE001 - the page cancelled it, which is fine too
        pass
    page.wait_for_timeout(500)
    assert page.locator("#q-suggestions [role=option] .text").all_inner_texts() == fresh
    assert "旧答案" not in fresh and page.input_value("#q") == "hh"


def test_suggestions_keep_the_case_typed(desktop: Page) -> None:
    page = desktop.goto("/")
    page.keyboard.type("Kub", delay=50)
    assert option_texts(page, "Kub") == ["Kubernetes"]
    page.fill("#q", "")
    page.keyboard.type("GPT", delay=50)
    assert option_texts(page, "GPT") == ["GPT-4o"]
    page.fill("#q", "")
    page.keyboard.type("开源 PY", delay=50)
    assert option_texts(page, "开源 PY") == ["PYTHON"]
    with page.expect_navigation():
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
    assert page.input_value("#q") == "开源 PYTHON"


def test_an_english_prefix_gets_no_pinyin_sound_alikes(desktop: Page) -> None:
    page = desktop.goto("/")
    page.keyboard.type("Mo", delay=50)
    # The server answers 模型 (mo xing) and 模态 for "Mo"; a capital says it is English.
    page.locator("#q-suggestions[data-query='Mo']").wait_for(state="attached")
    assert page.locator("#q-suggestions [role=option]").count() == 0
    assert page.locator("#q-suggestions").is_hidden()
    page.fill("#q", "")
    page.keyboard.type("mo", delay=50)  # lower case may well be pinyin
    assert "模型" in option_texts(page, "mo")


def test_suggestion_chosen_with_the_mouse_on_a_phone(mobile: Page) -> None:
    page = mobile.goto("/")
    page.locator("#q").click()
    page.keyboard.type("kub", delay=50)
    option = page.locator("#q-suggestions[data-query='kub'] [role=option]").first
    option.wait_for()
    mobile.shot("suggest-360", full_page=False)
    with page.expect_navigation():
        option.click()
    assert page.input_value("#q") == "kubernetes"
    assert "Kubernetes" in hit_titles(page)[0]


def test_results_with_the_keyboard_only(desktop: Page) -> None:
    page = desktop.goto("/?q=大模型 OR 汽车 OR Python")
    page.keyboard.press("Tab")
    skip = active(page)
    assert skip["tag"] == "A" and skip["text"] == "跳到主要内容"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")  # skip link: focus moves to <main>
    page.keyboard.press("j")
    assert active(page)["hit"] == "0"
    page.keyboard.press("j")
    assert active(page)["hit"] == "1"
    assert page.locator("li.hit.current").count() == 1
    page.keyboard.press("ArrowDown")
    assert active(page)["hit"] == "2"
    page.keyboard.press("k")
    assert active(page)["hit"] == "1"
    target = page.evaluate("document.activeElement.href")
    assert target.startswith("https://")
    page.keyboard.press("/")
    assert active(page)["id"] == "q"
    page.keyboard.press("Escape")
    # Typing j in the box types a j; it does not move through the results.
    page.keyboard.type("j")
    assert page.input_value("#q").endswith("j") and active(page)["id"] == "q"


def test_empty_state_offers_a_suggestion(desktop: Page) -> None:
    page = desktop.goto("/?q=dmx")
    assert page.locator(".understood .term").all_inner_texts() == ["dmx"]
    desktop.shot("empty-1280")
    with page.expect_navigation():
        page.click(".suggestion a")
    assert page.input_value("#q") == "大模型" and page.locator("ol.hits mark").count() > 0


def test_everything_works_without_javascript(browser: Any, server: str) -> None:
    tab = Page(browser, server, DESKTOP, javascript=False)
    page = tab.goto("/")
    page.fill("#q", "大模型")
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert page.locator("ol.hits mark").first.is_visible()
    assert page.locator("#q-suggestions").count() == 0  # no script, no dropdown
    with page.expect_navigation():
        page.click("aside.filters a:has(.value:text-is('开源观察'))")
    assert hit_titles(page) == ["文心大模型4.5系列宣布开源"]
    page.click("details.help summary")
    assert page.locator("details.help dl").is_visible()
    tab.close()


CONTRAST_JS = """() => {
    const lum = (c) => {
        const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const rgba = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const c = rgba(getComputedStyle(el).backgroundColor);
            if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    const failures = [];
    for (const el of document.querySelectorAll('body *')) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        const box = el.getBoundingClientRect();
        if (!own || box.width < 2 || box.height < 2 || el.closest('.visually-hidden, .skip')) continue;
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden') continue;
        const fg = rgba(style.color).slice(0, 3);
        const [a, b] = [lum(fg), lum(background(el))];
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
        const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
        const label = `${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 20)}"`;
        if (ratio < needed) failures.push(`${label} ${ratio.toFixed(2)}`);
    }
    return failures;
}"""


@pytest.mark.parametrize("path", ["/", "/?q=大模型&tag=大模型", "/?q=dmx", "/?q=飞桨彗星"])
def test_text_contrast_meets_wcag_aa(desktop: Page, path: str) -> None:
    page = desktop.goto(path)
    page.click("details.help summary")
    assert page.evaluate(CONTRAST_JS) == []


def test_missing_browser_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is missing"):
        _unavailable("/usr/bin/chromium is missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        _unavailable("/usr/bin/chromium is missing")


def test_snippets_are_about_three_lines_on_a_phone(mobile: Page) -> None:
    page = mobile.goto("/?q=大模型")
    lines = page.evaluate(
        """() => [...document.querySelectorAll('.hit .snippet')].map(e =>
            Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)))"""
    )
    assert lines and max(lines) <= 3
    # The passage is cut in the text, not only on screen: it fits about three lines untrimmed too.
    natural = page.evaluate(
        """() => [...document.querySelectorAll('.hit .snippet')].map(e => {
            e.style.webkitLineClamp = 'unset'; e.style.display = 'block';
            return Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)); })"""
    )
    assert max(natural) <= 5


def axe_problems(page: Any) -> list[str]:
    """axe-core's violations of serious or critical impact, and any heading-order, one line each."""
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical") or v["id"] == "heading-order"
    ]


@pytest.fixture
def axe_tab(browser: Any, server: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    if not AXE.exists():
        _unavailable(f"axe-core is not installed (npm install --prefix .ci/node axe-core@{AXE_VERSION})")
    # Injecting axe is an inline script, which the page's CSP rightly forbids.
    tab = Page(browser, server, request.param, bypass_csp=True)
    yield tab
    tab.close()


@pytest.mark.parametrize("axe_tab", [DESKTOP, MOBILE], ids=["1280", "360"], indirect=True)
@pytest.mark.parametrize(
    "path",
    ["/", "/?q=大模型 OR 汽车 OR Python", "/?q=大模型&tag=MoE", "/?q=dmx"],
    ids=["home", "results", "filtered", "none"],
)
def test_axe_finds_nothing_serious(axe_tab: Page, path: str) -> None:
    page = axe_tab.goto(path)
    assert axe_problems(page) == []


def test_axe_with_the_suggestions_open(browser: Any, server: str) -> None:
    if not AXE.exists():
        _unavailable(f"axe-core is not installed (npm install --prefix .ci/node axe-core@{AXE_VERSION})")
    tab = Page(browser, server, DESKTOP, bypass_csp=True)
    page = tab.goto("/")
    page.keyboard.type("dmx", delay=50)
    option_texts(page, "dmx")
    page.keyboard.press("ArrowDown")
    assert axe_problems(page) == []
    tab.close()


def test_the_placeholder_fits_on_a_phone(mobile: Page) -> None:
    page = mobile.goto("/")
    room, needed = page.evaluate(
        """() => {
            const box = document.querySelector('#q'), s = getComputedStyle(box);
            const ctx = document.createElement('canvas').getContext('2d');
            ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
            return [box.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight),
                    ctx.measureText(box.placeholder).width];
        }"""
    )
    assert needed <= room, f"the placeholder needs {needed:.0f}px of {room:.0f}px"


def test_a_result_without_a_url_opens_its_document_page(desktop: Page) -> None:
    page = desktop.goto("/?q=Rust")
    title = page.locator("ol.hits .title a", has_text="Rust 1.80")
    assert title.get_attribute("href") == "/doc/notes%2Frust.md?q=Rust"
    with page.expect_navigation():
        title.click()
    assert page.url.endswith("/doc/notes%2Frust.md?q=Rust")
    assert page.locator("h1.doc-title").inner_text() == "Rust 1.80 稳定版发布"
    assert page.locator(".doc-body mark").first.is_visible()
    assert page.locator(".doc-body mark").first.inner_text() == "Rust"
    desktop.shot("doc-1280")
    with page.expect_navigation():
        page.click("text=返回搜索结果")
    assert page.input_value("#q") == "Rust"
    # The keyboard way: j to the first result, Enter to open it.
    page.keyboard.press("j")
    assert active(page)["hit"] == "0"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/doc/notes%2Frust.md" in page.url
    assert page.locator("h1.doc-title mark").is_visible()


def test_a_result_with_a_url_keeps_it_and_offers_the_full_text(mobile: Page) -> None:
    page = mobile.goto("/?q=飞桨")
    hit = page.locator("ol.hits li.hit").first
    assert (hit.locator(".title a").get_attribute("href") or "").startswith("https://")
    with page.expect_navigation():
        hit.locator("a.fulltext").click()
    assert page.locator(".doc-body mark").first.is_visible()
    assert page.locator("a.doc-original").get_attribute("href") == "https://news.example.com/ernie-45"
    # Nothing is wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    mobile.shot("doc-360")


@pytest.mark.parametrize("axe_tab", [DESKTOP, MOBILE], ids=["1280", "360"], indirect=True)
def test_axe_on_the_document_page(axe_tab: Page) -> None:
    page = axe_tab.goto("/doc/ernie?q=飞桨")
    assert page.locator(".doc-body mark").count() > 0
    assert axe_problems(page) == []


@pytest.fixture(scope="module")
def dup_server(duplicates_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("browser-dup-server") / "server.log"
    with zhsearch_server(duplicates_index, log) as server:
        yield server.url


def test_a_near_duplicate_group(browser: Any, dup_server: str) -> None:
    tab = Page(browser, dup_server, DESKTOP)
    page = tab.goto("/?q=边车容器")
    hits = page.locator("ol.hits li.hit")
    # Three articles are one release note (a reprint, the traditional-script copy): one entry, "2 篇相似".
    group = hits.filter(has=page.locator("details.similar"))
    assert group.count() == 1
    summary = group.locator("summary")
    assert summary.inner_text() == "2 篇相似"
    others = group.locator("details.similar li a")
    assert not others.first.is_visible()
    summary.click()
    assert others.count() == 2 and others.first.is_visible()
    titles = {group.locator(".title a").inner_text(), *others.all_inner_texts()}
    assert titles == {"Kubernetes 1.30 发布：边车容器正式可用", "Kubernetes 1.30 發布：邊車容器正式可用"}
    # total counts the articles; the list shows each group once.
    assert f"找到 <strong>{hits.count() + 2}</strong>" in page.locator("#stats").inner_html()
    # Each result says where it lives, under its title.
    assert group.locator(".address").inner_text() in {"mirror.example.com/posts/k8s-130", "k8s.jsonl:1", "k8s.jsonl:3"}
    tab.shot("duplicates-1280", full_page=False)
    with page.expect_navigation():
        others.first.click()
    assert "/doc/k8s-" in page.url and "?q=" in page.url
    assert page.locator(".doc-body mark").first.is_visible()
    tab.close()

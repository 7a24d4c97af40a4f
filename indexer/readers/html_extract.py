"""The main text and metadata of an HTML article page, without navigation, sidebars, footers or comments.

trafilatura does the extraction (see the dependency table in docs/dependencies.md for how it
was chosen); this module only turns its result into article fields. It is
imported the first time an HTML file is read, so other corpora do not pay for
loading it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html  # type: ignore[import-untyped]
import trafilatura

# Extracted text shorter than this is not an article (a menu, a cookie notice).
MIN_ARTICLE_CHARS = 20
# trafilatura's time grows faster than the page: 2 s for 25,000 paragraphs, 95 s for 200,000. A page with
# more elements than this is indexed as its whole text, read by lxml in linear time.
MAX_EXTRACT_ELEMENTS = 20_000
# libxml2 checks each attribute of a tag against the others: 20,000 on one tag took 0.4 s, 300,000 hours.
MAX_TAG_ATTRIBUTES = 1_000

_TAG_RE = re.compile(r"<[A-Za-z][^>]*>?")
_SPACE_RE = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class PageContent:
    """What an HTML page yields: the article text and the metadata zhsearch stores."""

    title: str
    body: str
    date: str
    url: str
    source: str
    tags: tuple[str, ...]


def page_shape(html: str) -> tuple[int, int]:
    """The number of start tags in ``html`` and the most attributes (``=`` signs) one of them has; linear."""
    tags = widest = 0
    for match in _TAG_RE.finditer(html):
        tags += 1
        widest = max(widest, match.group().count("="))
    return tags, widest


def whole_text(html: str) -> PageContent | None:
    """The page's title and all its visible text, without scripts and styles: for pages too large to extract."""
    root = lxml.html.fromstring(html)
    for element in root.xpath("//script | //style | //noscript | //template"):
        element.drop_tree()
    title = " ".join((root.findtext(".//title") or "").split())
    lines = (_SPACE_RE.sub(" ", line).strip() for line in root.text_content().splitlines())
    text = "\n".join(line for line in lines if line)
    if len(text) < MIN_ARTICLE_CHARS:
        return None
    return PageContent(title=title, body=text, date="", url="", source="", tags=())


def extract_article(html: str) -> PageContent | None:
    """Extract the article from a decoded HTML page, or None if the page holds no article text."""
    doc = trafilatura.bare_extraction(
        html,
        with_metadata=True,
        # Measured on tests/data/ingest/: precision mode drops "was this helpful",
        # previous/next and "related" blocks that the default mode keeps.
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        # Deduplication is across calls: it would drop paragraphs that two articles share.
        deduplicate=False,
    )
    if doc is None or isinstance(doc, dict):
        return None
    text = (doc.text or "").strip()
    # A page without an article still has a menu or a footer line, which the
    # extractor returns when it finds nothing better.
    if len(text) < MIN_ARTICLE_CHARS:
        return None
    title = " ".join((doc.title or "").split())
    lines = text.splitlines()
    # The page's <h1> usually repeats the title as the first line of the text.
    if title and lines and " ".join(lines[0].split()) == title:
        text = "\n".join(lines[1:]).strip()
    tags: list[str] = []
    for group in (doc.tags or [], doc.categories or []):
        for item in group:
            # Pages often put every keyword in one comma-separated <meta> value.
            tags.extend(t.strip() for t in item.replace("，", ",").split(","))
    url = doc.url or ""
    return PageContent(
        title=title,
        body=text,
        date=doc.date or "",
        url=url if url.startswith(("http://", "https://")) else "",
        source=(doc.sitename or "").strip(),
        tags=tuple(t for t in tags if t),
    )

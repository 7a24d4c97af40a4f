"""The main text and metadata of an HTML article page, without navigation, sidebars, footers or comments.

trafilatura does the extraction (see the dependency table in docs/dependencies.md for how it
was chosen); this module only turns its result into article fields. It is
imported the first time an HTML file is read, so other corpora do not pay for
loading it.
"""

from __future__ import annotations

from dataclasses import dataclass

import trafilatura

# Extracted text shorter than this is not an article (a menu, a cookie notice).
MIN_ARTICLE_CHARS = 20


@dataclass(frozen=True)
class PageContent:
    """What an HTML page yields: the article text and the metadata zhsearch stores."""

    title: str
    body: str
    date: str
    url: str
    source: str
    tags: tuple[str, ...]


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

"""indexer.suggest: completion by prefix, pinyin and initials; "did you mean" for empty results."""

from __future__ import annotations

from pathlib import Path

from indexer import Searcher, Suggester, SuggesterCache, build_index, suggest_query

from .conftest import MINI_CORPUS

TERMS = [
    ("大", 40),
    ("模型", 30),
    ("模态", 5),
    ("多", 3),
    ("开源", 12),
    ("混合", 6),
    ("专家", 6),
    ("银行", 4),
    ("python", 8),
    ("pytorch", 2),
    ("的", 99),
    ("4.5", 7),
    ("x", 9),
    ("女人", 1),
]


def texts(suggester: Suggester, prefix: str, limit: int = 8) -> list[str]:
    return [s.text for s in suggester.suggest(prefix, limit)]


def test_prefix_of_the_word_ranked_by_document_frequency() -> None:
    s = Suggester(TERMS)
    assert texts(s, "py") == ["python", "pytorch"]
    assert texts(s, "PY") == ["python", "pytorch"]  # folded like the index
    assert texts(s, "ｐｙ") == ["python", "pytorch"]  # full-width letters too
    assert texts(s, "开") == ["开源"]
    assert texts(s, "py", limit=1) == ["python"]


def test_pinyin_and_initials() -> None:
    s = Suggester(TERMS)
    assert texts(s, "kaiy") == ["开源"]
    assert texts(s, "ky") == ["开源"]
    assert texts(s, "yinh") == ["银行"]  # phrase-aware reading: hang, not xing
    assert texts(s, "nvr") == ["女人"]
    assert s.suggest("kaiyuan")[0].pinyin == "kai yuan"
    assert texts(s, "xi'an") == []


def test_pinyin_spanning_several_terms_is_composed() -> None:
    s = Suggester(TERMS)
    assert "大模型" in texts(s, "dmx")
    assert "大模型" in texts(s, "damoxing")
    assert "大模型" in texts(s, "damox")  # the last syllable still being typed
    assert texts(s, "hhzj") == ["混合专家"]
    (best, *_) = s.convert("dmx")
    assert best.text == "大模型" and best.pinyin == "da mo xing" and best.documents == 30
    assert s.convert("大魔型")[0].text == "大模型"  # same sound, other characters
    assert s.convert("python") == []


def test_verify_drops_composed_words_no_title_holds() -> None:
    s = Suggester(TERMS)
    counted: list[str] = []

    def verify(text: str) -> int:
        counted.append(text)
        return 2 if text == "大模型" else 0

    found = s.suggest("dm", verify=verify)
    assert [x.text for x in found if len(x.text) > 2] == ["大模型"]
    assert next(x for x in found if x.text == "大模型").documents == 2
    assert "大模态" in counted


def test_stop_words_numbers_and_single_letters_are_not_suggested() -> None:
    s = Suggester(TERMS)
    assert texts(s, "的") == []
    assert texts(s, "4") == []
    assert texts(s, "x") == []
    assert len(s) == len(TERMS) - 3
    assert Suggester([]).suggest("a") == []
    assert s.suggest("") == [] and s.suggest("   ") == []


def test_long_input_is_bounded() -> None:
    s = Suggester(TERMS)
    assert s.suggest("d" * 5000) == []
    assert s.convert("dm" * 500) == []


def test_suggest_query_respells_then_drops_words(searcher: Searcher) -> None:
    suggester = Suggester.from_store(searcher.store)

    def count(q: str) -> int:
        page = searcher.search(q, size=1)
        return 0 if page.relaxed else page.total

    def suggest(q: str) -> tuple[str, str, str | None] | None:
        found = suggest_query(q, searcher.search(q).terms, suggester, count)
        return (found.query, found.kind, found.dropped) if found else None

    assert suggest("dmx") == ("大模型", "respell", None)
    assert suggest("da mo xing") == ("大模型", "respell", None)
    assert suggest("dmx 开源") == ("大模型 开源", "respell", None)
    assert suggest("飞桨 彗星") == ("飞桨", "drop", "彗星")
    assert suggest("飞桨彗星") == ("飞桨", "drop", "彗星")
    assert suggest("title:彗星 飞桨") == ("飞桨", "drop", "title:彗星")
    assert suggest("彗星") is None


def test_suggest_query_runs_a_bounded_number_of_searches(searcher: Searcher) -> None:
    suggester = Suggester.from_store(searcher.store)
    runs: list[str] = []

    def count(q: str) -> int:
        runs.append(q)
        return 0

    words = " ".join(f"词{i}" for i in range(30))
    assert suggest_query(words, words.split(), suggester, count, max_tries=5) is None
    assert len(runs) == 5


def test_cache_rebuilds_after_the_index_changes(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    searcher = Searcher(index)
    cache = SuggesterCache(searcher.store, recheck_s=0)
    first = cache.get()
    assert cache.get() is first
    assert "彗星" not in [s.text for s in first.suggest("huix")]
    more = tmp_path / "more.jsonl"
    more.write_text('{"title": "彗星来了", "body": "天文"}\n', encoding="utf-8")
    build_index([MINI_CORPUS, more], index)
    assert "彗星" in [s.text for s in cache.get().suggest("huix")]
    searcher.close()

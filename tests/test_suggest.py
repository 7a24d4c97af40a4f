"""indexer.suggest: completion by prefix, pinyin and initials; "did you mean" for empty results."""

from __future__ import annotations

from pathlib import Path

from indexer import (
    Searcher,
    SearchPage,
    Suggester,
    SuggesterCache,
    build_index,
    did_you_mean,
    full_matches,
    is_gibberish,
    open_store,
    suggest_query,
)
from indexer.suggest import MAX_SUGGEST_TERMS, is_near, title_vocabulary

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
        return full_matches(searcher.search(q, size=1))

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

    words = " ".join(f"term{i}x" for i in range(30))
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


def test_with_a_store_of_its_own_the_cache_rebuilds_in_the_background(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_index([MINI_CORPUS], index)
    searcher = Searcher(index)
    cache = SuggesterCache(searcher.store, recheck_s=0, reopen=lambda: open_store(index))
    first = cache.get()
    more = tmp_path / "more.jsonl"
    more.write_text('{"title": "彗星来了", "body": "天文"}\n', encoding="utf-8")
    build_index([MINI_CORPUS, more], index)
    # The request that notices the change gets the suggestions there are, not a rebuild of seconds.
    assert cache.get() is first
    cache.wait(timeout=60)
    rebuilt = cache.get()
    assert rebuilt is not first
    assert "彗星" in [s.text for s in rebuilt.suggest("huix")]
    assert cache.get() is rebuilt  # nothing changed since: no second rebuild
    searcher.close()


TITLES = [
    "文心大模型4.5系列宣布开源",
    "国产大模型的开源之路",
    "大模型时代的容器编排",
    "容器编排入门",
    "中国大",
    "Kubernetes 容器编排实践",
]


def test_common_title_phrases_complete_by_prefix_pinyin_and_initials() -> None:
    terms, phrases = title_vocabulary(TITLES)
    assert phrases[("大", "模型")] == 3 and phrases[("容器", "编排")] == 3
    assert ("的", "开源") not in phrases  # no stop word inside a phrase
    assert not any(p[-1] == "大" for p in phrases)  # 中国大 is a fragment, not a phrase
    assert terms["kubernetes"] == 1 and "4" not in terms  # whole words, not identifier parts
    s = Suggester.from_titles(TITLES)
    for typed in ("dmx", "damoxing", "damox", "大模"):
        assert texts(s, typed)[0] == "大模型", typed
    assert texts(s, "rqbp") == ["容器编排"]
    found = s.suggest("rongqi")
    assert [x.text for x in found] == ["容器", "容器编排"] and found[0].documents == 3
    assert s.documents("大模型") == 3 and s.documents("大魔型") == 0


def test_a_phrase_in_one_title_only_is_not_a_phrase() -> None:
    s = Suggester.from_titles(["大模型来了", "模型与大数据"])
    assert "大模型" not in texts(s, "大模")
    # Composed from title words, it is offered only where a title holds it (what /api/suggest checks).
    assert "大模型" in [x.text for x in s.suggest("dmx", verify=lambda t: 1 if t == "大模型" else 0)]
    assert "大模型" not in [x.text for x in s.suggest("dmx", verify=lambda t: 0)]


def test_convert_uses_whole_syllables_and_never_glues_single_characters() -> None:
    # Single characters whose initials spell d-a-m-o-x-i-n-g: what glued "到爱们哦新个" together.
    loose = [(ch, 50) for ch in "到爱们哦新个它级地你"]
    s = Suggester([*loose, ("大", 40), ("模型", 30)])
    assert [x.text for x in s.convert("大魔型")] == ["大模型"]
    assert s.convert("台积电") == []
    assert all(not is_gibberish(x.text) for x in s.convert("damoxing"))


def test_near_spellings_of_latin_words() -> None:
    s = Suggester([("kubernetes", 20), ("python", 30), ("pytorch", 3)])
    assert [x.text for x in s.convert("kubernets")] == ["kubernetes"]
    assert [x.text for x in s.convert("pyhton")] == ["python"]  # two letters swapped
    assert s.convert("python") == [] and s.convert("java") == []


def test_is_near_and_is_gibberish() -> None:
    assert is_near("大魔型", "大模型") and is_near("dmx", "大模型") and is_near("damoxing", "大模型")
    assert not is_near("台积电", "它爱级地爱你") and not is_near("台积电", "太阳能")
    assert is_gibberish("它爱级地爱你") and is_gibberish("里爱你个子旧从后爱你它爱") and is_gibberish("到 爱 们")
    assert not is_gibberish("大模型") and not is_gibberish("开源代码") and not is_gibberish("linux 内核")


def _page(total_full: int, relaxed: bool = False, partial: bool = False) -> SearchPage:
    return SearchPage("q", total_full, 1, 10, 1.0, relaxed=relaxed, total_full=total_full, partial=partial)


def test_did_you_mean_needs_no_full_match_or_three_times_as_many() -> None:
    s = Suggester.from_titles(TITLES)
    counts = {"大模型": 30}

    def count(q: str) -> int:
        return counts.get(q, 0)

    assert did_you_mean("大魔型", _page(0), s, count) == did_you_mean("大魔型", _page(10), s, count)
    found = did_you_mean("大魔型", _page(10), s, count)
    assert found is not None and (found.query, found.total, found.kind) == ("大模型", 30, "respell")
    assert found.to_dict() == {"query": "大模型", "total": 30, "kind": "respell", "dropped": None}
    assert did_you_mean("大魔型", _page(11), s, count) is None  # 30 < 3 × 11
    assert did_you_mean("大魔型", _page(0, partial=True), s, count) is None
    # With full matches, leaving a word out (which always finds more) is never offered.
    counts["开源"] = 500
    assert did_you_mean("开源 彗星", _page(0), s, count) == did_you_mean("开源 彗星", _page(0, relaxed=True), s, count)
    assert did_you_mean("开源 彗星", _page(2), s, count) is None


def test_no_did_you_mean_for_a_long_query() -> None:
    # Each try is a whole search; a pasted sentence of many words is not a typo.
    s = Suggester.from_titles(TITLES)
    runs: list[str] = []

    def count(q: str) -> int:
        runs.append(q)
        return 5

    words = ["大魔型"] + [f"词{i}" for i in range(MAX_SUGGEST_TERMS)]
    page = SearchPage(" ".join(words), 0, 1, 10, 1.0, terms=words, total_full=0)
    assert did_you_mean(" ".join(words), page, s, count) is None and runs == []


def test_a_capital_letter_is_english_never_pinyin() -> None:
    s = Suggester([*TERMS, ("linux", 3), ("令人", 9)])
    assert "令人" in texts(s, "lin")  # lower case may be pinyin
    assert texts(s, "Lin") == ["linux"]  # Lin is the start of an English word
    assert texts(s, "ＬＩＮ") == ["linux"]


def test_did_you_mean_on_the_index_matches_the_page_count(searcher: Searcher) -> None:
    suggester = Suggester.from_store(searcher.store)

    def count(q: str) -> int:
        return full_matches(searcher.search(q, size=1))

    found = did_you_mean("大魔型", searcher.search("大魔型"), suggester, count)
    assert found is not None and found.query == "大模型" and found.total == count("大模型")
    assert did_you_mean("大模型", searcher.search("大模型"), suggester, count) is None

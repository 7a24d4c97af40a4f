"""Random documents of common Chinese words, for tests that compare zhsearch with Whoosh's own answers."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = "研究 发展 语言 中国 政府 经济 学术 地区 历史 文化 技术 模型 数据 系统 网络 安全 开源 社区 标准 市场".split()
SOURCES = ["新闻网", "技术博客", "学报", "论坛", ""]
TAGS = ["经济", "技术", "历史", "开源", "安全", "文化"]


def write_random_docs(path: Path, count: int, seed: int, with_meta: bool = False) -> Path:
    """Write ``count`` JSON Lines records built from ``WORDS`` (and sources and tags with ``with_meta``)."""
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            body = "，".join("".join(rnd.sample(WORDS, 3)) for _ in range(rnd.randint(3, 30)))
            record: dict[str, object] = {"id": f"d{i}", "title": "".join(rnd.sample(WORDS, 2)), "body": body}
            if with_meta:
                record["source"] = rnd.choice(SOURCES)
                record["tags"] = rnd.sample(TAGS, rnd.randint(0, 3))
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path

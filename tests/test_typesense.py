"""The Typesense backend against a real 3-node cluster: replication to every node, a dead node, failover,
a restarted node, and a cluster without a leader."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import zhsearch_server
from typesense_cluster import TypesenseCluster

from indexer import Article, IndexerError, build_index
from indexer.backends.typesense import API_KEY_ENV, COLLECTION_ENV, NODES_ENV, TypesenseSettings, TypesenseStore
from indexer.backends.typesense.client import ClusterUnavailableError, TypesenseClient
from indexer.backends.typesense.documents import FORMAT_VERSION, LAYOUT_VERSION
from indexer.backends.typesense.store import REPLICATION_WAIT_S
from indexer.query import parse_query
from indexer.store import SearchRequest

from .conftest import MINI_CORPUS

pytestmark = pytest.mark.cluster

VISIBLE_WITHIN_S = 10.0
COLLECTION = "zhsearch_test"
# Reads are spread again this soon after a restarted node has caught up, each node serving this share.
SPREAD_WITHIN_S = 10.0
MIN_SHARE = 0.2


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


def count_for(store: TypesenseStore, query: str) -> int:
    return store.search(SearchRequest(parse_query(query), size=1)).total


def test_a_restarted_node_serves_no_stale_total_and_gets_its_share_of_reads(
    cluster: TypesenseCluster, built: TypesenseStore
) -> None:
    """A follower killed under load misses writes; restarted, it must not answer before it has caught up
    (no total below what was acknowledged before the query), and must get reads again soon after."""
    stop = threading.Event()
    acked: list[tuple[float, int]] = []  # (when acknowledged, documents acknowledged so far)
    answers: list[tuple[float, int]] = []  # (when the query was sent, its total)
    errors: list[str] = []
    readers = [store_for(cluster), store_for(cluster)]
    refusals: list[str] = []
    body = "节点重启以后，追上日志之前不应回答查询。" * 20

    def writer() -> None:
        store = store_for(cluster)
        i = 0
        while not stop.is_set():
            # Ten articles a write: the restarted node has hundreds of documents to catch up on.
            batch = [Article(id=f"restart-{i}-{j}", title=f"重启追赶 {i}", body=body) for j in range(10)]
            try:
                store.add(batch)
                acked.append((time.monotonic(), 10 * (len(acked) + 1)))
            except Exception as exc:  # noqa: BLE001 - every failure is what the test counts
                errors.append(f"write {i}: {exc!r}")
            i += 1
        store.close()

    def reader(store: TypesenseStore, refusals: list[str] | None = None) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                answers.append((sent, count_for(store, "重启追赶")))
            except ClusterUnavailableError as exc:
                # Only the reader of the restarted node alone may be refused: that is the node saying it lags.
                (errors if refusals is None else refusals).append(f"read: {exc!r}")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"read: {exc!r}")

    threads = [threading.Thread(target=writer), *(threading.Thread(target=reader, args=(r,)) for r in readers)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        leader = cluster.leader()
        node = next(n for n in cluster.nodes if n is not leader)
        cluster.kill(node)
        time.sleep(4)
        cluster.restart(node)
        restarted = time.monotonic()
        # Also ask the restarted node alone, so that its own answers are checked, not only the client's choice.
        alone = store_for(cluster, [node.url])
        readers.append(alone)
        threads.append(threading.Thread(target=reader, args=(alone, refusals)))
        threads[-1].start()
        while not cluster.healthy(node):
            assert time.monotonic() - restarted < 60, f"{node.url} did not catch up:\n{cluster.log_tail(node)}"
            time.sleep(0.1)
        recovered = time.monotonic()
        # The two readers of the whole cluster, which choose the nodes themselves.
        before = [r.client.answered_counts() for r in readers[:2]]
        time.sleep(SPREAD_WITHIN_S)
        after = [r.client.answered_counts() for r in readers[:2]]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for r in readers:
            r.close()
    assert errors == [], errors[:3]
    assert len(answers) > 50 and acked

    def acknowledged_by(moment: float) -> int:
        return max((n for done, n in acked if done < moment), default=0)

    # A follower applies a write a moment after the leader acknowledged it (REPLICATION_WAIT_S is what
    # the store allows for that); a node answering before it has replayed its log is seconds behind.
    stale = [(sent, total, acknowledged_by(sent - REPLICATION_WAIT_S)) for sent, total in answers]
    stale = [(round(sent - restarted, 2), total, due) for sent, total, due in stale if total < due]
    assert stale == [], f"answers below what was acknowledged (s after restart, total, acknowledged): {stale[:5]}"
    behind = sum(1 for sent, total in answers if total < acknowledged_by(sent))
    served = Counter[str]()
    for b, a in zip(before, after, strict=True):
        served.update({url: a.get(url, 0) - b.get(url, 0) for url in cluster.urls})
    reads = sum(served.values())
    shares = {url: served[url] / reads for url in cluster.urls}
    assert all(share >= MIN_SHARE for share in shares.values()), (
        f"reads in the {SPREAD_WITHIN_S:.0f} s after {node.url} caught up: {dict(served)}"
    )
    print(
        f"restart: caught up {recovered - restarted:.1f} s after the restart; {len(answers)} reads, "
        f"{behind} behind a write acknowledged before they were sent (none by more than "
        f"{REPLICATION_WAIT_S:.0f} s); the node alone answered {sum(readers[2].client.answered_counts().values())} "
        f"requests and was given up on {len(refusals)} times; {acked[-1][1]} documents written; shares after: "
        + ", ".join(f"{share:.0%}" for share in shares.values())
    )


def http_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read().decode("utf-8"))


def test_two_nodes_down_reads_go_on_writes_fail_saying_no_leader(
    cluster: TypesenseCluster, built: TypesenseStore, tmp_path: Path
) -> None:
    env = {
        "ZHSEARCH_BACKEND": "typesense",
        NODES_ENV: ",".join(cluster.urls),
        API_KEY_ENV: cluster.api_key,
        COLLECTION_ENV: COLLECTION,
    }
    search = "/api/search?" + urllib.parse.urlencode({"q": "混合 专家"})
    with zhsearch_server(None, tmp_path / "server.log", env=env) as server:
        leader = cluster.leader()
        survivor = next(n for n in cluster.nodes if n is not leader)
        for node in cluster.nodes:
            if node is not survivor:
                cluster.kill(node)
        killed = time.monotonic()
        status, health = http_json(server.url + "/healthz")
        assert status == 200, health
        assert health["status"] == "degraded" and health["writable"] is False
        assert health["nodes"] == {n.url: "no leader" if n is survivor else "down" for n in cluster.nodes}
        for _ in range(5):
            status, page = http_json(server.url + search)
            assert status == 200, page
            assert {r["id"] for r in page["results"]} == {"moe-intro", "hybrid-car"}  # type: ignore[attr-defined]

        # A short budget: the message is the same after the default 30 s.
        writer = TypesenseStore(settings_for(cluster), TypesenseClient(cluster.urls, cluster.api_key, write_budget=3))
        with pytest.raises(ClusterUnavailableError, match="has no leader, so it cannot take writes") as failed:
            writer.add([Article(id="no-leader", title="无主节点", body="写入应当失败。")])
        message = str(failed.value)
        assert f"{survivor.url}: HTTP" in message or f"{survivor.url}: a broken answer" in message, message
        assert "connection refused" in message and "2 must be up" in message, message
        writer.close()

        # Typesense 0.24.1: a node that has lost its leader refuses reads once its election timeout has
        # passed (about 12 s measured). /healthz then answers 503, saying why, without waiting out the budget.
        deadline = time.monotonic() + 60
        while (answer := http_json(server.url + "/healthz"))[0] == 200:
            assert time.monotonic() < deadline, f"the survivor still serves reads: {answer}"
            time.sleep(0.5)
        status, error = answer
        assert status == 503, error
        assert "has no leader, so it cannot serve reads" in error["error"]["message"], error  # type: ignore[index]
    refused = time.monotonic() - killed
    print(f"no leader: the survivor refused reads {refused:.1f} s after the kill; the write failed with: {message}")

"""`clpipe search` and the search service on Ray Serve, over the session's digits run
(tests/conftest.py): a query embedded by the snapshot's own model version, the answer naming the
snapshot, the service following CURRENT while queries run, a broken snapshot not served, bad
input refused with the reason."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from cl_core.datasets import DatasetStore
from cl_core.embeddings import EmbeddingTable
from cl_core.embeddings.manifest import SnapshotManifest, read_manifest, write_manifest
from cl_core.embeddings.table import new_snapshot_id
from tests.conftest import clpipe, clpipe_together, copy_workspace, last_json

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODEL, DATASET = "digits-ntxent", "digits"
TOKEN = "t0ken-for-tests"


def query_image(workspace: Path, target: Path) -> tuple[str, Path]:
    """A test-split image of the dataset, written to a file: (its row id, the file)."""
    store = DatasetStore(workspace / "datasets")
    dataset = store.resolve(DATASET, store.latest(DATASET))
    rows = ds.dataset([str(f) for f in dataset.files], format="parquet").to_table(
        columns=["id", "image"], filter=pc.field("split") == "test")
    target.write_bytes(rows.column("image")[0].as_py())
    return rows.column("id")[0].as_py(), target


@pytest.fixture(scope="module")
def reads(digits_run, tmp_path_factory):
    row, image = query_image(digits_run.workspace, tmp_path_factory.mktemp("query") / "query.png")
    calls = {
        "id": ("search", "--model", MODEL, "--id", row, "-k", "5", "--json"),
        "image": ("search", "--model", MODEL, "--dataset", DATASET, "--image", str(image), "-k", "3", "--json"),
        "printed": ("search", "--model", MODEL, "--id", row, "-k", "3"),
        "text": ("search", "--model", MODEL, "--text", "a handwritten seven"),
        "unknown": ("search", "--model", MODEL, "--id", "nope"),
        "alias": ("search", "--model", f"{MODEL}@champion", "--id", row),
    }
    done = clpipe_together(*calls.values(), workspace=digits_run.workspace)
    current = EmbeddingTable(digits_run.workspace / "embeddings", MODEL, DATASET).current()
    return {"row": row, "current": current, **dict(zip(calls, done, strict=True))}


def test_search_by_id_names_the_snapshot_and_leaves_the_row_out(reads):
    result = last_json(reads["id"])
    assert result["snapshot"] == reads["current"].id and result["model"] == {"name": MODEL, "version": "1"}
    hits = result["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and reads["row"] not in {h["id"] for h in hits}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all({"split", "label"} <= set(h) for h in hits)
    printed = reads["printed"].stdout
    assert f"snapshot {reads['current'].id}" in printed and hits[0]["id"] in printed.splitlines()[1]


def test_search_by_image_embeds_it_with_the_snapshots_model(reads):
    hits = last_json(reads["image"])["hits"]
    assert hits[0]["id"] == reads["row"] and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(("call", "message"), [
    ("text", "holds images: it is not searched by text; search it with --image or --id"),
    ("unknown", "id 'nope' has no row in snapshot"),
    ("alias", "--model takes a registered model's name"),
])
def test_a_bad_query_exits_1_naming_the_problem(reads, call, message):
    assert reads[call].returncode == 1 and message in reads[call].stderr, reads[call].stderr[-2000:]


# ---- the service ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ask(url: str, path: str, body: dict | None = None, token: str | None = TOKEN) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def oversized(url: str) -> int:
    """The status of a POST whose body is over the service's limit: the service answers from the
    declared length and may close the connection before the body is sent, so the body is sent in
    pieces until it refuses more, and then the answer is read."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    size = 9 * 2**20
    connection.putrequest("POST", "/search")
    for name, value in (("Authorization", f"Bearer {TOKEN}"), ("Content-Type", "application/json"),
                        ("Content-Length", str(size))):
        connection.putheader(name, value)
    connection.endheaders()
    try:
        for _ in range(size // 2**16):
            connection.send(b"A" * 2**16)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def service(digits_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("search-service")
    workspace = copy_workspace(digits_run.workspace, root / "workspace")
    port = _free_port()
    started = clpipe("search-start", "--model", MODEL, "--port", str(port), "--json", workspace=workspace,
                     env={"CLPIPE_SEARCH_TOKEN": TOKEN}, timeout=400)
    try:
        state = last_json(started)
        row, image = query_image(workspace, root / "query.png")
        yield {"workspace": workspace, "url": state["url"], "pid": state["pid"], "row": row, "image": image,
               "table": EmbeddingTable(workspace / "embeddings", MODEL, DATASET), "root": root}
    finally:
        clpipe("search-stop", workspace=workspace, timeout=120)


def test_the_service_answers_and_refuses_with_reasons(service):
    url, row = service["url"], service["row"]
    status, health = ask(url, "/health")
    assert status == 200 and health["snapshot"] == service["table"].current_id() and health["model"]["version"] == "1"
    assert ask(url, "/health", token=None)[0] == 401
    status, found = ask(url, "/search", {"image": base64.b64encode(service["image"].read_bytes()).decode(), "k": 3})
    assert status == 200 and found["hits"][0]["id"] == row and found["snapshot"] == health["snapshot"]
    status, found = ask(url, f"/search?id={row}&k=4")
    assert status == 200 and len(found["hits"]) == 4 and row not in {h["id"] for h in found["hits"]}
    assert ask(url, "/search?id=nope")[0] == 404
    assert ask(url, "/search", {"vector": [0.1, 0.2], "k": 3})[0] == 400
    assert ask(url, "/search", {"image": base64.b64encode(b"garbage").decode()})[0] == 400
    assert ask(url, f"/search?id={row}&k=5000")[0] == 400
    assert oversized(url) == 413
    with urllib.request.urlopen(url + "/", timeout=30) as page:
        assert "clpipe search" in page.read().decode()


def test_the_page_shows_neighbours_with_thumbnails_and_the_snapshot(service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    current = service["table"].current_id()
    browser.get(service["url"] + "/")
    browser.execute_script("localStorage.setItem('clpipe-token', arguments[0])", TOKEN)
    browser.refresh()
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: current in b.find_element(By.ID, "about").text)
    assert f"{MODEL} v1" in browser.find_element(By.ID, "about").text
    browser.find_element(By.ID, "value").send_keys(service["row"])
    browser.find_element(By.ID, "go").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#hits li")) == 10)
    assert current in browser.find_element(By.ID, "answered").text
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#hits li img")
    wait.until(lambda b: all(b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                             for img in thumbnails))
    assert len(thumbnails) == 10 and service["row"] not in browser.find_element(By.ID, "hits").text
    Select(browser.find_element(By.ID, "kind")).select_by_value("image")
    browser.find_element(By.ID, "file").send_keys(str(service["image"]))
    browser.find_element(By.ID, "go").click()
    # the list is rebuilt as the answer arrives: read it in the page, not through element handles
    first_hit = "const li = document.querySelector('#hits li'); return li ? li.textContent : ''"
    wait.until(lambda b: service["row"] in b.execute_script(first_hit))
    assert browser.find_element(By.ID, "error").text == ""
    browser.save_screenshot(str(service["root"] / "search-page.png"))


def test_the_service_follows_current_while_queries_run(service):
    """Queries run on four threads while `clpipe export` publishes a new snapshot (with an index
    graph this time): none fails, each answer names the old or the new snapshot, and the service
    moves to the new one."""
    url, row, table = service["url"], service["row"], service["table"]
    old = table.current_id()
    config = service["root"] / "graph.yaml"
    config.write_text("export: {exact_search_max_rows: 100}\n")
    answers, failures, stop = [], [], threading.Event()

    def query() -> None:
        while not stop.is_set():
            status, body = ask(url, f"/search?id={row}&k=5")
            (answers if status == 200 else failures).append(body.get("snapshot") if status == 200 else (status, body))

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(query)
        exported = last_json(clpipe("export", "--model", f"{MODEL}@champion", "--dataset", DATASET, "--config",
                                    str(config), "--json", workspace=service["workspace"]))
        new = table.current_id()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ask(url, "/health")[1].get("snapshot") != new:
            time.sleep(0.5)
        time.sleep(1.0)
        stop.set()
    assert new != old and exported["snapshot"] == new
    assert table.current().manifest.index["groups"]["rows"]["engine"] == "usearch-hnsw"
    assert failures == [] and len(answers) > 20
    assert set(answers) <= {old, new} and answers[-1] == new


def test_a_broken_snapshot_is_not_served_and_health_says_why(service):
    url, table = service["url"], service["table"]
    served = table.current()
    assert served.manifest.index["groups"]["rows"].get("file"), "the previous test publishes a snapshot with a graph"
    broken_id = new_snapshot_id()
    broken = table.path / broken_id
    shutil.copytree(served.path, broken)
    write_manifest(broken, SnapshotManifest(**{**read_manifest(broken).to_dict(), "snapshot": broken_id}))
    (broken / "index" / "rows.usearch").write_bytes(os.urandom(256))
    table.set_current(broken_id)
    deadline, health = time.monotonic() + 60, {}
    while time.monotonic() < deadline and health.get("status") != "degraded":
        time.sleep(0.5)
        health = ask(url, "/health")[1]
    assert health["status"] == "degraded" and health["snapshot"] == served.id
    assert f"snapshot {broken_id}" in health["last_error"] and "rows.usearch" in health["last_error"]
    status, found = ask(url, f"/search?id={service['row']}&k=2")
    assert status == 200 and found["snapshot"] == served.id


def test_search_stop_ends_the_service(service):
    stopped = clpipe("search-stop", "--json", workspace=service["workspace"], timeout=120)
    assert last_json(stopped)["pid"] == service["pid"]
    with pytest.raises(OSError):
        os.kill(service["pid"], 0)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(service["url"] + "/health", timeout=5)
    assert not (service["workspace"] / "search-service.json").exists()

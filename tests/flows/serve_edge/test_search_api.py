"""The search service's routes on a real table (real Parquet, real index files), through
Starlette's test client: what a Ray Serve replica answers, without Ray (tests/flows/test_search.py
runs it on Ray Serve). The model that embeds an uploaded image is a fixed function of its bytes,
the same one that made the table."""

from __future__ import annotations

import base64
import io
import json
import zlib

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from cl_core.datasets import DatasetStore, ImageRecord
from cl_core.embeddings import EmbeddingTable, write_full_snapshot
from cl_core.embeddings.snapshot_index import IndexSettings
from flows.serve_edge.search_api import MAX_BODY_BYTES, SearchApi

TOKEN = "s3cret"


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), color=value).save(buffer, format="PNG")
    return buffer.getvalue()


def embed(images: list[bytes]) -> np.ndarray:
    """Distinct unit vectors seeded by the bytes; an undecodable image is refused, as a model's is."""
    for image in images:
        Image.open(io.BytesIO(image)).verify()
    rows = np.stack([np.random.default_rng(zlib.crc32(b)).standard_normal(8) for b in images])
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def publish(root, values: list[int], settings: IndexSettings | None = None):
    store = DatasetStore(root / "datasets")
    result = store.ingest_records([ImageRecord(f"img{v:03d}", png(v), v % 3, None) for v in values], "d", description="t")
    dataset = store.resolve("d", result.version)
    table = EmbeddingTable(root / "embeddings", "m", "d")
    record = {"model_name": "m", "model_version": "3", "dataset_name": "d", "dataset_version": dataset.version,
              "prefect_flow_run_id": None, "mlflow_run_id": None, "action": "export"}
    with table.lock():
        return write_full_snapshot(table, dataset, embed, 8, record, batch_size=16, keep_snapshots=3,
                                   index_settings=settings)


@pytest.fixture
def api(tmp_path):
    snapshot = publish(tmp_path, list(range(40)))
    loaded = []
    service = SearchApi(tmp_path / "embeddings", tmp_path / "datasets", "m", "d", "unused", token=TOKEN,
                        embedders=lambda name, version: loaded.append((name, version)) or embed)
    assert service.refresh() and loaded == [("m", "3")]
    client = TestClient(service.asgi())
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return {"client": client, "service": service, "snapshot": snapshot, "root": tmp_path}


def test_health_names_what_answers_and_the_token_is_required(api):
    client = api["client"]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["snapshot"] == api["snapshot"].id
    assert health["model"] == {"name": "m", "version": "3"} and health["modality"] == "image"
    assert health["query"] == "image" and health["thumbnails"] is True
    assert health["groups"] == {"rows": {"rows": 40, "engine": "exact"}}
    anonymous = TestClient(api["service"].asgi())
    assert anonymous.get("/health").status_code == 401
    assert anonymous.get("/search?id=img001", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert anonymous.get("/").status_code == 200 and "clpipe search" in anonymous.get("/").text


def test_search_by_id_image_and_vector(api):
    client = api["client"]
    by_id = client.get("/search", params={"id": "img005", "k": 3}).json()
    assert by_id["snapshot"] == api["snapshot"].id and len(by_id["hits"]) == 3
    assert "img005" not in [h["id"] for h in by_id["hits"]] and by_id["hits"][0]["split"] == "train"
    image = base64.b64encode(png(7)).decode()
    by_image = client.post("/search", json={"image": image, "k": 2}).json()
    assert by_image["hits"][0]["id"] == "img007" and by_image["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    vector = embed([png(9)])[0].tolist()
    assert client.post("/search", json={"vector": vector, "k": 1}).json()["hits"][0]["id"] == "img009"
    thumbnail = client.get("/image", params={"id": "img009"})
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"
    assert thumbnail.content == png(9)


@pytest.mark.parametrize(("request_args", "status", "message"), [
    ({"method": "GET", "url": "/search?id=nope"}, 404, "id 'nope' has no row in snapshot"),
    ({"method": "GET", "url": "/image?id=nope"}, 404, "id 'nope' has no image"),
    ({"method": "GET", "url": "/search?id=img001&k=0"}, 400, "k must be between 1 and 1000, got 0"),
    ({"method": "GET", "url": "/search?id=img001&k=many"}, 400, "k must be an integer"),
    ({"method": "GET", "url": "/search?text=a+sentence"}, 400, "holds images: it is not searched by text"),
    ({"method": "GET", "url": "/search"}, 400, "name exactly one of id, text, vector, image"),
    ({"method": "POST", "url": "/search", "json": {"vector": [0.5, 0.5]}}, 400, "holds 8-d vectors"),
    ({"method": "POST", "url": "/search", "json": {"image": base64.b64encode(b"not an image").decode()}}, 400,
     "the image could not be embedded"),
    ({"method": "POST", "url": "/search", "json": {"image": "***"}}, 400, "image must be the file's bytes in base64"),
    ({"method": "POST", "url": "/search", "json": {"image": 7}}, 400, "image must be a string (the file's bytes in base64)"),
    ({"method": "POST", "url": "/search", "content": b"{not json"}, 400, "the body is not JSON"),
    ({"method": "GET", "url": "/recommend?user=7"}, 400, "holds no users"),
    ({"method": "GET", "url": "/nowhere"}, 404, "no route GET /nowhere"),
])
def test_bad_requests_get_the_status_and_the_reason(api, request_args, status, message):
    response = api["client"].request(**request_args)
    assert response.status_code == status and message in response.json()["error"]


def test_an_oversized_body_is_refused_unread(api):
    body = json.dumps({"image": "A" * (MAX_BODY_BYTES + 10)})
    response = api["client"].post("/search", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and f"at most {MAX_BODY_BYTES}" in response.json()["error"]


def test_it_follows_current_and_keeps_the_old_snapshot_when_the_new_one_is_broken(api):
    client, service, root = api["client"], api["service"], api["root"]
    newer = publish(root, list(range(40, 90)), IndexSettings(exact_max_rows=20))  # a graph this time
    assert service.refresh() and client.get("/health").json()["snapshot"] == newer.id
    assert client.get("/search", params={"id": "img050", "k": 1}).json()["snapshot"] == newer.id
    broken = publish(root, list(range(90, 140)), IndexSettings(exact_max_rows=20))
    (broken.path / "index" / "rows.usearch").write_bytes(b"\0" * 64)
    assert not service.refresh()
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["snapshot"] == newer.id
    assert f"index file {broken.path / 'index' / 'rows.usearch'} of snapshot {broken.id} is corrupt" in health["last_error"]
    assert client.get("/search", params={"id": "img050", "k": 1}).status_code == 200

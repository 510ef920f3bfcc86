"""The search service's HTTP API, one replica's worth: what a Ray Serve replica runs
(`flows/serve_edge/deployment.py`), written against Starlette's request and responses only, so
it is tested without Ray too.

    GET  /                          the page (search_page.html)
    GET  /health                    what answers: snapshot, model version, dataset, rows; why a newer
                                    snapshot was not taken (status "degraded"); 503 before any
    GET  /search?id=ID&k=10         rows nearest a row of the table (itself left out)
    GET  /search?text=...&k=10      a sentence, embedded by the served snapshot's model version
    POST /search  {"id"|"text"|"vector"|"image": base64, "k"}
    GET  /recommend?user=ID&k=10    a user's best items, without those the user has; with the user's
                                    recent history
    GET  /image?id=ID               an image row's bytes, from the snapshot's dataset version

Every answer names the snapshot and the model version that produced it; a query keeps the
snapshot it started on (`CurrentFollower`). Errors are JSON {"error": ...}: 400 bad input (k out
of range, a vector of another dimension, an undecodable image, a query of the wrong modality), 401
a missing or wrong bearer token where one is configured, 404 an unknown id or user, 413 a body
over MAX_BODY_BYTES, 503 nothing to serve yet.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from cl_core.datasets import DatasetStore, DatasetVersion
from cl_core.embeddings import EmbeddingTable
from cl_core.embeddings.recommend import user_history
from cl_core.embeddings.table import Snapshot
from cl_core.modalities import Modality, modality
from cl_core.search import SnapshotSearch, UnknownIdError
from cl_core.search.follow import CurrentFollower
from flows.search import user_hits, wrong_query

MAX_BODY_BYTES = 8 * 2**20  # an image upload of a few MB; anything larger is refused unread
HISTORY_SHOWN = 10
PAGE = Path(__file__).with_name("search_page.html")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServedSnapshot:
    """One snapshot, ready to answer: its index, its dataset version, and for a modality whose
    queries the model embeds (text, images) the model version that made it."""

    search: SnapshotSearch
    dataset: DatasetVersion
    record: Modality
    embed: Any  # the model's embed function over a list of inputs; None when the record has no query


class Embedders:
    """Each model version's embed function, loaded once (text and image tables only)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._loaded: dict[tuple[str, str], Any] = {}

    def __call__(self, name: str, version: str) -> Any:
        if (name, version) not in self._loaded:
            import mlflow

            from flows.table_runs import load_embedder

            mlflow.set_tracking_uri(self.tracking_uri)
            self._loaded[(name, version)] = load_embedder({"name": name, "version": version})[0]
        return self._loaded[(name, version)]


class SearchApi:
    """The routes over one table's CURRENT; `refresh()` follows it (the replica calls it every
    `poll_s` seconds)."""

    def __init__(self, embeddings_root: str | Path, datasets_root: str | Path, model_name: str, dataset_name: str,
                 tracking_uri: str, token: str | None = None, embedders: Any = None) -> None:
        """`embedders(model name, version)` gives a model's embed function (default: load the
        registered version from MLflow, once)."""
        self.datasets = DatasetStore(datasets_root)
        self.token = token or None
        self.embedders = embedders or Embedders(tracking_uri)
        self.follower: CurrentFollower[ServedSnapshot] = CurrentFollower(
            EmbeddingTable(embeddings_root, model_name, dataset_name), self._open)
        self.started = time.time()

    def _open(self, snapshot: Snapshot) -> ServedSnapshot:
        search = SnapshotSearch(snapshot)
        m = snapshot.manifest
        dataset = self.datasets.resolve(m.dataset_name, m.dataset_version)
        record = modality(dataset.kind)
        embed = self.embedders(m.model_name, m.model_version) if record.query else None
        return ServedSnapshot(search, dataset, record, embed)

    def refresh(self) -> bool:
        return self.follower.refresh()

    # ---- the routes ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        try:
            path, method = request.url.path.rstrip("/") or "/", request.method
            if path == "/" and method == "GET":
                return HTMLResponse(PAGE.read_text(encoding="utf-8"))
            self._authorize(request)
            if path == "/health" and method == "GET":
                return self._health()
            served = self.follower.served  # this query keeps this snapshot to the end
            if served is None:
                raise HttpError(503, f"no snapshot served yet: {self.follower.last_error or 'the table has none'}")
            if path == "/search" and method in ("GET", "POST"):
                query = dict(request.query_params) if method == "GET" else await self._json_body(request)
                return JSONResponse(await asyncio.to_thread(self._search, served, query))
            if path == "/recommend" and method == "GET":
                return JSONResponse(await asyncio.to_thread(self._recommend, served, dict(request.query_params)))
            if path == "/image" and method == "GET":
                return await asyncio.to_thread(self._image, served, request.query_params.get("id"))
            raise HttpError(404, f"no route {method} {request.url.path}")
        except HttpError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except UnknownIdError as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)

    def asgi(self):
        """This API as a plain ASGI app (Starlette's test client, any ASGI server)."""
        async def app(scope, receive, send) -> None:
            response = await self.handle(Request(scope, receive))
            await response(scope, receive, send)
        return app

    def _authorize(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise HttpError(401, "a bearer token is required: send 'Authorization: Bearer <token>'")

    async def _json_body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise HttpError(413, f"the body is {int(declared)} bytes; at most {MAX_BODY_BYTES} are accepted")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise HttpError(413, f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            parsed = json.loads(body or b"{}")
        except ValueError as error:
            raise HttpError(400, f"the body is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise HttpError(400, "the body must be a JSON object")
        return parsed

    def _health(self) -> Response:
        served, error = self.follower.served, self.follower.last_error
        body: dict[str, Any] = {"status": "degraded" if error else "ok", "last_error": error}
        if served is None:
            return JSONResponse({**body, "status": "starting"}, status_code=503)
        opened: ServedSnapshot = served.opened
        return JSONResponse({**body, **opened.search.describe(), "modality": opened.record.name,
                             "query": opened.record.query, "thumbnails": _shows_images(opened), "serving_since": served.since})

    @staticmethod
    def _k(query: dict[str, Any]) -> int:
        raw = query.get("k", 10)
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"k must be an integer, got {raw!r}") from None

    def _answer(self, served, query: dict[str, Any], hits, **extra) -> dict[str, Any]:
        described = served.opened.search.describe()
        return {"snapshot": described["snapshot"], "model": described["model"], "dataset": described["dataset"],
                "query": query, **extra, "hits": [hit.to_dict() for hit in hits]}

    def _search(self, served, query: dict[str, Any]) -> dict[str, Any]:
        opened: ServedSnapshot = served.opened
        k = self._k(query)
        given = [name for name in ("id", "text", "vector", "image") if query.get(name) not in (None, "")]
        if len(given) != 1:
            raise ValueError(f"name exactly one of id, text, vector, image; got {given or 'none'}")
        kind = given[0]
        if kind == "id":
            hits = opened.search.by_ids([str(query["id"])], k)[0]
            return self._answer(served, {"id": str(query["id"])}, hits)
        if kind == "vector":
            vector = query["vector"]
            if isinstance(vector, str):
                vector = json.loads(vector)
            try:
                vector = np.asarray(vector, dtype=np.float32)
            except (TypeError, ValueError):
                raise ValueError("vector must be a list of numbers") from None
            if vector.ndim != 1:
                raise ValueError(f"vector must be one list of {opened.search.dimension} numbers")
            hits = opened.search.by_vectors(vector, k)[0]
            return self._answer(served, {"vector": f"{len(vector)} numbers"}, hits)
        record = opened.record
        if record.query != kind:
            raise ValueError(wrong_query(record, kind, opened.search.snapshot.manifest.model_name))
        value: Any = query[kind]
        if not isinstance(value, str):
            raise ValueError(f"{kind} must be a string" + (" (the file's bytes in base64)" if record.query_in_base64 else ""))
        if record.query_in_base64:
            try:
                value = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{kind} must be the file's bytes in base64") from None
        try:
            vector = np.asarray(opened.embed([value]), dtype=np.float32)
        except Exception as error:  # noqa: BLE001 - the model's decoding errors name the input
            raise ValueError(f"the {kind} could not be embedded: {error}".replace("\n", " ")) from None
        hits = opened.search.by_vectors(vector, k)[0]
        shown = {kind: f"{len(value)} bytes" if record.query_in_base64 else value}
        return self._answer(served, shown, hits)

    def _recommend(self, served, query: dict[str, Any]) -> dict[str, Any]:
        opened: ServedSnapshot = served.opened
        user = str(query.get("user") or "")
        if not user:
            raise ValueError("name the user: /recommend?user=ID")
        hits, masked = user_hits(opened.search, self.datasets.root, user, self._k(query))
        history = user_history([opened.dataset], user, HISTORY_SHOWN)
        rows = opened.search.rows_of(history, "item")
        shown = [{"id": item, "title": (row or {}).get("title") or item} for item, row in zip(history, rows, strict=True)]
        return self._answer(served, {"user": user}, hits, masked_items=masked, history=shown)

    def _image(self, served, row_id: str | None) -> Response:
        """A row's model input where it is an image (encoded bytes): the page's thumbnails."""
        opened: ServedSnapshot = served.opened
        if not _shows_images(opened):
            raise ValueError(f"this table holds {opened.record.noun}, not images")
        if not row_id:
            raise ValueError("name the image: /image?id=ID")
        dataset, column = opened.dataset, opened.record.input_column
        rows = ds.dataset([str(f) for f in dataset.files], schema=dataset.schema, format="parquet").to_table(
            columns=[column], filter=pc.field("id") == row_id)
        if rows.num_rows == 0:
            raise UnknownIdError(f"id {row_id!r} has no image in {dataset.name}@{dataset.version}")
        data = rows.column(column)[0].as_py()
        kind = ("image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg" if data[:2] == b"\xff\xd8"
                else "application/octet-stream")
        return Response(data, media_type=kind, headers={"Cache-Control": "max-age=3600"})


def _shows_images(opened: ServedSnapshot) -> bool:
    """Whether the rows' model input is encoded bytes (an image) the page can show."""
    schema = opened.dataset.schema
    return opened.record.input_column in schema.names and pa.types.is_binary(schema.field(opened.record.input_column).type)

"""The search service under load, on loopback: latency and throughput at concurrency 1 and 16,
the freshness lag and failed queries while a backfill publishes a new snapshot, and the errors
seen when a replica is SIGKILLed mid-load (without client retries, and with up to 3, backing
off 0.2, 0.4, 0.6 s).

    .venv/bin/python benchmarks/search_service_load.py [--workspace DIR] [--replicas 2] [--duration 30]

Without --workspace it makes one: `clpipe run` on the 1,797 digits (the default config). Each
query is GET /search?id=ROW&k=10 for a random row, on a keep-alive connection per client thread.
The freshness lag is the time from CURRENT naming the new snapshot (a watcher reads the file
every 20 ms) to the first answer that names it. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cl_core.embeddings import open_current
from flows.serve_edge.deployment import APP_NAME

from _common import REPO, clpipe, table

MODEL, DATASET = "digits-ntxent", "digits"


class Client:
    """One thread's keep-alive connection; `get` returns (status, body or None, seconds)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.connection: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, dict | None, float]:
        started = time.perf_counter()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.connection.request("GET", path)
            response = self.connection.getresponse()
            body = response.read()
            return response.status, (json.loads(body) if response.status == 200 else None), time.perf_counter() - started
        except (OSError, http.client.HTTPException):
            if self.connection is not None:
                self.connection.close()
            self.connection = None
            return 0, None, time.perf_counter() - started


def load(url: str, ids: list[str], concurrency: int, seconds: float, retries: int = 0,
         during=None) -> dict:
    """`concurrency` threads querying for `seconds` (or until `during()` returns, if given)."""
    results: list[tuple[int, str | None, float, float]] = []  # status, snapshot, latency, finished at
    lock, stop = threading.Lock(), threading.Event()

    def client() -> None:
        mine, rng = Client(url), random.Random(threading.get_ident())
        while not stop.is_set():
            for attempt in range(retries + 1):
                if attempt:
                    time.sleep(0.2 * attempt)  # a client's backoff: Serve routes around a dead replica soon after
                status, body, latency = mine.get(f"/search?id={rng.choice(ids)}&k=10")
                if status == 200:
                    break
            with lock:
                results.append((status, body["snapshot"] if body else None, latency, time.time()))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    extra = during() if during else time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ok = np.array([r[2] for r in results if r[0] == 200]) * 1000
    return {"queries": len(results), "failed": sum(r[0] != 200 for r in results), "qps": len(ok) / wall,
            "p50_ms": float(np.percentile(ok, 50)) if len(ok) else None,
            "p99_ms": float(np.percentile(ok, 99)) if len(ok) else None, "results": results, "extra": extra}


def replica_pids() -> list[int]:
    """The search replicas' processes, by the title Ray gives them (`ray::ServeReplica:APP:search`):
    read from the OS, since a second driver would need the service cluster's auth token."""
    import psutil

    pids = []
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if f"ServeReplica:{APP_NAME}:search" in title:
            pids.append(process.pid)
    return pids


class Rows(list):
    def append(self, row: tuple) -> None:
        super().append(row)
        print(" | ".join(map(str, row)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="search-load-")) / "workspace"
    if not (workspace / "embeddings" / MODEL / DATASET / "CURRENT").exists():
        print(f"making {workspace}: clpipe run on the digits ...", flush=True)
        clpipe(workspace, "run")
    snapshot_folder = workspace / "embeddings" / MODEL / DATASET
    ids = open_current(workspace, MODEL, DATASET).to_table(columns=["id"]).column("id").to_pylist()
    started, _ = clpipe(workspace, "search-start", "--model", MODEL, "--port", str(args.port), "--replicas",
                        str(args.replicas), "--json")
    url = started["url"]
    rows = Rows()
    try:
        load(url, ids, 4, 5.0)  # warm-up: connections, the replicas' first queries
        for concurrency in (1, 16):
            done = load(url, ids, concurrency, args.duration)
            rows.append((f"steady, concurrency {concurrency}", done["queries"], done["failed"], f"{done['qps']:.0f}",
                         f"{done['p50_ms']:.1f}", f"{done['p99_ms']:.1f}", ""))
        # a backfill (clpipe export: a full rewrite) publishes a new snapshot under load
        current_file = snapshot_folder / "CURRENT"
        before = current_file.read_text().strip()
        moved: dict[str, float] = {}

        def backfill() -> dict:
            watcher_stop = threading.Event()

            def watch() -> None:
                while not watcher_stop.is_set():
                    now = current_file.read_text().strip()
                    if now != before and now not in moved:
                        moved[now] = time.time()
                    time.sleep(0.02)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            clpipe(workspace, "export", "--model", f"{MODEL}@champion", "--dataset", DATASET, "--json")
            time.sleep(10.0)  # the lag, and queries after the switch
            watcher_stop.set()
            return moved

        done = load(url, ids, 16, 0, during=backfill)
        new = next(iter(moved)) if moved else None
        first_new = min((r[3] for r in done["results"] if r[1] == new), default=None)
        lag = first_new - moved[new] if new and first_new else None
        named = {r[1] for r in done["results"] if r[1]}
        rows.append(("while a backfill publishes, concurrency 16", done["queries"], done["failed"], f"{done['qps']:.0f}",
                     f"{done['p50_ms']:.1f}", f"{done['p99_ms']:.1f}",
                     f"lag {lag:.2f} s; answers named {len(named)} snapshots, all CURRENT during the test: "
                     f"{named <= {before, new}}" if lag is not None else "no answer named the new snapshot"))
        # a replica killed mid-load, without and with client retries
        for retries in (0, 3):
            pids = replica_pids()
            if not pids:
                raise SystemExit("no search replica process found (title ServeReplica:...:search)")

            def kill_one(pids=pids) -> float | None:
                """SIGKILL a replica a third of the way in; seconds until Serve runs a new one."""
                time.sleep(args.duration / 3)
                os.kill(pids[0], signal.SIGKILL)
                killed, replaced = time.monotonic(), None
                while time.monotonic() - killed < args.duration * 2 / 3:
                    if replaced is None and len(set(replica_pids()) - set(pids)) > 0:
                        replaced = time.monotonic() - killed
                    time.sleep(0.25)
                return replaced

            done = load(url, ids, 16, 0, retries=retries, during=kill_one)
            replaced = f"a new replica process {done['extra']:.1f} s after the kill" if done["extra"] else \
                "no new replica process within the phase"
            rows.append((f"a replica SIGKILLed, {retries} retries", done["queries"], done["failed"], f"{done['qps']:.0f}",
                         f"{done['p50_ms']:.1f}", f"{done['p99_ms']:.1f}", f"{len(pids)} replicas; {replaced}"))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(replica_pids()) < args.replicas:
                time.sleep(1)
    finally:
        subprocess.run([sys.executable, "-m", "flows.cli", "search-stop", "--workspace", str(workspace)], cwd=REPO)
    print(table(rows, ("phase", "queries", "failed", "queries/s", "p50 ms", "p99 ms", "notes")))


if __name__ == "__main__":
    main()

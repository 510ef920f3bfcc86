"""Helpers shared by the benchmark scripts (not a test: prints, never asserts timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shared_data(subfolder: str) -> Path | None:
    root = Path(os.environ.get("CLPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root / subfolder
    return path if path.is_dir() else None


def table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    line = lambda values: "| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def clpipe(workspace: Path, *args: str) -> tuple[dict | None, float]:
    """Run the CLI in a fresh process, on `workspace`, away from the user's own services;
    (its JSON line when `--json` is among `args`, else None; wall seconds)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args, "--workspace", str(workspace)],
                          capture_output=True, text=True, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"clpipe {' '.join(args)} failed with exit status {done.returncode}")
    return (json.loads(done.stdout.strip().splitlines()[-1]) if "--json" in args else None), wall

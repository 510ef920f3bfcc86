"""Peak memory of a GradCache step ÷ a full-batch step, at the same effective batch size.

Both run one NT-Xent training step (two views of B images, loss over all B pairs) of the same
small ResNet; GradCache embeds `--chunk` images at a time. Each mode runs in a fresh child
process, so its peak is its own: peak RSS from getrusage(RUSAGE_SELF).ru_maxrss on the CPU, or
torch.cuda.max_memory_allocated on a GPU. On the CPU a third child only builds the model and
the inputs; its peak is subtracted to give what the step itself adds.

    .venv/bin/python benchmarks/grad_cache_memory.py [--batch 512] [--chunk 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from cl_core.grad_cache import grad_cache_step
from cl_core.losses import NTXentLoss
from cl_core.models import build_simclr

from _common import REPO, table

MODES = ("baseline", "full", "grad_cache")


def child(mode: str, batch: int, chunk: int, device: str) -> dict:
    torch.manual_seed(0)
    model = build_simclr(3, 32, (1, 1), (32, 64), 128, 64).to(device).train()
    loss_fn = NTXentLoss(0.2, gather_distributed=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    view1 = torch.rand(batch, 3, 32, 32, device=device)
    view2 = torch.rand(batch, 3, 32, 32, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start_bytes = torch.cuda.memory_allocated()
    started = time.perf_counter()
    if mode == "full":
        loss = loss_fn(model(view1), model(view2))  # (B, 64) each, all activations kept
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    elif mode == "grad_cache":
        grad_cache_step(model, view1, view2, loss_fn, chunk, optimizer)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - start_bytes
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"peak_bytes": peak, "seconds": seconds}


def measure(mode: str, args) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--batch", str(args.batch), "--chunk", str(args.chunk),
               "--device", args.device]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", choices=MODES)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.chunk, args.device)))
        return

    # On a GPU the peak is counted from after the inputs exist: no baseline child needed.
    modes = MODES if args.device == "cpu" else MODES[1:]
    results = {mode: measure(mode, args) for mode in modes}
    base = results["baseline"]["peak_bytes"] if args.device == "cpu" else 0
    mib = lambda n: f"{n / 2**20:,.0f}"  # noqa: E731
    rows = []
    for mode in ("full", "grad_cache"):
        peak = results[mode]["peak_bytes"]
        rows.append((mode, mib(peak), mib(peak - base), f"{results[mode]['seconds']:.2f}"))
    full = results["full"]["peak_bytes"] - base
    cached = results["grad_cache"]["peak_bytes"] - base
    print(f"`{' '.join([sys.executable, *sys.argv])}`")
    what = "peak RSS (ru_maxrss)" if args.device == "cpu" else "torch.cuda.max_memory_allocated"
    print(f"device {args.device}, build_simclr(3, 32, (1,1), (32,64), 128, 64), NT-Xent over B={args.batch} pairs "
          f"(2x{args.batch} images), GradCache chunk {args.chunk}; {what}, each mode in a fresh process"
          + (f"; baseline (model + inputs, no step) {mib(base)} MiB" if args.device == "cpu" else "") + "\n")
    print(table(rows, ("mode", "peak MiB", "step MiB (peak - baseline)", "step s")))
    print(f"\nGradCache ÷ full batch, step memory: {cached / full:.3f}; "
          f"whole-process peak: {results['grad_cache']['peak_bytes'] / results['full']['peak_bytes']:.3f}")


if __name__ == "__main__":
    main()

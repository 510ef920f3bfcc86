"""Our NTXentLoss ÷ pytorch-metric-learning's NTXentLoss: forward + backward time on the same inputs.

pml takes the 2B embeddings of both views with labels in which the two views of a sample share a
label, which is the same objective (checked to 1e-4 before timing). The two are timed
interleaved (ours, pml, ours, pml, ...) and the median of each is reported, so machine noise hits
both alike.

pml's NTXent builds a (positive pairs) x (negative pairs) mask: 2B x 2B(2B-2) elements, about
137 GB at B = 1024. Where its estimated peak exceeds half the available memory it is not run and
only our time is reported.

    .venv/bin/python benchmarks/loss_speed.py [--batches 256 1024 4096] [--dim 128] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from pytorch_metric_learning import losses as pml_losses

from cl_core.losses import NTXentLoss

from _common import table

# float32 n_per_p, the masked negatives, their shifted copy and exp (kept for backward), a bool mask.
PML_BYTES_PER_MASK_ELEMENT = 4 * 4 + 1


def available_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def pml_peak_bytes(batch: int) -> int:
    views = 2 * batch
    return views * views * (views - 2) * PML_BYTES_PER_MASK_ELEMENT


def forward_backward(loss_fn, *inputs: torch.Tensor) -> float:
    for tensor in inputs:
        if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            tensor.grad = None
    started = time.perf_counter()
    loss_fn(*inputs).backward()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ours = NTXentLoss(args.temperature, gather_distributed=False)
    theirs = pml_losses.NTXentLoss(temperature=args.temperature)
    rows = []
    for batch in args.batches:
        generator = torch.Generator().manual_seed(batch)
        z1 = torch.randn(batch, args.dim, generator=generator).requires_grad_()
        z2 = torch.randn(batch, args.dim, generator=generator).requires_grad_()
        embeddings = torch.cat([z1, z2]).detach().requires_grad_()  # (2B, D)
        labels = torch.arange(batch).repeat(2)  # (2B,): the two views of a sample share a label

        run_pml = pml_peak_bytes(batch) <= available_bytes() / 2
        if run_pml:
            with torch.no_grad():
                difference = (ours(z1, z2) - theirs(embeddings, labels)).abs().item()
            if difference > 1e-4:
                sys.exit(f"B={batch}: our loss and pml's differ by {difference:.2e}; not timing different objectives")

        forward_backward(ours, z1, z2)  # warm-up
        if run_pml:
            forward_backward(theirs, embeddings, labels)
        our_times, pml_times = [], []
        for _ in range(args.repeats):
            our_times.append(forward_backward(ours, z1, z2))
            if run_pml:
                pml_times.append(forward_backward(theirs, embeddings, labels))

        ours_ms = 1e3 * statistics.median(our_times)
        if run_pml:
            pml_ms = 1e3 * statistics.median(pml_times)
            rows.append((batch, f"{ours_ms:.1f}", f"{pml_ms:.1f}", f"{ours_ms / pml_ms:.2g}", f"{difference:.1e}"))
        else:
            needs = pml_peak_bytes(batch) / 2**30
            rows.append((batch, f"{ours_ms:.1f}", f"not run (needs ~{needs:,.0f} GiB)", "n/a", "n/a"))

    print(f"`{' '.join([sys.executable, *sys.argv])}`")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dim {args.dim}, "
          f"T={args.temperature}, median of {args.repeats} interleaved forward+backward runs\n")
    print(table(rows, ("batch B", "ours ms", "pml ms", "ours ÷ pml", "loss diff (abs)")))


if __name__ == "__main__":
    main()

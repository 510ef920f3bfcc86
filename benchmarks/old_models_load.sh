#!/bin/bash
# Models registered by an older release still evaluate, export and predict with this checkout.
# Usage: benchmarks/old_models_load.sh OLD_REV [WORK_DIR]   (e.g. 65b20e7, the last commit before #24)
# OLD_REV's code (a git worktree, run with this venv) runs `clpipe run` for an image (digits), a
# text (generated pairs, MiniLM) and a recommender (synthetic interactions) model; then this
# checkout runs `clpipe evaluate` and `clpipe export` on each champion, loads each with
# mlflow.pyfunc and predicts, and compares the embeddings of the old run's snapshot with this
# checkout's export. About 4 minutes on 2 cores. Not a benchmark: a check before a release that
# moves modules the registered pyfuncs import.
set -euo pipefail
OLD_REV=${1:?usage: $0 OLD_REV [WORK_DIR]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export COMPAT_DIR=${2:-$(mktemp -d)}
PY=$ROOT/.venv/bin/python
export HF_HUB_OFFLINE=1
git -C "$ROOT" worktree add -f "$COMPAT_DIR/oldtree" "$OLD_REV" >/dev/null
trap 'git -C "$ROOT" worktree remove --force "$COMPAT_DIR/oldtree"' EXIT

cd "$ROOT"
"$PY" - <<'PY'  # the sources and configs
import os
import random
from pathlib import Path

from cl_core.recommender.synthetic import clustered_interactions
from tests.flows.test_recommender_pipeline import CONFIG, ITEMS, PER_USER, USERS

work = Path(os.environ["COMPAT_DIR"])
random.seed(0)
words = "cat dog bird fish tree car road house river hill sun moon star cloud rain snow".split()
with open(work / "pairs.tsv", "w") as f:
    for _ in range(120):
        a = " ".join(random.sample(words, 4))
        f.write(f"{a}\t{a} today\n")
(work / "txt.yaml").write_text(f"""
data: {{modality: text, source: {work / 'pairs.tsv'}, name: pairs}}
train: {{epochs: 1, batch_size: 16, workers: 1}}
registry: {{model_name: pairs-text}}
""")
# The recommender end-to-end test's config and data (tests/flows/test_recommender_pipeline.py).
paths = clustered_interactions(num_users=USERS, num_items=ITEMS, clusters=4, per_user=PER_USER, seed=3).write_csv(work / "rec")
(work / "rec.yaml").write_text(CONFIG.format(model="clusters-two-tower", **{key: str(path) for key, path in paths.items()}))
PY

W=$COMPAT_DIR
echo "== $OLD_REV registers"
(cd "$W/oldtree" && "$PY" -m flows.cli run --workspace "$W/ws_img" --epochs 1 --limit 400 --workers 1)
(cd "$W/oldtree" && "$PY" -m flows.cli run --workspace "$W/ws_txt" --config "$W/txt.yaml")
(cd "$W/oldtree" && "$PY" -m flows.cli run --workspace "$W/ws_rec" --config "$W/rec.yaml")
echo "== this checkout evaluates and exports"
cd "$ROOT"
for spec in "ws_img digits-ntxent digits" "ws_txt pairs-text pairs" "ws_rec clusters-two-tower clusters"; do
  set -- $spec
  "$PY" -m flows.cli evaluate --workspace "$W/$1" --model "$2@champion" --dataset "$3"
  "$PY" -m flows.cli export --workspace "$W/$1" --model "$2@champion" --dataset "$3"
done
echo "== this checkout predicts; the old and the new snapshot hold the same embeddings"
"$PY" - <<'PY'
import io
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image
from sklearn.datasets import load_digits

work = Path(os.environ["COMPAT_DIR"])
image = io.BytesIO()
Image.fromarray((load_digits().images[0] * 16).astype("uint8")).save(image, format="PNG")
inputs = {"digits-ntxent": pd.DataFrame({"image": [image.getvalue()]}),
          "pairs-text": pd.DataFrame({"text": ["cat dog bird fish", "a river"]})}


def embeddings(snapshot: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(sorted(snapshot.glob("*.parquet")))
    keys = table.column("id").to_pylist()
    if "entity" in table.schema.names:
        keys = [f"{entity}:{key}" for entity, key in zip(table.column("entity").to_pylist(), keys)]
    return dict(zip(keys, np.stack(table.column("embedding").to_numpy(zero_copy_only=False))))


for ws, model, dataset in [("ws_img", "digits-ntxent", "digits"), ("ws_txt", "pairs-text", "pairs"),
                           ("ws_rec", "clusters-two-tower", "clusters")]:
    mlflow.set_tracking_uri(f"sqlite:///{work / ws / 'mlflow.db'}")
    loaded = mlflow.pyfunc.load_model(f"models:/{model}@champion")
    if model in inputs:
        out = np.asarray(loaded.predict(inputs[model]))
        assert out.ndim == 2 and np.isfinite(out).all(), (model, out.shape)
        print(f"{model}: predict -> {out.shape}")
    root = work / ws / "embeddings" / model / dataset
    old, new = (embeddings(s) for s in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))[-2:])
    assert old.keys() == new.keys(), model
    gap = max(float(np.abs(old[k] - new[k]).max()) for k in old)
    assert gap < 1e-5, (model, gap)
    print(f"{model}: {len(old)} rows, old and new embeddings differ by at most {gap:g}")
print("old models load, evaluate, export and predict")
PY

import json
import os
import subprocess
import sys
from pathlib import Path

import cl_core.evaluation as evaluation

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_exports():
    assert sorted(evaluation.__all__) == [
        "alignment", "knn_predict", "knn_top1", "linear_probe_accuracy", "project_2d", "retrieval_scores",
        "sts_correlation", "uniformity",
    ]
    for name in evaluation.__all__:
        assert callable(getattr(evaluation, name))


def test_imports_no_orchestration_or_plotting():
    # A fresh interpreter, because this test session may already have loaded any of them.
    code = (
        "import json, sys; import cl_core.evaluation; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'prefect', 'ray', 'mlflow', 'matplotlib'})))"
    )
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert json.loads(out.stdout) == []

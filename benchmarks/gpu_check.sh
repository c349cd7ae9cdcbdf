#!/usr/bin/env bash
# The one-call GPU check of issue #7, for the lent NVIDIA H200 (offline: nothing can be downloaded there).
#
# Before (here, with PyPI access):   bash benchmarks/gpu_prepare.sh        -> .whl/ and .gpu_data/ (git-ignored)
# Device call (tool `run`):          command "bash benchmarks/gpu_check.sh", carry [".whl", ".gpu_data"],
#                                    timeout_s 600; the whole script stays under GPU_CHECK_BUDGET (470 s) wall time.
# Smoke test of the plumbing (CPU):  bash benchmarks/gpu_check.sh --smoke   (or GPU_CHECK_SMOKE=1)
# Model families (issue #4):         bash benchmarks/gpu_check.sh --families   (instead of steps 2-5: BERT4Rec,
#                                    GRU4Rec and NARM on ML-1M for 2.5 / 1.25 / 1.25 minutes of training each,
#                                    GPU_CHECK_MINUTES_BERT4REC / _GRU4REC / _NARM; a separate device call)
#
# Steps, each under its own `timeout` (and never past the overall budget; a step that fails or times out is
# recorded and the next one runs): 0 install carried wheels into a private --target folder; 1 nvidia-smi +
# versions; 2 SASRec on ML-1M (bf16, wall-time cap); 3 full-ranking evaluation time of all 6,040 ML-1M users;
# 4 catalogue sweep (bench_scale.py); 5 one epoch each of BERT4Rec (ML-1M), LLMRec init and LLMRec lora
# (Amazon Scientific, all-MiniLM-L6-v2), 5b the lora epoch again sharded with FSDP2; 6 summary -> $OUT/gpu-results.md (+ gpu-results.json, gpu-check.log,
# scale.md). Only these few files go to $OUT (a device call returns at most 8 files); run folders, checkpoints
# and caches stay under $GPU_CHECK_RUNS (default /tmp/gpu_check_runs).
#
# Environment: OUT (default benchmarks/results/gpu-run, smoke: /tmp/gpu_check_smoke/out), GPU_CHECK_RUNS,
# GPU_CHECK_WHEELS (default .whl), GPU_CHECK_SITE (default /tmp/gpu_check_site), GPU_CHECK_BUDGET (seconds),
# PYTHON (default python3: on the H200 the image's python3 holds torch), GPU_CHECK_SASREC_MINUTES (SASRec's training
# time budget, training.max_train_minutes, default 2), GPU_CHECK_SASREC_OVERRIDES (extra train.py overrides for SASRec, e.g. "training.batch_size=256").
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
SMOKE=${GPU_CHECK_SMOKE:-0}
FAMILIES=0
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --families) FAMILIES=1 ;;
    *) echo "gpu_check.sh: unknown argument $arg (expected --smoke and/or --families)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
if [ "$SMOKE" = 1 ]; then
  RUNS=${GPU_CHECK_RUNS:-/tmp/gpu_check_smoke/runs}
  OUT=${OUT:-/tmp/gpu_check_smoke/out}
  BUDGET=${GPU_CHECK_BUDGET:-900}
else
  RUNS=${GPU_CHECK_RUNS:-/tmp/gpu_check_runs}
  OUT=${OUT:-$REPO/benchmarks/results/gpu-run}
  BUDGET=${GPU_CHECK_BUDGET:-470}
fi
WHEELS=${GPU_CHECK_WHEELS:-$REPO/.whl}
SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
DATA=$REPO/.gpu_data
rm -rf "$RUNS" && mkdir -p "$RUNS/results" "$OUT"
LOG=$OUT/gpu-check.log
: > "$LOG"
STEPS=$RUNS/results/steps.tsv
: > "$STEPS"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export HF_HOME=$RUNS/hf_home HF_DATASETS_CACHE=$RUNS/hf_home/datasets TQDM_MININTERVAL=5
SUMMARY_RESERVE=20
T0=$(date +%s)

log() { echo "[gpu_check $(date -u +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }

# step NAME CAP_SECONDS COMMAND...: run under `timeout`, capped by what is left of the budget; log through tee.
step() {
  local name=$1 cap=$2; shift 2
  local left=$(( BUDGET - SUMMARY_RESERVE - ($(date +%s) - T0) ))
  if [ "$left" -lt 10 ]; then
    log "SKIP $name: only ${left}s of the ${BUDGET}s budget left"
    printf '%s\t%s\t%s\t%s\n' "$name" 125 0 0 >> "$STEPS"
    return 0
  fi
  cap=$(( cap * ${CAP_SCALE:-1} ))
  [ "$cap" -gt "$left" ] && cap=$left
  log "START $name (cap ${cap}s): $*"
  local start=$(date +%s.%N)
  timeout -k 10 "$cap" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$seconds" "$cap" >> "$STEPS"
  log "END $name: exit $rc after ${seconds}s$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo ' (TIMED OUT)')"
}

log "repo $REPO; smoke=$SMOKE; out $OUT; runs $RUNS; budget ${BUDGET}s"

# ---- 0: environment: the carried wheels into a private folder (no index, no dependencies, nothing compiled) ----
rm -rf "$SITE"
step install-wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH=$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}

# ---- 1: card and versions ----------------------------------------------------------------------------------------
if command -v nvidia-smi >/dev/null; then
  step nvidia-smi 20 nvidia-smi
else
  log "nvidia-smi: not found (no NVIDIA driver on this machine)"
fi
step env 60 "$PY" benchmarks/gpu_check.py env --runs "$RUNS"

# ---- per-mode settings ---------------------------------------------------------------------------------------------
if [ "$SMOKE" = 1 ]; then
  # CPU, tiny, plumbing only: ML-100K in place of ML-1M (GPU_CHECK_SMOKE_DATA), histories cut short, 1-2 epochs,
  # a 1-layer 32-wide random BERT as the text backbone, generous caps (a shared 2-core CPU is slow).
  MOVIES_DIR=${GPU_CHECK_SMOKE_DATA:-/work/shared/data/ml-100k}
  MOVIES=(--data-dir "$MOVIES_DIR")
  SHORT=(data.name=ml-100k data.max_history=20 model.max_position_embeddings=20)  # overrides go last (argparse)
  EVAL_DATA=(--data-dir "$MOVIES_DIR" --dataset ml-100k)
  CAP_SCALE=3
  PREC=(training.mixed_precision=no)
  SASREC_EPOCHS=(training.num_epochs=2) SASREC_MINUTES=0.02 SASREC_STEP_CAP=100
  EVAL_ARGS=(--device cpu --batch-sizes 512 2048 --repeats 2 --max-history 20)
  SCALE_ARGS=(--device cpu --items 1000 10000 --users 500 --batch-size 16 --steps 1 --warmup 1)
  BACKBONE=$RUNS/tiny-backbone
  step tiny-backbone 60 "$PY" benchmarks/gpu_check.py tiny-backbone --source "$DATA/all-MiniLM-L6-v2" --dest "$BACKBONE"
  TEXT=(model.max_text_length=16 data.max_history=10 model.max_position_embeddings=10 training.batch_size=512)
  SCI=$RUNS/scientific-subset  # the first GPU_CHECK_SMOKE_USERS users of Amazon Scientific
  mkdir -p "$SCI" && cp "$DATA"/amazon-scientific/Scientific.{item2index,user2index,text} "$SCI"/
  head -n "${GPU_CHECK_SMOKE_USERS:-600}" "$DATA/amazon-scientific/Scientific.full_seq.txt" > "$SCI/Scientific.full_seq.txt"
else
  MOVIES=(--data-dir "$DATA/ml-1m")
  EVAL_DATA=(--data-dir "$DATA/ml-1m" --dataset ml-1m)
  CAP_SCALE=1
  PREC=(training.mixed_precision=bf16)
  SHORT=()
  # The time budget is hf_rec's own: training stops after the epoch that passes it, then the best-validation
  # weights are tested as usual.
  SASREC_EPOCHS=(training.num_epochs=400) SASREC_MINUTES=${GPU_CHECK_SASREC_MINUTES:-2} SASREC_STEP_CAP=170
  EVAL_ARGS=(--batch-sizes 512 2048 8192 --repeats 5)
  SCALE_ARGS=(--device cuda --bf16)
  BACKBONE=$DATA/all-MiniLM-L6-v2
  TEXT=()
  SCI=$DATA/amazon-scientific
fi

# ---- --families: BERT4Rec, GRU4Rec and NARM on ML-1M under time budgets (issue #4's table), then the summary -----
if [ "$FAMILIES" = 1 ]; then
  # name  config  training minutes (GPU_CHECK_MINUTES_<NAME>)  validation target reported  step cap (s)
  for spec in "bert4rec-ml1m ${GPU_CHECK_MINUTES_BERT4REC:-2.5} 0.155 200" \
              "gru4rec-ml1m ${GPU_CHECK_MINUTES_GRU4REC:-1.25} 0.15 110" \
              "narm-ml1m ${GPU_CHECK_MINUTES_NARM:-1.25} 0.0 110"; do
    read -r name minutes target cap <<< "$spec"
    [ "$SMOKE" = 1 ] && minutes=0.02
    step "$name" "$cap" "$PY" benchmarks/gpu_check.py train --runs "$RUNS" --name "$name" --target-ndcg "$target" -- \
      --config "configs/$name.yaml" "${MOVIES[@]}" --output-dir "$RUNS/$name" "${PREC[@]}" training.num_epochs=1000 \
      "training.max_train_minutes=$minutes" evaluation.early_stopping_patience=50 "${SHORT[@]}"
  done
  BUDGET=$(( BUDGET + SUMMARY_RESERVE ))
  step summary 20 "$PY" benchmarks/gpu_check.py summary --runs "$RUNS" --out "$OUT" --families \
    $([ "$SMOKE" = 1 ] && echo --smoke)
  log "done in $(( $(date +%s) - T0 ))s; files in $OUT:"
  ls -l "$OUT" | tee -a "$LOG"
  awk -F'\t' '$2 != 0 {print "FAILED/SKIPPED: " $1 " (exit " $2 ")"; bad = 1} END {exit bad}' "$STEPS"
  exit $?
fi

# ---- 2: SASRec on ML-1M to the quality target ------------------------------------------------------------------
step sasrec-ml1m "$SASREC_STEP_CAP" "$PY" benchmarks/gpu_check.py train --runs "$RUNS" --name sasrec-ml1m \
  -- --config configs/sasrec-ml1m.yaml "${MOVIES[@]}" --output-dir "$RUNS/sasrec-ml1m" "${PREC[@]}" \
  "${SASREC_EPOCHS[@]}" "training.max_train_minutes=$SASREC_MINUTES" "${SHORT[@]}" ${GPU_CHECK_SASREC_OVERRIDES:-}

# ---- 3: full-ranking evaluation time, all ML-1M test users ----------------------------------------------------
step eval-ml1m 40 "$PY" benchmarks/gpu_check.py evaltime --runs "$RUNS" "${EVAL_DATA[@]}" \
  --model "$RUNS/sasrec-ml1m" "${EVAL_ARGS[@]}"

# ---- 4: catalogue-size sweep 10^4 - 10^6 items ---------------------------------------------------------------
step bench-scale 60 "$PY" benchmarks/bench_scale.py "${SCALE_ARGS[@]}" --out "$OUT/scale.md"

# ---- 5: one epoch of BERT4Rec, LLMRec init, LLMRec lora --------------------------------------------------------
step bert4rec-ml1m 40 "$PY" benchmarks/gpu_check.py train --runs "$RUNS" --name bert4rec-ml1m -- \
  --config configs/bert4rec-ml1m.yaml "${MOVIES[@]}" --output-dir "$RUNS/bert4rec-ml1m" \
  "${PREC[@]}" training.num_epochs=1 "${SHORT[@]}"
# (lora is the shipped config's second stage: it starts from the init run just made)
for mode in init lora; do
  step "llmrec-$mode" "$([ $mode = init ] && echo 40 || echo 60)" "$PY" benchmarks/gpu_check.py train --runs "$RUNS" \
    --name "llmrec-$mode" -- --config "configs/llmrec-scientific-$mode.yaml" --data-dir "$SCI" \
    --output-dir "$RUNS/llmrec-$mode" "${PREC[@]}" training.num_epochs=1 "model.backbone_name_or_path=$BACKBONE" \
    $([ $mode = lora ] && echo "training.init_from=$RUNS/llmrec-init") "${TEXT[@]}"
done

# ---- 5b: the same lora epoch sharded with FSDP2 (configs/accelerate/fsdp.yaml on the one GPU: the sharded path,
# gathered evaluation and saving, sharded checkpoint on CUDA in bf16). accelerate runs FSDP only on accelerators;
# tests/test_multiprocess.py covers FSDP2 with two CPU processes.
if [ "$SMOKE" = 1 ]; then
  log "SKIP llmrec-lora-fsdp: no accelerator (FSDP2 on CPU is covered by tests/test_multiprocess.py)"
else
  step llmrec-lora-fsdp 60 "$PY" -m accelerate.commands.launch --config_file configs/accelerate/fsdp.yaml \
    --num_processes 1 benchmarks/gpu_check.py train --runs "$RUNS" --name llmrec-lora-fsdp -- \
    --config configs/llmrec-scientific-lora.yaml --data-dir "$SCI" --output-dir "$RUNS/llmrec-lora-fsdp" \
    training.num_epochs=1 "model.backbone_name_or_path=$BACKBONE" "training.init_from=$RUNS/llmrec-init"
fi

# ---- 6: summary ---------------------------------------------------------------------------------------------------
BUDGET=$(( BUDGET + SUMMARY_RESERVE ))
step summary 20 "$PY" benchmarks/gpu_check.py summary --runs "$RUNS" --out "$OUT" $([ "$SMOKE" = 1 ] && echo --smoke)
cp "$RUNS/sasrec-ml1m/training_curves.png" "$OUT/sasrec-ml1m-curves.png" 2>/dev/null || true
log "done in $(( $(date +%s) - T0 ))s; files in $OUT:"
ls -l "$OUT" | tee -a "$LOG"
# Failed steps, if any (the summary table has them too).
awk -F'\t' '$2 != 0 {print "FAILED/SKIPPED: " $1 " (exit " $2 ")"; bad = 1} END {exit bad}' "$STEPS"

#!/usr/bin/env bash
# The GPU check (issue 6, item 5), tight and time-boxed: run it from the repository root on a machine
# with one CUDA GPU and no network. Everything it measures lands in $OUT (default: ./gpu-check):
#   cuda.json     benchmarks/run.py --device cuda (models, aab, data, training, then compiled, merged in)
#   bench.log     the suite's log
#   recipe.log    `mmfuse train` of the full paper recipe on a Derm7pt-sized synthetic release
#   recipe.json   the recipe's config, exit code, wall time, epochs done, projected training time, and
#                 its metrics.json if it finished
#   summary.txt   the card, what ran, exit codes and times
# Each step has its own time box (seconds, override by environment); a step that fails or runs out of
# time does not stop the next one. Defaults total about 9.5 minutes, which is not enough for the whole
# recipe: recipe.json then projects its training time from the epochs done (RECIPE_LIMIT=900 runs it all).
set -uo pipefail

OUT=${OUT:-gpu-check}
PYTHON=${PYTHON:-python3}
# On an H200 (2026-11): the suite took 81 s, the release 23 s, an epoch of the recipe ~1.9 s (the
# first ~25 s), and compiling ammfm-swin's train step did not finish within 100 s.
BENCH_LIMIT=${BENCH_LIMIT:-120}     # models, aab, data, training (eager)
SYNTH_LIMIT=${SYNTH_LIMIT:-50}      # synthetic release + prepared cache for the recipe
RECIPE_LIMIT=${RECIPE_LIMIT:-240}   # the paper recipe: 250 epochs, SWA 50, TTA, weight search
COMPILE_LIMIT=${COMPILE_LIMIT:-150} # torch.compile against eager (ammfm-swin), last: compiling is slow
RECIPE_EPOCHS=${RECIPE_EPOCHS:-250}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg

say() { echo "[gpu_check $(date +%T)] $*" | tee -a "$OUT/summary.txt"; }
boxed() { # boxed LIMIT LOG CMD...: run CMD with a time limit, output to LOG; prints exit code and seconds
    local limit=$1 log=$2 start rc
    shift 2
    start=$(date +%s)
    timeout --signal=INT --kill-after=15 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    say "exit $rc after $(($(date +%s) - start)) s (limit $limit s): $*"
    return $rc
}

say "start; repository $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)')"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    | tee -a "$OUT/summary.txt"
"$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$WORK/install.log" 2>&1 \
    || { say "installing mmfuse failed:"; tail -20 "$WORK/install.log" | tee -a "$OUT/summary.txt"; exit 1; }
BACKEND=$("$PYTHON" -c "import importlib.util as u; print('albumentations' if u.find_spec('albumentations') else 'torchvision')")
say "torch $("$PYTHON" -c 'import torch; print(torch.__version__)'); augmentation backend $BACKEND"

# 1. The benchmark suite (eager sections).
boxed "$BENCH_LIMIT" "$OUT/bench.log" "$PYTHON" benchmarks/run.py --device cuda \
    --sections models,aab,data,training --json "$OUT/cuda.json"

# 2. The full paper recipe on a Derm7pt-sized synthetic release (1011 cases, official split sizes).
if "$PYTHON" -c "import mmfuse.training, mmfuse.cli.train" 2>/dev/null; then
    RELEASE="$WORK/derm7pt-synth"
    RUN="$WORK/run"
    # Source images at 256 px: the prepared cache holds 224 px + margin, so training reads the same bytes.
    if boxed "$SYNTH_LIMIT" "$OUT/recipe.log" bash -c \
        "'$PYTHON' -m mmfuse data synth '$RELEASE' --cases 1011 --size 256 --seed 0 \
         && '$PYTHON' -m mmfuse data prepare derm7pt '$RELEASE' --size 224"; then
        cat >"$WORK/recipe.yaml" <<EOF
# The paper's recipe (section 4.1) as mmfuse's training defaults, without ImageNet weights (no network here).
model: {preset: ammfm-swin, pretrained: false}
data: {format: derm7pt, root: $RELEASE, backend: $BACKEND, device_cache: true}
train: {epochs: $RECIPE_EPOCHS, batch_size: 24, swa: {epochs: 50}, amp: bf16, channels_last: true, compile: false}
evaluation: {tta: true, weight_search: {step: 0.05, objective: avg_auc}}
EOF
        start=$(date +%s)
        boxed "$RECIPE_LIMIT" "$OUT/recipe.log" "$PYTHON" -m mmfuse train "$WORK/recipe.yaml" --out "$RUN"
        recipe_rc=$?
        "$PYTHON" - "$WORK/recipe.yaml" "$RUN" "$recipe_rc" "$(($(date +%s) - start))" "$OUT/recipe.json" <<'EOF'
import csv, json, sys
from pathlib import Path

import yaml

config, run, rc, seconds, out = sys.argv[1:]
run = Path(run)
recipe = yaml.safe_load(Path(config).read_text())
recipe["data"]["root"] = "synthetic release: 1011 cases, 256 px, seed 0"  # a temporary folder
summary = {"config": recipe, "exit_code": int(rc), "wall_s": int(seconds)}
log = run / "log.csv"  # one row per finished epoch
if log.is_file():
    rows = list(csv.DictReader(log.open()))
    summary["epoch_log"] = {"epochs_done": len(rows), "first_rows": rows[:2], "last_rows": rows[-3:]}
    later = sorted(float(r["seconds"]) for r in rows[1:])
    if later:  # the first epoch carries the warm-up; the rest are alike (SWA epochs add little)
        median = later[len(later) // 2]
        epochs = recipe["train"]["epochs"]
        summary["projected_training_s"] = round(float(rows[0]["seconds"]) + median * (epochs - 1), 1)
        summary["median_epoch_s"] = median
if (run / "metrics.json").is_file():
    summary["metrics"] = json.loads((run / "metrics.json").read_text())
Path(out).write_text(json.dumps(summary, indent=2) + "\n")
EOF
    fi
else
    say "mmfuse.training is not in this checkout: recipe run skipped"
fi

# 3. torch.compile against eager, merged into the same report.
boxed "$COMPILE_LIMIT" "$OUT/bench.log" "$PYTHON" benchmarks/run.py --device cuda \
    --sections compiled --merge --json "$OUT/cuda.json"
say "done"
rm -rf "$WORK"

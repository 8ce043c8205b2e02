#!/usr/bin/env bash
# A learning curve: one run trained in pieces to each step count in turn, evaluated after each.
#   launch/train_curve.sh CONFIG[:ARGS] WORKDIR STEPS [STEPS ...] [-- --config.X=Y ...]
#   launch/train_curve.sh configs/polymnist_quadrant.py:mini,diffusion workdirs/curve 1500 3000 4500 6000
# Piece N: `python -m idmvae_jax.main ... --config.train.num_steps=N` (it resumes from the latest
# checkpoint), then `python -m idmvae_jax.evaluate` on the same arguments, whose eval/metrics.json
# is kept as WORKDIR/metrics_N.json (logs: WORKDIR/train_N.log, WORKDIR/eval_N.log). A step count
# whose metrics_N.json exists is skipped, so the script can be stopped and rerun at any point; an
# evaluation that is not of step N (N below a step already trained) stops it with an error.
# The learning rate has no schedule, so the pieces train exactly as one run of the last N would.
# Ends with the table of `python -m idmvae_jax.tools.results --curve=WORKDIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
if (( $# < 3 )); then
  echo "usage: launch/train_curve.sh CONFIG[:ARGS] WORKDIR STEPS [STEPS ...] [-- --config.X=Y ...]" >&2
  exit 2
fi
CONFIG="$1" WORKDIR="$2"; shift 2
steps=()
while (( $# )) && [[ "$1" != "--" ]]; do
  [[ "$1" =~ ^[1-9][0-9]*$ ]] || { echo "train_curve.sh: step count '$1' is not a positive integer" >&2; exit 2; }
  steps+=("$1"); shift
done
[[ "${1:-}" == "--" ]] && shift
logged() {  # logged LOG CMD...: run CMD into LOG; on failure show the log's end and stop
  local log="$1"; shift
  if ! "$@" > "$log" 2>&1; then
    echo "train_curve.sh: failed: $* (last lines of $log below)" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}
args=("--config=$CONFIG" "--workdir=$WORKDIR" "$@")
mkdir -p "$WORKDIR"
for n in "${steps[@]}"; do
  if [[ -f "$WORKDIR/metrics_$n.json" ]]; then echo "== $n steps: evaluated, skipped"; continue; fi
  t0=$SECONDS
  echo "== $n steps: train (log $WORKDIR/train_$n.log)"
  logged "$WORKDIR/train_$n.log" python -m idmvae_jax.main "${args[@]}" "--config.train.num_steps=$n"
  t1=$SECONDS
  echo "== $n steps: evaluate (log $WORKDIR/eval_$n.log)"
  logged "$WORKDIR/eval_$n.log" python -m idmvae_jax.evaluate "${args[@]}" "--config.train.num_steps=$n"
  # evaluate logs 'evaluating WORKDIR at step S on D device(s)' (tests/test_doc_commands.py pins it)
  if ! grep -q " at step $n on " "$WORKDIR/eval_$n.log"; then  # e.g. N below a step already trained
    echo "train_curve.sh: $WORKDIR/eval_$n.log is not an evaluation at step $n ($(grep -o 'at step [0-9]*' \
      "$WORKDIR/eval_$n.log" | head -1)): give step counts above the latest checkpoint's, or a new WORKDIR" >&2
    exit 1
  fi
  cp "$WORKDIR/eval/metrics.json" "$WORKDIR/metrics_$n.json"
  echo "== $n steps: train $((t1 - t0)) s, evaluate $((SECONDS - t1)) s"
done
python -m idmvae_jax.tools.results --curve="$WORKDIR"

#!/usr/bin/env bash
# Reproduces the paper's effect on the embedded mini PolyMNIST-Quadrant (docs/results_mini.md).
#
#   launch/reproduce_mini.sh run [RUN ...]   train + evaluate the runs (all of them by default)
#   launch/reproduce_mini.sh collect         write docs/results_mini.{md,json} from finished runs
#   launch/reproduce_mini.sh render          rewrite docs/results_mini.md and the README block from
#                                            docs/results_mini.json (after editing the preamble;
#                                            needs no workdirs)
#   launch/reproduce_mini.sh list            the runs and whether each is finished
#
# Runs are VARIANT_seedS (variants idmvae, mmvaeplus, diffusion, no_crossmi, no_genaug), in the
# order of RUNS below: the pilot pair first, then the ablations, then the extra seeds. Resumable
# at any point: a finished run (eval/metrics.json newer than its last checkpoint) is skipped, an
# interrupted one resumes from its latest checkpoint (the training CLI resumes by itself), and
# the wall time of every piece is added up in WORKDIR/run_info.json. Environment:
#   ROOT   where the workdirs live (default workdirs/reproduce_mini)
#   OUT    output prefix of collect (default docs/results_mini)
#   README the file whose results block collect rewrites (default README.md; empty: none)
#   README_BLOCK  which block: <!-- results-BLOCK:start/end --> (default mini)
#   TARGETS    comma-separated targets collect checks (default all; idmvae_jax.tools.results)
#   CONFIG the config (default configs/polymnist_quadrant.py:mini)
#   RUN_NAMES  the runs, space-separated (default: the RUNS below)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${ROOT:-workdirs/reproduce_mini}"
OUT="${OUT:-docs/results_mini}"
README="${README-README.md}"
CONFIG="${CONFIG:-configs/polymnist_quadrant.py:mini}"
RUNS=(idmvae_seed0 mmvaeplus_seed0 diffusion_seed0 no_crossmi_seed0 no_genaug_seed0
      idmvae_seed1 mmvaeplus_seed1 idmvae_seed2 mmvaeplus_seed2)
if [[ -n "${RUN_NAMES:-}" ]]; then read -ra RUNS <<< "$RUN_NAMES"; fi

finished() {  # eval/metrics.json exists and is newer than every checkpoint
  local wd="$1"
  [[ -f "$wd/eval/metrics.json" ]] || return 1
  [[ -z "$(find "$wd/checkpoints" -mindepth 1 -maxdepth 1 -newer "$wd/eval/metrics.json" 2>/dev/null)" ]]
}

commit_now() {  # the checked-out commit, with -dirty when tracked files differ from it
  echo "$(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
}

add_wall() {  # add_wall WORKDIR FIELD SECONDS CONFIG COMMIT: accumulate into run_info.json
  python - "$@" <<'PY'
import json, os, sys
wd, field, secs, config, commit = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
path = os.path.join(wd, "run_info.json")
info = json.load(open(path)) if os.path.exists(path) else {}
info[field] = info.get(field, 0.0) + secs
info["commit"], info["config"] = commit, config
info.setdefault("pieces", []).append({"field": field, "seconds": secs, "commit": commit})
json.dump(info, open(path, "w"), indent=2)
PY
}

run_one() {
  local run="$1" variant="${1%_seed*}" seed="${1##*_seed}"
  local wd="$ROOT/$run" args=("--config=$CONFIG,$variant" "--workdir=$ROOT/$run" "--config.seed=$seed")
  if finished "$wd"; then echo "== $run: finished, skipped"; return; fi
  mkdir -p "$wd"
  echo "== $run: train (resumes if interrupted)"
  local t0=$SECONDS commit
  commit="$(commit_now)"  # taken before the run: the code it imports
  python -m idmvae_jax.main "${args[@]}" 2>&1 | tee -a "$wd/train.log" | grep -v "^[IW][0-9]"
  add_wall "$wd" train_wall_s $((SECONDS - t0)) "$CONFIG,$variant" "$commit"
  echo "== $run: evaluate"
  t0=$SECONDS
  commit="$(commit_now)"
  python -m idmvae_jax.evaluate "${args[@]}" 2>&1 | tee -a "$wd/eval.log" | grep -v "^[IW][0-9]"
  add_wall "$wd" eval_wall_s $((SECONDS - t0)) "$CONFIG,$variant" "$commit"
}

cmd="${1:-run}"; shift || true
case "$cmd" in
  run)
    mkdir -p "$ROOT"
    for run in "${@:-${RUNS[@]}}"; do run_one "$run"; done ;;
  collect|render)
    pre=(); [[ -f "${OUT}_preamble.md" ]] && pre=("--preamble=${OUT}_preamble.md")
    [[ -n "$README" ]] && pre+=("--readme=$README" "--readme_block=${README_BLOCK:-mini}")
    [[ -n "${TARGETS:-}" ]] && pre+=("--targets=$TARGETS")
    if [[ "$cmd" == collect ]]; then src=("--root=$ROOT"); else src=(--from_json); fi
    python -m idmvae_jax.tools.results "${src[@]}" --out="$OUT" "${pre[@]}" ;;
  list)
    for run in "${RUNS[@]}"; do
      if finished "$ROOT/$run"; then echo "$run finished"; else echo "$run pending"; fi
    done ;;
  *) echo "usage: $0 run [RUN ...] | collect | render | list" >&2; exit 2 ;;
esac

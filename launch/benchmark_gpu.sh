#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md: the paper config (all four terms) at batch 128 on one
# accelerator, f32 and bf16, stacked (vmapped) views and a view loop. One JSON line per row into
# OUT_DIR/benchmark_gpu.jsonl; each row is capped at ROW_TIMEOUT seconds so one slow compile
# cannot take the others with it (on an H200 the paper step compiles in ~96 s, and JAX start-up
# and the peak-matmul measurement come on top: 140 s was too little).
#   launch/benchmark_gpu.sh [OUT_DIR] [ROW_TIMEOUT]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-workdirs/benchmark_gpu}"
ROW_TIMEOUT="${2:-300}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
CFG=configs/polymnist_quadrant.py:paper,diffusion
row() {
  echo "== $*" >&2
  timeout "$ROW_TIMEOUT" python3 -m idmvae_jax.benchmark --config="$CFG" --steps=20 --warmup=3 "$@" \
    2>>"$OUT_DIR/benchmark_gpu.log" | tee -a "$OUT_DIR/benchmark_gpu.jsonl"
  echo "   rc=$?" >&2
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
row --precision=f32
row --precision=bf16
row --precision=f32 --config.model.vmap_views=false
row --precision=bf16 --config.model.remat=True
python3 - "$OUT_DIR/benchmark_gpu.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    print(f"{r['precision']:5s} vmap={r['vmap_views']!s:5s} remat={r['remat']!s:5s} B={r['batch_size']} "
          f"step={r['step_time_s']['median']*1e3:.1f}ms ex/s={r['examples_per_sec']:.0f} "
          f"compile={r['compile_s']:.0f}s model TFLOP/step={r['model_flops_per_step']/1e12:.2f} "
          f"TFLOP/s={r['model_flops_per_sec']/1e12:.1f} peak={r['peak_flops_per_sec']/1e12:.0f} "
          f"mfu={r['mfu']:.3f} xlaGiB={r['peak_memory_bytes']['xla']/2**30:.2f}")
PY

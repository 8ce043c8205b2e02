#!/usr/bin/env bash
# N processes on this machine talking over loopback (tests the multi-host code path on one box).
# Each process gets DEVICES fake CPU devices; the global batch is split over all N x DEVICES.
#   launch/multiprocess_local.sh N DEVICES CONFIG[:ARGS] WORKDIR [--config.X=Y ...]
#   launch/multiprocess_local.sh 2 4 configs/polymnist_quadrant.py:tiny /tmp/pmq_mp
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-2}"; DEVICES="${2:-4}"
CONFIG="${3:-configs/polymnist_quadrant.py:tiny}"; WORKDIR="${4:-/tmp/idmvae_multiprocess}"
shift $(( $# > 4 ? 4 : $# ))
PORT="${PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES}"
pids=()
for ((i = 0; i < N; i++)); do
  python -m idmvae_jax.main --config="$CONFIG" --workdir="$WORKDIR" \
    --coordinator_address="127.0.0.1:${PORT}" --num_processes="$N" --process_id="$i" "$@" \
    > >(sed "s/^/[process $i] /") 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status

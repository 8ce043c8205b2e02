#!/usr/bin/env bash
# One process on this machine (CPU, one GPU or one TPU VM host): train or resume.
#   launch/local.sh [CONFIG[:ARGS]] [WORKDIR] [--config.X=Y ...]
#   launch/local.sh configs/polymnist_quadrant.py:mini /tmp/pmq_mini
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${1:-configs/polymnist_quadrant.py:mini}"
WORKDIR="${2:-/tmp/idmvae_$(basename "${CONFIG%%.py*}")}"
shift $(( $# > 2 ? 2 : $# ))
exec python -m idmvae_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"

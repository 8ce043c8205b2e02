#!/usr/bin/env bash
# The same command on every worker of a Cloud TPU VM pod slice; jax.distributed auto-detects the
# pod (--distributed). WORKDIR is one directory every host sees: a bucket URL (gs://bucket/run) or
# shared storage (NFS/Filestore).
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG[:ARGS] WORKDIR [--config.X=Y ...]
#   launch/tpu_pod.sh my-v4-32 us-central2-b configs/polymnist_quadrant.py:paper gs://my-bucket/runs/pmq_paper
# Assumes the repository is at ~/idmvae_jax on every worker with `pip install -e '.[gcs]'` done
# (e.g. via the same gcloud command with --command="git clone ... && pip install -e ...").
set -euo pipefail
TPU_NAME="$1"; ZONE="$2"; CONFIG="$3"; WORKDIR="$4"; shift 4
EXTRA=""
for arg in "$@"; do EXTRA+=" $(printf '%q' "$arg")"; done  # each override stays one argument remotely
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="\
  cd ~/idmvae_jax && python -m idmvae_jax.main --distributed \
  --config=$(printf '%q' "$CONFIG") --workdir=$(printf '%q' "$WORKDIR")$EXTRA"

#!/usr/bin/env bash
# SLURM: one process per GPU on one or more nodes; jax.distributed reads the SLURM environment
# (--distributed). Submit with:
#   sbatch --nodes=2 --ntasks-per-node=8 --gpus-per-task=1 launch/slurm_gpu.sh \
#          configs/polymnist_quadrant.py:paper /shared/runs/pmq_paper
#SBATCH --job-name=idmvae
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
set -euo pipefail
# Five minutes before the time limit SLURM sends USR1 to this script (--signal above): it passes
# SIGTERM to the training processes, which checkpoint at the next step boundary and exit, then
# requeues the job, which resumes from that checkpoint. scancel stops the job for good.
# The default WORKDIR depends on the config only, so resubmitting the same command resumes the run.
# Run from IDMVAE_ROOT (default: the directory sbatch was called from); with `pip install -e .`
# any directory works, the config path is also looked up in the installed repository.
CONFIG="${1:-configs/polymnist_quadrant.py:paper}"
RUN_NAME="$(basename "${CONFIG%%:*}" .py)"
[[ "$CONFIG" == *:* ]] && RUN_NAME+="_${CONFIG#*:}"
cd "${IDMVAE_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
WORKDIR="${2:-$PWD/runs/${RUN_NAME//,/_}}"
shift $(( $# > 2 ? 2 : $# ))
srun python -m idmvae_jax.main --distributed --config="$CONFIG" --workdir="$WORKDIR" "$@" &
SRUN_PID=$!

requeue() {
  echo "idmvae_jax: time limit near: checkpointing, then requeueing job ${SLURM_JOB_ID:-?}" >&2
  kill -TERM "$SRUN_PID" 2>/dev/null || true  # srun passes it on to every task
  wait "$SRUN_PID" || true
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
}
trap requeue USR1
wait "$SRUN_PID"

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
set -euo pipefail
CONFIG="${1:-configs/polymnist_quadrant.py:paper}"
WORKDIR="${2:-$PWD/runs/idmvae_${SLURM_JOB_ID:-local}}"
shift $(( $# > 2 ? 2 : $# ))
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
srun python -m idmvae_jax.main --distributed --config="$CONFIG" --workdir="$WORKDIR" "$@"

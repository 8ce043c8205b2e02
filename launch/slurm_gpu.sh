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
# The default WORKDIR depends on the config only, so resubmitting the same command resumes the run.
# Run from IDMVAE_ROOT (default: the directory sbatch was called from); with `pip install -e .`
# any directory works, the config path is also looked up in the installed repository.
CONFIG="${1:-configs/polymnist_quadrant.py:paper}"
RUN_NAME="$(basename "${CONFIG%%:*}" .py)"
[[ "$CONFIG" == *:* ]] && RUN_NAME+="_${CONFIG#*:}"
cd "${IDMVAE_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
WORKDIR="${2:-$PWD/runs/${RUN_NAME//,/_}}"
shift $(( $# > 2 ? 2 : $# ))
srun python -m idmvae_jax.main --distributed --config="$CONFIG" --workdir="$WORKDIR" "$@"

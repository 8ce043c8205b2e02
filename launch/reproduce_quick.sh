#!/usr/bin/env bash
# The reference curves of the `quick` size (docs/results_quick.{md,json}), which the README's first
# run draws its probe curve against: 3 seeds of IDMVAE and 3 of MMVAE+ on
# configs/polymnist_quadrant.py:quick, trained and evaluated by launch/reproduce_mini.sh.
#
#   launch/reproduce_quick.sh run [RUN ...]  train + evaluate the runs (the 6 by default) not yet
#                                       finished (resumable)
#   launch/reproduce_quick.sh collect   write docs/results_quick.{md,json} and the README's quick
#                                       block from the finished runs
#   launch/reproduce_quick.sh list      the runs and whether each is finished
#
# About 45 minutes on 2 CPU cores (IDMVAE ~8, MMVAE+ ~5 minutes per run, evaluation included).
# ROOT (default workdirs/reproduce_quick), OUT (default docs/results_quick) and README (default
# README.md; empty: none) as in reproduce_mini.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONFIG=configs/polymnist_quadrant.py:quick README="${README-README.md}" README_BLOCK=quick
export TARGETS=spread,w_digit  # the claims this size can test
export ROOT="${ROOT:-workdirs/reproduce_quick}" OUT="${OUT:-docs/results_quick}"
export RUN_NAMES="idmvae_seed0 mmvaeplus_seed0 idmvae_seed1 mmvaeplus_seed1 idmvae_seed2 mmvaeplus_seed2"
cmd="${1:-run}"
case "$cmd" in
  run|collect|list|render) exec launch/reproduce_mini.sh "$@" ;;
  *) echo "usage: $0 run | collect | list" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Training on a Slurm cluster (mmseg 1.x's script; partitions without GPUs too):
#   GPUS=8 GPUS_PER_NODE=4 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args]
# Where sinfo lists GPUs on the partition, srun starts one task per GPU (--gres=gpu);
# elsewhere GPUS is the number of CPU tasks, which train over gloo.
# Variables (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, MASTER_PORT, PYTHON):
# see tools/slurm_launch.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: [GPUS=N] bash $0 PARTITION JOB_NAME CONFIG [train.py args]" >&2
  exit 2
fi
source "$(dirname "$0")/slurm_launch.sh"
slurm_launch "$1" "$2" train.py "$3" "${@:4}"

#!/usr/bin/env bash
# Testing on a Slurm cluster (mmseg 1.x's script; partitions without GPUs too):
#   GPUS=4 bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# Where sinfo lists GPUs on the partition, srun starts one task per GPU (--gres=gpu);
# elsewhere GPUS is the number of CPU tasks (gloo). The metrics are those of one process.
# Variables (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, MASTER_PORT, PYTHON):
# see tools/slurm_launch.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: [GPUS=N] bash $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]" >&2
  exit 2
fi
source "$(dirname "$0")/slurm_launch.sh"
slurm_launch "$1" "$2" test.py "$3" "$4" "${@:5}"

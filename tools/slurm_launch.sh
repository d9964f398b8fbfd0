# Sourced by tools/slurm_train.sh and tools/slurm_test.sh (mmseg 1.x's scripts, plus
# partitions without GPUs): slurm_launch PARTITION JOB_NAME TOOL [TOOL args]
# runs `$PYTHON -u tools/TOOL ... --launcher slurm` as $GPUS srun tasks.
#
# GPUS            tasks in all: one per GPU, or on a partition without GPUs one
#                 process each (DDP over gloo)                          [4]
# GPUS_PER_NODE   tasks (and GPUs) per node; several nodes when GPUS is larger [4]
# CPUS_PER_TASK   CPU cores per task; OMP_NUM_THREADS defaults to it without GPUs [5]
# SRUN_ARGS       more srun options, word-split (e.g. "--time=1:00:00 --qos=high")
# MASTER_PORT     rendezvous port on the first node of the allocation (that node is
#                 MASTER_ADDR unless set), read by the tasks as mmengine does [29500]
# PYTHON          the interpreter that has hseg_mm                      [python]

# Whether sinfo lists a GPU generic resource (%G: "gpu:8(S:0-1)", or "(null)") on any
# node of the partition. If sinfo cannot answer, ask for GPUs as mmseg's script does.
slurm_partition_has_gpus() {
  local gres
  if ! gres=$(sinfo --noheader --partition="$1" --format=%G 2>/dev/null); then
    echo "slurm_launch: sinfo failed for partition $1; requesting GPUs" >&2
    return 0
  fi
  grep -q 'gpu' <<<"$gres"
}

slurm_launch() {
  local partition=$1 job_name=$2 tool=$3
  shift 3
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local gpus=${GPUS:-4}
  local per_node=${GPUS_PER_NODE:-4}
  local cpus=${CPUS_PER_TASK:-5}
  # a node never runs more tasks than there are in all
  if [ "$gpus" -lt "$per_node" ]; then per_node=$gpus; fi
  local resources=()
  if slurm_partition_has_gpus "$partition"; then
    resources=(--gres=gpu:"$per_node")
  else
    echo "slurm_launch: partition $partition has no GPUs: $gpus CPU tasks, DDP over gloo" >&2
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$cpus}
  fi
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
  set -x
  # shellcheck disable=SC2086  # SRUN_ARGS holds several options
  srun --partition="$partition" \
    --job-name="$job_name" \
    ${resources[@]+"${resources[@]}"} \
    --ntasks="$gpus" \
    --ntasks-per-node="$per_node" \
    --cpus-per-task="$cpus" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$root/tools/$tool" "$@" --launcher slurm
}

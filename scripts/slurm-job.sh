#!/usr/bin/env bash
# A Slurm batch script for mnist-dist: copy it, adjust the #SBATCH lines, submit it with mnist-dist's options:
#
#   sbatch scripts/slurm-job.sh --epochs 20 --allreduce exact --metrics run.jsonl
#   LAUNCHER=mpirun sbatch scripts/slurm-job.sh ...     # start the ranks with Open MPI's mpirun instead of srun
#
# Two minutes before the time limit Slurm sends USR1 to this script (--signal=B:...); the script passes it to the
# ranks, which agree on a step, write a checkpoint and exit 75; the script then requeues the job, and the next run
# (same job id, SLURM_RESTART_COUNT one higher) resumes from that checkpoint. The run ends with the parameters of
# one that was never interrupted (bit for bit with --allreduce exact even if the requeued job gets other nodes).
# One rank per node unless --ntasks-per-node says otherwise; with --nodes=2-3 the job takes 3 nodes when it can
# and, requeued after losing one, runs on 2 (mnist-dist resumes at any rank count).
# Checkpoints go to checkpoints/slurm-<job id> in the submit directory unless --checkpoint-dir says otherwise; it
# must be on a filesystem every node sees (mnist-dist checks). Exit codes: 0 finished; 75 stopped and requeued;
# 79 a rank stalled, or 205 mpirun lost a node, requeued up to MAX_STALL_REQUEUES (3) times; anything else failed (see mnist-dist's table in
# the README).
#SBATCH --job-name=mnist-dist
#SBATCH --nodes=2
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=mnist-dist-%j.out
set -u
MNIST_DIST=${MNIST_DIST:-mnist-dist}
LAUNCHER=${LAUNCHER:-srun}
echo "mnist-dist job $SLURM_JOB_ID, run $(( ${SLURM_RESTART_COUNT:-0} + 1 )), on $SLURM_JOB_NODELIST ($(date -u +%FT%TZ))"

# srun needs PMIx to start Open MPI ranks (Debian's Open MPI has no PMI2); mpirun reads the allocation itself.
# Both run in the background: bash runs a trap only while it waits.
# With mpirun, the keepalive settings of hostfiles/network-stall.conf: when a node is cut off from the network, the
# ranks left name the silent rank after --stall-timeout and end with 79, and mpirun, on the job's first node, exits
# with that 79 once TCP gives up on the lost node's daemon. That takes net.ipv4.tcp_retries2 = 6 on the nodes; at
# Linux's default of 15 TCP gives up only after many minutes, and Slurm declares the node down first
# (SlurmdTimeout). docs/failures.md has the times.
# The first probe after 360 s leaves room for the default --stall-timeout (300 s); raise it above a longer one + 15 s.
if [ "$LAUNCHER" = mpirun ]; then
  mpirun --mca oob_tcp_keepalive_time 360 --mca oob_tcp_keepalive_intvl 10 --mca oob_tcp_keepalive_probes 3 \
    "$MNIST_DIST" train --progress lines "$@" &
else
  srun --mpi=pmix "$MNIST_DIST" train --progress lines "$@" &
fi
launcher=$!
stopping=0
trap 'stopping=1; echo "time limit near: asking the ranks to checkpoint and stop"; kill -USR1 $launcher' USR1

# wait returns early when the trap runs: wait again until the launcher has really ended.
status=0
while :; do
  wait $launcher; status=$?
  kill -0 $launcher 2>/dev/null || break
done
# mpirun reports a rank's exit code; srun too. 75: stopped with a checkpoint, as asked.
if [ $status -eq 75 ] || { [ $stopping = 1 ] && [ $status -ne 0 ]; }; then
  echo "stopped with a checkpoint (exit $status): requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
  exit 75
fi
# 79: a rank stalled (the output names it and its node); 205: mpirun lost a node's daemon (the node is cut off or
# down). Either way the last checkpoint is intact. A frozen, swapping or unreachable node is often a passing
# trouble: requeue, but not for ever.
if { [ $status -eq 79 ] || [ $status -eq 205 ]; } && [ "${SLURM_RESTART_COUNT:-0}" -lt "${MAX_STALL_REQUEUES:-3}" ]; then
  echo "a rank stalled or a node was lost (exit $status): requeueing job $SLURM_JOB_ID to resume from its last checkpoint"
  scontrol requeue "$SLURM_JOB_ID"
  exit 79
fi
echo "mnist-dist ended with exit $status"
exit $status

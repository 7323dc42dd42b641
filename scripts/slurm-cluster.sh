#!/usr/bin/env bash
# A real Slurm cluster on this machine, for the tests and for trying the batch script: munge, slurmctld and N
# slurmd "nodes" (n1, n2, ...), all on 127.0.0.1 with ports of their own, in one scratch directory. Installs the
# packages with apt-get when missing (Debian 12: Slurm 22.05), starts the daemons as children of this script's
# shell, waits until every node is idle, and stops them by PID. Touches no address outside this machine.
#
#   scripts/slurm-cluster.sh start [--nodes 3] [--dir /tmp/mnist-dist-slurm]   # prints the SLURM_CONF to export
#   scripts/slurm-cluster.sh stop  [--dir ...]
#   scripts/slurm-cluster.sh status [--dir ...]
#
# Node-local storage: $dir/local is each node's own directory ($dir/nodes/nN from outside), all else is shared
# (where mount namespaces are allowed; else $dir/no-node-local exists).
#
# Settings that matter here (found by running it; see docs/slurm.md): MpiDefault=pmix (Debian's
# Open MPI has no PMI2), KillOnBadExit=1 (a step with a dead rank ends at once), cred_expire=10 (a requeued job
# starts in seconds, not after the default 120 s), one spool and TmpFS directory per node (PMIx steps collide in
# a shared one).
set -euo pipefail
command=${1:-}
shift || true
nodes=3
dir=/tmp/mnist-dist-slurm
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "slurm-cluster: unknown argument $1" >&2; exit 64 ;;
  esac
done

install_packages() {
  local missing=()
  for package in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "slurm-cluster: installing ${missing[*]}" >&2
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

stop() {
  for pidfile in "$dir"/run/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pidfile in "$dir"/run/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

start() {
  # The daemons outlive this script: they must not inherit descriptors its caller waits on (a pipe, or the
  # socket through which Foundation's Process learns that a child ended), or the caller never sees it end.
  for fd in $(ls /proc/$$/fd); do
    [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
  done
  [ "$(id -u)" = 0 ] || { echo "slurm-cluster: run as root (slurmd starts jobs as their users)" >&2; exit 77; }
  install_packages
  stop
  rm -rf "$dir"
  mkdir -p "$dir"/{run,log,state,munge,spool,tmp} "$dir/key"
  chmod 755 "$dir" "$dir/munge"
  chmod 700 "$dir/key"
  host=$(hostname -s)
  mungekey -c -k "$dir/key/munge.key" 2>/dev/null || mungekey -c -f -k "$dir/key/munge.key"
  munged -F --key-file="$dir/key/munge.key" --socket="$dir/munge/munge.socket" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" --force >/dev/null 2>&1 &
  echo $! > "$dir/run/munged.pid"
  for _ in $(seq 50); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
  node_lines="" names=""
  for n in $(seq "$nodes"); do
    node_lines+="NodeName=n$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$((17000 + n)) CPUs=1 RealMemory=1000 State=UNKNOWN"$'\n'
    names+="${names:+,}n$n"
  done
  cat > "$dir/slurm.conf" <<CONF
ClusterName=mnistdist
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=pmix
KillOnBadExit=1
KillWait=5
MinJobAge=600
SlurmdTimeout=20
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
TmpFS=$dir/tmp/%n
SlurmctldPidFile=$dir/run/slurmctld.pid.slurm
SlurmdPidFile=$dir/run/slurmd-%n.pid.slurm
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
$node_lines
PartitionName=batch Nodes=$names Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -D -i -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 &
  echo $! > "$dir/run/slurmctld.pid"
  # Each node gets a node-local directory, as real nodes have local disks: $dir/local seen from a node's tasks is
  # that node's $dir/nodes/nN (a bind mount in a mount namespace of the node's own); everything else is shared.
  # Tests put a checkpoint directory or data there to see what mnist-dist does when nodes see different files.
  # Where mount namespaces are not allowed (a container without CAP_SYS_ADMIN), the nodes share everything and
  # $dir/no-node-local says so.
  mkdir -p "$dir/local"
  node_local=1
  unshare --mount --propagation private -- sh -c "mount --bind '$dir/local' '$dir/local'" 2>/dev/null || node_local=0
  [ "$node_local" = 1 ] || echo "mount namespaces are not allowed here: no node-local storage" > "$dir/no-node-local"
  for n in $(seq "$nodes"); do
    mkdir -p "$dir/spool/n$n" "$dir/tmp/n$n" "$dir/nodes/n$n"
    if [ "$node_local" = 1 ]; then
      unshare --mount --propagation private -- sh -c 'mount --bind "$1" "$2" && exec slurmd -D -N "$3" -f "$SLURM_CONF"' \
        node "$dir/nodes/n$n" "$dir/local" "n$n" >"$dir/log/slurmd-n$n.out" 2>&1 &
    else
      slurmd -D -N "n$n" -f "$SLURM_CONF" >"$dir/log/slurmd-n$n.out" 2>&1 &
    fi
    echo $! > "$dir/run/slurmd-n$n.pid"
  done
  for _ in $(seq 100); do
    idle=$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)
    [ "$idle" = "$nodes" ] && { echo "export SLURM_CONF=$SLURM_CONF"; return; }
    sleep 0.2
  done
  echo "slurm-cluster: the nodes did not become idle in 20 s:" >&2
  sinfo -N >&2 || true
  tail -5 "$dir"/log/*.log >&2 || true
  exit 1
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$dir/slurm.conf" sinfo -N ;;
  *) echo "usage: scripts/slurm-cluster.sh start|stop|status [--nodes N] [--dir DIR]" >&2; exit 64 ;;
esac

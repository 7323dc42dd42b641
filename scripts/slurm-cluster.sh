#!/usr/bin/env bash
# A real Slurm cluster on this machine, for the tests and for trying the batch script: munge, slurmctld and N
# slurmd "nodes" (n1, n2, ...), all on 127.0.0.1 (or each on a network of its own, --network) with ports of their
# own, in one scratch directory. Installs the packages with apt-get when missing (Debian 12: Slurm 22.05), starts
# the daemons as children of this script's shell, waits until every node is idle, and stops them by PID. Touches no
# address outside this machine.
#
#   scripts/slurm-cluster.sh start [--nodes 3] [--dir /tmp/mnist-dist-slurm] [--network [--tcp-retries2 N]]
#                                                                                # prints the SLURM_CONF to export
#   scripts/slurm-cluster.sh stop  [--dir ...]
#   scripts/slurm-cluster.sh status [--dir ...]
#
# Node-local storage: $dir/local is each node's own directory ($dir/nodes/nN from outside), all else is shared
# (where mount namespaces are allowed; else $dir/no-node-local exists).
#
# --network puts node nN on a network of its own: the namespace mnist-hostN of scripts/cluster-sim.sh (address
# 10.77.0.(10+N), on a bridge where slurmctld listens at 10.77.0.1), so that a test can cut one node off
# (`ip netns exec mnist-host2 ip link set veth-h2 down`) as a failed switch port would. --tcp-retries2 N sets
# net.ipv4.tcp_retries2 in every node's namespace, as on nodes set up for hostfiles/network-stall.conf (the batch
# script's mpirun runs on the job's first node); this machine's own setting is left alone. stop removes the
# namespaces too.
#
# Settings that matter here (found by running it; see docs/slurm.md): MpiDefault=pmix (Debian's
# Open MPI has no PMI2), KillOnBadExit=1 (a step with a dead rank ends at once), cred_expire=10 (a requeued job
# starts in seconds, not after the default 120 s), one spool and TmpFS directory per node (PMIx steps collide in
# a shared one).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command=${1:-}
shift || true
nodes=3
dir=/tmp/mnist-dist-slurm
network=0
retries2=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --network) network=1; shift ;;
    --tcp-retries2) retries2=$2; shift 2 ;;
    *) echo "slurm-cluster: unknown argument $1" >&2; exit 64 ;;
  esac
done
if [ -n "$retries2" ]; then
  [ "$network" = 1 ] || { echo "slurm-cluster: --tcp-retries2 applies to the nodes' own networks: add --network" >&2; exit 64; }
  [[ "$retries2" =~ ^[0-9]+$ ]] || { echo "slurm-cluster: --tcp-retries2 $retries2: a count" >&2; exit 64; }
fi

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
  local networked=0
  [ -e "$dir/network" ] && networked=1
  if [ "$networked" = 1 ]; then
    # Every process on a node's network (its slurmd, a job's slurmstepd and tasks) ends, as when nodes power off:
    # a task cut off from the others would otherwise outlive the cluster.
    for ns in $(ip netns list 2>/dev/null | awk '/^mnist-host/ {print $1}'); do
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    done
  fi
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
  if [ "$networked" = 1 ]; then
    "$root/scripts/cluster-sim.sh" --down
    rm -f "$dir/network"
  fi
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
  controller=127.0.0.1
  # How long slurmctld waits for a silent node before it declares it down (and requeues its jobs): 20 s lets the
  # tests' lost node go down quickly; on a network of their own the nodes get 120 s, so that the job's own end
  # after a cut (--stall-timeout, then mpirun's or srun's) comes first, as under Slurm's default of 300 s.
  slurmd_timeout=20
  if [ "$network" = 1 ]; then
    slurmd_timeout=120
    "$root/scripts/cluster-sim.sh" --hosts "$nodes" --keep >/dev/null
    touch "$dir/network"
    controller=10.77.0.1
    if [ -n "$retries2" ]; then
      for n in $(seq "$nodes"); do ip netns exec "mnist-host$n" sysctl -qw net.ipv4.tcp_retries2="$retries2"; done
    fi
  fi
  mungekey -c -k "$dir/key/munge.key" 2>/dev/null || mungekey -c -f -k "$dir/key/munge.key"
  munged -F --key-file="$dir/key/munge.key" --socket="$dir/munge/munge.socket" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" --force >/dev/null 2>&1 &
  echo $! > "$dir/run/munged.pid"
  for _ in $(seq 50); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
  node_lines="" names=""
  for n in $(seq "$nodes"); do
    address=127.0.0.1
    [ "$network" = 1 ] && address=10.77.0.$((10 + n))
    node_lines+="NodeName=n$n NodeHostname=$host NodeAddr=$address Port=$((17000 + n)) CPUs=1 RealMemory=1000 State=UNKNOWN"$'\n'
    names+="${names:+,}n$n"
  done
  cat > "$dir/slurm.conf" <<CONF
ClusterName=mnistdist
SlurmctldHost=$host($controller)
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
SlurmdTimeout=$slurmd_timeout
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
    netns=()
    # nsenter, not `ip netns exec`, which would mount a /sys without the cgroup filesystem slurmd needs.
    [ "$network" = 1 ] && netns=(nsenter --net=/run/netns/mnist-host$n)
    if [ "$node_local" = 1 ]; then
      ${netns[@]+"${netns[@]}"} unshare --mount --propagation private -- sh -c 'mount --bind "$1" "$2" && exec slurmd -D -N "$3" -f "$SLURM_CONF"' \
        node "$dir/nodes/n$n" "$dir/local" "n$n" >"$dir/log/slurmd-n$n.out" 2>&1 &
    else
      ${netns[@]+"${netns[@]}"} slurmd -D -N "n$n" -f "$SLURM_CONF" >"$dir/log/slurmd-n$n.out" 2>&1 &
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
  *) echo "usage: scripts/slurm-cluster.sh start|stop|status [--nodes N] [--dir DIR] [--network [--tcp-retries2 N]]" >&2; exit 64 ;;
esac

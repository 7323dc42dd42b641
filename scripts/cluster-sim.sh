#!/usr/bin/env bash
# A cluster on one machine: 2-8 "hosts" as Linux network namespaces joined by veth pairs on a bridge, so that Open
# MPI runs ranks on separate network stacks and talks TCP between them, as across real hosts. Root only.
#
#   scripts/cluster-sim.sh [--hosts N] [--ranks-per-host K] [--rate 1gbit] [--delay 0.2ms] [--tune FILE]
#                          [--tcp-retries2 N] -- mnist-dist ARGS...
#       creates the hosts (rate/delay limit every host's link with tc netem, where available), runs
#       mpirun -np N*K mnist-dist ARGS across them (K ranks per host, 1 by default), and removes everything on exit.
#       --tune names mpirun's Open MPI settings file (default hostfiles/network.conf). --tcp-retries2 runs mpirun
#       in a namespace of its own (mnist-head, 10.77.0.10) whose net.ipv4.tcp_retries2 is N, as on a head node
#       set up for hostfiles/network-stall.conf; this machine's own setting is left alone.
#   scripts/cluster-sim.sh --hosts N --keep        create the hosts and leave them (for experiments)
#   scripts/cluster-sim.sh --down                  remove the hosts
#
# Addresses: 10.77.0.1 (the bridge, where mpirun runs unless --tcp-retries2) and 10.77.0.11... for host1, host2, ...;
# namespaces mnist-host1, ...; Open MPI enters a namespace through scripts/netns-rsh (its plm_rsh_agent) instead of ssh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
hosts=2 per_host=1 rate="" delay="" keep=0 down=0 tune="$root/hostfiles/network.conf" retries2=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts="$2"; shift 2 ;;
    --ranks-per-host) per_host="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --delay) delay="$2"; shift 2 ;;
    --tune) tune="$2"; shift 2 ;;
    --tcp-retries2) retries2="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --down) down=1; shift ;;
    --) shift; break ;;
    *) echo "cluster-sim.sh: unknown option $1 (see the comment at the top)" >&2; exit 64 ;;
  esac
done
bridge=mnist-br0
subnet=10.77.0

teardown() {
  for ns in $(ip netns list 2>/dev/null | awk '/^mnist-(host|head)/ {print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
  # A namespace's deletion takes its veth end down with it, but not always before we look: remove leftovers.
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^veth-[hb][0-9]+$'); do
    ip link delete "$link" 2>/dev/null || true
  done
  ip link delete "$bridge" 2>/dev/null || true
  rm -f "$root/.cluster-sim-hostfile"
  rm -rf /tmp/mnist-sim   # the hosts' session directories (scripts/netns-rsh)
}

if [ "$down" = 1 ]; then teardown; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "cluster-sim.sh: network namespaces need root" >&2; exit 77; }
command -v ip >/dev/null || { echo "cluster-sim.sh: ip (iproute2) is not installed" >&2; exit 77; }
[ "$hosts" -ge 1 ] && [ "$hosts" -le 8 ] || { echo "cluster-sim.sh: --hosts $hosts: 1 to 8" >&2; exit 64; }
[ "$per_host" -ge 1 ] && [ "$per_host" -le 8 ] || { echo "cluster-sim.sh: --ranks-per-host $per_host: 1 to 8" >&2; exit 64; }
[ -r "$tune" ] || { echo "cluster-sim.sh: --tune $tune: no such file" >&2; exit 66; }
[ -z "$retries2" ] || [[ "$retries2" =~ ^[0-9]+$ ]] || { echo "cluster-sim.sh: --tcp-retries2 $retries2: a count" >&2; exit 64; }

teardown
[ "$keep" = 1 ] || trap teardown EXIT
ip link add "$bridge" type bridge
ip addr add "$subnet.1/24" dev "$bridge"
ip link set "$bridge" up
# Link limits: netem (rate and delay) where the kernel has it, else tbf (rate only, said so), else none.
netem=""
if [ -n "$rate$delay" ] && command -v tc >/dev/null; then
  if tc qdisc add dev lo root netem delay 0ms 2>/dev/null; then
    tc qdisc del dev lo root
    netem="netem${delay:+ delay $delay}${rate:+ rate $rate}"
  elif [ -n "$rate" ] && tc qdisc add dev lo root tbf rate "$rate" burst 256kb latency 50ms 2>/dev/null; then
    tc qdisc del dev lo root
    netem="tbf rate $rate burst 256kb latency 50ms"
    [ -n "$delay" ] && echo "cluster-sim.sh: this kernel has no netem: links are limited to $rate, without the $delay delay" >&2
  else
    echo "cluster-sim.sh: tc can neither netem nor tbf here; links are not limited" >&2
  fi
fi
hostfile="$root/.cluster-sim-hostfile"
: > "$hostfile"
for i in $(seq 1 "$hosts"); do
  ns="mnist-host$i"
  ip netns add "$ns"
  ip link add "veth-h$i" type veth peer name "veth-b$i"
  ip link set "veth-h$i" netns "$ns"
  ip link set "veth-b$i" master "$bridge" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip addr add "$subnet.$((10 + i))/24" dev "veth-h$i"
  ip netns exec "$ns" ip link set "veth-h$i" up
  if [ -n "$netem" ]; then
    # Shape both directions of the host's link: what it sends, and what the bridge sends it.
    ip netns exec "$ns" tc qdisc add dev "veth-h$i" root $netem
    tc qdisc add dev "veth-b$i" root $netem
  fi
  echo "$subnet.$((10 + i)) slots=$per_host" >> "$hostfile"
done
launch=()
if [ -n "$retries2" ]; then
  # mpirun's own namespace, on the bridge like a host (index 0: veth-h0 / veth-b0), with its TCP retry limit.
  ip netns add mnist-head
  ip link add veth-h0 type veth peer name veth-b0
  ip link set veth-h0 netns mnist-head
  ip link set veth-b0 master "$bridge" up
  ip netns exec mnist-head ip link set lo up
  ip netns exec mnist-head ip addr add "$subnet.10/24" dev veth-h0
  ip netns exec mnist-head ip link set veth-h0 up
  ip netns exec mnist-head sysctl -qw net.ipv4.tcp_retries2="$retries2"
  launch=(ip netns exec mnist-head)
  echo "cluster-sim: mpirun runs in namespace mnist-head ($subnet.10), net.ipv4.tcp_retries2 = $retries2"
fi
echo "cluster-sim: $hosts hosts ($subnet.11-$((10 + hosts))) of $per_host rank$([ "$per_host" = 1 ] || echo s) on bridge $bridge${netem:+, links: $netem}; hostfile $hostfile"
[ "$keep" = 1 ] && exit 0
[ $# -gt 0 ] || { echo "cluster-sim.sh: nothing to run (give -- mnist-dist ARGS, or --keep)" >&2; exit 64; }

options=(--hostfile "$hostfile" -np "$((hosts * per_host))" --map-by slot --oversubscribe --tune "$tune"
         --mca plm_rsh_agent "$root/scripts/netns-rsh"
         --mca btl tcp,self --mca btl_tcp_if_include "$subnet.0/24" --mca oob_tcp_if_include "$subnet.0/24"
         --mca btl_tcp_progress_thread 1 --mca coll_libnbc_iallreduce_algorithm 4 --bind-to none)
# The TCP progress thread lets a waiting rank sleep instead of polling a core the others need (measured here: 7.8
# against 13.6 s per CNN epoch on 2 hosts); recursive doubling is the fastest non-blocking all-reduce measured.
# hostfiles/network.conf makes mpirun notice a host cut off from the network within seconds (see the file);
# hostfiles/network-stall.conf, with --tcp-retries2 6, lets the ranks' stall report end the job instead (exit 79).
[ "$(id -u)" = 0 ] && options+=(--allow-run-as-root)
program="$1"; shift
command -v "$program" >/dev/null && program="$(command -v "$program")"
status=0
${launch[@]+"${launch[@]}"} mpirun "${options[@]}" "$program" "$@" || status=$?
# What each host sent over its link (the bridge's end of its veth receives it), for scripts/cluster-bench.sh.
for i in $(seq 1 "$hosts"); do
  echo "cluster-sim: host$i sent $(cat "/sys/class/net/veth-b$i/statistics/rx_bytes") bytes"
done
exit $status

#!/usr/bin/env bash
# Multi-host test: a scheduler, 2 servers and 2 workers on three network namespaces joined by
# a bridge (10.77.x.1-3), so that every connection crosses a (virtual) network between
# distinct addresses. Needs root, iproute2 and a kernel/container that lets it make namespaces,
# a bridge and veth pairs; where it cannot, it exits 77 (skipped) and says why. Only the set-up
# may skip: once the network exists, every failure is a failure.
# usage: run_netns.sh KVACTOR_SERVER DIST_NODE
set -euo pipefail
server=$1
node=$2
if [[ $(id -u) -ne 0 ]]; then
  echo "netns test: skipped: needs root (ip netns)"
  exit 77
fi
if ! command -v ip >/dev/null; then
  echo "netns test: skipped: needs iproute2 (ip)"
  exit 77
fi
tag=$$
sub=$(( (tag % 200) + 20 ))
br=kvtbr$tag
ns=(kvta$tag kvtb$tag kvtc$tag)
ips=(10.77.$sub.1 10.77.$sub.2 10.77.$sub.3)
logs=$(mktemp -d)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for n in "${ns[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  ip link del "$br" 2>/dev/null || true
  rm -rf "$logs"
}
trap cleanup EXIT

# net CMD...: one set-up step; a machine that refuses it skips the test with the reason.
net() {
  local err
  if ! err=$("$@" 2>&1); then
    echo "netns test: skipped: this machine cannot set up network namespaces: '$*' failed: $err"
    exit 77
  fi
}
net ip link add "$br" type bridge
net ip link set "$br" up
for i in 0 1 2; do
  n=${ns[$i]}
  net ip netns add "$n"
  net ip link add "v$i$tag" type veth peer name "p$i$tag"
  net ip link set "p$i$tag" netns "$n"
  net ip link set "v$i$tag" master "$br"
  net ip link set "v$i$tag" up
  net ip netns exec "$n" ip link set lo up
  net ip netns exec "$n" ip addr add "${ips[$i]}/24" dev "p$i$tag"
  net ip netns exec "$n" ip link set "p$i$tag" up
done

export DMLC_PS_ROOT_URI=${ips[0]} DMLC_PS_ROOT_PORT=9177 DMLC_NUM_SERVER=2 DMLC_NUM_WORKER=2
export KVACTOR_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export KVACTOR_CLUSTER_ID=netns-$tag KVACTOR_BIGARRAY_BOUND=1000 KVACTOR_CONNECT_TIMEOUT_MS=30000

start() {  # namespace, role, log name, command...
  local n=$1 role=$2 log=$3
  shift 3
  DMLC_ROLE=$role ip netns exec "$n" "$@" >"$logs/$log" 2>&1 &
  pids+=($!)
}
start "${ns[0]}" scheduler scheduler "$server"
start "${ns[1]}" server server0 "$server"
start "${ns[2]}" server server1 "$server"
start "${ns[1]}" worker worker0 "$node" sync_rounds
start "${ns[2]}" worker worker1 "$node" sync_rounds

# A watchdog bounds the whole run; the waits below end when the processes do.
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep 180 & s=$!
  wait "$s"
  echo "netns test: timed out" >&2
  kill -9 "${pids[@]}" 2>/dev/null
) >/dev/null 2>&1 &
watchdog=$!
status=0
for i in "${!pids[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  if [[ $rc -ne 0 ]]; then echo "process $i exited with $rc"; status=1; fi
done
kill "$watchdog" 2>/dev/null || true
for f in "$logs"/*; do echo "----- $(basename "$f")"; cat "$f"; done
grep -q "OK sync_rounds worker" "$logs/worker0" || status=1
grep -q "OK sync_rounds worker" "$logs/worker1" || status=1
# The servers were reached on their namespaces' addresses, not on loopback.
grep -q "accepting workers on ${ips[1]}:" "$logs/server0" || { echo "server 0 address"; status=1; }
grep -q "accepting workers on ${ips[2]}:" "$logs/server1" || { echo "server 1 address"; status=1; }
exit $status

#!/usr/bin/env bash
# Soak: a 2 servers x 2 workers job (kvactor-launch, local mode) of mixed operations checked
# exactly (tests/soak/soak_worker.cpp: many small and a few large dense keys, pushpull,
# row-sparse push and row_sparse_pull, 2-bit compressed phases), with a hostile client
# (tests/soak/soak_hostile.cpp) connecting to the scheduler and both servers throughout.
# The first third of the time one job runs and is then killed (SIGKILL to a server): it must
# wind down within 30 s, every process gone. The rest of the time the job is restarted on the
# same port and must end in order (exit 0).
#
# Prints the RSS of every process of the job every SAMPLE seconds, and at the end of each job
# its growth after warm-up: the largest RSS of the last third of the samples after warm-up
# against the largest of the first third (maxima, so that a large buffer freed or not at the
# moment of a sample is not taken for growth). Fails when any process grew more than 5 %, on
# any wrong value (MISMATCH) or error, or when a job does not end as it should.
#
# usage: bash scripts/soak.sh MINUTES        (MINUTES may be fractional; at least 0.5)
# Environment: SOAK_PRESET (release), SOAK_SAMPLE_S (MINUTES*60/60, 2..30),
# SOAK_WARMUP_S (a quarter of each job), SOAK_MAX_GROWTH_PCT (5). Logs in build/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

minutes=${1:?usage: soak.sh MINUTES}
total_s=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
((total_s >= 30)) || die "soak.sh: MINUTES=$minutes is under 0.5"
preset=${SOAK_PRESET:-release}
sample_s=${SOAK_SAMPLE_S:-$((total_s / 60 < 2 ? 2 : (total_s / 60 > 30 ? 30 : total_s / 60)))}
max_growth=${SOAK_MAX_GROWTH_PCT:-5}
first_s=$((total_s / 3))
second_s=$((total_s - first_s))

configure "$preset"
build "$preset" kvactor-server kvactor-launch soak_worker soak_hostile
dir=build/$preset
launch=$dir/bin/kvactor-launch
worker=$dir/tests/soak/soak_worker
hostile=$dir/tests/soak/soak_hostile
logs=build/soak
rm -rf "$logs"
mkdir -p "$logs"
failures=0
fail() {
  say "SOAK FAILURE: $*"
  failures=$((failures + 1))
}

# The job's processes, "label pid" per line: scheduler, server0, server1, worker0, worker1 (in
# the order the launcher started them, which is pid order within a role).
job_processes() {
  local lpid=$1 pid role s=0 w=0
  for pid in $(ps -o pid= --ppid "$lpid" | sort -n); do
    role=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^DMLC_ROLE=//p')
    case $role in
      scheduler) echo "scheduler $pid" ;;
      server) echo "server$s $pid" && s=$((s + 1)) ;;
      worker) echo "worker$w $pid" && w=$((w + 1)) ;;
    esac
  done
}

rss_kib() {
  sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || true
}

# Growth per process from a samples file (lines "t label kib"): the first and last third of
# the samples at or after the warm-up, by their maxima.
report_growth() {
  local samples=$1 warmup=$2 name=$3
  awk -v warm="$warmup" -v limit="$max_growth" -v name="$name" '
    $1 >= warm { n[$2]++; t[$2, n[$2]] = $3 }
    END {
      bad = 0
      split("scheduler server0 server1 worker0 worker1", order, " ")
      for (o = 1; o <= 5; o++) {
        p = order[o]
        if (!(p in n)) { printf "    %s %-9s no samples after the warm-up\n", name, p; bad = 1; continue }
        k = int(n[p] / 3); if (k < 1) k = 1
        a = 0; b = 0
        for (i = 1; i <= k; i++) if (t[p, i] > a) a = t[p, i]
        for (i = n[p] - k + 1; i <= n[p]; i++) if (t[p, i] > b) b = t[p, i]
        g = a > 0 ? 100 * (b - a) / a : 0
        flag = g > limit ? "  GREW MORE THAN " limit " %" : ""
        if (g > limit) bad = 1
        printf "    %s %-9s %3d samples after %d s warm-up: %.1f MiB -> %.1f MiB (%+.1f %%)%s\n",
               name, p, n[p], warm, a / 1024, b / 1024, g, flag
      }
      exit bad
    }' "$samples"
}

# run_job NAME SECONDS MODE [PORT]: MODE "kill" kills server 1 after SECONDS, "end" lets the
# workers stop after SECONDS. Sets job_port.
run_job() {
  local name=$1 seconds=$2 mode=$3 port=${4:-}
  local log=$logs/$name.log samples=$logs/$name-rss.txt
  local args=(-n 2 -s 2)
  [[ -n $port ]] && args+=(--port "$port")
  local worker_s=$seconds
  [[ $mode == kill ]] && worker_s=$((seconds * 10))  # killed long before it would stop
  say "$name: 2 servers x 2 workers for ${seconds} s ($mode), RSS every ${sample_s} s"
  : >"$log"
  "$launch" "${args[@]}" -- "$worker" "$worker_s" >"$log" 2>&1 &
  local lpid=$!
  local t0 now procs=""
  t0=$(date +%s)
  # Both servers say where they accept workers once the cluster is assembling.
  while (($(grep -c "accepting workers on" "$log" || true) < 2)); do
    kill -0 "$lpid" 2>/dev/null || break
    (($(date +%s) - t0 > 60)) && break
    sleep 0.2
  done
  procs=$(job_processes "$lpid")
  if (($(wc -l <<<"$procs") != 5)); then
    fail "$name: expected 5 processes, found: $(tr '\n' ' ' <<<"$procs")"
    kill "$lpid" 2>/dev/null || true
    wait "$lpid" || true
    tail -n 30 "$log"
    return
  fi
  local sched_pid
  sched_pid=$(awk '$1 == "scheduler" { print $2 }' <<<"$procs")
  job_port=$(tr '\0' '\n' <"/proc/$sched_pid/environ" | sed -n 's/^DMLC_PS_ROOT_PORT=//p')
  local server_ports
  server_ports=$(sed -n 's/.*accepting workers on [^ ]*:\([0-9]*\).*/\1/p' "$log" | tr '\n' ' ')
  say "$name: scheduler port $job_port, server ports $server_ports; hostile client on all three"
  # shellcheck disable=SC2086
  "$hostile" $((seconds + 60)) 127.0.0.1 "$job_port" $server_ports >"$logs/$name-hostile.log" 2>&1 &
  local hpid=$!
  : >"$samples"
  local killed_at=0 lines_at_kill=0 t line label pid kib
  while kill -0 "$lpid" 2>/dev/null; do
    now=$(date +%s)
    t=$((now - t0))
    line=""
    while read -r label pid; do
      kib=$(rss_kib "$pid")
      if [[ -n $kib ]]; then line+=" $label=$((kib / 1024))M"; else line+=" $label=gone"; fi
      [[ -n $kib && $killed_at == 0 ]] && echo "$t $label $kib" >>"$samples"
    done <<<"$procs"
    say "$name t=${t}s RSS:$line"
    if [[ $mode == kill && $killed_at == 0 ]] && ((t >= seconds)); then
      pid=$(awk '$1 == "server1" { print $2 }' <<<"$procs")
      say "$name: kill -9 server1 (pid $pid)"
      lines_at_kill=$(wc -l <"$log")
      kill -9 "$pid"
      killed_at=$now
    fi
    if ((killed_at > 0 && now - killed_at > 30)); then
      fail "$name: the job still runs 30 s after server1 was killed"
      kill -9 "$lpid" 2>/dev/null || true
      break
    fi
    if ((t > seconds + 120)); then
      fail "$name: still running $((t - seconds)) s after its time"
      kill -9 "$lpid" 2>/dev/null || true
      break
    fi
    if ((killed_at > 0)); then
      # After the kill, the end is timed to the second, not to the next sample.
      for _ in $(seq "$sample_s"); do
        kill -0 "$lpid" 2>/dev/null || break
        sleep 1
      done
    else
      sleep "$sample_s"
    fi
  done
  local rc=0
  wait "$lpid" || rc=$?
  kill "$hpid" 2>/dev/null || true
  wait "$hpid" 2>/dev/null || true
  tail -n 1 "$logs/$name-hostile.log" | sed 's/^/    /'
  local left=""
  while read -r label pid; do
    kill -0 "$pid" 2>/dev/null && left+=" $label($pid)"
  done <<<"$procs"
  [[ -n $left ]] && fail "$name: processes left after the job:$left"
  if grep -q "MISMATCH" "$log"; then
    fail "$name: wrong values"
    grep "MISMATCH" "$log" | head -n 5
  fi
  if [[ $mode == kill ]]; then
    if ((rc == 0)); then
      fail "$name: kvactor-launch exited 0 after a server was killed"
    else
      say "$name: ended $(($(date +%s) - killed_at)) s after the kill, kvactor-launch exit $rc"
    fi
    # Before the kill nothing may fail.
    if head -n "$lines_at_kill" "$log" | grep -E "ERROR|kvactor-launch:"; then
      fail "$name: an error before the kill"
    fi
  else
    if ((rc != 0)); then
      fail "$name: kvactor-launch exited $rc"
      grep -E "ERROR|FAIL|kvactor-launch:" "$log" | head -n 10
    fi
    if (($(grep -c "OK soak worker" "$log" || true) != 2)); then
      fail "$name: not both workers finished"
    else
      grep "OK soak worker" "$log" | sed 's/^/    /'
    fi
  fi
  local warmup=${SOAK_WARMUP_S:-$((seconds / 4))}
  say "$name: RSS growth after warm-up (limit $max_growth %)"
  report_growth "$samples" "$warmup" "$name" || fail "$name: RSS grew more than $max_growth %"
}

say "soak: ${total_s} s in all: a job killed after ${first_s} s, then a job of ${second_s} s"
run_job killed "$first_s" kill
run_job restarted "$second_s" end "${job_port:-}"
if ((failures > 0)); then
  die "soak: $failures failures; logs in $logs"
fi
say "soak: passed (${total_s} s; logs and RSS samples in $logs)"

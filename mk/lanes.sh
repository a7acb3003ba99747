#!/bin/bash
# mk/lanes.sh LOGDIR LANE...: runs each LANE (a space-separated list of make targets, run in order) as its
# own `make` at once, each into LOGDIR/<n>.log. Most of a lab test's time is spent waiting on etcd,
# systemd, SSH and the kubelet, so lanes on 2 cores take far less than the sum of their layers.
# Meanwhile each finished test prints one line (lane, minutes since the start, result), so a run stopped
# at CI's time limit still shows how far each lane got. At the end: every log whole, the slowest tests of
# all lanes (for balancing them), each lane's exit.
set -u
logdir=$1; shift
mkdir -p "$logdir"
rm -f "$logdir"/*.log
pids=() lanes=()
n=0
began=$(date +%s)
for lane in "$@"; do
  n=$((n + 1))
  lanes+=("$lane")
  ( start=$(date +%s)
    ${MAKE:-make} --no-print-directory --keep-going $lane 2>&1 | tee "$logdir/$n.log" |
      while IFS= read -r line; do
        case $line in
          "--- PASS: Test"* | "--- FAIL: Test"*) echo "lane $n, minute $(( ($(date +%s) - began) / 60 )): ${line#--- }" ;;
        esac
      done
    rc=${PIPESTATUS[0]}
    echo "lane $n ($lane): exit $rc after $(( $(date +%s) - start )) s" >> "$logdir/$n.log"
    exit $rc ) &
  pids+=($!)
done
rcs=() failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; rc=$?
  rcs+=("$rc")
  [ "$rc" = 0 ] || failed=1
done
for i in "${!lanes[@]}"; do
  echo "== lane $((i + 1)): ${lanes[$i]} ($logdir/$((i + 1)).log)"
  cat "$logdir/$((i + 1)).log"
done
echo "== slowest tests in all lanes"
grep -h -E -- '^--- (PASS|FAIL): Test[^ ]+ \([0-9.]+s\)' "$logdir"/*.log | sed -E 's/^--- (PASS|FAIL): ([^ ]+) \(([0-9.]+)s\)/\3 \2 \1/' |
  sort -rn | head -25 | awk '{ printf "%8.0f s  %s  %s\n", $1, $2, $3 }'
for i in "${!lanes[@]}"; do
  lane_time=$(sed -n 's/^lane [0-9]* (.*): exit [0-9]* after \([0-9]*\) s$/\1/p' "$logdir/$((i + 1)).log")
  echo "lane $((i + 1)) (${lanes[$i]}): exit ${rcs[$i]} after ${lane_time:-?} s"
done
exit $failed

#!/bin/bash
# interleaved A/B/C of the HTTP server: base (HEAD), new (working tree), new+model diff (overlay)
out=/tmp/hb/ab_http_$1.log; reps=${2:-3}; apps=${3:-"fastapi asgi"}
cd /tmp/hb
for r in $(seq 1 $reps); do
  for app in $apps; do
    for v in base new overlay; do
      case $v in base) pp=/tmp/hb/base;; new) pp=/work/main;; overlay) pp=/tmp/hb/overlay;; esac
      BENCH_DATA_DIR=/work/main/data BENCH_RESULTS_DIR=/tmp/hb/results PYTHONPATH=$pp timeout 300 /work/main/.venv/bin/python http_ab.py duration_s=10 server_app=$app 2>/dev/null | python3 show.py "$v $app r$r" >> $out
    done
  done
done

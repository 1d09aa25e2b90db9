#!/bin/bash
# interleaved micro-batch sessions: variants "name|pythonpath|extra args"
out=/tmp/hb/ab_mb_$1.log; reps=$2; shift 2
cd /tmp/hb
for r in $(seq 1 $reps); do
  for v in "$@"; do
    IFS='|' read name pp extra <<< "$v"
    BENCH_DATA_DIR=/work/main/data BENCH_RESULTS_DIR=/tmp/hb/results PYTHONPATH=$pp timeout 900 /work/main/.venv/bin/python mb_ab.py reps=2 $extra 2>/dev/null | python3 -c "
import json,sys
d=json.load(sys.stdin)
for w in d['windows']:
    print('$name', 'r$r', json.dumps({'max_batch': w['max_batch'], 'ratio': round(w['ratio'],3), 'thr': round(w['throughput']), 'secs': round(w['seconds'],2), 'bulk': round(sorted(d['bulk_rows_per_s'])[1]), 'cpu': {k: round(v/w['seconds'],3) for k,v in w['cpu'].items()}, 'mism': w['mismatches'], 'deliv': w['delivered'], 'foreign': round((w['foreign'] or 0)/w['seconds'],2), 'drv_main': round(w['stream_main_thread_cpu']/w['stream_wall'],3), 'drv_proc': round(w['stream_process_cpu']/w['stream_wall'],3)}))
" >> $out
  done
done

#!/bin/bash
# usage: prof_http.sh <tag> <target: server|client> <pythonpath> [harness args...]
tag=$1; target=$2; pp=$3; shift 3
cd /tmp/hb
export BENCH_DATA_DIR=/work/main/data BENCH_RESULTS_DIR=/tmp/hb/results PYTHONPATH=$pp
/work/main/.venv/bin/python http_ab.py duration_s=25 "$@" > prof/$tag.json 2> prof/$tag.err &
hp=$!
for i in $(seq 1 120); do grep -q "server pid" prof/$tag.err && break; sleep 0.5; done
spid=$(grep "server pid" prof/$tag.err | awk '{print $3}')
if [ $target = server ]; then pid=$spid; else pid=$hp; fi
sleep 6   # past the floor window and the warm-up
/work/main/.venv/bin/py-spy record -p $pid -d 20 $PYSPY_OPTS -F -f raw -o prof/$tag.raw > prof/$tag.pyspy.log 2>&1
wait $hp
/work/main/.venv/bin/python summarize.py prof/$tag.raw 30 > prof/$tag.txt

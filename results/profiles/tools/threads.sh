#!/bin/bash
# per-thread CPU (ticks) of pid over an interval: threads.sh pid seconds
pid=$1; s=$2
declare -A a
for t in /proc/$pid/task/*; do id=${t##*/}; a[$id]=$(awk '{print $14+$15}' $t/stat 2>/dev/null); done
sleep $s
for t in /proc/$pid/task/*; do id=${t##*/}; now=$(awk '{print $14+$15}' $t/stat 2>/dev/null); d=$(( ${now:-0} - ${a[$id]:-0} )); [ $d -gt 0 ] && echo "$d $(cat $t/comm)"; done | sort -rn | head -15

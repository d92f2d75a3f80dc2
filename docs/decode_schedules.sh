#!/usr/bin/env bash
# Every decode-step schedule forced in turn: single flushed call, back to back, and in a CUDA graph.
set -u
for b in 1 16 64; do
  for s in rows lanes lanes2 lanes4 lanes8 lanes16; do
    timeout 60 ./carry/ssmc bench examples/mamba1_step.ssm --backend cuda --dims batch=$b,dim=4096,len=1,state=16 --reps 31 --json --schedule $s 2>&1 | tail -1 | python3 -c "
import json,sys
t=sys.stdin.read()
try:
    d=json.loads(t); print('batch $b $s: flushed %.2f us, stream %.2f, graph %.3f us' % (d['fused_us'], d['fused_stream_us'], d['fused_graph_us']))
except Exception: print('batch $b $s:', t.strip()[:200])
" | tee -a $OUT/sched.txt
  done
done

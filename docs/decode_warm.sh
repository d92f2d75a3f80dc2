#!/usr/bin/env bash
# ssmc's decode step and the tuned Triton kernel under Nsight Compute, caches flushed (all) and not (none)
set -u
for cc in all none; do
  for cfg in "1 16 1" "16 64 2" "64 64 2"; do
    read b blk w <<< "$cfg"
    ncu --clock-control none --cache-control $cc -k regex:mamba_step --metrics gpu__time_duration.sum python3 docs/triton_decode.py --batch $b --block $blk --warps $w --launches 10 2>&1 | grep -E "gpu__time_duration" | awk -v b=$b -v cc=$cc '{print "triton cache", cc, "batch", b, "us", $NF}' | tee -a $OUT/warm.txt
    ncu --clock-control none --cache-control $cc -k regex:k0 --metrics gpu__time_duration.sum,launch__grid_size ./carry/ssmc run examples/mamba1_step.ssm --backend cuda --random --dims batch=$b,dim=4096,len=1,state=16 --out /tmp/o.safetensors 2>&1 | grep -E "launch__grid_size|gpu__time_duration" | awk -v b=$b -v cc=$cc '{v[NR%2]=$NF} NR%2==0 {print "ssmc cache", cc, "batch", b, "grid", v[0], "us", v[1]}' | tee -a $OUT/warm.txt
  done
done

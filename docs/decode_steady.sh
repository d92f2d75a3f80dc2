#!/usr/bin/env bash
# ssmc's decode step under Nsight Compute, caches warm (none) and flushed (all): every launch of
# `ssmc bench` with the autotuner's usual schedule (run on the GPU machine, ssmc in carry/)
set -u
for cc in none all; do
  for cfg in "1 lanes2" "16 lanes4" "64 lanes4"; do
    read b s <<< "$cfg"
    ncu --clock-control none --cache-control $cc -k regex:k0 --metrics gpu__time_duration.sum ./carry/ssmc bench examples/mamba1_step.ssm --backend cuda --schedule $s --reps 5 --dims batch=$b,dim=4096,len=1,state=16 2>&1 | grep -E "gpu__time_duration" | awk -v b=$b -v cc=$cc -v s=$s '{print "cache", cc, "batch", b, s, "us", $NF}' > /tmp/x.txt
    echo "cache $cc batch $b $s: $(wc -l < /tmp/x.txt) launches, us: $(awk '{print $NF}' /tmp/x.txt | sort -n | tr '\n' ' ')" | tee -a $OUT/ld2.txt
  done
done

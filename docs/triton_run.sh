#!/usr/bin/env bash
# Triton decode yardstick and ssmc's decode step, both under Nsight Compute in one run.
set -u
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import triton, torch; print('triton', triton.__version__, 'torch', torch.__version__)"
python3 docs/triton_decode.py --tune 2>&1 | tee $OUT/triton_tune.txt
grep "^batch" $OUT/triton_tune.txt | while read -r _ b _ _ blk _ w _; do
  b=${b%:}; w=${w%:}
  ncu --clock-control none -k regex:mamba_step --metrics gpu__time_duration.sum python3 docs/triton_decode.py --batch $b --block $blk --warps $w --launches 10 2>&1 | grep -E "gpu__time_duration|max" | awk -v b=$b -v blk=$blk -v w=$w '{print "triton batch", b, "block", blk, "warps", w, $0}' | tee -a $OUT/triton_ncu.txt
done
for b in 1 16 64; do
  ncu --clock-control none -k regex:k0 --metrics gpu__time_duration.sum,launch__grid_size ./carry/ssmc run examples/mamba1_step.ssm --backend cuda --random --dims batch=$b,dim=4096,len=1,state=16 --out /tmp/o.safetensors 2>&1 | grep -E "launch__grid_size|gpu__time_duration" | awk -v b=$b '{v[NR%2]=$NF} NR%2==0 {print "ssmc batch", b, "grid", v[0], "us", v[1]}' | tee -a $OUT/ssmc_ncu.txt
done

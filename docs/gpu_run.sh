#!/usr/bin/env bash
# Runs on the GPU machine from the repository root: differential tests, then benchmarks.
# `bash gpu_run.sh tests` runs only the tests, `bash gpu_run.sh bench` only the benchmarks
# (together they come near a device call's 10 minutes). With BASE=path/to/another/ssmc, the
# benchmarks also run that build, each shape right after this one's (prefill_base.jsonl,
# decode_base.jsonl), to compare two builds in one run.
set -u
export SSMC_ROOT=$PWD SSMC_REQUIRE_GPU=1
what=${1:-all}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee $OUT/gpu.txt
# The backward, in two calls (each near a device call's 10 minutes): `bash gpu_run.sh grad` runs
# its GPU tests (the first, every example under every schedule, takes over 100 s on an H100);
# `bash gpu_run.sh gradbench` times ssmc's backward at the five benchmark shapes (about 25 s a
# shape and dtype at batch 1, mostly the autotuner's trials; more at batch 8 and 16), then the
# official selective_scan_bwd (docs/official_bwd.py, with a checkout of state-spaces/mamba's
# csrc/selective_scan at carry/mamba; its build takes about a minute)
if [ "$what" = grad ]; then
  ./carry/grad_cuda --test-threads=1 2>&1 | tail -40 | tee $OUT/grad_tests.txt
  exit 0
fi
if [ "$what" = gradbench ]; then
  for shape in 1,1536,2048,16 8,1536,2048,16 8,4096,2048,16 1,4096,8192,16 16,2048,4096,16; do
    IFS=, read b d l n <<< "$shape"
    for dt in f32 bf16; do
      timeout 90 ./carry/ssmc bench examples/mamba1.ssm --grad --backend cuda --dims batch=$b,dim=$d,len=$l,state=$n --dtype $dt --reps 9 --json 2>&1 | tee -a $OUT/grad.jsonl
    done
  done
  [ -d carry/mamba ] && MAMBA=carry/mamba timeout 300 python docs/official_bwd.py 2>&1 | tee $OUT/official_bwd.jsonl
  exit 0
fi
if [ "$what" != bench ]; then
  ./carry/oracle_cuda --test-threads=1 2>&1 | tail -40 | tee $OUT/tests.txt
fi
[ "$what" = tests ] && exit 0
for shape in 1,1536,2048,16 8,1536,2048,16 8,4096,2048,16 1,4096,8192,16 16,2048,4096,16; do
  IFS=, read b d l n <<< "$shape"
  for dt in f32 bf16; do
    timeout 120 ./carry/ssmc bench examples/mamba1.ssm --backend cuda --dims batch=$b,dim=$d,len=$l,state=$n --dtype $dt --reps 9 --json 2>&1 | tee -a $OUT/prefill.jsonl
    [ -n "${BASE:-}" ] && timeout 120 $BASE bench examples/mamba1.ssm --backend cuda --dims batch=$b,dim=$d,len=$l,state=$n --dtype $dt --reps 9 --json 2>&1 | tee -a $OUT/prefill_base.jsonl
  done
done
for b in 1 16 64; do
  timeout 60 ./carry/ssmc bench examples/mamba1_step.ssm --backend cuda --dims batch=$b,dim=4096,len=1,state=16 --dtype f32 --reps 51 --json 2>&1 | tee -a $OUT/decode.jsonl
  [ -n "${BASE:-}" ] && timeout 60 $BASE bench examples/mamba1_step.ssm --backend cuda --dims batch=$b,dim=4096,len=1,state=16 --dtype f32 --reps 51 --json 2>&1 | tee -a $OUT/decode_base.jsonl
done
./carry/ssmc compile examples/mamba1.ssm --dims batch=8,dim=4096,len=2048,state=16 > $OUT/mamba1.ptx
# Nsight Compute's device time of every decode-step launch (the autotuner's candidates, 4 each,
# then the chosen one's run, last); grid size tells the schedules apart
for b in 1 16 64; do
  ncu --clock-control none -k regex:k0 --metrics gpu__time_duration.sum,launch__grid_size ./carry/ssmc run examples/mamba1_step.ssm --backend cuda --random --dims batch=$b,dim=4096,len=1,state=16 --out /tmp/o.safetensors 2>&1 | grep -E "launch__grid_size|gpu__time_duration" | awk -v b=$b '{v[NR%2]=$NF} NR%2==0 {print "batch", b, "grid", v[0], "us", v[1]}' | tee -a $OUT/decode_ncu.txt
done

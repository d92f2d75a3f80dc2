#!/usr/bin/env bash
# The autotuner's re-timing of tied schedules: five autotuned decode steps at batch 1, batch 16 and 64,
# the two thinnest bf16 prefill shapes, then the GPU tests that go through the autotuner. Copy it into carry/ with
# the ssmc and oracle_cuda binaries and run `bash carry/autotune_ties.sh` on the GPU machine (writes under $OUT).
set -u
export SSMC_ROOT=$PWD SSMC_REQUIRE_GPU=1
for i in 1 2 3 4 5; do
  ./carry/ssmc bench examples/mamba1_step.ssm --backend cuda --dims batch=1,dim=4096,len=1,state=16 --dtype f32 --reps 51 --json | tee -a $OUT/decode1.jsonl | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('b1', d['schedule'], d['fused_graph_us'], '|', d['tuning'])"
done
for b in 16 64; do
  ./carry/ssmc bench examples/mamba1_step.ssm --backend cuda --dims batch=$b,dim=4096,len=1,state=16 --dtype f32 --reps 51 --json | tee -a $OUT/decode.jsonl | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('b$b', d['schedule'], d['fused_graph_us'], '|', d['tuning'])"
done
for b in 1 8; do
  ./carry/ssmc bench examples/mamba1.ssm --backend cuda --dims batch=$b,dim=1536,len=2048,state=16 --dtype bf16 --reps 15 --json | tee -a $OUT/prefill.jsonl | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('p$b', d['schedule'], d['fused_us'], '|', d['tuning'])"
done
./carry/oracle_cuda decode every_example block chunk random_graphs --test-threads=1 2>&1 | tail -12 | tee $OUT/tests.txt

#!/usr/bin/env bash
# Writes the PTX of every example under every GPU schedule, dtype and a few lengths into a
# directory, one file each, so that a refactor of the emitter can be shown byte-identical:
#   bash docs/ptx_snapshot.sh target/release/ssmc /tmp/before   # on the old build
#   bash docs/ptx_snapshot.sh target/release/ssmc /tmp/after    # on the new one
#   diff -r /tmp/before /tmp/after
# Needs no GPU and no ptxas.
set -u
bin=$1 out=$2
mkdir -p "$out"
for ex in mamba1 mamba1_conv mamba1_step mamba1_zoh reverse s4d sigmoid_noskip; do
  for dt in f32 bf16 f16; do
    for len in 1 100 256 512 2048; do
      dims="batch=2,dim=8,len=$len,state=16"
      [ "$ex" = mamba1_conv ] && dims="$dims,width=4"
      for flags in "--warp-scan" "--warp-scan --stream-out" "" "--tile 16" "--chunked --tile 16" "--chunked --chunks 8 --tile 16" "--chunked --tile 16 --no-prefetch" \
                   "--lanes" "--lanes 2" "--lanes 4" "--lanes 8" "--lanes 16" "--fusion off" \
                   "--warp-scan --block 64" "--tile 8 --block 256"; do
        name=$(echo "$ex-$dt-$len-$flags" | tr ' ' '_')
        "$bin" compile "examples/$ex.ssm" --target ptx --dtype "$dt" --dims "$dims" $flags > "$out/$name.ptx" 2>&1
      done
    done
  done
done
ls "$out" | wc -l

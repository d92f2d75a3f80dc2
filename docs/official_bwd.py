"""Times the official Mamba-1 selective-scan backward (`selective_scan_cuda.bwd` of
state-spaces/mamba) on the GPU, for the same shapes and dtypes `ssmc bench --grad` times.

Run on a GPU machine with PyTorch, from the repository root, with a checkout of state-spaces/mamba
(never committed here) at $MAMBA (default carry/mamba):

    python docs/official_bwd.py > $OUT/official_bwd.jsonl

It builds the extension with torch's cpp_extension (all of its .cu files, as its setup.py lists
them, with its nvcc flags, for sm_90 only), then for each shape and input dtype (A, D, delta_bias in
f32) runs the forward once and times the backward with `recompute_out_z` off: CUDA events around
each call, the L2 cache flushed before it (a 512 MB write), median of REPS calls.
"""
import json
import os
import statistics
import sys

import torch
from torch.utils.cpp_extension import load

MAMBA = os.environ.get("MAMBA", "carry/mamba")
REPS = int(os.environ.get("REPS", "21"))
SHAPES = [(1, 1536, 2048, 16), (8, 1536, 2048, 16), (8, 4096, 2048, 16), (1, 4096, 8192, 16), (16, 2048, 4096, 16)]


def build():
    src = os.path.join(MAMBA, "csrc", "selective_scan")
    files = ["selective_scan.cpp"] + [
        f"selective_scan_{kind}.cu"
        for kind in ["fwd_fp32", "fwd_fp16", "fwd_bf16", "bwd_fp32_real", "bwd_fp32_complex",
                     "bwd_fp16_real", "bwd_fp16_complex", "bwd_bf16_real", "bwd_bf16_complex"]
    ]
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 8))
    nvcc = ["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
            "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math",
            "-gencode", "arch=compute_90,code=sm_90"]
    build_dir = "/tmp/selective_scan_build"
    os.makedirs(build_dir, exist_ok=True)
    return load(name="selective_scan_cuda", sources=[os.path.join(src, f) for f in files],
                extra_cflags=["-O3", "-std=c++17"], extra_cuda_cflags=nvcc,
                extra_include_paths=[src], build_directory=build_dir, verbose=False)


def main():
    ext = build()
    flush = torch.empty(512 * 2**20 // 4, dtype=torch.float32, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)

    def rand(*shape, dtype, lo=-1.0, hi=1.0):
        return (torch.rand(*shape, generator=gen, device="cuda", dtype=torch.float32) * (hi - lo) + lo).to(dtype)

    for (b, d, l, n) in SHAPES:
        for name, dt in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
            u, delta, z, dout = (rand(b, d, l, dtype=dt) for _ in range(4))
            A = rand(d, n, dtype=torch.float32, lo=-4.0, hi=-0.5)
            B, C = rand(b, n, l, dtype=dt), rand(b, n, l, dtype=dt)
            D, delta_bias = rand(d, dtype=torch.float32), rand(d, dtype=torch.float32)
            out, x, *rest = ext.fwd(u, delta, A, B, C, D, z, delta_bias, True)
            times = []
            for _ in range(REPS + 1):
                flush.zero_()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                ext.bwd(u, delta, A, B, C, D, z, delta_bias, dout, x, out, None, True, False)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) * 1e3)
            us = statistics.median(times[1:])
            print(json.dumps({"dims": {"batch": b, "dim": d, "len": l, "state": n}, "dtype": name,
                              "official_bwd_us": round(us, 1), "gpu": torch.cuda.get_device_name()}))
            sys.stdout.flush()
            del u, delta, z, dout, A, B, C, D, delta_bias, out, x, rest
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

"""A Triton kernel of Mamba-1's decode step, the yardstick for ssmc's GPU decode step.

Same computation and layouts as examples/mamba1_step.ssm (f32, len 1): dt = softplus(delta +
delta_bias); h = exp(dt A) h0 + dt B u; out = (sum_n C h + D u) silu(z); h_last = h.

  python3 docs/triton_decode.py --tune            # every (BLOCK_D, num_warps), best per batch
  python3 docs/triton_decode.py --block 32 --warps 1 --batch 1 --launches 10
      # under Nsight Compute, as docs/gpu_run.sh times ssmc's step:
  ncu --clock-control none -k regex:mamba_step --metrics gpu__time_duration.sum \
      python3 docs/triton_decode.py --block 32 --warps 1 --batch 1 --launches 10
"""
import argparse

import torch
import triton
import triton.language as tl


@triton.jit
def mamba_step(u, delta, z, A, B, C, D, bias, h0, out, h_last, dim, BLOCK_D: tl.constexpr, N: tl.constexpr):
    b = tl.program_id(1)
    d = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, N)
    live = d < dim
    row = b * dim + d
    x = tl.load(delta + row, live) + tl.load(bias + d, live)
    dt = tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))
    uu = tl.load(u + row, live)
    a = tl.load(A + d[:, None] * N + n[None, :], live[:, None])
    h = tl.load(h0 + row[:, None] * N + n[None, :], live[:, None])
    bb = tl.load(B + b * N + n)  # [batch, state, len = 1]
    cc = tl.load(C + b * N + n)
    h = tl.exp(dt[:, None] * a) * h + (dt * uu)[:, None] * bb[None, :]
    tl.store(h_last + row[:, None] * N + n[None, :], h, live[:, None])
    y = tl.sum(h * cc[None, :], 1) + tl.load(D + d, live) * uu
    zz = tl.load(z + row, live)
    tl.store(out + row, y * zz * tl.sigmoid(zz), live)


def inputs(batch, dim, n):
    g = torch.Generator(device="cuda").manual_seed(0)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g)
    x = dict(u=r(batch, dim, 1), delta=r(batch, dim, 1), z=r(batch, dim, 1), A=-torch.rand(dim, n, device="cuda", generator=g) * 3.5 - 0.5,
             B=r(batch, n, 1), C=r(batch, n, 1), D=r(dim), bias=r(dim), h0=r(batch, dim, n))
    return x, torch.empty(batch, dim, 1, device="cuda"), torch.empty(batch, dim, n, device="cuda")


def launch(x, out, hl, block, warps):
    batch, dim, n = x["h0"].shape
    grid = (triton.cdiv(dim, block), batch)
    mamba_step[grid](x["u"], x["delta"], x["z"], x["A"], x["B"], x["C"], x["D"], x["bias"], x["h0"], out, hl, dim,
                     BLOCK_D=block, N=n, num_warps=warps)


def check(x, out, hl):
    dt = torch.nn.functional.softplus(x["delta"][..., 0] + x["bias"])
    h = torch.exp(dt[..., None] * x["A"]) * x["h0"] + (dt * x["u"][..., 0])[..., None] * x["B"][:, None, :, 0]
    y = (h * x["C"][:, None, :, 0]).sum(-1) + x["D"] * x["u"][..., 0]
    y = y * torch.nn.functional.silu(x["z"][..., 0])
    return max((hl - h).abs().max().item(), (out[..., 0] - y).abs().max().item())


def graph_us(x, out, hl, block, warps, steps=100, reps=20):
    """Per step: `steps` launches recorded in one CUDA graph, L2 flushed before each replay."""
    flush = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        launch(x, out, hl, block, warps)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            for _ in range(steps):
                launch(x, out, hl, block, warps)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        flush.zero_()
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        g.replay()
        t1.record()
        torch.cuda.synchronize()
        times.append(t0.elapsed_time(t1) * 1e3 / steps)
    return sorted(times)[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tune", action="store_true")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--warps", type=int, default=1)
    p.add_argument("--launches", type=int, default=10)
    a = p.parse_args()
    if a.tune:
        for batch in (1, 16, 64):
            x, out, hl = inputs(batch, a.dim, 16)
            res = []
            for block in (4, 8, 16, 32, 64, 128, 256):
                for warps in (1, 2, 4, 8):
                    launch(x, out, hl, block, warps)
                    err = check(x, out, hl)
                    assert err < 1e-3, (block, warps, err)
                    us = triton.testing.do_bench(lambda: launch(x, out, hl, block, warps), warmup=20, rep=100) * 1e3
                    res.append((us, block, warps))
            res.sort()
            us, block, warps = res[0]
            print(f"batch {batch}: best BLOCK_D {block} num_warps {warps}: do_bench {us:.2f} us, "
                  f"CUDA graph {graph_us(x, out, hl, block, warps):.2f} us per step; next: "
                  + ", ".join(f"({b},{w}) {t:.2f}" for t, b, w in res[1:4]), flush=True)
    else:
        x, out, hl = inputs(a.batch, a.dim, 16)
        for _ in range(a.launches):
            launch(x, out, hl, a.block, a.warps)
        torch.cuda.synchronize()
        print(f"batch {a.batch}: max |err| {check(x, out, hl):.2e}")


if __name__ == "__main__":
    main()

"""Draws docs/gpu_prefill.svg from a `gpu_run.sh` prefill run (the argument; default the newest,
docs/data/h200_prefill.jsonl): ssmc fused, ssmc unfused and the reference CUDA
kernel's times (from the issue) per shape, log scale. No dependencies."""
import json, math, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF = {  # reference selective_scan forward on the same H200 (L2 flushed, median), microseconds
    (1, 1536, 2048, 16): (126.7, 68.1), (8, 1536, 2048, 16): (876.5, 447.0), (8, 4096, 2048, 16): (2289.6, 1161.5),
    (1, 4096, 8192, 16): (1345.5, 714.4), (16, 2048, 4096, 16): (4702.0, 2289.2),
}
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "data", "h200_prefill.jsonl")
rows = [json.loads(l) for l in open(src)]
bars = []
for r in rows:
    d = r["dims"]; k = (d["batch"], d["dim"], d["len"], d["state"])
    ref = REF[k][0 if r["dtype"] == "f32" else 1]
    bars.append((f"{k[0]}x{k[1]}x{k[2]} {r['dtype']}", r["fused_us"], r["unfused_us"], ref, r["floor_us"]))
W, H, M, L = 900, 420, 60, 130
lo, hi = math.log10(5), math.log10(300000)
y = lambda v: H - M - (math.log10(v) - lo) / (hi - lo) * (H - 2 * M)
bw = (W - L - 20) / len(bars)
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">mamba1 forward on an H200: device time (us, log scale)</text>']
for v in [10, 100, 1000, 10000, 100000]:
    out.append(f'<line x1="{L}" x2="{W-20}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/><text x="{L-6}" y="{y(v)+4:.1f}" text-anchor="end">{v}</text>')
colors = [("ssmc fused", "#1f77b4"), ("ssmc unfused", "#d62728"), ("reference CUDA", "#7f7f7f"), ("floor", "#2ca02c")]
for i, (name, f, u, ref, floor) in enumerate(bars):
    x0 = L + i * bw + 6
    for j, v in enumerate([f, u, ref, floor]):
        c = colors[j][1]
        out.append(f'<rect x="{x0 + j*(bw-12)/4:.1f}" y="{y(v):.1f}" width="{(bw-12)/4-1:.1f}" height="{H-M-y(v):.1f}" fill="{c}"><title>{colors[j][0]}: {v:.1f} us</title></rect>')
    out.append(f'<text x="{x0 + (bw-12)/2:.1f}" y="{H-M+14}" text-anchor="middle" font-size="9">{name}</text>')
for j, (name, c) in enumerate(colors):
    out.append(f'<rect x="{L+10+j*150}" y="34" width="10" height="10" fill="{c}"/><text x="{L+24+j*150}" y="43">{name}</text>')
out.append("</svg>")
open(os.path.join(HERE, "gpu_prefill.svg"), "w").write("\n".join(out) + "\n")

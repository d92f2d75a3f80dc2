//! criterion: mamba1 fused and unfused on the CPU JIT, against a hand-written rustc-compiled
//! fused loop of the same computation (the baseline the JIT must meet), and the decode step.
//!
//! `cargo bench --bench fused_vs_unfused`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rayon::prelude::*;
use ssmc::ir::DType;
use ssmc::random::random_inputs;
use ssmc::runtime::TensorMap;
use ssmc::{Backend, Fusion, Layer};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn example(name: &str) -> Layer {
    Layer::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)).unwrap()
}

fn dims(b: usize, d: usize, l: usize, n: usize) -> BTreeMap<String, usize> {
    [("batch", b), ("dim", d), ("len", l), ("state", n)].into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// `2^x` with the JIT's polynomial (degree 6 on [-0.5, 0.5]), written so LLVM can vectorize it.
#[inline(always)]
fn exp2(x: f32) -> f32 {
    let x = x.clamp(-127.0, 128.0);
    // round to nearest with the 1.5 * 2^23 trick: plain SSE2, so the state loop vectorizes
    let n = (x + 12_582_912.0) - 12_582_912.0;
    let f = x - n;
    let p = 1.0 + f * (std::f32::consts::LN_2 + f * (0.240_226_5 + f * (0.055_504_11 + f * (0.009_618_129 + f * (0.001_333_355_8 + f * 0.000_154_035_3)))));
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[inline(always)]
fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
}

/// The baseline: Mamba-1's fused scan in safe Rust, rows over rayon, state in a fixed array.
fn mamba_rustc(x: &BTreeMap<&str, Vec<f32>>, b: usize, d: usize, l: usize, out: &mut [f32]) {
    const N: usize = 16;
    let (u, delta, z, a, bm, cm, dv, bias) =
        (&x["u"], &x["delta"], &x["z"], &x["A"], &x["B"], &x["C"], &x["D"], &x["delta_bias"]);
    // B and C transposed to [batch, len, state] so the state loop reads them contiguously
    let tr = |m: &Vec<f32>| -> Vec<f32> {
        let mut t = vec![0.0; m.len()];
        for bi in 0..b {
            for n in 0..N {
                for li in 0..l {
                    t[(bi * l + li) * N + n] = m[(bi * N + n) * l + li];
                }
            }
        }
        t
    };
    let (bt, ct) = (tr(bm), tr(cm));
    out.par_chunks_mut(l).enumerate().for_each(|(row, o)| {
        let (bi, di) = (row / d, row % d);
        let mut a2 = [0.0f32; N];
        for n in 0..N {
            a2[n] = a[di * N + n] * std::f32::consts::LOG2_E;
        }
        let mut h = [0.0f32; N];
        for li in 0..l {
            let at = row * l + li;
            let dt = softplus(delta[at] + bias[di]);
            let du = dt * u[at];
            let (bl, cl) = (&bt[(bi * l + li) * N..][..N], &ct[(bi * l + li) * N..][..N]);
            // four partial sums, so LLVM vectorizes the state loop without reassociating floats
            let mut y4 = [0.0f32; 4];
            for c in 0..N / 4 {
                #[allow(clippy::needless_range_loop)] // k indexes y4 and, through n, h, a2, bl, cl
                for k in 0..4 {
                    let n = c * 4 + k;
                    h[n] = exp2(dt * a2[n]) * h[n] + du * bl[n];
                    y4[k] += cl[n] * h[n];
                }
            }
            let y = (y4[0] + y4[1]) + (y4[2] + y4[3]);
            let zz = z[at];
            o[li] = (y + dv[di] * u[at]) * zz / (1.0 + (-zz).exp());
        }
    });
}

fn as_f32(x: &TensorMap) -> BTreeMap<&str, Vec<f32>> {
    x.iter().map(|(k, v)| (k.as_str(), v.to_f32())).collect()
}

fn prefill(c: &mut Criterion) {
    let layer = example("mamba1.ssm");
    let fused = layer.compile(Backend::Cpu, Fusion::On).unwrap();
    let unfused = layer.compile(Backend::Cpu, Fusion::Off).unwrap();
    let unfused_kept = layer.compile(Backend::Cpu, Fusion::Off).unwrap().keep_buffers(true).unwrap();
    let mut group = c.benchmark_group("mamba1");
    group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_millis(500));
    for (b, d, l, n) in [(1, 1536, 2048, 16), (4, 768, 2048, 16)] {
        let x = random_inputs(layer.graph(), &dims(b, d, l, n), DType::F32, 0).unwrap();
        let id = format!("{b}x{d}x{l}x{n}");
        // the baseline computes the same thing
        let xf = as_f32(&x);
        let mut base = vec![0.0f32; b * d * l];
        mamba_rustc(&xf, b, d, l, &mut base);
        let jit = fused.run(&x).unwrap()["out"].to_f32();
        let worst = jit.iter().zip(&base).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "baseline and JIT disagree by {worst}");
        // fresh: every run allocates its outputs and intermediates (as PyTorch's CPU allocator
        // does); reused: outputs written into the last run's, intermediates kept
        group.bench_with_input(BenchmarkId::new("jit_fused", &id), &x, |bench, x| bench.iter(|| fused.run(x).unwrap()));
        group.bench_with_input(BenchmarkId::new("jit_unfused", &id), &x, |bench, x| bench.iter(|| unfused.run(x).unwrap()));
        let mut out = fused.run(&x).unwrap();
        group.bench_with_input(BenchmarkId::new("jit_fused_reused", &id), &x, |bench, x| bench.iter(|| fused.run_into(x, &mut out).unwrap()));
        let mut out = unfused_kept.run(&x).unwrap();
        group.bench_with_input(BenchmarkId::new("jit_unfused_reused", &id), &x, |bench, x| {
            bench.iter(|| unfused_kept.run_into(x, &mut out).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("rustc_fused_baseline", &id), &xf, |bench, xf| {
            bench.iter(|| {
                let mut out = vec![0.0f32; b * d * l];
                mamba_rustc(xf, b, d, l, &mut out);
                out
            })
        });
        group.bench_with_input(BenchmarkId::new("rustc_fused_baseline_reused", &id), &xf, |bench, xf| {
            bench.iter(|| mamba_rustc(xf, b, d, l, &mut base))
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let layer = example("mamba1_step.ssm");
    let fused = layer.compile(Backend::Cpu, Fusion::On).unwrap();
    let mut group = c.benchmark_group("mamba1_step");
    group.sample_size(30).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    for b in [1, 16] {
        let x = random_inputs(layer.graph(), &dims(b, 1536, 1, 16), DType::F32, 0).unwrap();
        group.bench_with_input(BenchmarkId::new("jit_fused", b), &x, |bench, x| bench.iter(|| fused.run(x).unwrap()));
        // a generation loop writes each step's state into the buffers of the step before
        let mut out = fused.run(&x).unwrap();
        group.bench_with_input(BenchmarkId::new("jit_fused_reused", b), &x, |bench, x| bench.iter(|| fused.run_into(x, &mut out).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, prefill, decode);
criterion_main!(benches);

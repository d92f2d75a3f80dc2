//! The JIT's polynomial math against `f64` over sweeps: the error bounds stated in
//! `codegen/cpu/src/math.rs` hold.

use ssmc::ir::DType;
use ssmc::runtime::{HostTensor, TensorMap};
use ssmc::{Backend, Fusion, Layer};

/// Runs `output y = f(x)` on the CPU JIT over `xs`.
fn jit(f: &str, xs: &[f64]) -> Vec<f64> {
    let layer = Layer::parse(&format!("layer M {{ dims n; input x: [n]; output y = {f}(x); }}")).unwrap();
    let compiled = layer.compile(Backend::Cpu, Fusion::Off).unwrap();
    let mut inputs = TensorMap::new();
    inputs.insert("x".into(), HostTensor::from_f64(DType::F32, vec![xs.len()], xs).unwrap());
    compiled.run(&inputs).unwrap()["y"].to_f64()
}

/// `n` points from `lo` to `hi`, each rounded to f32 (the kernel's input).
fn sweep(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32 as f64).collect()
}

fn max_rel(f: &str, xs: &[f64], exact: impl Fn(f64) -> f64) -> f64 {
    jit(f, xs).iter().zip(xs).map(|(g, &x)| ((g - exact(x)) / exact(x)).abs()).fold(0.0, f64::max)
}

fn max_abs(f: &str, xs: &[f64], exact: impl Fn(f64) -> f64) -> f64 {
    jit(f, xs).iter().zip(xs).map(|(g, &x)| (g - exact(x)).abs()).fold(0.0, f64::max)
}

#[test]
fn exp2_relative_error_below_3e7() {
    let e = max_rel("exp2", &sweep(-125.0, 127.0, 100_003), f64::exp2);
    assert!(e < 3e-7, "exp2: {e:e}");
}

#[test]
fn exp_relative_error_below_5e7() {
    let e = max_rel("exp", &sweep(-87.0, 87.0, 100_003), f64::exp);
    assert!(e < 5e-7, "exp: {e:e}");
}

#[test]
fn log_error_below_3e7_of_max_1_ln_x() {
    let xs: Vec<f64> = sweep(-30.0, 30.0, 100_003).into_iter().map(|p| 10f64.powf(p) as f32 as f64).collect();
    let e = jit("log", &xs).iter().zip(&xs).map(|(g, x)| (g - x.ln()).abs() / x.ln().abs().max(1.0)).fold(0.0, f64::max);
    assert!(e < 3e-7, "log: {e:e}");
}

#[test]
fn log1p_relative_error_below_3e7() {
    let xs: Vec<f64> = sweep(-0.999, 0.999, 100_003).into_iter().filter(|x| *x != 0.0).collect();
    let e = max_rel("log1p", &xs, f64::ln_1p);
    assert!(e < 3e-7, "log1p: {e:e}");
}

#[test]
fn sigmoid_softplus_tanh_are_accurate_and_saturate() {
    let xs = sweep(-50.0, 50.0, 20_001);
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert!(max_abs("sigmoid", &xs, sig) < 3e-7);
    let sp = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    assert!(max_rel("softplus", &xs, sp) < 5e-7);
    let th = max_abs("tanh", &xs, f64::tanh);
    assert!(th < 3e-7, "tanh abs {th:e}");
    let small = sweep(-0.3, 0.3, 20_001).into_iter().filter(|x| *x != 0.0).collect::<Vec<_>>();
    let th = max_rel("tanh", &small, f64::tanh);
    assert!(th < 1e-6, "tanh rel near 0 {th:e}");
    assert_eq!(jit("softplus", &[1e30, -1e30]), vec![1e30f32 as f64, 0.0]);
}

#[test]
fn special_values() {
    let inf = f64::INFINITY;
    let e = jit("exp2", &[-200.0, 200.0, f64::NAN]);
    assert_eq!(e[0], 0.0);
    assert_eq!(e[1], inf);
    assert!(e[2].is_nan());
    let l = jit("log", &[0.0, -1.0, inf, f64::NAN]);
    assert_eq!(l[0], -inf);
    assert!(l[1].is_nan());
    assert_eq!(l[2], inf);
    assert!(l[3].is_nan());
    let l = jit("log1p", &[-1.0, inf]);
    assert_eq!(l, vec![-inf, inf]);
}

/// `exp2(x * a)` inside a scan, `x` per step and `a` per state: the seq chunk's checked form
/// ([`ssmc_cpu::math::exp2_small`] where every product of a chunk of 64 steps is in range, the
/// clamped `exp2` where one is not). Row `r` of `x` runs `h = 0 h + exp2(x a)` along `len`, so
/// `y = sum over the 4 states of h = 4 exp2(x)` exactly (the `a` are all 1).
fn exp2_in_scan(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let layer = Layer::parse(
        "layer E { dims r, len, n; input x: [r, len]; input zero: [r, len]; param a: [n];
           let h = scan(zero, exp2(x * a), len); output y = sum(h, n); }",
    )
    .unwrap();
    let len = rows[0].len();
    let flat: Vec<f64> = rows.concat();
    let mut inputs = TensorMap::new();
    inputs.insert("x".into(), HostTensor::from_f64(DType::F32, vec![rows.len(), len], &flat).unwrap());
    inputs.insert("zero".into(), HostTensor::from_f64(DType::F32, vec![rows.len(), len], &vec![0.0; flat.len()]).unwrap());
    inputs.insert("a".into(), HostTensor::from_f64(DType::F32, vec![4], &[1.0; 4]).unwrap());
    let y = layer.compile(Backend::Cpu, Fusion::On).unwrap().run(&inputs).unwrap()["y"].to_f64();
    y.chunks(len).map(|r| r.iter().map(|v| v / 4.0).collect()).collect()
}

#[test]
fn exp2_of_a_checked_product_has_exp2s_error_and_special_values() {
    // in range: the unclamped form, with exp2's bound
    let xs = sweep(-125.0, 125.0, 64 * 1563);
    let got = exp2_in_scan(std::slice::from_ref(&xs));
    let e = got[0].iter().zip(&xs).map(|(g, &x)| ((g - x.exp2()) / x.exp2()).abs()).fold(0.0, f64::max);
    assert!(e < 3e-7, "exp2 in range: {e:e}");
    // one value out of range sends its chunk down the clamped path: the last step of each
    // row (0 h is NaN after an infinite h), the rest of its chunk still exact
    let specials = [200.0, -200.0, f64::INFINITY, f64::NEG_INFINITY, 125.5, -130.0];
    let rows: Vec<Vec<f64>> = specials.iter().map(|&s| (0..128).map(|i| if i == 127 { s } else { ((i as f64 - 64.0) * 0.37) as f32 as f64 }).collect()).collect();
    let got = exp2_in_scan(&rows);
    for (row, (&s, g)) in rows.iter().zip(specials.iter().zip(&got)) {
        // in f32, where results under the smallest normal flush to 0 (as `exp2` states)
        let exact = s.exp2() as f32 as f64;
        let exact = if exact.abs() < f32::MIN_POSITIVE as f64 { 0.0 } else { exact };
        if exact.is_normal() {
            assert!(((g[127] - exact) / exact).abs() < 3e-7, "exp2({s}) = {}", g[127]);
        } else {
            assert_eq!(g[127], exact, "exp2({s})");
        }
        for (&x, &v) in row[..127].iter().zip(g) {
            assert!(((v - x.exp2()) / x.exp2()).abs() < 3e-7, "exp2({x}) = {v} beside {s}");
        }
    }
    let nan = exp2_in_scan(&[(0..64).map(|i| if i == 63 { f64::NAN } else { 1.0 }).collect()]);
    assert!(nan[0][63].is_nan());
}

#[test]
fn sin_and_cos_absolute_error_below_1e7_for_x_up_to_1e4() {
    // a wide sweep (its points fall anywhere in their quadrants) and every f32 near the
    // multiples of pi/2 where the reduction cancels most
    let mut xs = sweep(-1e4, 1e4, 400_003);
    for j in -6366i32..=6366 {
        let m = (f64::from(j) * std::f64::consts::FRAC_PI_2) as f32;
        let mut v = m;
        for _ in 0..4 {
            xs.extend([f64::from(v), f64::from(-v)]);
            v = f32::from_bits(v.to_bits() + 1);
        }
    }
    let s = max_abs("sin", &xs, f64::sin);
    let c = max_abs("cos", &xs, f64::cos);
    println!("sin {s:e} cos {c:e}");
    assert!(s < 1e-7 && c < 1e-7, "sin {s:e}, cos {c:e}");
    // near 0, sin keeps its relative accuracy
    let small: Vec<f64> = sweep(-0.7, 0.7, 20_001).into_iter().filter(|x| *x != 0.0).chain([1e-30, -3e-8, 1e-4]).collect();
    let r = max_rel("sin", &small, f64::sin);
    println!("sin rel {r:e}");
    assert!(r < 2e-7, "sin rel near 0 {r:e}");
}

#[test]
fn sin_and_cos_of_large_and_special_arguments() {
    // accurate up to the limit of the exact reduction, NaN beyond it, at infinity and at NaN
    let xs = sweep(1e4, 6.5e6, 100_003);
    let s = max_abs("sin", &xs, f64::sin);
    let c = max_abs("cos", &xs, f64::cos);
    println!("large: sin {s:e} cos {c:e}");
    assert!(s < 1e-7 && c < 1e-7, "sin {s:e}, cos {c:e}");
    for f in ["sin", "cos"] {
        assert!(jit(f, &[6.6e6, -1e30, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]).iter().all(|v| v.is_nan()), "{f}");
    }
    assert_eq!(jit("sin", &[0.0]), vec![0.0]);
    assert_eq!(jit("cos", &[0.0]), vec![1.0]);
}

#[test]
fn sign_is_exact_and_keeps_zeros_and_nan() {
    let xs = [-3.0, -1e-40, -0.0, 0.0, 1e-30, 5.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    let got = jit("sign", &xs);
    let want: [f64; 8] = [-1.0, -1.0, -0.0, 0.0, 1.0, 1.0, 1.0, -1.0];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(got[i].to_bits(), w.to_bits(), "sign({}) = {}", xs[i], got[i]);
    }
    assert!(got[8].is_nan());
}

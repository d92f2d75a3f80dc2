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

//! What the differential tests share: the example specs and their sizes.
#![allow(dead_code)]

use ssmc::ir::DType;
use ssmc::runtime::{HostTensor, TensorMap};
use ssmc::Layer;
use std::collections::BTreeMap;
use std::path::Path;

/// A layer reading one state out twice (`x * h` and `h * x`, `x` per step and per row) with a
/// sum over the state dim that does not involve it: the warp scan's general case, one fused
/// kernel.
pub const TWO_READOUTS: &str = "layer TwoReadouts {
    dims batch, dim, len, state;
    input u: [batch, dim, len];
    input delta: [batch, dim, len];
    param A: [dim, state] in -4.0..-0.5;
    input B: [batch, state, len];
    input C: [batch, state, len];
    param E: [dim, state];
    let dt = softplus(delta);
    let h = scan(discretize_a(zoh, dt, A), discretize_b(euler, dt, A, B) * u, len);
    output y = sum(C * h, state) + sum(B, state);
    output w = sum(h * E, state);
}";

/// Sines and cosines as a rotary embedding uses them (Mamba-3 rotates `B` and `C`): `B` and `C`
/// mixed by an angle per state and step, the angles as large as a long sequence's cumulative
/// ones, before the scan and before the readout. The angles are inputs, so the kernels' `f32`
/// and the oracle's `f64` take the sine of the same number.
pub const ROTARY: &str = "layer Rotary {
    dims batch, dim, len, state;
    input u: [batch, dim, len];
    param A: [dim, state] in -4.0..-0.5;
    input B: [batch, state, len];
    input C: [batch, state, len];
    input theta: [batch, state, len] in -10000.0..10000.0;
    let c = cos(theta);
    let s = sin(theta);
    let h = scan(exp(A), (B * c - C * s) * u, len);
    output y = sum((C * c + B * s) * h, state);
}";

/// [`TWO_READOUTS`] without its plain sum: the warp scan may take its states in two passes.
pub fn two_readouts_products_only() -> String {
    let spec = TWO_READOUTS.replace(" + sum(B, state)", "");
    assert_ne!(spec, TWO_READOUTS, "the plain sum is gone");
    spec
}

/// Every example spec.
pub const EXAMPLES: [&str; 7] =
    ["mamba1.ssm", "mamba1_zoh.ssm", "mamba1_step.ssm", "mamba1_conv.ssm", "s4d.ssm", "sigmoid_noskip.ssm", "reverse.ssm"];

/// An example, from `$SSMC_ROOT` when the test binary runs away from its checkout (the GPU
/// machine), else from this checkout.
pub fn example(name: &str) -> Layer {
    let root = std::env::var("SSMC_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    Layer::from_file(&Path::new(&root).join("examples").join(name)).unwrap()
}

/// Sizes for the dims `layer` has, from Mamba's names (conv width 4).
pub fn dims(layer: &Layer, b: usize, d: usize, l: usize, n: usize) -> BTreeMap<String, usize> {
    [("batch", b), ("dim", d), ("len", l), ("state", n), ("width", 4)]
        .into_iter()
        .filter(|(k, _)| layer.graph().dim(k).is_some())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// How far a backend may be from the oracle: `|got - want| <= rtol |want| + atol (1 + scale)`,
/// scale the largest finite `|want|` of the tensor.
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
    /// Where `want` lies beyond f32's range, the kernel's infinity (f32's rounding of it) is
    /// the right answer.
    pub f32_overflow: bool,
}

/// Every output of `got` agrees with `want` within `tol` (NaN where the oracle has NaN).
pub fn assert_agree(got: &TensorMap, want: &TensorMap, tol: &Tolerance, what: &str) {
    for (name, w) in want {
        let g = &got[name];
        assert_eq!(g.shape(), w.shape(), "{what}: {name} shape");
        let scale = w.to_f64().iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in g.to_f64().iter().zip(w.to_f64()).enumerate() {
            let b32 = b as f32 as f64;
            let ok = (a.is_nan() && b.is_nan())
                || a == &b
                || (tol.f32_overflow && b32.is_infinite() && *a == b32)
                || (a - b).abs() <= tol.rtol * b.abs() + tol.atol * (1.0 + scale);
            assert!(ok, "{what}: {name}[{i}]: got {a}, oracle {b} (scale {scale})");
        }
    }
}

/// Whether `x` is a fair test of f32 kernels: every intermediate stays well inside f32's range,
/// and the outputs are well conditioned (perturbing the inputs by 1e-6 moves them by < 1e-3).
pub fn fair_for_f32(layer: &Layer, x: &TensorMap) -> bool {
    let oracle: Vec<(String, ssmc::ir::interp::Tensor)> = x.iter().map(|(n, t)| (n.clone(), t.to_oracle())).collect();
    let refs: Vec<(&str, &ssmc::ir::interp::Tensor)> = oracle.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let Ok(all) = ssmc::ir::interp::evaluate_all(layer.graph(), &refs) else { return false };
    if all.nodes.iter().flat_map(|t| &t.data).any(|v| !v.is_finite() || v.abs() > 1e15) {
        return false;
    }
    let mut rng = ssmc::random::Rng::new(99);
    let mut nudged = TensorMap::new();
    for (n, t) in x {
        let v: Vec<f64> = t.to_f64().iter().map(|v| v * (1.0 + 1e-6 * rng.uniform(-1.0, 1.0))).collect();
        nudged.insert(n.clone(), HostTensor::from_f64(DType::F64, t.shape().to_vec(), &v).unwrap());
    }
    let (a, b) = (layer.eval_as(x, DType::F64).unwrap(), layer.eval_as(&nudged, DType::F64).unwrap());
    a.iter().all(|(n, t)| {
        let scale = t.to_f64().iter().fold(0.0f64, |m, v| m.max(v.abs()));
        t.to_f64().iter().zip(b[n].to_f64()).all(|(p, q)| (p - q).abs() <= 1e-3 * (p.abs() + 1e-3 * scale + 1e-6))
    })
}

/// A random selective (or time-invariant) SSM layer in the DSL, the kind a user writes instead
/// of a kernel: the step `dt` from `softplus(delta [+ bias])` per step or `exp(log_dt)` per
/// channel; `A`'s and `B`'s discretizations (A's stable ones: `zoh`, `bilinear`); `B` and `C`
/// per step (selective) or weights (LTI), each on its own; the scan forward or reversed, from
/// zero or from an initial state; the readout `sum(C * h, state)`, with or without the skip
/// `D * u`, gated by `z` (silu or sigmoid) or not; perhaps the final state as an output; and
/// `u` as given or from a causal conv of `x` (with or without its bias) through silu.
pub fn random_variant(seed: u64) -> String {
    let mut rng = ssmc::random::Rng::new(seed);
    let mut pick = |n: usize| ((rng.uniform(0.0, 1.0) * n as f64) as usize).min(n - 1);
    let mut decls = vec!["input u: [batch, dim, len];".to_string()];
    let dt = match pick(3) {
        0 => {
            decls.push("input delta: [batch, dim, len];".into());
            decls.push("param delta_bias: [dim];".into());
            "softplus(delta + delta_bias)"
        }
        1 => {
            decls.push("input delta: [batch, dim, len];".into());
            "softplus(delta)"
        }
        _ => {
            decls.push("param log_dt: [dim] in -6.9..-2.3;".into());
            "exp(log_dt)"
        }
    };
    decls.push("param A: [dim, state] in -4.0..-0.5;".into());
    for name in ["B", "C"] {
        decls.push(if pick(4) == 0 { format!("param {name}: [dim, state];") } else { format!("input {name}: [batch, state, len];") });
    }
    let method_a = ["zoh", "bilinear"][pick(2)];
    let method_b = ["zoh", "euler", "bilinear"][pick(3)];
    let mut scan_args = String::new();
    if pick(4) == 0 {
        scan_args += ", reverse = true";
    }
    let final_state = pick(3) == 0;
    if pick(4) == 0 {
        decls.push("input h0: [batch, dim, state];".into());
        scan_args += ", init = h0";
    }
    let mut y = "sum(C * h, state)".to_string();
    if pick(2) == 0 {
        decls.push("param D: [dim];".into());
        y += " + D * u";
    }
    let out = match pick(3) {
        0 => y,
        g => {
            decls.push("input z: [batch, dim, len];".into());
            format!("gate({y}, z, {})", ["silu", "sigmoid"][g - 1])
        }
    };
    // chosen last, so that the choices above stay what they were before conv was among them
    let mut dims = "batch, dim, len, state";
    let mut body = String::new();
    if pick(4) == 0 {
        dims = "batch, dim, len, state, width";
        decls[0] = "input x: [batch, dim, len];".into();
        decls.insert(1, "param conv_weight: [dim, width];".into());
        let bias = if pick(2) == 0 {
            decls.insert(2, "param conv_bias: [dim];".into());
            ", bias = conv_bias"
        } else {
            ""
        };
        body += &format!("    let u = silu(conv1d(x, conv_weight, len{bias}));\n");
    }
    body += &format!(
        "    let dt = {dt};\n    let h = scan(discretize_a({method_a}, dt, A), discretize_b({method_b}, dt, A, B) * u, len{scan_args});\n    output out = {out};\n"
    );
    if final_state {
        body += "    output h_last = final_state(h);\n";
    }
    let decls: Vec<String> = decls.iter().map(|d| format!("    {d}\n")).collect();
    format!("layer Variant{seed} {{\n    dims {dims};\n{}\n{body}}}\n", decls.concat())
}

/// The generator's random extents for `layer`'s dims (up to `max`), by dim name.
pub fn random_dims(layer: &Layer, seed: u64, max: usize) -> BTreeMap<String, usize> {
    let sizes = ssmc::ir::gen::random_sizes(layer.graph(), seed, max);
    layer.graph().dims().map(|(id, n)| (n.to_string(), sizes[id.index()])).collect()
}

/// The (batch, dim, len, state) [`random_variant`]`(seed)` is checked at: up to 3, 40, 200, 24.
pub fn variant_shape(seed: u64) -> (usize, usize, usize, usize) {
    let s = seed as usize;
    (1 + s % 3, 1 + (s * 7) % 40, 1 + (s * 37) % 200, 1 + (s * 5) % 24)
}

/// The layer compiled for the GPU, or `None` (with the reason checked) when no GPU is usable
/// here; with `SSMC_REQUIRE_GPU` set, a missing GPU fails the test instead.
pub fn cuda_compile(layer: &Layer, fusion: ssmc::Fusion) -> Option<ssmc::CompiledLayer> {
    match layer.compile(ssmc::Backend::Cuda, fusion) {
        Ok(c) => Some(c),
        Err(e) => {
            let msg = e.to_string();
            assert!(std::env::var("SSMC_REQUIRE_GPU").is_err(), "SSMC_REQUIRE_GPU is set but: {msg}");
            assert!(
                msg.contains("not built in") || msg.contains("no CUDA driver") || msg.contains("CUDA"),
                "unexpected error without a GPU: {msg}"
            );
            None
        }
    }
}

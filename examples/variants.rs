//! Two custom variants of Mamba-1, declared with `ssm!` (checked at compile time), checked to be
//! the same layers as their `.ssm` files, then run on the CPU JIT against the oracle.
//!
//! `cargo run --release --example variants`

use ssmc::ir::DType;
use ssmc::random::random_inputs;
use ssmc::{Backend, Fusion, Layer};
use std::collections::BTreeMap;

ssmc::ssm! {
    // Exact zero-order hold for B too: Bbar = (exp(dt A) - 1) / A * B.
    layer Mamba1Zoh {
        dims batch, dim, len, state;

        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        param D: [dim];
        input z: [batch, dim, len];
        param delta_bias: [dim];

        let dt = softplus(delta + delta_bias);
        let h = scan(discretize_a(zoh, dt, A), discretize_b(zoh, dt, A, B) * u, len);
        let y = sum(C * h, state) + D * u;
        output out = gate(y, z, silu);
    }
}

ssmc::ssm! {
    // A sigmoid gate and no skip term.
    layer SigmoidNoSkip {
        dims batch, dim, len, state;

        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        input z: [batch, dim, len];
        param delta_bias: [dim];

        let dt = softplus(delta + delta_bias);
        let h = scan(discretize_a(zoh, dt, A), discretize_b(euler, dt, A, B) * u, len);
        output out = gate(sum(C * h, state), z, sigmoid);
    }
}

fn check(name: &str, layer: Layer, file: &str) -> Result<(), Box<dyn std::error::Error>> {
    let from_file = Layer::from_file(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(file))?;
    assert!(layer.graph().same_as(from_file.graph()), "{name} differs from {file}");
    let dims: BTreeMap<String, usize> =
        [("batch", 2), ("dim", 16), ("len", 64), ("state", 16)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let x = random_inputs(layer.graph(), &dims, DType::F32, 1)?;
    let want = layer.eval(&x)?;
    for fusion in [Fusion::On, Fusion::Off] {
        let got = layer.compile(Backend::Cpu, fusion)?.run(&x)?;
        let err = got["out"].to_f64().iter().zip(want["out"].to_f64()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!("{name:>14} {fusion:?}: max |cpu - oracle| = {err:.2e}");
        assert!(err < 1e-4);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    check("Mamba1Zoh", Mamba1Zoh::new().layer(), "mamba1_zoh.ssm")?;
    check("SigmoidNoSkip", SigmoidNoSkip::new().layer(), "sigmoid_noskip.ssm")?;
    Ok(())
}

//! The generated backward on the GPU against the oracle's: every example, fused under every
//! schedule and unfused, f32 and bf16 inputs; random graphs' backwards; `sign`; and the same
//! bits run to run. Needs the `cuda` feature and a GPU; elsewhere each test checks the clean
//! error instead (see `oracle_cuda.rs`).

mod common;
use common::{assert_agree, cuda_compile as compile, dims, example, fair_for_f32, random_dims, Tolerance, EXAMPLES};
use ssmc::ir::DType;
use ssmc::random::random_inputs;
use ssmc::runtime::{HostTensor, TensorMap};
use ssmc::{Fusion, GpuSchedule, Layer};

/// ex2.approx and lg2.approx (about 2^-22 relative each), in sums of many products.
const TOL: Tolerance = Tolerance { rtol: 1e-3, atol: 1e-4, f32_overflow: true };

#[test]
fn every_examples_backward_matches_the_oracle_on_the_gpu() {
    for name in EXAMPLES {
        let back = example(name).grad().unwrap();
        let runs = GpuSchedule::ALL.map(|s| (Fusion::On, Some(s))).into_iter().chain([(Fusion::On, None), (Fusion::Off, None)]);
        for (fusion, schedule) in runs {
            let Some(compiled) = compile(&back, fusion) else { return };
            let compiled = match schedule {
                Some(s) => compiled.with_gpu_schedule(s).unwrap(),
                None => compiled,
            };
            for (b, d, l, n) in [(2, 37, 33, 16), (1, 8, 1, 16), (1, 5, 2, 3), (2, 64, 301, 16)] {
                for dtype in [DType::F32, DType::BF16] {
                    let x = random_inputs(back.graph(), &dims(&back, b, d, l, n), dtype, 6).unwrap();
                    let want = back.eval_as(&x, DType::F64).unwrap();
                    let got = compiled.run_as(&x, DType::F64).unwrap();
                    let how = schedule.map_or("autotuned".to_string(), |s| s.to_string());
                    assert_agree(&got, &want, &TOL, &format!("{name} {fusion:?} {how} {dtype} ({b},{d},{l},{n})"));
                }
            }
        }
    }
}

#[test]
fn random_backwards_match_the_oracle_on_the_gpu() {
    use ssmc::ir::gen::{random_graph, GenOptions};
    let mut fair = 0;
    for seed in 0..80u64 {
        let g = random_graph(seed, GenOptions { ops: 12, partial_ops: false });
        let Ok(back) = ssmc::ir::grad::grad(&g) else { continue };
        let back = Layer::from_graph(back).unwrap();
        let d = random_dims(&back, seed, 6);
        let x = random_inputs(back.graph(), &d, DType::F32, seed).unwrap();
        if !fair_for_f32(&back, &x) {
            continue;
        }
        fair += 1;
        let want = back.eval_as(&x, DType::F64).unwrap();
        let what = format!("seed {seed}\n{}", ssmc::ir::print::print(back.graph()));
        for fusion in [Fusion::On, Fusion::Off] {
            for schedule in [None, Some(GpuSchedule::ROWS), Some(GpuSchedule::WARP_SCAN)] {
                let Some(compiled) = compile(&back, fusion) else { return };
                let compiled = match schedule {
                    Some(s) => compiled.with_gpu_schedule(s).unwrap(),
                    None => compiled,
                };
                let got = compiled.run_as(&x, DType::F64).unwrap();
                assert_agree(&got, &want, &TOL, &format!("{what} {fusion:?} {schedule:?}"));
            }
        }
    }
    assert!(fair >= 40, "only {fair} of 80 random backwards were fair tests");
}

#[test]
fn the_backward_gives_the_same_bits_run_to_run() {
    let back = example("mamba1.ssm").grad().unwrap();
    let x = random_inputs(back.graph(), &dims(&back, 2, 64, 301, 16), DType::F32, 9).unwrap();
    for schedule in GpuSchedule::ALL {
        let Some(compiled) = compile(&back, Fusion::On) else { return };
        let compiled = compiled.with_gpu_schedule(schedule).unwrap();
        let first = compiled.run(&x).unwrap();
        for _ in 0..3 {
            let again = compiled.run(&x).unwrap();
            for (name, t) in &first {
                let bits = |t: &HostTensor| t.to_f64().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(t), bits(&again[name]), "{schedule}: {name} differs between runs");
            }
        }
    }
}

#[test]
fn sign_is_exact_on_the_gpu() {
    let layer = Layer::parse("layer M { dims n; input x: [n]; output y = sign(x); }").unwrap();
    let Some(compiled) = compile(&layer, Fusion::Off) else { return };
    let xs = [-3.0, -1e-40, -0.0, 0.0, 1e-30, 5.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    let mut inputs = TensorMap::new();
    inputs.insert("x".into(), HostTensor::from_f64(DType::F32, vec![xs.len()], &xs).unwrap());
    let got = compiled.run(&inputs).unwrap()["y"].to_f64();
    // (without .ftz, PTX compares f32 subnormals exactly)
    let want: [f64; 8] = [-1.0, -1.0, -0.0, 0.0, 1.0, 1.0, 1.0, -1.0];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(got[i].to_bits(), w.to_bits(), "sign({}) = {}", xs[i], got[i]);
    }
    assert!(got[8].is_nan());
}

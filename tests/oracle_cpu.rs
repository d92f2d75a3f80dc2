//! The CPU backend against the oracle: every example, fused and unfused, every schedule, each
//! input dtype; random graphs and sizes; the edge cases of the issue (len 1, odd lengths,
//! state 1, huge delta, very negative A, NaN and infinity).

use proptest::prelude::*;
use ssmc::ir::gen::{random_graph, GenOptions};
mod common;
use common::{assert_agree, dims, example, fair_for_f32, random_dims, random_variant, variant_shape, Tolerance, EXAMPLES, ROTARY};
use ssmc::ir::DType;
use ssmc::random::random_inputs;
use ssmc::runtime::{HostTensor, TensorMap};
use ssmc::{Backend, Fusion, Layer, Target};
use ssmc_kernel::Schedule;




/// Tolerance of f32 kernels against the f64 oracle (on the same stored input values).
const TOL: Tolerance = Tolerance { rtol: 2e-4, atol: 2e-5, f32_overflow: true };

fn check(layer: &Layer, inputs: &TensorMap, what: &str) {
    let want = layer.eval_as(inputs, DType::F64).unwrap();
    for fusion in [Fusion::On, Fusion::Off] {
        let chunks4 = Schedule { seq_chunk: 4, ..Schedule::cpu_default() };
        for (sname, schedule) in [("default", Schedule::cpu_default()), ("scalar", Schedule::cpu_scalar()), ("seq chunks of 4", chunks4)] {
            let compiled = layer.compile_for(Target::Cpu { schedule, keep_buffers: false }, fusion).unwrap();
            let got = compiled.run_as(inputs, DType::F64).unwrap();
            assert_agree(&got, &want, &TOL, &format!("{what} {fusion:?} {sname}"));
        }
    }
}

#[test]
fn every_example_matches_the_oracle() {
    for name in EXAMPLES {
        let layer = example(name);
        for (b, d, l, n) in [(2, 3, 7, 16), (1, 5, 1, 1), (2, 4, 9, 6), (2, 8, 1, 16), (3, 12, 1, 5)] {
            let x = random_inputs(layer.graph(), &dims(&layer, b, d, l, n), DType::F32, 3).unwrap();
            check(&layer, &x, &format!("{name} ({b},{d},{l},{n})"));
        }
    }
}

#[test]
fn sin_and_cos_match_the_oracle() {
    // angles up to 1e4 radians, f32 and bf16, every schedule, fused and not
    let layer = Layer::parse(ROTARY).unwrap();
    for (b, d, l, n) in [(2, 3, 7, 16), (1, 5, 1, 1), (2, 4, 9, 6), (1, 2, 70, 5)] {
        for dtype in [DType::F32, DType::BF16] {
            let x = random_inputs(layer.graph(), &dims(&layer, b, d, l, n), dtype, 7).unwrap();
            check(&layer, &x, &format!("rotary {dtype} ({b},{d},{l},{n})"));
        }
    }
}

#[test]
fn bf16_and_f16_inputs_are_converted_on_load() {
    let layer = example("mamba1.ssm");
    for dtype in [DType::BF16, DType::F16, DType::F64] {
        let x = random_inputs(layer.graph(), &dims(&layer, 2, 4, 9, 16), dtype, 5).unwrap();
        check(&layer, &x, &format!("mamba1 {dtype}"));
    }
    // mixed, as the reference allows: activations bf16, A/D/delta_bias f32
    let mut x = random_inputs(layer.graph(), &dims(&layer, 2, 4, 9, 16), DType::BF16, 6).unwrap();
    for p in ["A", "D", "delta_bias"] {
        let t = x[p].cast(DType::F32);
        x.insert(p.into(), t);
    }
    check(&layer, &x, "mamba1 mixed");
}

#[test]
fn seq_chunks_match_the_oracle() {
    // the default schedule's chunks of 64 steps, then blocks of 4 and single steps for the rest
    // (150 = 2 x 64 + 5 x 4 + 2); state 12 is three vectors, bf16 inputs convert in the chunks
    for name in EXAMPLES {
        let layer = example(name);
        for (b, d, l, n, dtype) in [(2, 3, 150, 16, DType::F32), (1, 4, 64, 12, DType::F32), (1, 2, 131, 8, DType::BF16)] {
            let x = random_inputs(layer.graph(), &dims(&layer, b, d, l, n), dtype, 12).unwrap();
            let want = layer.eval_as(&x, DType::F64).unwrap();
            for fusion in [Fusion::On, Fusion::Off] {
                let got = layer.compile(Backend::Cpu, fusion).unwrap().run_as(&x, DType::F64).unwrap();
                assert_agree(&got, &want, &TOL, &format!("{name} ({b},{d},{l},{n}) {dtype} {fusion:?}"));
            }
        }
    }
}

#[test]
fn row_chunks_match_the_oracle() {
    // one-step kernels in chunks of 64, 32 and 8 rows (the largest that divides dim), split over
    // one, all or three threads on chunk boundaries; state 12 is three vectors (a pair and one
    // alone), state 8 one pair
    let layer = example("mamba1_step.ssm");
    for (b, d, n, dtype) in [(1, 64, 16, DType::F32), (3, 96, 12, DType::F32), (2, 40, 16, DType::BF16), (5, 128, 8, DType::F32)] {
        let x = random_inputs(layer.graph(), &dims(&layer, b, d, 1, n), dtype, 13).unwrap();
        let want = layer.eval_as(&x, DType::F64).unwrap();
        for threads in [1, 0, 3] {
            let schedule = Schedule { threads, ..Schedule::cpu_default() };
            let got = layer.compile_for(Target::Cpu { schedule, keep_buffers: false }, Fusion::On).unwrap().run_as(&x, DType::F64).unwrap();
            assert_agree(&got, &want, &TOL, &format!("mamba1_step ({b},{d},1,{n}) {dtype} threads {threads}"));
        }
    }
}

#[test]
fn long_state_loops_instead_of_unrolling() {
    // state 80 > the unroll limit: states live in a stack buffer
    let layer = example("mamba1_step.ssm");
    let x = random_inputs(layer.graph(), &dims(&layer, 1, 3, 5, 80), DType::F32, 8).unwrap();
    check(&layer, &x, "state 80");
}

fn set(x: &mut TensorMap, name: &str, f: impl Fn(usize, f64) -> f64) {
    let t = &x[name];
    let v: Vec<f64> = t.to_f64().iter().enumerate().map(|(i, v)| f(i, *v)).collect();
    let nt = HostTensor::from_f64(t.dtype(), t.shape().to_vec(), &v).unwrap();
    x.insert(name.into(), nt);
}

#[test]
fn softplus_overflow_path_and_very_negative_a() {
    let layer = example("mamba1.ssm");
    let mut x = random_inputs(layer.graph(), &dims(&layer, 1, 4, 8, 16), DType::F32, 9).unwrap();
    set(&mut x, "delta", |i, v| if i % 3 == 0 { 80.0 + v } else { v });
    set(&mut x, "A", |i, v| if i % 2 == 0 { -1e4 } else { v });
    check(&layer, &x, "large delta, very negative A");
}

#[test]
fn nan_and_infinity_propagate_as_the_oracle_says() {
    let layer = example("mamba1.ssm");
    let mut x = random_inputs(layer.graph(), &dims(&layer, 1, 2, 6, 4), DType::F32, 10).unwrap();
    set(&mut x, "u", |i, v| match i {
        3 => f64::NAN,
        7 => f64::INFINITY,
        _ => v,
    });
    check(&layer, &x, "nan/inf");
    // in `delta` and `A`, the factors of `exp2(dt A log2 e)`: a seq chunk's range check fails
    // and the chunk takes the clamped `exp2` (chunks of 4 steps in `check`)
    let mut x = random_inputs(layer.graph(), &dims(&layer, 1, 3, 12, 4), DType::F32, 11).unwrap();
    set(&mut x, "delta", |i, v| match i {
        5 => f64::NAN,
        14 => f64::INFINITY,
        _ => v,
    });
    set(&mut x, "A", |i, v| if i == 9 { f64::NAN } else { v });
    check(&layer, &x, "nan/inf in delta and A");
}

#[test]
fn run_rejects_bad_inputs_before_any_code_runs() {
    let layer = example("mamba1.ssm");
    let compiled = layer.compile(Backend::Cpu, Fusion::On).unwrap();
    let good = random_inputs(layer.graph(), &dims(&layer, 1, 2, 3, 4), DType::F32, 1).unwrap();
    let err = |x: &TensorMap| compiled.run(x).unwrap_err().to_string();
    let mut missing = good.clone();
    missing.remove("z");
    assert!(err(&missing).contains("missing input `z`"));
    let mut extra = good.clone();
    extra.insert("zz".into(), good["z"].clone());
    assert!(err(&extra).contains("unexpected input `zz`"));
    let mut rank = good.clone();
    rank.insert("u".into(), HostTensor::from_f64(DType::F32, vec![2, 3], &[0.0; 6]).unwrap());
    assert!(err(&rank).contains("input `u`"));
    let mut clash = good.clone();
    clash.insert("D".into(), HostTensor::from_f64(DType::F32, vec![5], &[0.0; 5]).unwrap());
    assert!(err(&clash).contains("`dim`"));
    assert!(compiled.run(&good).is_ok());
}

#[test]
fn rows_split_over_threads_match_the_oracle() {
    // launches of 4096 elements or more go in pieces to the calling thread and helpers (three
    // helpers asked for explicitly, whatever the pool's size; rows not a multiple of a piece)
    for (name, (b, d, l, n)) in [("mamba1.ssm", (2, 36, 33, 16)), ("mamba1_step.ssm", (3, 100, 1, 16)), ("s4d.ssm", (1, 50, 129, 4))] {
        let layer = example(name);
        let x = random_inputs(layer.graph(), &dims(&layer, b, d, l, n), DType::F32, 21).unwrap();
        let want = layer.eval_as(&x, DType::F64).unwrap();
        for fusion in [Fusion::On, Fusion::Off] {
            for threads in [0, 4] {
                let schedule = Schedule { threads, ..Schedule::cpu_default() };
                let got = layer.compile_for(Target::Cpu { schedule, keep_buffers: false }, fusion).unwrap().run_as(&x, DType::F64).unwrap();
                assert_agree(&got, &want, &TOL, &format!("{name} {fusion:?} threads {threads}"));
            }
        }
    }
}

#[test]
fn kept_buffers_and_reused_outputs_give_what_fresh_ones_do() {
    // a second and third run see the first run's intermediates and outputs: every value in
    // them must be written again (the shapes change between runs, so buffers are resized too)
    for name in EXAMPLES {
        let layer = example(name);
        for fusion in [Fusion::On, Fusion::Off] {
            let fresh = layer.compile(Backend::Cpu, fusion).unwrap();
            let kept = layer.compile(Backend::Cpu, fusion).unwrap().keep_buffers(true).unwrap();
            let mut out = TensorMap::new();
            for (seed, (b, d, l, n)) in [(2, 8, 7, 16), (1, 4, 9, 6), (1, 4, 9, 6)].into_iter().enumerate() {
                let x = random_inputs(layer.graph(), &dims(&layer, b, d, l, n), DType::F32, 40 + seed as u64).unwrap();
                let want = fresh.run(&x).unwrap();
                // a new shape needs new outputs (ones of the old shape are an error)
                if seed == 1 {
                    out.clear();
                }
                kept.run_into(&x, &mut out).unwrap();
                assert_eq!(out, want, "{name} {fusion:?} run {seed}");
            }
        }
    }
}

#[test]
fn run_into_rejects_outputs_of_the_wrong_shape_or_dtype() {
    let layer = example("mamba1_step.ssm");
    let step = layer.compile(Backend::Cpu, Fusion::On).unwrap();
    let x = random_inputs(layer.graph(), &dims(&layer, 1, 4, 1, 16), DType::F32, 2).unwrap();
    let good = step.run(&x).unwrap();
    let err = |out: &mut TensorMap| step.run_into(&x, out).unwrap_err().to_string();
    let mut wrong_shape = good.clone();
    wrong_shape.insert("h_last".into(), HostTensor::from_f64(DType::F32, vec![1, 4, 8], &[0.0; 32]).unwrap());
    let before = wrong_shape.clone();
    let e = err(&mut wrong_shape);
    assert!(e.contains("output `h_last`") && e.contains("[1, 4, 16]"), "{e}");
    assert_eq!(wrong_shape, before, "an error leaves the outputs as they were");
    let mut wrong_dtype = good.clone();
    wrong_dtype.insert("out".into(), good["out"].cast(DType::BF16));
    let e = err(&mut wrong_dtype);
    assert!(e.contains("output `out`") && e.contains("bf16"), "{e}");
    // a generation loop: each step's state is the next step's initial state
    let (mut x, mut out) = (x, TensorMap::new());
    let mut h = x["h0"].clone();
    for _ in 0..3 {
        step.run_into(&x, &mut out).unwrap();
        let want = layer.eval(&x).unwrap();
        assert_agree(&out, &want, &TOL, "step");
        std::mem::swap(x.get_mut("h0").unwrap(), out.get_mut("h_last").unwrap());
        assert_ne!(x["h0"], h, "the state moved");
        h = x["h0"].clone();
    }
}

#[test]
fn compiled_code_is_cached_per_shape() {
    let layer = example("mamba1.ssm");
    let compiled = layer.compile(Backend::Cpu, Fusion::On).unwrap();
    let a = random_inputs(layer.graph(), &dims(&layer, 1, 2, 3, 4), DType::F32, 1).unwrap();
    let b = random_inputs(layer.graph(), &dims(&layer, 1, 2, 5, 4), DType::F32, 1).unwrap();
    let (m1, m2, m3) = (compiled.prepare(&a).unwrap(), compiled.prepare(&a).unwrap(), compiled.prepare(&b).unwrap());
    assert!(std::sync::Arc::ptr_eq(&m1, &m2));
    assert!(!std::sync::Arc::ptr_eq(&m1, &m3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ssmc::ir::gen::test_cases(48)))]

    #[test]
    fn random_graphs_match_the_oracle(seed in any::<u64>(), ops in 1usize..12) {
        let g = random_graph(seed, GenOptions { ops, partial_ops: false });
        let layer = Layer::from_graph(g).unwrap();
        let d = random_dims(&layer, seed, 6);
        let x = random_inputs(layer.graph(), &d, DType::F32, seed).unwrap();
        prop_assume!(fair_for_f32(&layer, &x));
        check(&layer, &x, &format!("seed {seed}\n{}", ssmc::ir::print::print(layer.graph())));
    }
}

/// The same property over many fixed seeds, so a kernel bug cannot hide behind proptest's luck.
#[test]
fn a_thousand_random_graphs_match_the_oracle() {
    let (mut fair, n) = (0, ssmc::ir::gen::test_cases(1000));
    for seed in 0..n as u64 {
        let g = random_graph(seed, GenOptions { ops: 12, partial_ops: false });
        let layer = Layer::from_graph(g).unwrap();
        let d = random_dims(&layer, seed, 6);
        let x = random_inputs(layer.graph(), &d, DType::F32, seed).unwrap();
        if fair_for_f32(&layer, &x) {
            fair += 1;
            check(&layer, &x, &format!("seed {seed}"));
        }
    }
    assert!(fair >= n * 6 / 10, "only {fair} of {n} random graphs were fair tests");
}

#[test]
fn random_ssm_variants_match_the_oracle() {
    // layers a user would write (common::random_variant: dt, discretizations, LTI or selective
    // B and C, direction, initial and final states, skip, gate), at random sizes
    let (mut fair, mut convs, n) = (0, 0u32, ssmc::ir::gen::test_cases(40));
    for seed in 0..n as u64 {
        let text = random_variant(seed);
        convs += text.contains("conv1d") as u32;
        let layer = Layer::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let (b, d, l, n) = variant_shape(seed);
        let x = random_inputs(layer.graph(), &dims(&layer, b, d, l, n), DType::F32, seed).unwrap();
        if fair_for_f32(&layer, &x) {
            fair += 1;
            check(&layer, &x, &format!("({b},{d},{l},{n})\n{text}"));
        }
    }
    assert!(fair >= n * 3 / 4, "only {fair} of {n} variants were fair tests");
    assert!(convs >= n / 8, "{convs} of {n} variants convolve their input");
}


//! The GPU backend against the oracle: every example, fused and unfused, f32 and bf16 inputs.
//! Needs the `cuda` feature and a GPU; elsewhere each test checks the clean error instead.
//!
//! On a GPU machine: `cargo test --release --features cuda --test oracle_cuda` (or the carried
//! test binary with `SSMC_REQUIRE_GPU=1`, so a missing GPU fails instead of skipping).

mod common;
use common::{assert_agree, cuda_compile as compile, dims, example, fair_for_f32, random_dims, random_variant, variant_shape, Tolerance, EXAMPLES, ROTARY, TWO_READOUTS, two_readouts_products_only};
use ssmc::ir::DType;
use ssmc::random::random_inputs;
use ssmc::{Backend, Block, Chunks, Fusion, GpuSchedule, LaneWidth, Layer, Tiles};




/// The fused plan of `layer` under the warp scan, or `None` as [`compile`] says.
fn warp_scan(layer: &Layer) -> Option<ssmc::CompiledLayer> {
    compile(layer, Fusion::On).map(|c| c.with_gpu_schedule(GpuSchedule::WARP_SCAN).unwrap())
}

/// ex2.approx and lg2.approx: about 2^-22 relative each.
const TOL: Tolerance = Tolerance { rtol: 1e-3, atol: 1e-4, f32_overflow: false };

/// `compiled` against the oracle on random inputs at each (batch, dim, len, state) and dtype.
fn check(layer: &Layer, compiled: &ssmc::CompiledLayer, shapes: &[(usize, usize, usize, usize)], dtypes: &[DType], seed: u64, what: &str) {
    for &(b, d, l, n) in shapes {
        for &dtype in dtypes {
            let x = random_inputs(layer.graph(), &dims(layer, b, d, l, n), dtype, seed).unwrap();
            let want = layer.eval_as(&x, DType::F64).unwrap();
            let got = compiled.run_as(&x, DType::F64).unwrap();
            assert_agree(&got, &want, &TOL, &format!("{what} {dtype} ({b},{d},{l},{n})"));
        }
    }
}

#[test]
fn every_example_matches_the_oracle_on_the_gpu() {
    for name in EXAMPLES {
        let layer = example(name);
        for fusion in [Fusion::On, Fusion::Off] {
            for schedule in GpuSchedule::ALL {
                let Some(compiled) = compile(&layer, fusion) else { return };
                let compiled = compiled.with_gpu_schedule(schedule).unwrap();
                // (2, 64, ..): warps inside one batch (B and C staged once per warp), rows a
                // multiple of 32 (chunks tiled too); 37 and 3: warps across batches and rows
                let shapes = [(2, 37, 33, 16), (1, 8, 1, 16), (2, 5, 9, 3), (2, 37, 203, 16), (1, 3, 1000, 5), (2, 64, 301, 16), (3, 32, 70, 6)];
                check(&layer, &compiled, &shapes, &[DType::F32, DType::BF16], 4, &format!("{name} {fusion:?} {schedule}"));
            }
        }
    }
}

#[test]
fn sin_and_cos_match_the_oracle_on_the_gpu() {
    // sin.approx and cos.approx of arguments reduced to [-pi, pi] from up to 1e4 radians, f32
    // and bf16, fused under every schedule and unfused
    let layer = Layer::parse(ROTARY).unwrap();
    let runs = GpuSchedule::ALL.map(|s| (Fusion::On, s)).into_iter().chain([(Fusion::Off, GpuSchedule::ROWS)]);
    for (fusion, schedule) in runs {
        let Some(compiled) = compile(&layer, fusion) else { return };
        let compiled = compiled.with_gpu_schedule(schedule).unwrap();
        let shapes = [(2, 37, 33, 16), (1, 8, 1, 16), (2, 64, 301, 16), (1, 3, 100, 5)];
        check(&layer, &compiled, &shapes, &[DType::F32, DType::BF16], 8, &format!("rotary {fusion:?} {schedule}"));
    }
}

#[test]
fn random_graphs_match_the_oracle_on_the_gpu() {
    // the CPU's random graphs (every op, random shapes and wiring; those whose f32 evaluation is
    // well conditioned), fused and unfused, under the autotuner and under every schedule
    use ssmc::ir::gen::{random_graph, GenOptions};
    let mut fair = 0;
    for seed in 0..100u64 {
        let layer = Layer::from_graph(random_graph(seed, GenOptions { ops: 12, partial_ops: false })).unwrap();
        let d = random_dims(&layer, seed, 6);
        let x = random_inputs(layer.graph(), &d, DType::F32, seed).unwrap();
        if !fair_for_f32(&layer, &x) {
            continue;
        }
        fair += 1;
        let want = layer.eval_as(&x, DType::F64).unwrap();
        let what = format!("seed {seed}\n{}", ssmc::ir::print::print(layer.graph()));
        for fusion in [Fusion::On, Fusion::Off] {
            let Some(tuned) = compile(&layer, fusion) else { return };
            assert_agree(&tuned.run_as(&x, DType::F64).unwrap(), &want, &RANDOM_TOL, &format!("{what} {fusion:?} autotuned"));
            for schedule in GpuSchedule::ALL {
                let Some(compiled) = compile(&layer, fusion) else { return };
                let got = compiled.with_gpu_schedule(schedule).unwrap().run_as(&x, DType::F64).unwrap();
                assert_agree(&got, &want, &RANDOM_TOL, &format!("{what} {fusion:?} {schedule}"));
            }
        }
    }
    assert!(fair >= 75, "only {fair} of 100 random graphs were fair tests");
}

/// [`TOL`], with f32's overflow to infinity where the oracle's value is beyond f32 (as on the CPU).
const RANDOM_TOL: Tolerance = Tolerance { f32_overflow: true, ..TOL };

#[test]
fn random_ssm_variants_match_the_oracle_on_the_gpu() {
    // layers a user would write (common::random_variant), f32 and bf16, at a random shape and at
    // one the warp scan and chunks take (300 steps: blocks and a partial one): the fused plan
    // autotuned and under every schedule, the unfused plan a thread per row
    let mut fair = 0;
    for seed in 0..24u64 {
        let text = random_variant(seed);
        let layer = Layer::parse(&text).unwrap();
        let shape = variant_shape(seed);
        let shapes = [shape, (2, 64, 300, shape.3)];
        for (b, d, l, n) in shapes {
            for dtype in [DType::F32, DType::BF16] {
                let x = random_inputs(layer.graph(), &dims(&layer, b, d, l, n), dtype, seed).unwrap();
                if !fair_for_f32(&layer, &x) {
                    continue;
                }
                fair += 1;
                let want = layer.eval_as(&x, DType::F64).unwrap();
                let what = format!("({b},{d},{l},{n}) {dtype}\n{text}");
                let Some(tuned) = compile(&layer, Fusion::On) else { return };
                assert_agree(&tuned.run_as(&x, DType::F64).unwrap(), &want, &TOL, &format!("{what} autotuned"));
                let runs = GpuSchedule::ALL.map(|s| (Fusion::On, s)).into_iter().chain([(Fusion::Off, GpuSchedule::ROWS)]);
                for (fusion, schedule) in runs {
                    let Some(compiled) = compile(&layer, fusion) else { return };
                    let got = compiled.with_gpu_schedule(schedule).unwrap().run_as(&x, DType::F64).unwrap();
                    assert_agree(&got, &want, &TOL, &format!("{what} {fusion:?} {schedule}"));
                }
            }
        }
    }
    assert!(fair >= 70, "only {fair} of 96 (variant, shape, dtype) cases were fair tests");
}

/// A time-invariant step small enough (0.001 to 0.1) that the initial state decays little over
/// a whole sequence: it must reach every chunk.
const SLOW_DECAY_FROM_H0: &str = "layer SlowDecay {
    dims batch, dim, len, state;
    input u: [batch, dim, len];
    param log_dt: [dim] in -6.9..-2.3;
    param A: [dim, state] in -4.0..-0.5;
    input B: [batch, state, len];
    input C: [batch, state, len];
    input h0: [batch, dim, state];
    let dt = exp(log_dt);
    let h = scan(discretize_a(zoh, dt, A), discretize_b(euler, dt, A, B) * u, len, init = h0);
    output y = sum(C * h, state);
    output h_last = final_state(h);
}";

#[test]
fn an_initial_state_reaches_every_chunk() {
    // found by the random variants: the summary pass scanned chunk 0 from zero, so chunks after
    // the first missed the initial state (invisible where it decays within a chunk, as in Mamba)
    check_chunked(&Layer::parse(SLOW_DECAY_FROM_H0).unwrap(), &[0, 2, 8], &[(2, 64, 1024, 16), (1, 37, 300, 5)], 23);
}

/// `layer` under both chunked schedules at each chunk count (0: the default), f32 and bf16.
fn check_chunked(layer: &Layer, counts: &[usize], shapes: &[(usize, usize, usize, usize)], seed: u64) {
    for base in [GpuSchedule::CHUNKED, GpuSchedule::CHUNKED_LEAN] {
        for &chunks in counts {
            let Some(compiled) = compile(layer, Fusion::On) else { return };
            let chunks = if chunks == 0 { Chunks::FILL } else { Chunks::exactly(chunks).unwrap() };
            let schedule = GpuSchedule::Chunked { chunks, tiles: base.tiles(), block: base.block() };
            let compiled = compiled.with_gpu_schedule(schedule).unwrap();
            check(layer, &compiled, shapes, &[DType::F32, DType::BF16], seed, &schedule.to_string());
        }
    }
}

#[test]
fn chunk_counts_the_autotuner_tries_match_the_oracle() {
    // the autotuner times the chunked schedules at half and twice their default count too
    // 100 steps hold any count to 2 chunks (at least 32 steps a chunk)
    check_chunked(&example("mamba1.ssm"), &[2, 8, 32], &[(2, 64, 1024, 16), (1, 37, 100, 16)], 17);
}

#[test]
fn block_and_tile_sizes_the_autotuner_tries_match_the_oracle() {
    // the autotuner times its fastest schedule at 64 and 256 threads a block too and, where it
    // stages tiles, at 8 and 32 steps a tile; at 256 threads the warp scan's combine has no
    // room for 32 states' regions, so that kernel runs a thread per row
    let layer = example("mamba1.ssm");
    let bases = [GpuSchedule::WARP_SCAN, GpuSchedule::TILED, GpuSchedule::CHUNKED, GpuSchedule::LANES4];
    let blocks = bases.iter().flat_map(|&s| [32, 64, 256].map(|b| s.with_block(Block::new(b).unwrap())));
    let tiles = [8, 32].map(|t| GpuSchedule::TILED.with_tiles(Some(Tiles::new(t, true).unwrap())));
    for schedule in blocks.chain(tiles) {
        let Some(compiled) = compile(&layer, Fusion::On) else { return };
        let compiled = compiled.with_gpu_schedule(schedule).unwrap();
        check(&layer, &compiled, &[(2, 64, 1024, 16), (1, 37, 300, 32)], &[DType::F32, DType::BF16], 19, &schedule.to_string());
    }
}

#[test]
fn f16_and_f64_inputs_through_tiles_match_the_oracle() {
    for name in ["mamba1.ssm", "reverse.ssm"] {
        let layer = example(name);
        for schedule in [GpuSchedule::TILED, GpuSchedule::CHUNKED_LEAN, GpuSchedule::WARP_SCAN] {
            let Some(compiled) = compile(&layer, Fusion::On) else { return };
            let compiled = compiled.with_gpu_schedule(schedule).unwrap();
            check(&layer, &compiled, &[(2, 64, 301, 16)], &[DType::F16, DType::F64], 6, &format!("{name} {schedule}"));
        }
    }
}

#[test]
fn odd_state_counts_through_warp_shared_tiles_match_the_oracle() {
    // dim a multiple of 32: B and C staged once per warp; 5 and 7 states: the last fill
    // instruction covers fewer inner indices than lanes
    let layer = example("mamba1.ssm");
    for schedule in [GpuSchedule::TILED, GpuSchedule::CHUNKED, GpuSchedule::CHUNKED_LEAN, GpuSchedule::WARP_SCAN] {
        let Some(compiled) = compile(&layer, Fusion::On) else { return };
        let compiled = compiled.with_gpu_schedule(schedule).unwrap();
        check(&layer, &compiled, &[(1, 32, 40, 5), (2, 64, 130, 7), (1, 32, 200, 1)], &[DType::F32, DType::BF16], 7, &format!("{schedule}"));
    }
}

#[test]
fn the_warp_scan_carries_states_across_blocks() {
    // lengths that fill whole blocks of 128 steps, end inside a lane's vector of 4 or inside a
    // block; with an initial state in and the last state out (mamba1_step), and without
    for name in ["mamba1_step.ssm", "mamba1.ssm", "s4d.ssm"] {
        let layer = example(name);
        let Some(compiled) = warp_scan(&layer) else { return };
        // state 40: more states than lanes, combined with shuffles instead of shared memory
        let shapes = [(2, 3, 64, 16), (1, 2, 128, 16), (2, 3, 512, 16), (1, 2, 516, 16), (1, 2, 1001, 4), (2, 1, 4096, 16), (1, 2, 300, 40), (1, 2, 512, 40)];
        check(&layer, &compiled, &shapes, &[DType::F32, DType::BF16], 8, &format!("{name} warpscan"));
    }
}

#[test]
fn lane_blocks_with_vectors_match_the_oracle() {
    // lengths a multiple of the lanes a row: `B` and `C` move as vectors of four steps and the
    // sums reduce-scatter once a block (4, 8 and 16 lanes a row; 5 and 12 states leave lanes
    // idle); 203: partial blocks, per-step sums
    let more = [8, 16].map(|w| GpuSchedule::Lanes { width: LaneWidth::new(w).unwrap(), block: Block::DEFAULT });
    for name in ["mamba1.ssm", "mamba1_step.ssm", "s4d.ssm"] {
        let layer = example(name);
        for schedule in [GpuSchedule::LANES, GpuSchedule::LANES2, GpuSchedule::LANES4].iter().chain(&more) {
            let Some(compiled) = compile(&layer, Fusion::On) else { return };
            let compiled = compiled.with_gpu_schedule(*schedule).unwrap();
            let shapes = [(2, 37, 64, 16), (1, 3, 1000, 5), (2, 5, 48, 12), (1, 4, 203, 16), (2, 8, 256, 32)];
            check(&layer, &compiled, &shapes, &[DType::F32, DType::BF16, DType::F16], 9, &format!("{name} {schedule}"));
        }
    }
}

#[test]
fn mamba1_at_a_benchmark_shape_matches_the_cpu() {
    let layer = example("mamba1.ssm");
    let Some(gpu) = compile(&layer, Fusion::On) else { return };
    let cpu = layer.compile(Backend::Cpu, Fusion::On).unwrap();
    let x = random_inputs(layer.graph(), &dims(&layer, 2, 256, 512, 16), DType::BF16, 5).unwrap();
    let (g, c) = (gpu.run(&x).unwrap(), cpu.run(&x).unwrap());
    let worst = g["out"].to_f64().iter().zip(c["out"].to_f64()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-3, "gpu and cpu differ by {worst}");
}

#[test]
fn a_long_state_loops_in_local_memory_on_the_gpu() {
    // state 80: more than the GPU schedule unrolls, so states live in local memory
    let layer = example("mamba1_step.ssm");
    for fusion in [Fusion::On, Fusion::Off] {
        let Some(compiled) = compile(&layer, fusion) else { return };
        check(&layer, &compiled, &[(2, 7, 21, 80)], &[DType::F32], 6, &format!("state 80 {fusion:?}"));
    }
}

#[test]
fn the_warp_scan_reads_out_a_state_twice() {
    let layer = Layer::parse(TWO_READOUTS).unwrap();
    let Some(compiled) = warp_scan(&layer) else { return };
    check(&layer, &compiled, &[(2, 3, 256, 16), (1, 2, 301, 16), (1, 2, 300, 40)], &[DType::F32, DType::BF16], 9, "two readouts warpscan");
}

#[test]
fn the_warp_scan_takes_16_bit_states_in_two_passes() {
    // whole blocks of 256 steps with 16-bit inputs: 8 steps a lane, the states in two passes
    // (4, 5, 7, 8 and 16 a pass), the steps' sums carried from the first into the second; with
    // an initial and final state, and two readouts of the state
    for name in ["mamba1.ssm", "mamba1_step.ssm"] {
        let layer = example(name);
        let Some(compiled) = warp_scan(&layer) else { return };
        let shapes = [(2, 4, 256, 8), (1, 4, 512, 10), (1, 8, 256, 14), (2, 4, 512, 16), (1, 4, 768, 32)];
        check(&layer, &compiled, &shapes, &[DType::BF16, DType::F16], 13, &format!("{name} warpscan two passes"));
    }
    let layer = Layer::parse(&two_readouts_products_only()).unwrap();
    let Some(compiled) = warp_scan(&layer) else { return };
    check(&layer, &compiled, &[(2, 4, 512, 16), (1, 4, 256, 10)], &[DType::BF16], 14, "two products warpscan two passes");
}

#[test]
fn lanes_owning_runs_of_states_match_the_oracle() {
    // runs of 2, 4, 8 and 16 states a lane: 2 to 32 lanes a row, rows straddling warps (dim 9);
    // 12 states with runs of 8 do not split: one thread a row
    for name in ["mamba1_step.ssm", "mamba1.ssm"] {
        let layer = example(name);
        for width in [2, 4, 8, 16] {
            let Some(compiled) = compile(&layer, Fusion::On) else { return };
            let compiled = compiled.with_gpu_schedule(GpuSchedule::Lanes { width: LaneWidth::new(width).unwrap(), block: Block::DEFAULT }).unwrap();
            let shapes = [(3, 9, 1, 16), (2, 9, 33, 32), (1, 5, 1, 64), (2, 3, 7, 8), (1, 4, 5, 12)];
            check(&layer, &compiled, &shapes, &[DType::F32, DType::BF16], 10, &format!("{name} lanes{width}"));
        }
    }
}

#[test]
fn the_warp_scan_reads_16_bit_vectors_of_steps() {
    // 16-bit inputs in whole vectors of a lane's steps (lengths a multiple of 4), rows of a
    // block of threads in one batch (dims a multiple of 4): whole and partial last blocks of
    // steps, state counts below a warp's 4 rows (5, 3, 1), and an initial and final state
    for name in ["mamba1.ssm", "mamba1_step.ssm"] {
        let layer = example(name);
        let Some(compiled) = warp_scan(&layer) else { return };
        let shapes = [(2, 8, 256, 16), (1, 4, 1000, 16), (2, 12, 132, 5), (3, 4, 64, 3), (1, 8, 200, 1), (1, 16, 4096, 16)];
        check(&layer, &compiled, &shapes, &[DType::BF16, DType::F16], 11, &format!("{name} warpscan 16-bit"));
    }
}

#[test]
fn decode_steps_with_run_into_carry_the_state_on_the_gpu() {
    let layer = example("mamba1_step.ssm");
    let Some(step) = compile(&layer, Fusion::On) else { return };
    let mut x = random_inputs(layer.graph(), &dims(&layer, 2, 64, 1, 16), DType::F32, 12).unwrap();
    let mut out = ssmc::runtime::TensorMap::new();
    for _ in 0..3 {
        step.run_into(&x, &mut out).unwrap();
        let want = layer.eval_as(&x, DType::F64).unwrap();
        assert_agree(&out, &want, &TOL, "decode step");
        std::mem::swap(x.get_mut("h0").unwrap(), out.get_mut("h_last").unwrap());
    }
    // outputs of the wrong shape are an error that leaves them as they were
    let mut wrong = out.clone();
    wrong.insert("h_last".into(), ssmc::runtime::HostTensor::from_f64(DType::F32, vec![2, 64, 8], &[0.0; 1024]).unwrap());
    let before = wrong.clone();
    let e = step.run_into(&x, &mut wrong).unwrap_err().to_string();
    assert!(e.contains("output `h_last`"), "{e}");
    assert_eq!(wrong, before);
}

//! Every example's PTX, fused and unfused, f32 and bf16 inputs, assembles with ptxas for sm_90.
//! The test command installs ptxas (PyPI `nvidia-cuda-nvcc-cu12`); without it this test fails
//! unless `SSMC_SKIP_PTXAS=1` says it may be skipped.

mod common;
use common::{example, random_dims, random_variant, variant_shape, EXAMPLES, ROTARY, TWO_READOUTS, two_readouts_products_only};
use ssmc::ir::DType;
use ssmc::{Block, Chunks, Fusion, GpuSchedule, LaneWidth, ScheduleError, Tiles};
use std::collections::BTreeMap;


/// ptxas, or `None` where `SSMC_SKIP_PTXAS` allows the test to be skipped without it (otherwise
/// a missing ptxas fails the test).
fn ptxas() -> Option<std::path::PathBuf> {
    let found = ssmc_ptx::ptxas::find();
    assert!(
        found.is_some() || std::env::var("SSMC_SKIP_PTXAS").is_ok(),
        "ptxas not found: run ./test.sh (it installs nvidia-cuda-nvcc-cu12) or set SSMC_PTXAS"
    );
    found
}

#[test]
fn every_example_assembles_for_sm90() {
    let Some(ptxas) = ptxas() else { return };
    let dims: BTreeMap<String, usize> =
        [("batch", 2), ("dim", 64), ("len", 128), ("state", 16), ("width", 4)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let mut report = Vec::new();
    for name in EXAMPLES {
        let layer = example(name);
        let d: BTreeMap<String, usize> = dims.iter().filter(|(k, _)| layer.graph().dim(k).is_some()).map(|(k, v)| (k.clone(), *v)).collect();
        for fusion in [Fusion::On, Fusion::Off] {
            for dtype in [DType::F32, DType::BF16] {
                // the quick tier: every third schedule
                for schedule in GpuSchedule::ALL.into_iter().step_by(if ssmc::ir::gen::quick() { 3 } else { 1 }) {
                    let ptx = ssmc::gpu::ptx(&layer, fusion, &d, dtype, schedule).unwrap();
                    let kernels = ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90)
                        .unwrap_or_else(|log| panic!("{name} {fusion:?} {dtype} {schedule}: ptxas failed:\n{log}\n{ptx}"));
                    assert!(!kernels.is_empty(), "{name}: ptxas reported no kernels");
                    for k in kernels {
                        report.push(format!("{name} {fusion:?} {dtype} {schedule} {}: {} registers, {} B spilled", k.name, k.registers, k.spill_stores));
                    }
                }
            }
        }
    }
    // f16 and f64 inputs through the tiles (widened when stored to shared memory)
    for name in ["mamba1.ssm", "reverse.ssm"] {
        let layer = example(name);
        let d: BTreeMap<String, usize> = dims.iter().filter(|(k, _)| layer.graph().dim(k).is_some()).map(|(k, v)| (k.clone(), *v)).collect();
        for dtype in [DType::F16, DType::F64] {
            for schedule in [GpuSchedule::TILED, GpuSchedule::CHUNKED_LEAN] {
                let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &d, dtype, schedule).unwrap();
                assert!(ptx.contains("tile_smem"), "{name} {dtype} {schedule}: expected tiles");
                ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{name} {dtype} {schedule}: {log}"));
            }
        }
    }
    // a state longer than the unroll limit: states in local memory
    let layer = example("mamba1_step.ssm");
    let d: BTreeMap<String, usize> = [("batch", 2), ("dim", 8), ("len", 16), ("state", 80)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for fusion in [Fusion::On, Fusion::Off] {
        let ptx = ssmc::gpu::ptx(&layer, fusion, &d, DType::F32, GpuSchedule::TILED).unwrap();
        ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("state 80 {fusion:?}: {log}"));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn every_examples_backward_assembles_for_sm90() {
    // shift and window read their neighbours under every schedule, reversed convs look ahead,
    // broadcasts copy, sign selects
    let Some(ptxas) = ptxas() else { return };
    for name in EXAMPLES {
        let back = example(name).grad().unwrap();
        let d: BTreeMap<String, usize> = [("batch", 2), ("dim", 64), ("len", 33), ("state", 16), ("width", 4)]
            .into_iter()
            .filter(|(k, _)| back.graph().dim(k).is_some())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        // (the unfused backward has ~50 kernels: one schedule and dtype of it; the fused one
        // under every schedule in f32, and in bf16 one thread per row)
        let every = GpuSchedule::ALL.into_iter().step_by(if ssmc::ir::gen::quick() { 3 } else { 1 });
        let runs = every
            .map(|s| (Fusion::On, DType::F32, s))
            .chain([(Fusion::On, DType::BF16, GpuSchedule::ROWS), (Fusion::Off, DType::F32, GpuSchedule::ROWS)]);
        for (fusion, dtype, schedule) in runs {
            let what = format!("{name} backward {fusion:?} {dtype} {schedule}");
            let ptx = ssmc::gpu::ptx(&back, fusion, &d, dtype, schedule).unwrap_or_else(|e| panic!("{what}: {e}"));
            ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{what}: ptxas failed:\n{log}"));
        }
    }
    let layer = ssmc::Layer::parse("layer S { dims n; input x: [n]; output y = sign(x) * abs(x); }").unwrap();
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &BTreeMap::from([("n".to_string(), 100)]), DType::F32, GpuSchedule::ROWS).unwrap();
    assert!(ptx.contains("copysign.f32"), "{ptx}");
    ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("sign: ptxas failed:\n{log}"));
}

#[test]
fn sin_and_cos_reduce_their_argument_and_assemble_under_every_schedule() {
    let Some(ptxas) = ptxas() else { return };
    let layer = ssmc::Layer::parse(ROTARY).unwrap();
    for (fusion, schedules) in [(Fusion::On, &GpuSchedule::ALL[..]), (Fusion::Off, &GpuSchedule::ALL[..2])] {
        for &schedule in schedules {
            for dtype in [DType::F32, DType::BF16] {
                let what = format!("{fusion:?} {schedule} {dtype}");
                let ptx = ssmc::gpu::ptx(&layer, fusion, &sizes(2, 64, 300), dtype, schedule).unwrap_or_else(|e| panic!("{what}: {e}"));
                // each reduced to [-pi, pi] (rint(x / 2pi), then x - k 2pi in two parts) first
                for op in ["sin", "cos"] {
                    let at = ptx.find(&format!("{op}.approx.f32")).unwrap_or_else(|| panic!("{what}: no {op}"));
                    let before = &ptx[..at];
                    assert!(before.contains("cvt.rni.f32.f32") && before.contains("0fC0C90FDB") && before.contains("0f343BBD2E"), "{what}: {op} unreduced");
                }
                ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{what}: ptxas failed:\n{log}"));
            }
        }
    }
}

#[test]
fn emitted_ptx_is_deterministic() {
    let dims: BTreeMap<String, usize> = [("batch", 2), ("dim", 64), ("len", 256)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    for name in EXAMPLES {
        let layer = example(name);
        let d: BTreeMap<String, usize> = dims.iter().filter(|(k, _)| layer.graph().dim(k).is_some()).map(|(k, v)| (k.clone(), *v)).collect();
        for schedule in GpuSchedule::ALL {
            let a = ssmc::gpu::ptx(&layer, Fusion::On, &d, DType::F32, schedule).unwrap();
            let b = ssmc::gpu::ptx(&layer, Fusion::On, &d, DType::F32, schedule).unwrap();
            assert_eq!(a, b, "{name} {schedule}");
        }
    }
}

/// Global loads of `ty` (`v4.f32`, ...) in `ptx`, with or without a cache hint.
fn loads(ptx: &str, ty: &str) -> usize {
    ptx.lines().filter(|l| l.contains("ld.global.nc.") && l.contains(&format!(".{ty} "))).count()
}

fn sizes(b: usize, d: usize, l: usize) -> BTreeMap<String, usize> {
    [("batch", b), ("dim", d), ("len", l), ("state", 16)].into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[test]
fn tiles_stage_per_row_inputs_per_row_and_shared_inputs_once_per_warp() {
    let layer = example("mamba1.ssm");
    // dim 64: each warp's 32 rows lie in one batch. u, delta, z and out are staged per row
    // ([32][17] f32 each), B and C once per warp ([16 steps][20] f32 each), for 4 warps a block
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 64, 128), DType::F32, GpuSchedule::TILED).unwrap();
    assert!(ptx.contains("tile_smem[45056]"), "{ptx}");
    // B and C as 4 broadcast vectors each, per step: 4 unrolled copies of the step and one for
    // a partial tile
    assert_eq!(ptx.matches("ld.shared.v4.f32").count(), 2 * 4 * 5);
    assert!(ptx.contains("bar.warp.sync"));
    // dim 37: warps straddle batches, so B and C are read in place; the per-row stages remain
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 37, 128), DType::F32, GpuSchedule::TILED).unwrap();
    assert!(ptx.contains("tile_smem[34816]"), "{ptx}");
    assert_eq!(ptx.matches("ld.shared.v4.f32").count(), 0);
    // chunks of 74 rows would split warps between chunks: no tiles there
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 37, 256), DType::F32, GpuSchedule::CHUNKED).unwrap();
    assert!(ptx.contains("_summary") && !ptx.contains("tile_smem"));
    // lanes over the state dim and the untiled schedule read global memory directly
    for schedule in [GpuSchedule::LANES, GpuSchedule::ROWS] {
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 64, 128), DType::F32, schedule).unwrap();
        assert!(!ptx.contains("tile_smem"), "{schedule}");
    }
    // a one-step kernel has nothing to tile
    let step = example("mamba1_step.ssm");
    let ptx = ssmc::gpu::ptx(&step, Fusion::On, &sizes(2, 64, 1), DType::F32, GpuSchedule::TILED).unwrap();
    assert!(!ptx.contains("tile_smem"));
}

#[test]
fn lanes_of_four_states_move_the_state_in_16_byte_vectors() {
    let Some(ptxas) = ptxas() else { return };
    let step = example("mamba1_step.ssm");
    let mut d = sizes(64, 4096, 1);
    let ptx = ssmc::gpu::ptx(&step, Fusion::On, &d, DType::F32, GpuSchedule::LANES4).unwrap();
    // per lane: 4 of the 16 states, so h0, A, B and C come in one v4 load each and h_last goes
    // out in one v4 store; the sum over the state takes two butterfly levels (4 lanes a row)
    assert_eq!(ptx.matches("ld.global.nc.v4.f32").count(), 4, "{ptx}");
    assert_eq!(ptx.matches("st.global.v4.f32").count(), 1, "{ptx}");
    assert_eq!(ptx.matches("shfl.sync.bfly").count(), 2, "{ptx}");
    assert_eq!(ptx.matches("ex2.approx").count(), 4 + 2, "4 states, softplus and the gate: {ptx}");
    ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{log}"));
    // 8 states: two lanes a row; 6 states do not split into runs of 4: one thread a row
    d.insert("state".into(), 8);
    let ptx = ssmc::gpu::ptx(&step, Fusion::On, &d, DType::F32, GpuSchedule::LANES4).unwrap();
    assert_eq!(ptx.matches("shfl.sync.bfly").count(), 1, "{ptx}");
    d.insert("state".into(), 6);
    let ptx = ssmc::gpu::ptx(&step, Fusion::On, &d, DType::F32, GpuSchedule::LANES4).unwrap();
    assert_eq!(ptx.matches("shfl.sync").count(), 0, "{ptx}");
    // other run lengths, bf16 too, through a seq loop as well as one step
    for width in [2, 8, 16] {
        for (layer, len) in [(&step, 1), (&example("mamba1.ssm"), 64)] {
            let mut d = sizes(2, 40, len);
            d.insert("state".into(), 32);
            let ptx = ssmc::gpu::ptx(layer, Fusion::On, &d, DType::BF16, GpuSchedule::Lanes { width: LaneWidth::new(width).unwrap(), block: Block::DEFAULT }).unwrap();
            // one step: one sum over 32 / width lanes (a seq loop sums a block of steps)
            if len == 1 {
                assert_eq!(ptx.matches("shfl.sync.bfly").count(), (32 / width).trailing_zeros() as usize, "lanes{width}: {ptx}");
            }
            ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("lanes{width}: {log}"));
        }
    }
}

#[test]
fn lane_blocks_load_b_and_c_as_vectors_and_reduce_once_a_block() {
    let Some(ptxas) = ptxas() else { return };
    let layer = example("mamba1.ssm");
    // 4 lanes a row, 4 states each, len a multiple of 8: blocks of 8 steps (two a lane); per
    // state `B` and `C` as one vector of 4 steps per group of 4 (two groups), loaded before the
    // loop and again a block ahead; each 4 steps' sums reduce-scatter in two levels (3 shuffles)
    // (f32: `A`'s 4 states of the lane too)
    for (dtype, vector, others) in [(DType::BF16, "ld.global.nc.v2.b32", 0), (DType::F32, "ld.global.nc.v4.f32", 1)] {
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 40, 64), dtype, GpuSchedule::LANES4).unwrap();
        assert_eq!(ptx.matches(vector).count(), 2 * 4 * 2 * 2 + others, "{dtype}: {ptx}");
        assert_eq!(ptx.matches("shfl.sync.bfly").count(), 2 * 3, "{dtype}: {ptx}");
        assert_eq!(ptx.matches("bra $L_step_skip").count(), 0, "whole blocks skip no step: {ptx}");
        ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{log}"));
        // a length that is not a multiple of 8: blocks of 4 steps, a skip per step, a butterfly
        // per step, scalar loads
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 40, 66), dtype, GpuSchedule::LANES4).unwrap();
        assert_eq!(ptx.matches(vector).count(), others, "{dtype}: {ptx}");
        assert_eq!(ptx.matches("shfl.sync.bfly").count(), 4 * 2, "{dtype}: {ptx}");
        assert_eq!(ptx.matches("bra $L_step_skip").count(), 4, "{dtype}: {ptx}");
    }
}

#[test]
fn a_schedule_cannot_hold_a_number_the_launch_cannot_take() {
    for tile in [0, 3, 48, 64] {
        assert_eq!(Tiles::new(tile, true), Err(ScheduleError::Tile(tile)));
    }
    for block in [16, 48, 512] {
        let e = Block::new(block).unwrap_err();
        assert!(e.to_string().contains("32, 64, 128 or 256"), "{e}");
    }
    for k in [1, 3, 512] {
        assert_eq!(Chunks::exactly(k), Err(ScheduleError::Chunks(k)));
    }
    for w in [0, 3, 32] {
        assert_eq!(LaneWidth::new(w), Err(ScheduleError::LaneWidth(w)));
    }
}

#[test]
fn odd_state_counts_fill_warp_shared_tiles_under_a_guard() {
    let Some(ptxas) = ptxas() else { return };
    let layer = example("mamba1.ssm");
    for n in [1, 5, 7] {
        let mut d = sizes(2, 64, 130);
        d.insert("state".into(), n);
        for schedule in [GpuSchedule::TILED, GpuSchedule::CHUNKED, GpuSchedule::CHUNKED_LEAN] {
            let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &d, DType::BF16, schedule).unwrap();
            assert!(ptx.contains("tile_smem"), "state {n} {schedule}");
            ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("state {n} {schedule}: {log}"));
        }
    }
}

#[test]
fn the_warp_scan_runs_each_exp_once_and_combines_lanes_with_shuffles() {
    let Some(ptxas) = ptxas() else { return };
    let layer = example("mamba1.ssm");
    let per_lane = ssmc_ptx::PER_LANE;
    for len in [128, 130, 1000] {
        for dtype in [DType::F32, DType::BF16, DType::F16, DType::F64] {
            let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(1, 64, len), dtype, GpuSchedule::WARP_SCAN).unwrap();
            ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("len {len} {dtype}: {log}"));
            // one exp2 per (step, state), one in softplus and one in the gate per step: the
            // steps are not scanned twice
            assert_eq!(ptx.matches("ex2.approx").count(), per_lane * (16 + 1 + 1), "len {len} {dtype}");
            // no shuffles in the combine (it goes through shared memory, one lane per state), one
            // per state after the loop to hand out the final states
            assert_eq!(ptx.matches("shfl.sync.up.b32").count(), 0, "len {len} {dtype}");
            assert_eq!(ptx.matches("shfl.sync.idx.b32").count(), 16, "len {len} {dtype}");
            assert!(ptx.contains("wscan_smem"));
            assert!(ptx.contains(".maxnreg"));
            // whole vectors of a lane's steps where the length allows: 16 B and 16 C, and u,
            // delta and z loaded a block ahead (before the loop, and in it for the next block);
            // and f32 A, 4 states a vector, outside the loop
            let vectors = loads(&ptx, "v4.f32") + loads(&ptx, "v2.b32");
            let whole = len % per_lane == 0 && dtype != DType::F64;
            let a = if dtype == DType::F32 { 16 / 4 } else { 0 };
            assert_eq!(vectors, a + if whole { 2 * 3 + 2 * 16 } else { 0 }, "len {len} {dtype}");
            // out is f32 whatever the inputs
            assert_eq!(ptx.matches("st.global.v4.f32").count(), usize::from(len % per_lane == 0), "len {len} {dtype}");
        }
    }
    // more states than lanes: the combine shuffles (5 levels of h and 4 of P per state, one
    // rotation handing each lane its entering state and lane 0 the carry)
    let mut d = sizes(1, 64, 256);
    d.insert("state".into(), 40);
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &d, DType::F32, GpuSchedule::WARP_SCAN).unwrap();
    ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("state 40: {log}"));
    assert_eq!(ptx.matches("shfl.sync.up.b32").count(), 40 * (5 + 4));
    assert_eq!(ptx.matches("shfl.sync.idx.b32").count(), 40);
    assert!(!ptx.contains("wscan_smem"));
    // a reverse scan, or one too short to fill a warp, runs one thread per row
    let ptx = ssmc::gpu::ptx(&example("reverse.ssm"), Fusion::On, &sizes(1, 64, 256), DType::F32, GpuSchedule::WARP_SCAN).unwrap();
    assert!(!ptx.contains("wscan"));
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(1, 64, 32), DType::F32, GpuSchedule::WARP_SCAN).unwrap();
    assert!(!ptx.contains("wscan"));
}

#[test]
fn the_warp_scan_sums_a_pieces_last_step_from_the_next_entering_state_with_16_bit_inputs() {
    let Some(ptxas) = ptxas() else { return };
    let layer = example("mamba1.ssm");
    for (dtype, narrow) in [(DType::BF16, true), (DType::F16, true), (DType::F32, false)] {
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(1, 64, 512), dtype, GpuSchedule::WARP_SCAN).unwrap();
        // (P, h) pairs out, the walk's 4-piece reads, then per state the entering state and,
        // for 16-bit inputs, the leaving one (the walkers store the block's end state for it)
        assert_eq!(ptx.matches("st.shared.v2.f32").count(), 16, "{dtype}");
        assert_eq!(ptx.matches("ld.shared.f32").count(), if narrow { 32 } else { 16 }, "{dtype}");
        // (16-bit inputs at 512 steps: two passes of 8 states, each with its walk and end state)
        assert_eq!(ptx.matches("st.shared.f32").count(), if narrow { 2 } else { 0 }, "{dtype}");
        ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{dtype}: {log}"));
    }
}

#[test]
fn the_warp_scan_takes_16_bit_states_in_two_passes_of_8_steps_a_lane() {
    let Some(ptxas) = ptxas() else { return };
    let layer = example("mamba1.ssm");
    // whole blocks of 256 steps: 8 steps a lane (one 16-byte vector of u, delta, z and of each
    // state's B and C), the 16 states in two passes, each walked by its own 8 lanes
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(1, 64, 512), DType::BF16, GpuSchedule::WARP_SCAN).unwrap();
    assert_eq!(loads(&ptx, "v2.b32"), 0);
    assert_eq!(loads(&ptx, "v4.b32"), 3 + 3 + 2 * 16);
    assert_eq!(ptx.matches("$L_wscan_walk").count(), 2 * 2);
    assert_eq!(ptx.matches("setp.lt.and.u32").count(), 2);
    // the output: two 16-byte stores of a lane's 8 steps
    assert_eq!(ptx.matches("st.global.v4.f32").count(), 2);
    ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("two passes: {log}"));
    // 8 to 32 states, an even count, and two readouts of the state (without a plain sum)
    for state in [8, 10, 14, 32] {
        let mut d = sizes(1, 64, 512);
        d.insert("state".into(), state);
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &d, DType::F16, GpuSchedule::WARP_SCAN).unwrap();
        assert_eq!(ptx.matches("setp.lt.and.u32").count(), 2, "{state}");
        ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("two passes, {state} states: {log}"));
    }
    let two = ssmc::Layer::parse(&two_readouts_products_only()).unwrap();
    let ptx = ssmc::gpu::ptx(&two, Fusion::On, &sizes(1, 8, 512), DType::BF16, GpuSchedule::WARP_SCAN).unwrap();
    assert_eq!(ptx.matches("setp.lt.and.u32").count(), 2);
    ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("two products, two passes: {log}"));
    // blocks of 128 only, f32 inputs, fewer than 8 states or a plain sum: one pass of 4 steps
    let plain = ssmc::gpu::ptx(&ssmc::Layer::parse(TWO_READOUTS).unwrap(), Fusion::On, &sizes(1, 8, 512), DType::BF16, GpuSchedule::WARP_SCAN).unwrap();
    assert!(!plain.contains("setp.lt.and.u32"));
    for (len, dtype, state) in [(384, DType::BF16, 16), (512, DType::F32, 16), (512, DType::BF16, 4)] {
        let mut d = sizes(1, 64, len);
        d.insert("state".into(), state);
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &d, dtype, GpuSchedule::WARP_SCAN).unwrap();
        assert_eq!(ptx.matches("$L_wscan_walk").count(), 2, "{len} {dtype} {state}");
        assert!(!ptx.contains("setp.lt.and.u32"), "{len} {dtype} {state}");
    }
}

#[test]
fn the_warp_scan_takes_two_readouts_and_a_plain_sum() {
    let Some(ptxas) = ptxas() else { return };
    let layer = ssmc::Layer::parse(TWO_READOUTS).unwrap();
    let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(1, 8, 256), DType::F32, GpuSchedule::WARP_SCAN).unwrap();
    // one kernel, two readouts: each lane writes P and h per state for the walk, as a pair
    assert_eq!(ptx.matches(".entry").count(), 1);
    assert_eq!(ptx.matches("st.shared.v2.f32").count(), 16);
    // per step, the two sums' corrections with the entering states: 16 each
    assert!(ptx.matches("fma.rn.f32").count() >= 4 * 2 * 15);
    ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("two readouts: {log}"));
}

#[test]
fn the_warp_scan_addresses_steps_from_the_parameters_and_spills_nothing_for_mamba() {
    let Some(ptxas) = ptxas() else { return };
    let layer = example("mamba1.ssm");
    for dtype in [DType::F32, DType::BF16] {
        let mut d = sizes(1, 1536, 2048);
        d.insert("state".into(), 16);
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &d, dtype, GpuSchedule::WARP_SCAN).unwrap();
        // a step's address: a 32-bit element offset into the buffer's parameter, per block
        // (u, delta, z, B, C, out), besides the prologue's loads of the first block
        assert!(ptx.matches("mad.wide.u32").count() >= 6, "{dtype}");
        let reports = ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{dtype}: {log}"));
        for k in reports {
            assert_eq!(k.spill_stores, 0, "{dtype} {}: {} registers", k.name, k.registers);
        }
    }
}

#[test]
fn the_warp_scan_reads_a_rows_own_inputs_past_l1_and_shared_ones_through_it() {
    let layer = example("mamba1.ssm");
    for dtype in [DType::F32, DType::BF16] {
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 64, 512), dtype, GpuSchedule::WARP_SCAN).unwrap();
        let vectors: Vec<&str> = ptx.lines().filter(|l| l.contains("ld.global.nc.") && l.contains(".v4.")).collect();
        // u, delta and z (a row's own): the first block's and the next block's vectors
        let own = vectors.iter().filter(|l| l.contains("ld.global.nc.L1::no_allocate.v4")).count();
        assert_eq!(own, 2 * 3, "{dtype}: {own} of {} vector loads skip L1", vectors.len());
        // B and C (every row of a batch reads them): one vector a state, through L1
        assert!(vectors.len() - own >= 2 * 16, "{dtype}");
        // the output through L1, or past it under `warpscan+streamout`
        assert!(ptx.contains("st.global.v4.f32") && !ptx.contains("st.global.L1::no_allocate"), "{dtype}");
        let stream = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(2, 64, 512), dtype, GpuSchedule::WARP_SCAN_STREAM).unwrap();
        assert!(stream.contains("st.global.L1::no_allocate.v4.f32") && !stream.contains("st.global.v4.f32"), "{dtype}");
        assert_eq!(stream.replace("st.global.L1::no_allocate.", "st.global."), ptx, "{dtype}: only the stores differ");
        if let Some(ptxas) = ptxas() {
            for p in [&ptx, &stream] {
                ssmc_ptx::ptxas::assemble(&ptxas, p, 90).unwrap_or_else(|log| panic!("{dtype}: {log}"));
            }
        }
    }
}

/// `base`'s tiles and block with `k` chunks.
fn chunked(k: usize, base: GpuSchedule) -> GpuSchedule {
    GpuSchedule::Chunked { chunks: Chunks::exactly(k).unwrap(), tiles: base.tiles(), block: base.block() }
}

/// `base` with a block of `threads` (0: the default).
fn block(threads: usize, base: GpuSchedule) -> GpuSchedule {
    base.with_block(if threads == 0 { Block::DEFAULT } else { Block::new(threads).unwrap() })
}

#[test]
fn chunked_scans_take_the_chunk_count_asked_for_held_to_32_steps_a_chunk() {
    let layer = example("mamba1.ssm");
    let chunks_of = |len: usize, schedule: GpuSchedule| -> usize {
        let kirs = ssmc::gpu::lower_for_gpu(&layer, Fusion::On, &sizes(1, 64, len), DType::F32, GpuSchedule::ROWS).unwrap();
        let m = ssmc_ptx::module(&kirs, &schedule, ssmc_ptx::Arch::SM90);
        m.launches.iter().find_map(|l| match l {
            ssmc_ptx::Launch::Chunked { chunks, .. } => Some(*chunks),
            _ => None,
        })
        .unwrap_or(1)
    };
    // the default fills an H200: 64 rows want 1024 chunks and more, held to 2048 / 32
    assert_eq!(chunks_of(2048, GpuSchedule::CHUNKED), 64);
    for k in [2, 8, 32, 64] {
        assert_eq!(chunks_of(2048, chunked(k, GpuSchedule::CHUNKED)), k);
        assert_eq!(chunks_of(2048, chunked(k, GpuSchedule::CHUNKED_LEAN)), k);
    }
    assert_eq!(chunks_of(2048, chunked(256, GpuSchedule::CHUNKED)), 64);
    assert_eq!(chunks_of(100, chunked(8, GpuSchedule::CHUNKED)), 2);
    let Some(ptxas) = ptxas() else { return };
    for dtype in [DType::F32, DType::BF16] {
        let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &sizes(1, 64, 2048), dtype, chunked(8, GpuSchedule::CHUNKED)).unwrap();
        ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("8 chunks, {dtype}: {log}"));
    }
}

#[test]
fn each_warp_of_a_block_gets_its_region_of_shared_memory() {
    let layer = example("mamba1.ssm");
    let emit = |d: &BTreeMap<String, usize>, dtype, schedule| ssmc::gpu::ptx(&layer, Fusion::On, d, dtype, schedule).unwrap();
    let tiled = |threads| emit(&sizes(2, 64, 128), DType::F32, block(threads, GpuSchedule::TILED));
    // 11264 bytes a warp (u, delta, z and out per row, B and C once: above), for 1 and 2 warps
    assert!(tiled(32).contains("tile_smem[11264]"));
    assert!(tiled(64).contains("tile_smem[22528]"));
    // 8 warps: only what fits 48 KB is staged (two per-row inputs and B), the rest read in place
    let big = tiled(256);
    assert!(big.contains("tile_smem[45056]"), "{big}");
    assert_eq!(big.matches("ld.shared.v4.f32").count(), 4 * 5);
    // the warp scan: 4352 bytes a warp at 16 states (the 32 pieces' (P, h) per state, padded)
    for (threads, bytes) in [(32, 4352), (0, 4 * 4352), (256, 8 * 4352)] {
        let ptx = emit(&sizes(1, 64, 512), DType::BF16, block(threads, GpuSchedule::WARP_SCAN));
        assert!(ptx.contains(&format!("wscan_smem[{bytes}]")), "block {threads}");
    }
    // 32 states at 256 threads would need 69632 bytes: no warp scan, a thread per row
    let mut d = sizes(1, 64, 512);
    d.insert("state".into(), 32);
    let kirs = ssmc::gpu::lower_for_gpu(&layer, Fusion::On, &d, DType::F32, GpuSchedule::ROWS).unwrap();
    let warps = |threads| {
        let m = ssmc_ptx::module(&kirs, &block(threads, GpuSchedule::WARP_SCAN), ssmc_ptx::Arch::SM90);
        m.launches.iter().filter(|l| matches!(l, ssmc_ptx::Launch::Warp(_))).count()
    };
    assert_eq!((warps(128), warps(256)), (1, 0));
    let Some(ptxas) = ptxas() else { return };
    for dtype in [DType::F32, DType::BF16] {
        for schedule in [GpuSchedule::WARP_SCAN, GpuSchedule::TILED, GpuSchedule::CHUNKED, GpuSchedule::LANES4] {
            for threads in [32, 256] {
                let schedule = block(threads, schedule);
                let ptx = emit(&sizes(2, 64, 1024), dtype, schedule);
                ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{schedule} {dtype}: {log}"));
            }
        }
    }
}

#[test]
fn random_graphs_assemble_under_every_schedule() {
    // the generator's graphs (every op, random shapes and wiring) at sizes up to 6 and, so that
    // seq loops are long enough for tiles, chunks and the warp scan, up to 160, fused and not
    use ssmc::ir::gen::{random_graph, GenOptions};
    let Some(ptxas) = ptxas() else { return };
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 0..ssmc::ir::gen::test_cases(24).max(8) as u64 {
        let layer = ssmc::Layer::from_graph(random_graph(seed, GenOptions { ops: 10, partial_ops: false })).unwrap();
        for max in [6, 160] {
            let d = random_dims(&layer, seed, max);
            for (fusion, schedules) in [(Fusion::On, &GpuSchedule::ALL[..]), (Fusion::Off, &GpuSchedule::ALL[..2])] {
                for &schedule in schedules {
                    for dtype in [DType::F32, DType::BF16] {
                        let what = format!("seed {seed} max {max} {fusion:?} {schedule} {dtype}\n{}", ssmc::ir::print::print(layer.graph()));
                        let ptx = ssmc::gpu::ptx(&layer, fusion, &d, dtype, schedule).unwrap_or_else(|e| panic!("{what}: {e}"));
                        ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{what}: ptxas failed:\n{log}"));
                        for mark in ["wscan_smem", "tile_smem", "_summary", "shfl.sync", "ex2.approx"] {
                            *seen.entry(mark).or_default() += ptx.contains(mark) as usize;
                        }
                    }
                }
            }
        }
    }
    // not vacuous: some kernels stage tiles, run lanes with shuffles, evaluate exp
    assert!(["tile_smem", "shfl.sync", "ex2.approx"].iter().all(|m| seen.get(m).is_some_and(|&n| n > 0)), "{seen:?}");
}

#[test]
fn random_ssm_variants_assemble_under_every_schedule() {
    // layers a user would write (common::random_variant) at a shape the warp scan and chunks
    // take; most of them do take the warp scan
    let Some(ptxas) = ptxas() else { return };
    let (mut warp, n) = (0, ssmc::ir::gen::test_cases(20));
    for seed in 0..n as u64 {
        let text = random_variant(seed);
        let layer = ssmc::Layer::parse(&text).unwrap();
        let mut d = sizes(2, 64, 300);
        d.insert("state".into(), variant_shape(seed).3);
        for schedule in GpuSchedule::ALL {
            for dtype in [DType::F32, DType::BF16] {
                let ptx = ssmc::gpu::ptx(&layer, Fusion::On, &d, dtype, schedule).unwrap();
                ssmc_ptx::ptxas::assemble(&ptxas, &ptx, 90).unwrap_or_else(|log| panic!("{schedule} {dtype}\n{text}: {log}"));
                warp += (schedule == GpuSchedule::WARP_SCAN && ptx.contains("wscan_smem")) as usize;
            }
        }
    }
    assert!(warp >= n as usize, "the warp scan took {warp} of {} (variant, dtype) kernels", 2 * n);
}

#[test]
fn a_chunked_summary_starts_chunk_0_from_the_initial_state() {
    // the combine carries the scan's initial state into later chunks through chunk 0's end state
    // (a GPU test, an_initial_state_reaches_every_chunk, checks the values)
    let step = example("mamba1_step.ssm");
    let ptx = ssmc::gpu::ptx(&step, Fusion::On, &sizes(2, 64, 1024), DType::F32, GpuSchedule::CHUNKED).unwrap();
    let summary = ptx.split(".entry").find(|e| e.contains("_summary(")).expect("a summary entry");
    // per state: chunk 0's start is the initial state, the others' zero
    assert_eq!(summary.matches("selp.f32").count(), 16, "{summary}");
    let plain = ssmc::gpu::ptx(&example("mamba1.ssm"), Fusion::On, &sizes(2, 64, 1024), DType::F32, GpuSchedule::CHUNKED).unwrap();
    let summary = plain.split(".entry").find(|e| e.contains("_summary(")).expect("a summary entry");
    assert_eq!(summary.matches("selp.f32").count(), 0, "no initial state: every chunk from zero");
}

#[test]
fn the_candidates_are_the_schedules_that_apply() {
    let names = |layer: &ssmc::Layer, d: &BTreeMap<String, usize>| -> Vec<String> {
        let kirs = ssmc::gpu::lower_for_gpu(layer, Fusion::On, d, DType::F32, GpuSchedule::ROWS).unwrap();
        ssmc_ptx::candidates(&kirs).iter().map(|s| s.to_string()).collect()
    };
    // a long scan: every mapping, the chunks at the count that fills an H200 (held to 2048 / 32)
    // and at half of it (twice it is past the hold)
    let prefill = names(&example("mamba1.ssm"), &sizes(1, 64, 2048));
    let want = [
        "rows",
        "rows+tiles16+prefetch",
        "rows+chunks+tiles16+prefetch",
        "rows+chunks+tiles16",
        "lanes",
        "lanes2",
        "lanes4",
        "warpscan",
        "warpscan+streamout",
        "rows+chunks32+tiles16+prefetch",
        "rows+chunks32+tiles16",
    ];
    assert_eq!(prefill, want);
    // a decode step: no seq loop to tile, chunk or scan in parallel
    assert_eq!(names(&example("mamba1_step.ssm"), &sizes(2, 64, 1)), ["rows", "lanes", "lanes2", "lanes4"]);
}

//! Plans against the oracle, and the shape of the examples' plans.

use proptest::prelude::*;
use ssmc_ir::gen::{random_graph, random_inputs, random_sizes, GenOptions};
use ssmc_ir::interp::{evaluate, Tensor};
use ssmc_ir::Graph;
use ssmc_opt::{optimize, BufferKind, Forms, Fusion, Options, Plan};
use std::path::PathBuf;

fn example(name: &str) -> Graph {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    ssmc_dsl::parse_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const EXAMPLES: [&str; 7] =
    ["mamba1.ssm", "mamba1_zoh.ssm", "mamba1_step.ssm", "mamba1_conv.ssm", "s4d.ssm", "sigmoid_noskip.ssm", "reverse.ssm"];

fn agree(got: &Tensor, want: &Tensor, what: &str) -> Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("{what}: shape {:?} vs {:?}", got.shape, want.shape));
    }
    for (i, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
        let same = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-9 * (1.0 + w.abs());
        if !same {
            return Err(format!("{what}[{i}]: plan {g}, oracle {w}"));
        }
    }
    Ok(())
}

/// Evaluates `plan` kernel by kernel and compares every output with the oracle on `g`.
fn check_plan(g: &Graph, plan: &Plan, inputs: &[(String, Tensor)]) -> Result<(), String> {
    let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let want = evaluate(g, &refs).map_err(|e| e.to_string())?;
    let got = plan.evaluate(&refs).map_err(|e| e.to_string())?;
    for (name, w) in &want {
        agree(&got[name], w, name)?;
    }
    Ok(())
}

#[test]
fn every_example_plan_agrees_with_the_oracle() {
    for name in EXAMPLES {
        let g = example(name);
        let opts = Options::at_sizes(&g, &[]);
        let sizes: Vec<usize> = g.dims().map(|(_, n)| if n == "width" { 4 } else { 3 }).collect();
        let inputs = random_inputs(&g, &sizes, 7);
        for fusion in [Fusion::Off, Fusion::On] {
            let plan = optimize(&g, fusion, &opts).unwrap().plan;
            check_plan(&g, &plan, &inputs).unwrap_or_else(|e| panic!("{name} {fusion:?}: {e}"));
        }
    }
}

fn buffer_names(plan: &Plan, ids: &[ssmc_opt::BufferId]) -> Vec<String> {
    ids.iter().map(|b| plan.buffers[b.0].name.clone()).collect()
}

#[test]
fn mamba1_fuses_into_one_kernel_that_reads_each_input_once() {
    let g = example("mamba1.ssm");
    let opts = Options::at_sizes(&g, &[]);
    let fused = optimize(&g, Fusion::On, &opts).unwrap().plan;
    let unfused = optimize(&g, Fusion::Off, &opts).unwrap().plan;
    assert_eq!(fused.kernels.len(), 1);
    let k = &fused.kernels[0];
    assert_eq!(buffer_names(&fused, &k.reads), ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]);
    assert_eq!(buffer_names(&fused, &k.writes), ["out"]);
    assert!(fused.buffers.iter().all(|b| b.kind != BufferKind::Intermediate));
    // rows over (batch, dim), len walked in order, state carried inside the row
    let dims = |ds: &[ssmc_ir::DimId]| ds.iter().map(|d| g.dim_name(*d).to_string()).collect::<Vec<_>>();
    assert_eq!(dims(&k.space.parallel), ["batch", "dim"]);
    assert_eq!(k.space.seq.map(|(d, rev)| (g.dim_name(d).to_string(), rev)), Some(("len".to_string(), false)));
    assert_eq!(dims(&k.space.inner), ["state"]);
    // the bytes a fused kernel must move: each input once, the output once
    let (b, d, l, n) = (1u64, 1536u64, 2048u64, 16u64);
    let floor = 4 * (3 * b * d * l + 2 * b * n * l + d * n + 2 * d) + 4 * b * d * l;
    assert_eq!(fused.bytes(&opts.sizes), floor);
    assert_eq!(unfused.kernels.len(), 11);
    let ratio = unfused.bytes(&opts.sizes) as f64 / fused.bytes(&opts.sizes) as f64;
    assert!(ratio >= 10.0, "unfused/fused bytes ratio {ratio}");
    // the unfused scan reads and writes [batch, dim, len, state] tensors
    assert!(unfused.buffers.iter().filter(|b| b.kind == BufferKind::Intermediate && b.shape.rank() == 4).count() >= 4);
}

#[test]
fn the_fused_mamba1_uses_exp2_with_the_scale_hoisted_onto_a() {
    let g = example("mamba1.ssm");
    let fused = optimize(&g, Fusion::On, &Options::at_sizes(&g, &[])).unwrap().plan;
    let text = ssmc_ir::print::print(&fused.graph);
    assert!(text.contains("exp2("), "{text}");
    assert!(text.contains("A * 1.4426950408889634"), "{text}");
    assert!(!text.contains("exp("), "{text}");
    assert!(text.contains("softplus("), "softplus must stay a primitive: {text}");
}

#[test]
fn every_example_fuses_into_one_kernel() {
    // one kernel per op that computes a value, unfused
    let unfused_kernels = [11, 11, 11, 13, 9, 9, 9];
    for (name, launches) in EXAMPLES.into_iter().zip(unfused_kernels) {
        let g = example(name);
        let opts = Options::at_sizes(&g, &[]);
        let fused = optimize(&g, Fusion::On, &opts).unwrap().plan;
        let unfused = optimize(&g, Fusion::Off, &opts).unwrap().plan;
        assert_eq!(unfused.kernels.len(), launches, "{name}");
        assert_eq!(fused.kernels.len(), 1, "{name}: {:#?}", fused.notes);
        let k = &fused.kernels[0];
        let inputs: Vec<String> = g.inputs().map(|(_, d)| d.name.clone()).collect();
        assert_eq!(buffer_names(&fused, &k.reads), inputs, "{name} reads every input once");
        let outputs: Vec<String> = g.outputs().iter().map(|o| o.name.clone()).collect();
        assert_eq!(buffer_names(&fused, &k.writes), outputs, "{name} writes only its outputs");
        // the bytes: each input once at its dtype, each output once in f32
        let elements = |s: &ssmc_ir::Shape| s.dims().iter().map(|d| opts.sizes[d.index()] as u64).product::<u64>();
        let floor: u64 = fused.buffers.iter().map(|b| 4 * elements(&b.shape)).sum();
        assert_eq!(fused.bytes(&opts.sizes), floor, "{name}");
        let ratio = unfused.bytes(&opts.sizes) as f64 / fused.bytes(&opts.sizes) as f64;
        assert!(ratio >= 10.0, "{name}: ratio {ratio}");
    }
}

#[test]
fn mamba1_step_writes_out_and_the_final_state_in_one_pass() {
    let g = example("mamba1_step.ssm");
    let fused = optimize(&g, Fusion::On, &Options::at_sizes(&g, &[("len", 1)])).unwrap().plan;
    assert_eq!(fused.kernels.len(), 1);
    assert_eq!(buffer_names(&fused, &fused.kernels[0].writes), ["out", "h_last"]);
}

#[test]
fn optimizing_twice_gives_the_same_plan() {
    for name in EXAMPLES {
        let g = example(name);
        let opts = Options::at_sizes(&g, &[]);
        let a = optimize(&g, Fusion::On, &opts).unwrap();
        let b = optimize(&g, Fusion::On, &opts).unwrap();
        assert!(!a.report.hit_limit, "{name}: {}", a.report.stop_reason);
        assert_eq!(a.plan.kernels, b.plan.kernels, "{name}");
        assert!(a.plan.graph.same_as(&b.plan.graph), "{name}");
        assert_eq!(a.report.rules_fired, b.report.rules_fired, "{name}");
        assert_eq!(a.report.iterations.len(), b.report.iterations.len(), "{name}");
        assert_eq!(a.report.term_cost, b.report.term_cost, "{name}");
    }
}

#[test]
fn a_saturation_limit_falls_back_to_the_best_plan_found_and_says_so() {
    let g = example("mamba1.ssm");
    let mut opts = Options::at_sizes(&g, &[]);
    opts.iter_limit = 1;
    let limited = optimize(&g, Fusion::On, &opts).unwrap();
    assert!(limited.report.hit_limit);
    assert_eq!(limited.report.stop_reason, "iteration limit (1)");
    let sizes = [2, 3, 4, 3];
    check_plan(&g, &limited.plan, &random_inputs(&g, &sizes, 1)).unwrap();
    opts.iter_limit = 30;
    opts.node_limit = 40;
    let limited = optimize(&g, Fusion::On, &opts).unwrap();
    assert!(limited.report.hit_limit, "{}", limited.report.stop_reason);
    // egg names the count it stopped at, just past the limit
    assert!(limited.report.stop_reason.starts_with("e-node limit ("), "{}", limited.report.stop_reason);
    check_plan(&g, &limited.plan, &random_inputs(&g, &sizes, 2)).unwrap();
    // no time at all: the plan is the term as written, every value stored, and still right
    opts.node_limit = 20_000;
    opts.time_limit = std::time::Duration::ZERO;
    let limited = optimize(&g, Fusion::On, &opts).unwrap();
    assert!(limited.report.hit_limit);
    assert!(limited.report.stop_reason.starts_with("time limit ("), "{}", limited.report.stop_reason);
    check_plan(&g, &limited.plan, &random_inputs(&g, &sizes, 3)).unwrap();
    let unfused = optimize(&g, Fusion::Off, &opts).unwrap();
    let ex = ssmc_opt::Explanation { unfused: &unfused.plan, fused: &limited.plan, report: &limited.report, sizes: &opts.sizes, launch_bytes: 65536.0 };
    let text = ex.text();
    assert!(text.contains("stopped: time limit ("), "{text}");
    assert!(text.contains("(a limit stopped saturation; the plan is the best found so far)"), "{text}");
    assert!(ex.json().contains("\"hit_limit\": true"), "{}", ex.json());
}

#[test]
fn explain_json_has_the_documented_fields() {
    let g = example("mamba1.ssm");
    let opts = Options::at_sizes(&g, &[]);
    let (u, f) = (optimize(&g, Fusion::Off, &opts).unwrap(), optimize(&g, Fusion::On, &opts).unwrap());
    let ex = ssmc_opt::Explanation { unfused: &u.plan, fused: &f.plan, report: &f.report, sizes: &opts.sizes, launch_bytes: 65536.0 };
    let json = ex.json();
    for key in ["\"unfused\": {\"kernels\": 11", "\"fused\": {\"kernels\": 1", "\"bytes\": 50704384", "\"rules_fired\": {", "\"exp-to-exp2\": 1"] {
        assert!(json.contains(key), "missing {key} in {json}");
    }
    let dot = ssmc_opt::explain::dot(&f.plan);
    assert!(dot.starts_with("digraph") && dot.contains("cluster_0") && dot.trim_end().ends_with('}'));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ssmc_ir::gen::test_cases(96)))]

    /// Random valid graphs: both plans, evaluated kernel by kernel, agree with the oracle.
    #[test]
    fn random_graph_plans_agree_with_the_oracle(seed in any::<u64>(), ops in 1usize..12) {
        let g = random_graph(seed, GenOptions { ops, partial_ops: true });
        let sizes = random_sizes(&g, seed, 3);
        let opts = Options { sizes: sizes.clone(), ..Options::at_sizes(&g, &[]) };
        let inputs = random_inputs(&g, &sizes, seed);
        for fusion in [Fusion::Off, Fusion::On] {
            let plan = optimize(&g, fusion, &opts).map_err(|e| TestCaseError::fail(e.to_string()))?.plan;
            check_plan(&g, &plan, &inputs).map_err(|e| TestCaseError::fail(format!("{fusion:?}: {e}\n{}", ssmc_ir::print::print(&g))))?;
        }
    }

    /// The backwards of random graphs (scans both ways along a dim, shifts of scans, sums over
    /// broadcast dims), planned with every kernel form: evaluated kernel by kernel, they agree
    /// with the oracle.
    #[test]
    fn random_backward_plans_with_every_form_agree_with_the_oracle(seed in any::<u64>(), ops in 1usize..12) {
        let Ok(back) = ssmc_ir::grad::grad(&random_graph(seed, GenOptions { ops, partial_ops: false })) else { return Ok(()) };
        let sizes = random_sizes(&back, seed, 3);
        let opts = Options { sizes: sizes.clone(), forms: Forms::ALL, ..Options::at_sizes(&back, &[]) };
        let inputs = random_inputs(&back, &sizes, seed);
        let plan = optimize(&back, Fusion::On, &opts).map_err(|e| TestCaseError::fail(e.to_string()))?.plan;
        check_plan(&back, &plan, &inputs).map_err(|e| TestCaseError::fail(format!("{e}\n{}", ssmc_ir::print::print(&back))))?;
    }
}

/// With every form, the examples' backwards replay their scans and sum across rows (Mamba-1's in
/// one kernel that stores no state); without them, no kernel does.
#[test]
fn the_examples_backwards_replay_with_every_form_and_not_without() {
    for name in EXAMPLES {
        let back = ssmc_ir::grad::grad(&example(name)).unwrap();
        let all = Options { forms: Forms::ALL, ..Options::at_sizes(&back, &[]) };
        let plan = optimize(&back, Fusion::On, &all).unwrap().plan;
        let scans = back.nodes().iter().any(|n| matches!(n.op, ssmc_ir::Op::Scan { .. }));
        assert_eq!(plan.kernels.iter().any(|k| !k.space.replayed.is_empty()), scans, "{name}");
        let plain = optimize(&back, Fusion::On, &Options::at_sizes(&back, &[])).unwrap().plan;
        assert!(plain.kernels.iter().all(|k| k.space.replayed.is_empty() && k.space.row_sums.is_empty()), "{name}");
    }
    let back = ssmc_ir::grad::grad(&example("mamba1.ssm")).unwrap();
    let plan = optimize(&back, Fusion::On, &Options { forms: Forms::ALL, ..Options::at_sizes(&back, &[]) }).unwrap().plan;
    let names: Vec<&str> = plan.kernels.iter().flat_map(|k| k.space.row_sums.iter()).map(|&n| plan.buffers.iter().find(|b| b.node == n).unwrap().name.as_str()).collect();
    assert_eq!(names, ["d_B", "d_C"]);
    assert!(plan.buffers.iter().all(|b| b.kind != BufferKind::Intermediate || b.shape.rank() < 4), "{:?}", plan.buffers);
}

/// The random graphs reach the splitting path (kernels that do not fit the row template), so the
/// property above covers it.
#[test]
fn random_graphs_exercise_kernel_splitting() {
    let mut split = 0;
    for seed in 0..ssmc_ir::gen::test_cases(1000) as u64 {
        let g = random_graph(seed, GenOptions { ops: 16, partial_ops: true });
        let opts = Options::at_sizes(&g, &[]);
        split += usize::from(!optimize(&g, Fusion::On, &opts).unwrap().plan.notes.is_empty());
    }
    assert!(split >= 5, "only {split} of 1000 random graphs needed a split");
}

/// `extract::cheapest` finds the costs egg's own extractor finds (which sweeps every class until
/// none improves): on random graphs and every example, saturated as `optimize` saturates them.
#[test]
fn the_worklist_extractor_finds_egg_extractors_costs() {
    use ssmc_opt::analysis::SsmAnalysis;
    use ssmc_opt::cost::{CostModel, TermCost};
    let graphs: Vec<Graph> = (0..200)
        .map(|seed| random_graph(seed, GenOptions { ops: 16, partial_ops: true }))
        .chain(EXAMPLES.iter().map(|name| example(name)))
        .collect();
    for g in &graphs {
        let opts = Options::at_sizes(g, &[]);
        let runner: egg::Runner<ssmc_opt::lang::Ssm, SsmAnalysis, ()> = egg::Runner::new(SsmAnalysis::new(g))
            .with_iter_limit(opts.iter_limit)
            .with_node_limit(opts.node_limit)
            .with_expr(&ssmc_opt::convert::to_term(g))
            .run(&ssmc_opt::rules::all(ssmc_opt::Forms::default()));
        let model = CostModel::new(g, opts.sizes.clone(), opts.input_dtype);
        let eg = &runner.egraph;
        let (ours, term) = ssmc_opt::extract::cheapest(eg, runner.roots[0], TermCost { egraph: eg, model: &model });
        let (egg_cost, _) = egg::Extractor::new(eg, TermCost { egraph: eg, model: &model }).find_best(runner.roots[0]);
        assert_eq!(ours, egg_cost, "{}", ssmc_ir::print::print(g));
        // and the term is one of the root class's, at that cost
        assert_eq!(eg.find(eg.lookup_expr(&term).expect("the term is in the e-graph")), eg.find(runner.roots[0]));
    }
}

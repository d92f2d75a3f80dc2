//! Each rewrite on a minimal layer where it must fire, and one where it must not; each result is
//! also checked against the oracle. Where a law has a condition, the layer where it must not fire
//! has the law's pattern and fails only the condition (a fusion law's: the producer's kind; an
//! identity's: the operand's layout), so a condition that is too loose fails its test.

use ssmc_ir::gen::random_inputs;
use ssmc_ir::interp::{evaluate, Tensor};
use ssmc_ir::Op;
use ssmc_opt::{optimize, Fusion, Optimized, Options};

/// Optimizes `body` in a layer over dims `l, n` with inputs `x, y: [l]`, `a: [n]`, `c: [l, n]`,
/// `t: [n, l]` (stored in the other order), `w: [k]`, and checks the fused plan against the oracle.
fn run(body: &str) -> Optimized {
    let src = format!(
        "layer T {{ dims l, n, k; input x: [l]; input y: [l]; param a: [n] in 0.1..0.9; input c: [l, n]; input t: [n, l]; param w: [k]; {body} }}"
    );
    let g = ssmc_dsl::parse_str(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let opts = Options::at_sizes(&g, &[("l", 64), ("n", 8), ("k", 4)]);
    let o = optimize(&g, Fusion::On, &opts).unwrap();
    let inputs = random_inputs(&g, &[5, 3, 4], 9);
    let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let want = evaluate(&g, &refs).unwrap();
    let got = o.plan.evaluate(&refs).unwrap();
    for (name, w) in &want {
        for (a, b) in got[name].data.iter().zip(&w.data) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{body}: {name} {a} vs {b}");
        }
    }
    o
}

fn fired(o: &Optimized, law: &str) -> bool {
    o.report.rules_fired.contains_key(law)
}

macro_rules! law {
    ($test:ident, $law:literal, fires: $yes:literal, not: $no:literal) => {
        #[test]
        fn $test() {
            assert!(fired(&run($yes), $law), "`{}` should fire on `{}`", $law, $yes);
            assert!(!fired(&run($no), $law), "`{}` should not fire on `{}`", $law, $no);
        }
    };
}

// Each fusion law's "not" case has a stored producer in the consumer's place, of a kind the law
// does not take.
law!(fuse_elementwise_chain, "fuse-elementwise-chain", fires: "output o = exp(x) + y;", not: "output o = exp(sum(c, n));");
law!(fuse_elementwise_into_scan, "fuse-elementwise-into-scan", fires: "output o = scan(a, c * 2.0, l);", not: "output o = scan(a, conv1d(x, w, l), l);");
law!(fuse_elementwise_into_sum, "fuse-elementwise-into-sum", fires: "output o = sum(c * a, n);", not: "output o = sum(scan(a, c, l), n);");
law!(fuse_scan_into_elementwise, "fuse-scan-into-elementwise", fires: "output o = scan(a, c, l) * c;", not: "output o = sum(c, n) * x;");
law!(fuse_scan_into_sum, "fuse-scan-into-sum", fires: "output o = sum(scan(a, c, l), n);", not: "output o = sum(scan(a, c, l), l);");
// `final_state` takes only a scan (any other operand is an invalid graph), so this law's
// condition cannot fail; the "not" case is a scan whose state is not asked for
law!(fuse_scan_into_final_state, "fuse-scan-into-final-state", fires: "output o = final_state(scan(a, c, l));", not: "output o = scan(a, c, l);");
law!(fuse_sum_into_epilogue, "fuse-sum-into-epilogue", fires: "output o = sum(c, n) * x;", not: "output o = scan(a, c, l) * c;");
law!(fuse_conv_into_elementwise, "fuse-conv-into-elementwise", fires: "output o = silu(conv1d(x, w, l));", not: "output o = silu(sum(c, n));");
law!(zoh_a_as_exp, "zoh-a-as-exp", fires: "output o = discretize_a(zoh, x, a);", not: "output o = discretize_a(euler, x, a);");
law!(euler_a_as_fma, "euler-a-as-fma", fires: "output o = discretize_a(euler, x, a);", not: "output o = discretize_a(bilinear, x, a);");
law!(euler_b_as_mul, "euler-b-as-mul", fires: "output o = discretize_b(euler, x, a, c);", not: "output o = discretize_b(euler, x, a, y);");
// unconditional: the "not" case is the nearest op it must leave alone
law!(exp_to_exp2, "exp-to-exp2", fires: "output o = exp(x);", not: "output o = exp2(x) + softplus(x);");
// the scale moves onto the operand with fewer dims: the right one, or (mirrored) the left one
law!(hoist_exp2_scale_out_of_scan, "hoist-exp2-scale-out-of-scan", fires: "output o = exp(c * a);", not: "output o = exp(x * y);");
law!(hoist_exp2_scale_out_of_scan_left, "hoist-exp2-scale-out-of-scan-left", fires: "output o = exp(a * c);", not: "output o = exp(c * a);");
// the identities' "not" cases: the same identity of an input stored as [n, l], which the value
// (laid out [l, n]) must not become
law!(mul_one, "mul-one", fires: "output o = x * 1.0;", not: "output o = t * 1.0;");
law!(mul_one_left, "mul-one-left", fires: "output o = 1.0 * x;", not: "output o = 1.0 * t;");
law!(add_zero, "add-zero", fires: "output o = x + 0.0;", not: "output o = t + 0.0;");
law!(add_zero_left, "add-zero-left", fires: "output o = 0.0 + x;", not: "output o = 0.0 + t;");
law!(sub_zero, "sub-zero", fires: "output o = x - 0.0;", not: "output o = t - 0.0;");
law!(div_one, "div-one", fires: "output o = x / 1.0;", not: "output o = t / 1.0;");
law!(neg_neg, "neg-neg", fires: "output o = neg(neg(x));", not: "output o = neg(neg(t));");
// and where the value is not the identity at all
law!(mul_two, "mul-one", fires: "output o = x * 1.0;", not: "output o = x * 2.0;");
law!(sub_from_zero, "sub-zero", fires: "output o = x - 0.0;", not: "output o = 0.0 - x;");

fn consts(o: &Optimized) -> Vec<f64> {
    o.plan.graph.nodes().iter().filter_map(|n| if let Op::Const(v) = n.op { Some(v) } else { None }).collect()
}

#[test]
fn constants_fold() {
    let o = run("output o = x * (2.0 + 3.0 * exp2(1.0));");
    assert!(o.report.folded >= 1);
    assert_eq!(consts(&o), [8.0]);
    // nothing to fold
    let o = run("output o = x * 2.0;");
    assert_eq!(o.report.folded, 0);
    assert_eq!(consts(&o), [2.0]);
}

#[test]
fn constants_fold_only_to_finite_numbers() {
    // exp(1000) overflows f64: it stays an expression (computed, like the oracle, as infinity)
    let g = ssmc_dsl::parse_str("layer T { dims l; input x: [l]; output o = x * exp(1000.0) + 1.0 * (2.0 - 1.0); }").unwrap();
    let o = optimize(&g, Fusion::On, &Options::at_sizes(&g, &[("l", 4)])).unwrap();
    assert!(consts(&o).iter().all(|v| v.is_finite()), "{:?}", consts(&o));
    // exp(1000) became exp2(1000 log2 e); its argument folded, the overflowing call did not
    assert!(o.plan.graph.nodes().iter().any(|n| n.op.name() == "exp2"));
    assert!(consts(&o).contains(&(1000.0 * std::f64::consts::LOG2_E)), "{:?}", consts(&o));
    let x = Tensor::new(vec![4], vec![1.0, -1.0, 0.5, 2.0]).unwrap();
    let got = o.plan.evaluate(&[("x", &x)]).unwrap();
    assert_eq!(got["o"].data, [f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::INFINITY]);
}

#[test]
fn softplus_is_never_expanded() {
    let o = run("output o = softplus(x * 40.0);");
    let ops: Vec<&str> = o.plan.graph.nodes().iter().map(|n| n.op.name()).collect();
    assert!(ops.contains(&"softplus") && !ops.contains(&"log") && !ops.contains(&"log1p"), "{ops:?}");
}

#[test]
fn a_conv_signal_computed_in_the_layer_is_stored_first() {
    let o = run("output o = conv1d(silu(x), w, l);");
    assert_eq!(o.plan.kernels.len(), 2, "the conv reads its signal at shifted positions, from memory");
}

#[test]
fn scans_along_two_dims_do_not_share_a_kernel() {
    let o = run("output o = scan(a, scan(a, c, l), n);");
    assert_eq!(o.plan.kernels.len(), 2);
}

#[test]
fn a_sum_over_the_scanned_dim_is_split_off_and_the_plan_says_why() {
    let o = run("output o = sum(scan(a, c, l) * c, l);");
    assert_eq!(o.plan.kernels.len(), 2);
    assert!(o.plan.notes.iter().any(|n| n.contains("a sum over the scanned dim needs its own kernel")), "{:?}", o.plan.notes);
}

#[test]
fn a_scan_times_one_is_still_a_scan_to_fusion() {
    // `mul-one` makes `scan * 1`, `mat(scan)` and the scan one class; the analysis gives it the
    // scan's kind whichever way egg unions them (this order passed before that rule too), so
    // the sum takes it in by the scan's law
    let o = run("output o = sum(scan(a, c, l) * 1.0, n);");
    assert!(fired(&o, "mul-one"));
    assert!(fired(&o, "fuse-scan-into-sum"), "{:?}", o.report.rules_fired);
    assert_eq!(o.plan.kernels.len(), 1);
}

#[test]
fn a_scan_used_through_an_identity_and_by_final_state_keeps_its_final_shape() {
    // `mul-one` merges `h * 1` with `h`; the class keeps the scan's dim whichever way egg
    // unions them, so `final_state`'s shape stays that of one state (a debug assertion checks
    // every merge keeps shapes)
    let o = run("let h = scan(a, c, l); output o = h * 1.0; output s = final_state(h);");
    assert!(fired(&o, "mul-one"));
    assert_eq!(o.plan.kernels.len(), 1);
}

#[test]
fn every_unary_and_binary_op_fuses_into_one_kernel() {
    // the fusion laws list the IR's ops by kind: an op added to the IR's tables fuses with no
    // edit to the optimizer
    let mut bodies: Vec<String> = ssmc_ir::UnaryOp::ALL.iter().map(|u| format!("output o = {}(a * 0.5) * c + 1.0;", u.name())).collect();
    bodies.extend(ssmc_ir::BinaryOp::ALL.iter().map(|b| format!("output o = {}(a * 0.5, c) + 1.0;", b.name())));
    for body in bodies {
        let o = run(&body);
        assert_eq!(o.plan.kernels.len(), 1, "{body}");
        assert!(fired(&o, "fuse-elementwise-chain"), "{body}");
    }
}

//! Each rewrite on a minimal layer where it must fire, and one where it must not; each result is
//! also checked against the oracle.

use ssmc_ir::gen::random_inputs;
use ssmc_ir::interp::{evaluate, Tensor};
use ssmc_ir::Op;
use ssmc_opt::{optimize, Fusion, Optimized, Options};

/// Optimizes `body` in a layer over dims `l, n` with inputs `x, y: [l]`, `a: [n]`, `c: [l, n]`,
/// `w: [k]`, and checks the fused plan against the oracle.
fn run(body: &str) -> Optimized {
    let src = format!(
        "layer T {{ dims l, n, k; input x: [l]; input y: [l]; param a: [n] in 0.1..0.9; input c: [l, n]; param w: [k]; {body} }}"
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

law!(fuse_elementwise_chain, "fuse-elementwise-chain", fires: "output o = exp(x) + y;", not: "output o = x + y;");
law!(fuse_elementwise_into_scan, "fuse-elementwise-into-scan", fires: "output o = scan(a, c * 2.0, l);", not: "output o = scan(a, c, l);");
law!(fuse_elementwise_into_sum, "fuse-elementwise-into-sum", fires: "output o = sum(c * a, n);", not: "output o = sum(c, n);");
law!(fuse_scan_into_elementwise, "fuse-scan-into-elementwise", fires: "output o = scan(a, c, l) * c;", not: "output o = scan(a, c, l);");
law!(fuse_scan_into_sum, "fuse-scan-into-sum", fires: "output o = sum(scan(a, c, l), n);", not: "output o = sum(scan(a, c, l), l);");
law!(fuse_scan_into_final_state, "fuse-scan-into-final-state", fires: "output o = final_state(scan(a, c, l));", not: "output o = scan(a, c, l);");
law!(fuse_sum_into_epilogue, "fuse-sum-into-epilogue", fires: "output o = sum(c, n) * x;", not: "output o = sum(c, n);");
law!(fuse_conv_into_elementwise, "fuse-conv-into-elementwise", fires: "output o = silu(conv1d(x, w, l));", not: "output o = conv1d(x, w, l);");
law!(zoh_a_as_exp, "zoh-a-as-exp", fires: "output o = discretize_a(zoh, x, a);", not: "output o = discretize_a(euler, x, a);");
law!(euler_a_as_fma, "euler-a-as-fma", fires: "output o = discretize_a(euler, x, a);", not: "output o = discretize_a(bilinear, x, a);");
law!(euler_b_as_mul, "euler-b-as-mul", fires: "output o = discretize_b(euler, x, a, c);", not: "output o = discretize_b(euler, x, a, y);");
law!(exp_to_exp2, "exp-to-exp2", fires: "output o = exp(x);", not: "output o = softplus(x);");
law!(hoist_exp2_scale_out_of_scan, "hoist-exp2-scale-out-of-scan", fires: "output o = exp(x * a);", not: "output o = exp(x * y);");
law!(mul_one, "mul-one", fires: "output o = x * 1.0;", not: "output o = x * 2.0;");
law!(mul_one_left, "mul-one-left", fires: "output o = 1.0 * x;", not: "output o = 2.0 * x;");
law!(add_zero, "add-zero", fires: "output o = x + 0.0;", not: "output o = x + 1.0;");
law!(add_zero_left, "add-zero-left", fires: "output o = 0.0 + x;", not: "output o = 1.0 + x;");
law!(sub_zero, "sub-zero", fires: "output o = x - 0.0;", not: "output o = 0.0 - x;");
law!(div_one, "div-one", fires: "output o = x / 1.0;", not: "output o = 1.0 / x;");
law!(neg_neg, "neg-neg", fires: "output o = neg(neg(x));", not: "output o = neg(x);");

#[test]
fn constants_fold() {
    let o = run("output o = x * (2.0 + 3.0 * exp2(1.0));");
    assert!(o.report.folded >= 1);
    let consts: Vec<f64> = o.plan.graph.nodes().iter().filter_map(|n| if let Op::Const(v) = n.op { Some(v) } else { None }).collect();
    assert_eq!(consts, [8.0]);
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

//! The oracle's gradients (the backward graph [`grad`] builds, evaluated in `f64`) against
//! central finite differences of the forward: every op's rule on its own, then random graphs.

use proptest::prelude::*;
use ssmc_ir::gen::{random_graph, random_inputs, random_sizes, GenOptions};
use ssmc_ir::grad::{evaluate_grad, finite_differences, grad};
use ssmc_ir::interp::{evaluate, Tensor};
use ssmc_ir::{BinaryOp, DimId, GateKind, Graph, InputKind, Method, Op, UnaryOp};

/// Deterministic values in `lo..hi`.
fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// Random inputs (in their declared ranges) and cotangents for `g` at `sizes`.
fn case(g: &Graph, sizes: &[usize], seed: u64) -> (Vec<(String, Tensor)>, Vec<(String, Tensor)>) {
    let inputs = random_inputs(g, sizes, seed);
    let cots = g
        .outputs()
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let shape: Vec<usize> = o.layout.dims().iter().map(|d| sizes[d.index()]).collect();
            let n = shape.iter().product();
            (format!("d_{}", o.name), Tensor { shape, data: values(n, seed ^ (k as u64 + 7), -1.0, 1.0) })
        })
        .collect();
    (inputs, cots)
}

fn refs(v: &[(String, Tensor)]) -> Vec<(&str, &Tensor)> {
    v.iter().map(|(n, t)| (n.as_str(), t)).collect()
}

/// The backward's gradients agree with finite differences at `sizes`; returns how many values
/// were compared.
fn check(g: &Graph, sizes: &[usize], seed: u64) -> usize {
    let (inputs, cots) = case(g, sizes, seed);
    let analytic = evaluate_grad(g, &refs(&inputs), &refs(&cots)).unwrap();
    // two step sizes: Richardson's extrapolation, and their gap as the estimate of its error
    // (steep functions make a fixed step's error large)
    let coarse = finite_differences(g, &refs(&inputs), &refs(&cots), 2e-5).unwrap();
    let fine = finite_differences(g, &refs(&inputs), &refs(&cots), 1e-5).unwrap();
    let mut compared = 0;
    for (name, t) in &inputs {
        let key = format!("d_{name}");
        let a = &analytic[&key];
        assert_eq!(a.shape, t.shape, "{key} is shaped as `{name}`\n{}", ssmc_ir::print::print(g));
        for (i, x) in a.data.iter().enumerate() {
            let (c, f) = (coarse[&key].data[i], fine[&key].data[i]);
            let y = (4.0 * f - c) / 3.0;
            assert!(
                (x - y).abs() <= 1e-7 * (1.0 + y.abs()) + (c - f).abs(),
                "{key}[{i}]: backward {x}, finite differences {y} (steps 2e-5: {c}, 1e-5: {f})\n{}",
                ssmc_ir::print::print(g)
            );
            compared += 1;
        }
    }
    compared
}

/// `[n, m]` dims and one input `x` over `[n, m]` drawn from `lo..hi`.
fn one_input(lo: f64, hi: f64) -> (Graph, DimId, DimId, ssmc_ir::NodeId) {
    let mut g = Graph::new("t");
    let n = g.add_dim("n").unwrap();
    let m = g.add_dim("m").unwrap();
    let x = g.input("x", InputKind::Input, &[n, m], None).unwrap();
    g.set_input_range(x, lo, hi).unwrap();
    (g, n, m, x)
}

#[test]
fn every_unary_op() {
    for u in UnaryOp::ALL {
        // inside each function's domain, away from the kinks of abs and sign
        let (lo, hi) = match (u, u.domain()) {
            (UnaryOp::Abs | UnaryOp::Sign, _) | (_, ssmc_ir::Domain::Partial) => (0.2, 2.0),
            _ => (-2.0, 2.0),
        };
        let (mut g, ..) = one_input(lo, hi);
        let x = g.input_named("x").unwrap().0;
        let y = g.unary(u, x).unwrap();
        g.add_output("y", y).unwrap();
        assert!(check(&g, &[2, 3], 1) > 0, "{u}");
        let (mut g, ..) = one_input(-2.0, -0.2);
        let x = g.input_named("x").unwrap().0;
        if matches!(u, UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Recip) {
            let y = g.unary(u, x).unwrap();
            g.add_output("y", y).unwrap();
            check(&g, &[2, 3], 2);
        }
    }
}

#[test]
fn every_binary_op_with_broadcasting() {
    for b in BinaryOp::ALL {
        let (mut g, _, m, x) = one_input(-2.0, 2.0);
        let y = g.input("y", InputKind::Param, &[m], None).unwrap();
        // keep divisors away from 0
        if b == BinaryOp::Div {
            g.set_input_range(y, 0.5, 2.0).unwrap();
        }
        let z = g.binary(b, x, y).unwrap();
        g.add_output("z", z).unwrap();
        check(&g, &[3, 2], 3);
    }
}

#[test]
fn every_discretization_and_gate() {
    for method in Method::ALL {
        let mut g = Graph::new("d");
        let n = g.add_dim("n").unwrap();
        let s = g.add_dim("s").unwrap();
        let dt = g.input("dt", InputKind::Input, &[n], None).unwrap();
        g.set_input_range(dt, 0.1, 1.0).unwrap();
        let a = g.input("a", InputKind::Param, &[s], None).unwrap();
        g.set_input_range(a, -2.0, -0.3).unwrap();
        let b = g.input("b", InputKind::Input, &[s, n], None).unwrap();
        let da = g.discretize_a(method, dt, a).unwrap();
        let db = g.discretize_b(method, dt, a, b).unwrap();
        g.add_output("da", da).unwrap();
        g.add_output("db", db).unwrap();
        check(&g, &[3, 2], 4);
    }
    for kind in GateKind::ALL {
        let (mut g, _, m, x) = one_input(-2.0, 2.0);
        let z = g.input("z", InputKind::Input, &[m], None).unwrap();
        let y = g.gate(kind, x, z).unwrap();
        g.add_output("y", y).unwrap();
        check(&g, &[2, 3], 5);
    }
}

/// Zoh's `d Bbar / d a` near and at `a = 0`, where its closed form cancels (0/0 at 0): the
/// series side agrees with `b dt^2 f(dt a)`, `f(x) = sum (k+1) x^k / (k+2)!`, summed to
/// convergence here, on both sides of the switch at `|dt a| = 1/16` and at 0 itself.
#[test]
fn zohs_gradient_in_a_is_exact_near_and_at_zero() {
    let mut g = Graph::new("z");
    let n = g.add_dim("n").unwrap();
    let dt = g.input("dt", InputKind::Input, &[n], None).unwrap();
    let a = g.input("a", InputKind::Input, &[n], None).unwrap();
    let b = g.input("b", InputKind::Input, &[n], None).unwrap();
    let y = g.discretize_b(Method::Zoh, dt, a, b).unwrap();
    g.add_output("y", y).unwrap();
    let f = |x: f64| {
        let (mut sum, mut term, mut fact) = (0.0, 1.0, 2.0);
        for k in 0..40 {
            sum += (k + 1) as f64 * term / fact;
            term *= x;
            fact *= (k + 3) as f64;
        }
        sum
    };
    let (dts, avals) = ([0.5, 0.9, 0.3, 0.7, 0.2, 0.6], [0.0, 1e-7, -1e-3, 0.06, -0.1, -2.0]);
    let t = |v: &[f64]| Tensor { shape: vec![v.len()], data: v.to_vec() };
    let bs = [1.3; 6];
    let inputs = [("dt".to_string(), t(&dts)), ("a".to_string(), t(&avals)), ("b".to_string(), t(&bs))];
    let cots = [("d_y".to_string(), t(&[1.0; 6]))];
    let got = evaluate_grad(&g, &refs(&inputs), &refs(&cots)).unwrap();
    for i in 0..6 {
        let want = bs[i] * dts[i] * dts[i] * f(dts[i] * avals[i]);
        let have = got["d_a"].data[i];
        assert!((have - want).abs() <= 1e-8 * want.abs(), "a = {}: {have} vs {want}", avals[i]);
    }
}

#[test]
fn sums_and_broadcasts() {
    let (mut g, n, m, x) = one_input(-1.0, 1.0);
    let s = g.sum(x, n).unwrap();
    let b = g.broadcast(s, &[n]).unwrap();
    let e = g.unary(UnaryOp::Exp, b).unwrap();
    g.add_output("s", s).unwrap();
    g.add_output("e", e).unwrap();
    let total = g.sum(x, m).unwrap();
    let total = g.sum(total, n).unwrap();
    g.add_output("total", total).unwrap();
    check(&g, &[3, 2], 6);
}

/// A scan with every option: `a` over `[l, n]` or only `[n]`, forward or reverse, with or
/// without an initial state, its values and/or its final state as outputs.
#[test]
fn scans_every_way() {
    for reverse in [false, true] {
        for init in [false, true] {
            for lti in [false, true] {
                for outputs in [1, 2, 3] {
                    let mut g = Graph::new("s");
                    let l = g.add_dim("l").unwrap();
                    let n = g.add_dim("n").unwrap();
                    let a_dims: &[DimId] = if lti { &[n] } else { &[n, l] };
                    let a = g.input("a", InputKind::Input, a_dims, None).unwrap();
                    g.set_input_range(a, 0.3, 0.95).unwrap();
                    let b = g.input("b", InputKind::Input, &[l, n], None).unwrap();
                    let h0 = if init { Some(g.input("h0", InputKind::Input, &[n], None).unwrap()) } else { None };
                    let h = g.scan(a, b, l, reverse, h0).unwrap();
                    if outputs & 1 != 0 {
                        let c = g.unary(UnaryOp::Sin, h).unwrap();
                        g.add_output("y", c).unwrap();
                    }
                    if outputs & 2 != 0 {
                        let f = g.scan_final(h).unwrap();
                        g.add_output("last", f).unwrap();
                    }
                    for len in [1, 2, 5] {
                        check(&g, &[len, 2], 7 + len as u64);
                    }
                }
            }
        }
    }
}

#[test]
fn convs_shifts_and_windows() {
    for reverse in [false, true] {
        for bias in [false, true] {
            let mut g = Graph::new("c");
            let d = g.add_dim("d").unwrap();
            let l = g.add_dim("l").unwrap();
            let k = g.add_dim("k").unwrap();
            let x = g.input("x", InputKind::Input, &[d, l], None).unwrap();
            let w = g.input("w", InputKind::Param, &[d, k], None).unwrap();
            let b = if bias { Some(g.input("b", InputKind::Param, &[d], None).unwrap()) } else { None };
            let y = g.push(Op::Conv1d { x, weight: w, bias: b, dim: l, reverse }).unwrap();
            g.add_output("y", y).unwrap();
            for (len, taps) in [(1, 1), (1, 3), (2, 2), (5, 3), (3, 4)] {
                check(&g, &[2, len, taps], 20 + len as u64);
            }
        }
        for fill in [false, true] {
            let mut g = Graph::new("s");
            let l = g.add_dim("l").unwrap();
            let n = g.add_dim("n").unwrap();
            let x = g.input("x", InputKind::Input, &[n, l], None).unwrap();
            let f = if fill { Some(g.input("f", InputKind::Input, &[n], None).unwrap()) } else { None };
            let y = g.shift(x, l, f, reverse).unwrap();
            let y = g.unary(UnaryOp::Tanh, y).unwrap();
            g.add_output("y", y).unwrap();
            for len in [1, 2, 4] {
                check(&g, &[len, 3], 30 + len as u64);
            }
        }
    }
}

#[test]
fn window_rules_agree_with_finite_differences() {
    for reverse in [false, true] {
        for own_lanes in [false, true] {
            // y = tanh(window(x) * w), x over [l] or (tap by tap) over [l, k]
            let mut g = Graph::new("w");
            let l = g.add_dim("l").unwrap();
            let k = g.add_dim("k").unwrap();
            let dims: &[DimId] = if own_lanes { &[l, k] } else { &[l] };
            let x = g.input("x", InputKind::Input, dims, None).unwrap();
            let w = g.input("w", InputKind::Param, &[k], None).unwrap();
            let y = g.push(Op::Window { x, dim: l, taps: k, reverse }).unwrap();
            let y = g.binary(BinaryOp::Mul, y, w).unwrap();
            let y = g.unary(UnaryOp::Tanh, y).unwrap();
            g.add_output("y", y).unwrap();
            for (len, taps) in [(1, 1), (1, 3), (2, 4), (5, 3), (6, 2)] {
                assert!(check(&g, &[len, taps], 40 + len as u64) > 0, "reverse {reverse}, own lanes {own_lanes}");
            }
        }
    }
}

#[test]
fn shift_and_window_by_hand() {
    let mut g = Graph::new("s");
    let l = g.add_dim("l").unwrap();
    let k = g.add_dim("k").unwrap();
    let x = g.input("x", InputKind::Input, &[l], None).unwrap();
    let f = g.input("f", InputKind::Input, &[], None).unwrap();
    // binds the size of `k`
    g.input("taps", InputKind::Param, &[k], None).unwrap();
    let back = g.shift(x, l, Some(f), false).unwrap();
    let ahead = g.shift(x, l, None, true).unwrap();
    let win = g.push(Op::Window { x, dim: l, taps: k, reverse: false }).unwrap();
    let rwin = g.push(Op::Window { x, dim: l, taps: k, reverse: true }).unwrap();
    g.add_output("back", back).unwrap();
    g.add_output("ahead", ahead).unwrap();
    g.add_output("win", win).unwrap();
    g.add_output("rwin", rwin).unwrap();
    let xs = Tensor::new(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
    let fs = Tensor::scalar(9.0);
    let taps = Tensor::new(vec![2], vec![0.0, 0.0]).unwrap();
    let out = evaluate(&g, &[("x", &xs), ("f", &fs), ("taps", &taps)]).unwrap();
    assert_eq!(out["back"].data, [9.0, 1.0, 2.0]);
    assert_eq!(out["ahead"].data, [2.0, 3.0, 0.0]);
    // [l, k]: tap 1 is the value itself, tap 0 the one before
    assert_eq!(out["win"].data, [0.0, 1.0, 1.0, 2.0, 2.0, 3.0]);
    assert_eq!(out["rwin"].data, [2.0, 1.0, 3.0, 2.0, 0.0, 3.0]);
}

#[test]
fn gradients_keep_the_layout_of_their_inputs_and_cotangents_that_of_outputs() {
    let mut g = Graph::new("t");
    let n = g.add_dim("n").unwrap();
    let m = g.add_dim("m").unwrap();
    let x = g.input("x", InputKind::Input, &[m, n], None).unwrap();
    let y = g.unary(UnaryOp::Exp, x).unwrap();
    g.add_output_as("y", y, &[m, n]).unwrap();
    let back = grad(&g).unwrap();
    assert_eq!(back.input_named("d_y").unwrap().1.layout.dims(), [m, n]);
    let dx = back.outputs().iter().find(|o| o.name == "d_x").unwrap();
    assert_eq!(dx.layout.dims(), [m, n]);
    assert_eq!(check(&g, &[2, 3], 40), 6);
}

#[test]
fn an_input_the_outputs_do_not_read_has_a_zero_gradient_of_its_shape() {
    let mut g2 = Graph::new("t2");
    let n = g2.add_dim("n").unwrap();
    let x = g2.input("x", InputKind::Input, &[n], None).unwrap();
    g2.input("unused", InputKind::Param, &[n], None).unwrap();
    let y = g2.unary(UnaryOp::Sin, x).unwrap();
    g2.add_output("y", y).unwrap();
    let (inputs, cots) = case(&g2, &[4], 41);
    let d = evaluate_grad(&g2, &refs(&inputs), &refs(&cots)).unwrap();
    assert_eq!(d["d_unused"].data, [0.0; 4]);
}

#[test]
fn a_gradient_name_the_layer_already_uses_is_an_error() {
    let mut g = Graph::new("t");
    let n = g.add_dim("n").unwrap();
    let x = g.input("x", InputKind::Input, &[n], None).unwrap();
    g.add_output("d_x", x).unwrap();
    let err = grad(&g).unwrap_err();
    assert!(err.message.contains("`d_x`"), "{}", err.message);
}

#[test]
fn the_backward_prints_its_cotangents_gradients_and_reverse_scans() {
    // (parsing it back is tested in the facade, which has the parser: tests/grad.rs)
    let mut g = Graph::new("t");
    let l = g.add_dim("l").unwrap();
    let a = g.input("a", InputKind::Input, &[l], None).unwrap();
    let b = g.input("b", InputKind::Input, &[l], None).unwrap();
    let h = g.scan(a, b, l, false, None).unwrap();
    g.add_output("h", h).unwrap();
    let text = ssmc_ir::print::print(&grad(&g).unwrap());
    for want in ["input d_h: [l];", "output d_a", "output d_b", "scan(", "reverse = true", "shift("] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ssmc_ir::gen::test_cases(1024)))]

    /// Random graphs: wherever the forward is finite and tame, the backward agrees with finite
    /// differences.
    #[test]
    fn random_graphs_agree_with_finite_differences(seed in any::<u64>(), ops in 1usize..16) {
        let g = random_graph(seed, GenOptions { ops, partial_ops: true });
        prop_assume!(grad(&g).is_ok());
        let sizes = random_sizes(&g, seed, 3);
        let (inputs, cots) = case(&g, &sizes, seed);
        let out = evaluate(&g, &refs(&inputs)).unwrap();
        // skip what finite differences cannot judge: values off the reals, or so steep that
        // a step of 1e-6 is not small
        let tame = out.values().all(|t| t.data.iter().all(|v| v.is_finite() && v.abs() < 1e3));
        prop_assume!(tame);
        let analytic = evaluate_grad(&g, &refs(&inputs), &refs(&cots)).unwrap();
        prop_assume!(analytic.values().all(|t| t.data.iter().all(|v| v.is_finite() && v.abs() < 1e3)));
        prop_assert!(check(&g, &sizes, seed) > 0);
    }
}

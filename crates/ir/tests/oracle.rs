//! The oracle against hand-computed cases, one per op, and its error paths.

use ssmc_ir::gen::{random_graph, random_inputs, random_sizes, GenOptions};
use ssmc_ir::interp::{bind_dims, evaluate, evaluate_all, Tensor};
use ssmc_ir::{BinaryOp, GateKind, Graph, InputKind, Method, Op, UnaryOp};
use proptest::prelude::*;

fn t(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// `x: [l]`, `a: []` and a scan of them with the given options.
fn scan_graph(reverse: bool, with_init: bool) -> Graph {
    let mut g = Graph::new("s");
    let l = g.add_dim("l").unwrap();
    let x = g.input("x", InputKind::Input, &[l], None).unwrap();
    let a = g.input("a", InputKind::Param, &[], None).unwrap();
    let init = if with_init { Some(g.input("h0", InputKind::Input, &[], None).unwrap()) } else { None };
    let h = g.scan(a, x, l, reverse, init).unwrap();
    let last = g.scan_final(h).unwrap();
    g.add_output("h", h).unwrap();
    g.add_output("last", last).unwrap();
    g
}

#[test]
fn scan_forward_by_hand() {
    let g = scan_graph(false, false);
    let out = evaluate(&g, &[("x", &t(&[3], &[1.0, 2.0, 3.0])), ("a", &t(&[], &[0.5]))]).unwrap();
    close(&out["h"].data, &[1.0, 2.5, 4.25]);
    close(&out["last"].data, &[4.25]);
}

#[test]
fn scan_reverse_by_hand() {
    let g = scan_graph(true, false);
    let out = evaluate(&g, &[("x", &t(&[3], &[1.0, 2.0, 3.0])), ("a", &t(&[], &[0.5]))]).unwrap();
    close(&out["h"].data, &[2.75, 3.5, 3.0]);
    close(&out["last"].data, &[2.75]);
}

#[test]
fn scan_from_an_initial_state_by_hand() {
    let g = scan_graph(false, true);
    let ins = [("x", &t(&[2], &[1.0, 2.0])), ("a", &t(&[], &[0.5])), ("h0", &t(&[], &[2.0]))];
    let out = evaluate(&g, &ins).unwrap();
    close(&out["h"].data, &[2.0, 3.0]);
    close(&out["last"].data, &[3.0]);
}

#[test]
fn broadcasting_is_by_name_not_position() {
    // x is stored [m, n]; y is [n]; the sum is laid out canonically as [n, m].
    let mut g = Graph::new("b");
    let n = g.add_dim("n").unwrap();
    let m = g.add_dim("m").unwrap();
    let x = g.input("x", InputKind::Input, &[m, n], None).unwrap();
    let y = g.input("y", InputKind::Input, &[n], None).unwrap();
    let s = g.binary(BinaryOp::Add, x, y).unwrap();
    g.add_output("s", s).unwrap();
    // x[m=0] = [1, 2], x[m=1] = [3, 4], x[m=2] = [5, 6]; y = [10, 20]
    let out = evaluate(&g, &[("x", &t(&[3, 2], &[1., 2., 3., 4., 5., 6.])), ("y", &t(&[2], &[10., 20.]))]).unwrap();
    assert_eq!(out["s"].shape, vec![2, 3]);
    close(&out["s"].data, &[11., 13., 15., 22., 24., 26.]);
}

#[test]
fn sum_over_a_named_dim_by_hand() {
    let mut g = Graph::new("sum");
    let n = g.add_dim("n").unwrap();
    let m = g.add_dim("m").unwrap();
    let x = g.input("x", InputKind::Input, &[m, n], None).unwrap();
    let s = g.sum(x, m).unwrap();
    g.add_output("s", s).unwrap();
    let out = evaluate(&g, &[("x", &t(&[3, 2], &[1., 2., 3., 4., 5., 6.]))]).unwrap();
    assert_eq!(out["s"].shape, vec![2]);
    close(&out["s"].data, &[9., 12.]);
}

#[test]
fn conv1d_is_causal_with_bias_by_hand() {
    let mut g = Graph::new("conv");
    let l = g.add_dim("l").unwrap();
    let k = g.add_dim("k").unwrap();
    let x = g.input("x", InputKind::Input, &[l], None).unwrap();
    let w = g.input("w", InputKind::Param, &[k], None).unwrap();
    let b = g.input("b", InputKind::Param, &[], None).unwrap();
    let y = g.conv1d(x, w, Some(b), l).unwrap();
    g.add_output("y", y).unwrap();
    let ins = [("x", &t(&[4], &[1., 2., 3., 4.])), ("w", &t(&[3], &[1., 10., 100.])), ("b", &t(&[], &[0.5]))];
    let out = evaluate(&g, &ins).unwrap();
    // out[i] = b + w0 x[i-2] + w1 x[i-1] + w2 x[i]
    close(&out["y"].data, &[100.5, 210.5, 321.5, 432.5]);
}

#[test]
fn conv1d_per_channel_weights_by_hand() {
    let mut g = Graph::new("conv");
    let c = g.add_dim("c").unwrap();
    let l = g.add_dim("l").unwrap();
    let k = g.add_dim("k").unwrap();
    let x = g.input("x", InputKind::Input, &[c, l], None).unwrap();
    let w = g.input("w", InputKind::Param, &[c, k], None).unwrap();
    let y = g.conv1d(x, w, None, l).unwrap();
    g.add_output("y", y).unwrap();
    let ins = [("x", &t(&[2, 3], &[1., 2., 3., 1., 1., 1.])), ("w", &t(&[2, 2], &[1., 0., 2., 3.]))];
    let out = evaluate(&g, &ins).unwrap();
    // channel 0 taps [1, 0]: y[i] = x[i-1]; channel 1 taps [2, 3]: y[i] = 2 x[i-1] + 3 x[i]
    close(&out["y"].data, &[0., 1., 2., 3., 5., 5.]);
}

#[test]
fn discretizations_match_their_formulas() {
    for method in Method::ALL {
        let mut g = Graph::new("d");
        let dt = g.input("dt", InputKind::Input, &[], None).unwrap();
        let a = g.input("a", InputKind::Param, &[], None).unwrap();
        let b = g.input("b", InputKind::Param, &[], None).unwrap();
        let da = g.discretize_a(method, dt, a).unwrap();
        let db = g.discretize_b(method, dt, a, b).unwrap();
        g.add_output("da", da).unwrap();
        g.add_output("db", db).unwrap();
        let (dtv, av, bv) = (0.1f64, -2.0f64, 3.0f64);
        let out = evaluate(&g, &[("dt", &t(&[], &[dtv])), ("a", &t(&[], &[av])), ("b", &t(&[], &[bv]))]).unwrap();
        let (want_a, want_b) = match method {
            Method::Zoh => ((dtv * av).exp(), ((dtv * av).exp() - 1.0) / av * bv),
            Method::Euler => (1.0 + dtv * av, dtv * bv),
            Method::Bilinear => ((1.0 + dtv * av / 2.0) / (1.0 - dtv * av / 2.0), dtv * bv / (1.0 - dtv * av / 2.0)),
        };
        close(&out["da"].data, &[want_a]);
        close(&out["db"].data, &[want_b]);
    }
}

#[test]
fn gates_by_hand() {
    for (kind, want) in [(GateKind::Silu, 2.0 * 1.0 / (1.0 + (-1.0f64).exp())), (GateKind::Sigmoid, 2.0 / (1.0 + (-1.0f64).exp()))] {
        let mut g = Graph::new("g");
        let x = g.input("x", InputKind::Input, &[], None).unwrap();
        let z = g.input("z", InputKind::Input, &[], None).unwrap();
        let y = g.gate(kind, x, z).unwrap();
        g.add_output("y", y).unwrap();
        let out = evaluate(&g, &[("x", &t(&[], &[2.0])), ("z", &t(&[], &[1.0]))]).unwrap();
        close(&out["y"].data, &[want]);
    }
}

#[test]
fn unary_ops_by_hand() {
    let cases: [(UnaryOp, f64, f64); 21] = [
        (UnaryOp::Neg, 2.0, -2.0),
        (UnaryOp::Exp, 1.0, std::f64::consts::E),
        (UnaryOp::Exp2, 3.0, 8.0),
        (UnaryOp::Log, std::f64::consts::E, 1.0),
        (UnaryOp::Log1p, 0.0, 0.0),
        (UnaryOp::Softplus, 0.0, std::f64::consts::LN_2),
        (UnaryOp::Sigmoid, 0.0, 0.5),
        (UnaryOp::Silu, 0.0, 0.0),
        (UnaryOp::Tanh, 0.0, 0.0),
        (UnaryOp::Sqrt, 9.0, 3.0),
        (UnaryOp::Rsqrt, 4.0, 0.5),
        (UnaryOp::Recip, 4.0, 0.25),
        (UnaryOp::Abs, -3.0, 3.0),
        // radians, odd and even, and far from 0
        (UnaryOp::Sin, std::f64::consts::FRAC_PI_6, 0.5),
        (UnaryOp::Sin, -std::f64::consts::FRAC_PI_2, -1.0),
        (UnaryOp::Sin, 1000.0 * std::f64::consts::PI + std::f64::consts::FRAC_PI_6, 0.5),
        (UnaryOp::Sin, 0.0, 0.0),
        (UnaryOp::Cos, std::f64::consts::FRAC_PI_3, 0.5),
        (UnaryOp::Cos, -std::f64::consts::PI, -1.0),
        (UnaryOp::Cos, 1000.0 * std::f64::consts::PI + std::f64::consts::FRAC_PI_3, 0.5),
        (UnaryOp::Cos, 0.0, 1.0),
    ];
    for (op, x, want) in cases {
        let mut g = Graph::new("u");
        let xi = g.input("x", InputKind::Input, &[], None).unwrap();
        let y = g.unary(op, xi).unwrap();
        g.add_output("y", y).unwrap();
        let out = evaluate(&g, &[("x", &t(&[], &[x]))]).unwrap();
        close(&out["y"].data, &[want]);
    }
}

#[test]
fn binary_ops_by_hand() {
    let cases: [(BinaryOp, f64, f64, f64); 6] = [
        (BinaryOp::Add, 2.0, 3.5, 5.5),
        (BinaryOp::Sub, 2.0, 3.5, -1.5),
        (BinaryOp::Mul, -2.0, 3.5, -7.0),
        (BinaryOp::Div, 3.0, -4.0, -0.75),
        (BinaryOp::Max, -2.0, 1.0, 1.0),
        (BinaryOp::Min, -2.0, 1.0, -2.0),
    ];
    for (op, a, b, want) in cases {
        let mut g = Graph::new("b");
        let ai = g.input("a", InputKind::Input, &[], None).unwrap();
        let bi = g.input("b", InputKind::Input, &[], None).unwrap();
        let y = g.binary(op, ai, bi).unwrap();
        g.add_output("y", y).unwrap();
        let out = evaluate(&g, &[("a", &t(&[], &[a])), ("b", &t(&[], &[b]))]).unwrap();
        close(&out["y"].data, &[want]);
        // the operands' order is kept (sub, div) and both orders of max and min agree
        let back = evaluate(&g, &[("a", &t(&[], &[b])), ("b", &t(&[], &[a]))]).unwrap();
        let swapped = match op {
            BinaryOp::Sub => -want,
            BinaryOp::Div => 1.0 / want,
            _ => want,
        };
        close(&back["y"].data, &[swapped]);
    }
}

#[test]
fn constants_are_finite_numbers() {
    let mut g = Graph::new("c");
    for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        let e = g.constant(v).unwrap_err();
        assert!(e.message.contains("is not a finite number"), "{}", e.message);
    }
    assert!(g.constant(f64::MAX).is_ok());
}

#[test]
fn values_too_large_to_make_are_errors_naming_their_dims() {
    // an outer product of two small inputs
    let mut g = Graph::new("outer");
    let n = g.add_dim("n").unwrap();
    let m = g.add_dim("m").unwrap();
    let x = g.input("x", InputKind::Input, &[n], None).unwrap();
    let y = g.input("y", InputKind::Input, &[m], None).unwrap();
    let z = g.binary(BinaryOp::Mul, x, y).unwrap();
    g.add_output("z", z).unwrap();
    let big = 1usize << 21;
    let e = bind_dims(&g, [("x", &[big][..]), ("y", &[big][..])]).unwrap_err();
    assert_eq!(e.message, "a value over [n=2097152, m=2097152] would have more than 2^40 elements, too large to make");
    assert_eq!(e.node, Some(z));
    // where a count wraps usize
    let e = bind_dims(&g, [("x", &[usize::MAX / 2][..]), ("y", &[3][..])]).unwrap_err();
    assert!(e.message.contains("too large to make"), "{}", e.message);
    assert!(bind_dims(&g, [("x", &[1 << 20][..]), ("y", &[1 << 20][..])]).is_ok());
}

#[test]
fn nan_and_infinity_propagate() {
    let g = scan_graph(false, false);
    let out = evaluate(&g, &[("x", &t(&[3], &[1.0, f64::NAN, 1.0])), ("a", &t(&[], &[0.5]))]).unwrap();
    assert_eq!(out["h"].data[0], 1.0);
    assert!(out["h"].data[1].is_nan() && out["h"].data[2].is_nan());
    let out = evaluate(&g, &[("x", &t(&[2], &[f64::INFINITY, 1.0])), ("a", &t(&[], &[0.5]))]).unwrap();
    assert_eq!(out["h"].data, vec![f64::INFINITY, f64::INFINITY]);
}

fn err_msg<T: std::fmt::Debug>(r: ssmc_ir::Result<T>) -> String {
    r.unwrap_err().message
}

#[test]
fn invalid_ops_say_what_and_where() {
    let mut g = Graph::new("bad");
    let n = g.add_dim("n").unwrap();
    let m = g.add_dim("m").unwrap();
    let x = g.input("x", InputKind::Input, &[n], None).unwrap();
    assert_eq!(err_msg(g.sum(x, m)), "sum over `m`, but the operand has dims [n]");
    assert_eq!(err_msg(g.scan(x, x, m, false, None)), "scan along `m`, but its operands have dims [n]");
    let y = g.input("y", InputKind::Input, &[n, m], None).unwrap();
    assert_eq!(
        err_msg(g.scan(y, y, m, false, Some(y))),
        "the initial state of a scan has dims [n, m], but the state has dims [n]"
    );
    assert_eq!(err_msg(g.scan_final(y)), "`final_state` takes the result of a `scan`, not of `input`");
    assert!(err_msg(g.conv1d(y, x, None, m)).contains("need exactly one dim the signal [n, m] lacks"));
    assert!(err_msg(g.conv1d(x, y, None, n)).contains("must not range over `n`"));
    assert_eq!(err_msg(g.add_dim("n")), "dim `n` is declared twice");
    assert_eq!(err_msg(g.input("x", InputKind::Input, &[], None)), "`x` is declared twice");
    assert_eq!(err_msg(g.input("z", InputKind::Input, &[n, n], None)), "`z` lists dim `n` twice in its layout");
    let bad = g.push(Op::Unary(UnaryOp::Exp, ssmc_ir::NodeId(99))).unwrap_err();
    assert!(bad.message.contains("before it is defined"), "{}", bad.message);
    assert_eq!(bad.node, Some(ssmc_ir::NodeId(2)));
    assert_eq!(g.validate().unwrap_err().message, "layer `bad` has no output");
}

#[test]
fn inputs_that_do_not_fit_are_named() {
    let mut g = Graph::new("l");
    let n = g.add_dim("n").unwrap();
    let m = g.add_dim("m").unwrap();
    g.input("x", InputKind::Input, &[n, m], None).unwrap();
    g.input("y", InputKind::Input, &[m], None).unwrap();
    let ok: [(&str, &[usize]); 2] = [("x", &[2, 3]), ("y", &[3])];
    assert_eq!(bind_dims(&g, ok).unwrap().0, vec![Some(2), Some(3)]);
    let e = |shapes: &[(&str, &[usize])]| bind_dims(&g, shapes.iter().copied()).unwrap_err().message;
    assert_eq!(e(&[("x", &[2, 3])]), "missing input `y` with dims [m]");
    assert_eq!(e(&[("x", &[2, 3]), ("y", &[3]), ("q", &[1])]), "unexpected input `q`; layer `l` takes `x`, `y`");
    assert_eq!(e(&[("x", &[2]), ("y", &[3])]), "input `x` has shape [2], but it is declared with dims [n, m] (rank 2)");
    assert_eq!(e(&[("x", &[2, 3]), ("y", &[4])]), "input `y` has `m` = 4, but `x` has `m` = 3");
    assert_eq!(e(&[("x", &[0, 3]), ("y", &[3])]), "input `x` has size 0 along `n`");
    let short = Tensor { shape: vec![2, 3], data: vec![0.0; 5] };
    let err = evaluate_all(&g, &[("x", &short), ("y", &t(&[3], &[0., 0., 0.]))]).unwrap_err();
    assert_eq!(err.message, "input `x` has shape [2, 3] but 5 values");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ssmc_ir::gen::test_cases(256)))]

    /// Random valid graphs pass validation and evaluate without panics, with outputs shaped as
    /// their nodes' shapes say.
    #[test]
    fn random_graphs_evaluate(seed in any::<u64>(), ops in 1usize..14) {
        let g = random_graph(seed, GenOptions { ops, partial_ops: true });
        g.validate().unwrap();
        let sizes = random_sizes(&g, seed, 4);
        let inputs = random_inputs(&g, &sizes, seed);
        let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let out = evaluate(&g, &refs).unwrap();
        for o in g.outputs() {
            let want: Vec<usize> = g.node(o.node).shape.dims().iter().map(|d| sizes[d.index()]).collect();
            prop_assert_eq!(&out[&o.name].shape, &want);
        }
    }
}

// Custom variants: a sigmoid gate with no skip term, and a reverse scan checked numerically.
use ssmc::ir::DType;
use ssmc::runtime::{HostTensor, TensorMap};

ssmc::ssm! {
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

ssmc::ssm! {
    layer Backward {
        dims len;
        input x: [len];
        param a: [] in 0.0..1.0;
        output h = scan(a, x, len, reverse = true);
    }
}

fn main() {
    let l = SigmoidNoSkip::new();
    assert_eq!(SigmoidNoSkip::INPUTS, ["u", "delta", "A", "B", "C", "z", "delta_bias"]);
    assert_eq!(l.graph().outputs()[0].name, "out");
    let file = ssmc::dsl::parse_str(include_str!("../../../../examples/sigmoid_noskip.ssm")).unwrap();
    assert!(file.same_as(l.graph()));
    assert!(ssmc::dsl::parse_str(SigmoidNoSkip::SOURCE).unwrap().same_as(l.graph()));
    assert!(SigmoidNoSkip::SOURCE.contains("sigmoid"));
    let named = SigmoidNoSkipInputs { u: "u", delta: "d", A: "A", B: "B", C: "C", z: "z", delta_bias: "db" }
        .into_named();
    assert_eq!(named.map(|(n, _)| n), SigmoidNoSkip::INPUTS);

    let b = Backward::new();
    assert_eq!(Backward::INPUTS, ["x", "a"]);
    assert_eq!(Backward::OUTPUTS, ["h"]);
    assert!(ssmc::dsl::parse_str(Backward::SOURCE).unwrap().same_as(b.graph()));
    let [(xn, x), (an, a)] = BackwardInputs {
        x: HostTensor::from_f64(DType::F32, vec![3], &[1.0, 1.0, 1.0]).unwrap(),
        a: HostTensor::from_f64(DType::F32, vec![], &[0.5]).unwrap(),
    }
    .into_named();
    let mut inputs = TensorMap::new();
    inputs.insert(xn.into(), x);
    inputs.insert(an.into(), a);
    let out = b.layer().eval(&inputs).unwrap();
    // Run from the end: h[2] = 1, h[1] = 0.5 * 1 + 1, h[0] = 0.5 * 1.5 + 1.
    assert_eq!(out["h"].to_f64(), vec![1.75, 1.5, 1.0]);
}

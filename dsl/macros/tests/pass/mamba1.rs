// Mamba-1's selective scan written with `ssm!`: the generated struct, its constants, the
// `Mamba1Inputs` struct, and the graph agree with examples/mamba1.ssm.
ssmc::ssm! {
    layer Mamba1 {
        dims batch, dim, len, state;

        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        param D: [dim];
        input z: [batch, dim, len];
        param delta_bias: [dim];

        let dt = softplus(delta + delta_bias);
        let dA = discretize_a(zoh, dt, A);
        let dBu = discretize_b(euler, dt, A, B) * u;
        let h = scan(dA, dBu, len);
        let y = sum(C * h, state) + D * u;
        output out = gate(y, z, silu);
    }
}

fn main() {
    let l = Mamba1::new();
    assert_eq!(Mamba1::INPUTS, ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]);
    assert_eq!(Mamba1::OUTPUTS, ["out"]);
    let g = l.graph();
    assert_eq!(g.name(), "Mamba1");
    assert_eq!(g.outputs().len(), 1);
    assert_eq!(g.outputs()[0].name, "out");
    assert_eq!(g.dims().map(|(_, n)| n).collect::<Vec<_>>(), ["batch", "dim", "len", "state"]);
    let out = &g.node(g.outputs()[0].node).shape;
    assert_eq!(g.fmt_shape(out), "[batch, dim, len]");
    let names: Vec<&str> = g.inputs().map(|(_, d)| d.name.as_str()).collect();
    assert_eq!(names, Mamba1::INPUTS);

    // SOURCE is canonical text that parses back to the same graph.
    let reparsed = ssmc::dsl::parse_str(Mamba1::SOURCE).expect("SOURCE parses");
    assert!(reparsed.same_as(g), "SOURCE:\n{}", Mamba1::SOURCE);
    // The macro and the .ssm file read the same spec into the same graph.
    let file = ssmc::dsl::parse_str(include_str!("../../../../examples/mamba1.ssm")).expect("example parses");
    assert!(file.same_as(g));
    // Default builds the same layer, and it converts to an ssmc::Layer.
    assert!(Mamba1::default().graph().same_as(g));
    assert!(l.layer().graph().same_as(g));

    let named = Mamba1Inputs { u: 0, delta: 1, A: 2, B: 3, C: 4, D: 5, z: 6, delta_bias: 7 }.into_named();
    assert_eq!(named.map(|(n, _)| n), Mamba1::INPUTS);
    assert_eq!(named.map(|(_, v)| v), [0, 1, 2, 3, 4, 5, 6, 7]);
}

// `exact` is not a discretization method.
ssmc::ssm! {
    layer Mamba1 {
        dims batch, dim, len, state;
        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];

        let dt = softplus(delta);
        let h = scan(discretize_a(exact, dt, A), discretize_b(euler, dt, A, B) * u, len);
        output y = sum(C * h, state);
    }
}

fn main() {}

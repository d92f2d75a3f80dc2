// `dt` is bound twice.
ssmc::ssm! {
    layer Mamba1 {
        dims batch, dim, len, state;
        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        param delta_bias: [dim];

        let dt = delta + delta_bias;
        let dt = softplus(dt);
        let h = scan(discretize_a(zoh, dt, A), discretize_b(euler, dt, A, B) * u, len);
        output y = sum(C * h, state);
    }
}

fn main() {}

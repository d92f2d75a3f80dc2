// The skip term `D * u` has no `state` dim to sum over (the sum belongs around `C * h`).
ssmc::ssm! {
    layer Mamba1 {
        dims batch, dim, len, state;
        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        param D: [dim];

        let dt = softplus(delta);
        let h = scan(discretize_a(zoh, dt, A), discretize_b(euler, dt, A, B) * u, len);
        output y = C * h + sum(D * u, state);
    }
}

fn main() {}

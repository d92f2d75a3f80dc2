// A layout names a dim that `dims` does not declare (a typo of `state`).
ssmc::ssm! {
    layer Mamba1 {
        dims batch, dim, len, state;
        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, sate] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        input z: [batch, dim, len];

        let dt = softplus(delta);
        let h = scan(discretize_a(zoh, dt, A), discretize_b(euler, dt, A, B) * u, len);
        output out = gate(sum(C * h, state), z, silu);
    }
}

fn main() {}

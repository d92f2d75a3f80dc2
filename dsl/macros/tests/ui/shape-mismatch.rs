// The initial state of the scan keeps `len`, so it does not fit the state [batch, dim, state].
ssmc::ssm! {
    layer Chunked {
        dims batch, dim, len, state;
        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        input h0: [batch, dim, len, state];

        let dt = softplus(delta);
        let h = scan(discretize_a(zoh, dt, A), discretize_b(euler, dt, A, B) * u, len, init = h0);
        output y = sum(C * h, state);
    }
}

fn main() {}

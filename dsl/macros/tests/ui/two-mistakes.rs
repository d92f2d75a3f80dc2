// Two independent mistakes: both are reported, and the later uses of `dt` (whose definition
// failed) and of `y` report nothing more.
ssmc::ssm! {
    layer Mamba1 {
        dims batch, dim, len, state;
        input u: [batch, dim, len];
        input delta: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input B: [batch, state, len];
        input C: [batch, state, len];
        input z: [batch, dim, len];

        let dt = softplsu(delta);
        let dA = discretize_a(zoh, dt, A);
        let dBu = discretize_b(euler, dt, A, B) * u;
        let h = scan(dA, dBu, len);
        let y = sum(C * h, stat);
        output out = gate(y, z, silu);
    }
}

fn main() {}

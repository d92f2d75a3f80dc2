// `final_state` needs the result of a `scan`; `y` is a sum.
ssmc::ssm! {
    layer Step {
        dims batch, dim, len, state;
        input u: [batch, dim, len];
        param A: [dim, state] in -4.0..-0.5;
        input C: [batch, state, len];

        let h = scan(A, u, len);
        let y = sum(C * h, state);
        output last = final_state(y);
    }
}

fn main() {}

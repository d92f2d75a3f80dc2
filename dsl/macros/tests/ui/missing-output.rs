// Every result is bound with `let`; nothing is an `output`.
ssmc::ssm! {
    layer Leaky {
        dims len;
        input x: [len];
        param a: [] in 0.0..1.0;

        let h = scan(a, x, len);
    }
}

fn main() {}

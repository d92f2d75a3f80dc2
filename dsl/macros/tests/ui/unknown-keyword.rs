// `reversed` is not an argument of `scan` (it is `reverse`).
ssmc::ssm! {
    layer Backward {
        dims len;
        input x: [len];
        param a: [] in 0.0..1.0;

        output h = scan(a, x, len, reversed = true);
    }
}

fn main() {}

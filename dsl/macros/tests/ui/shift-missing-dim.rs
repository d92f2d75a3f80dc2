// `shift` steps along a dim its operand must have: `D` has no `len`, so the caret is on `len`.
ssmc::ssm! {
    layer Shifted {
        dims dim, len;
        param D: [dim];
        output y = shift(D, len);
    }
}

fn main() {}

// A dim name used where a value is expected.
ssmc::ssm! {
    layer Scale {
        dims batch, len;
        input x: [batch, len];

        output y = x * len;
    }
}

fn main() {}

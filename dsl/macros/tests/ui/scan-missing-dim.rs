// `u` was declared without `len`, so nothing in the scan runs along `len`.
ssmc::ssm! {
    layer Leaky {
        dims batch, dim, len;
        input u: [batch, dim];
        param a: [dim] in 0.0..1.0;

        output h = scan(a, u, len);
    }
}

fn main() {}

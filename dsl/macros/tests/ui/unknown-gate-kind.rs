// `relu` is not a gate kind.
ssmc::ssm! {
    layer Gated {
        dims batch, dim, len;
        input y: [batch, dim, len];
        input z: [batch, dim, len];

        output out = gate(y, z, relu);
    }
}

fn main() {}

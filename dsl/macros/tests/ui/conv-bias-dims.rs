// The conv1d bias ranges over `len`, the dim convolved along; it must be per channel ([dim]).
ssmc::ssm! {
    layer Conv {
        dims batch, dim, len, width;
        input x: [batch, dim, len];
        param conv_weight: [dim, width];
        param conv_bias: [dim, len];

        output u = silu(conv1d(x, conv_weight, len, bias = conv_bias));
    }
}

fn main() {}

// The conv1d weights have no tap dim (`width` was left out), so the caret is on the weights.
ssmc::ssm! {
    layer Conv {
        dims batch, dim, len, width;
        input x: [batch, dim, len];
        param conv_weight: [dim];
        param conv_bias: [dim];

        output u = silu(conv1d(x, conv_weight, len, bias = conv_bias));
    }
}

fn main() {}

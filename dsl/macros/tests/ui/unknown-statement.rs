// A statement keyword typo is a parse error at that word.
ssmc::ssm! {
    layer Leaky {
        dims len;
        inputs x: [len];
        param a: [] in 0.0..1.0;

        output h = scan(a, x, len);
    }
}

fn main() {}

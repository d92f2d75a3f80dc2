// The layer has a mistake, but code naming its type still compiles against the stub struct:
// the only error is the spec's own, not a "cannot find type `Broken`".
ssmc::ssm! {
    layer Broken {
        dims len;
        input x: [len];
        param a: [] in 0.0..1.0;

        output h = scan(a, x, lenn);
    }
}

fn take(_: Broken) {}

fn main() {
    let _ = take;
}

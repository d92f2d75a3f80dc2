// A literal past f64's range would be an infinity, which no printer writes back as a number.
ssmc::ssm! {
    layer Scale {
        dims len;
        input x: [len];
        output y = x * 1e309;
    }
}

fn main() {}

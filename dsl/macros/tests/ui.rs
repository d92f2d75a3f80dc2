//! Compile-fail and pass tests for `ssm!`: every mistake is a compile error at its token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}

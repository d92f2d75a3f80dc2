//! Algebra that pays on hardware. No law changes a result by more than float reassociation does,
//! and none touches `softplus`, whose stable form the backends own.
//!
//! | law                            | from                         | to                              |
//! |--------------------------------|------------------------------|---------------------------------|
//! | `zoh-a-as-exp`                 | `disc_a zoh dt a`            | `exp(dt * a)`                   |
//! | `euler-a-as-fma`               | `disc_a euler dt a`          | `dt * a + 1`                    |
//! | `euler-b-as-mul`               | `disc_b euler dt a b`        | `dt * b` (if `a` adds no dims)  |
//! | `exp-to-exp2`                  | `exp(x)`                     | `exp2(x * log2 e)`              |
//! | `hoist-exp2-scale-out-of-scan` | `exp2((x * y) * k)`, k const | `exp2(x * (y * k))` if `y * k` has fewer dims than `x * y` |
//! | `hoist-exp2-scale-out-of-scan-left` | `exp2((y * x) * k)`, k const | `exp2((y * k) * x)`, the same with `y` on the left |
//! | `mul-one`, `mul-one-left`      | `x * 1`, `1 * x`             | `x` (these five: if `x` is laid out canonically) |
//! | `add-zero`, `add-zero-left`    | `x + 0`, `0 + x`             | `x`                             |
//! | `sub-zero`, `div-one`          | `x - 0`, `x / 1`             | `x`                             |
//! | `neg-neg`                      | `neg(neg(x))`                | `x`                             |
//!
//! Constants are folded by the analysis ([`crate::analysis`]). Other loop invariants need no
//! rewrite: kernel lowering places each step at the outermost loop level its operands allow
//! (`ssmc_kernel::kir::Level`), so a value that does not vary along the scanned dim is computed
//! once per row, outside the scan.

use super::Rewrite;
use crate::analysis::SsmAnalysis;
use crate::lang::Ssm;
use egg::{rewrite as rw, EGraph, Id, Subst, Var};

/// `log2(e)`, the scale that turns `exp` into `exp2`.
pub const LOG2_E: f64 = std::f64::consts::LOG2_E;

fn is_const(v: &'static str) -> impl Fn(&mut EGraph<Ssm, SsmAnalysis>, Id, &Subst) -> bool {
    let v: Var = v.parse().expect("var");
    move |g, _, s| g[s[v]].data.konst.is_some()
}

/// `y` has fewer dims than `x * y`: scaling `y` first is cheaper, and loop-invariant in `x`'s
/// extra dims (for Mamba: `A * log2 e` over `[dim, state]`, not `[batch, dim, len, state]`).
fn invariant_part(x: &'static str, y: &'static str) -> impl Fn(&mut EGraph<Ssm, SsmAnalysis>, Id, &Subst) -> bool {
    let (x, y): (Var, Var) = (x.parse().expect("var"), y.parse().expect("var"));
    move |g, _, s| {
        let (sx, sy) = (&g[s[x]].data.shape, &g[s[y]].data.shape);
        !sx.is_subset_of(sy) && sy.rank() < ssmc_ir::Shape::union([sx, sy]).rank()
    }
}

/// `a`'s dims are among `dt`'s and `b`'s, so dropping `a` keeps the shape.
fn covered(a: &'static str, dt: &'static str, b: &'static str) -> impl Fn(&mut EGraph<Ssm, SsmAnalysis>, Id, &Subst) -> bool {
    let (a, dt, b): (Var, Var, Var) = (a.parse().expect("var"), dt.parse().expect("var"), b.parse().expect("var"));
    move |g, _, s| g[s[a]].data.shape.is_subset_of(&ssmc_ir::Shape::union([&g[s[dt]].data.shape, &g[s[b]].data.shape]))
}

/// `x` is laid out canonically, so replacing a computed value by it keeps the layout (an input
/// stored as `[len, batch]` is not the same tensor as a computed `[batch, len]`).
fn canonical(x: &'static str) -> impl Fn(&mut EGraph<Ssm, SsmAnalysis>, Id, &Subst) -> bool {
    let x: Var = x.parse().expect("var");
    move |g, _, s| {
        let shape = &g[s[x]].data.shape;
        *shape == shape.canonical()
    }
}

/// Every algebra rewrite.
pub fn rules() -> Vec<Rewrite> {
    let log2e = format!("{LOG2_E:?}");
    vec![
        rw!("zoh-a-as-exp"; "(disc_a zoh ?dt ?a)" => "(exp (* ?dt ?a))"),
        rw!("euler-a-as-fma"; "(disc_a euler ?dt ?a)" => "(+ (* ?dt ?a) 1.0)"),
        rw!("euler-b-as-mul"; "(disc_b euler ?dt ?a ?b)" => "(* ?dt ?b)" if covered("?a", "?dt", "?b")),
        Rewrite::new(
            "exp-to-exp2",
            "(exp ?x)".parse::<egg::Pattern<Ssm>>().expect("pattern"),
            format!("(exp2 (* ?x {log2e}))").parse::<egg::Pattern<Ssm>>().expect("pattern"),
        )
        .expect("valid rewrite"),
        rw!("hoist-exp2-scale-out-of-scan"; "(exp2 (* (* ?x ?y) ?k))" => "(exp2 (* ?x (* ?y ?k)))"
            if is_const("?k") if invariant_part("?x", "?y")),
        rw!("hoist-exp2-scale-out-of-scan-left"; "(exp2 (* (* ?y ?x) ?k))" => "(exp2 (* (* ?y ?k) ?x))"
            if is_const("?k") if invariant_part("?x", "?y")),
        rw!("mul-one"; "(* ?x 1.0)" => "?x" if canonical("?x")),
        rw!("mul-one-left"; "(* 1.0 ?x)" => "?x" if canonical("?x")),
        rw!("add-zero"; "(+ ?x 0.0)" => "?x" if canonical("?x")),
        rw!("add-zero-left"; "(+ 0.0 ?x)" => "?x" if canonical("?x")),
        rw!("sub-zero"; "(- ?x 0.0)" => "?x" if canonical("?x")),
        rw!("div-one"; "(/ ?x 1.0)" => "?x" if canonical("?x")),
        rw!("neg-neg"; "(neg (neg ?x))" => "?x" if canonical("?x")),
    ]
}

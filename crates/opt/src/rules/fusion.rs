//! Fusion: rewrites that remove a `mat` between a producer and its consumer, so the value stays
//! in registers instead of a buffer. Each law says which producer kinds may be pulled into which
//! consumers; whether a whole kernel is then lowerable is checked again when the plan is built
//! (see [`crate::plan`]).
//!
//! | law                          | producer     | consumer                                   |
//! |------------------------------|--------------|--------------------------------------------|
//! | `fuse-elementwise-chain`     | elementwise  | elementwise                                |
//! | `fuse-elementwise-into-scan` | elementwise  | scan (`a`, `b`, `init`)                    |
//! | `fuse-elementwise-into-sum`  | elementwise  | sum                                        |
//! | `fuse-scan-into-elementwise` | scan         | elementwise (`C * h`)                      |
//! | `fuse-scan-into-sum`         | scan along l | sum over a dim other than l                |
//! | `fuse-scan-into-final-state` | scan         | `final_state`                              |
//! | `fuse-sum-into-epilogue`     | sum          | elementwise (skip term, gate)              |
//! | `fuse-conv-into-elementwise` | conv1d       | elementwise                                |

use super::Rewrite;
use crate::analysis::{Kind, SsmAnalysis};
use crate::lang::Ssm;
use egg::{EGraph, Id, Pattern, Subst, Var};

/// Consumers as patterns, with the child positions that are values.
const ELEMENTWISE: &[(&str, &[&str], &[usize])] = &[
    ("neg", &["?x"], &[0]),
    ("exp", &["?x"], &[0]),
    ("exp2", &["?x"], &[0]),
    ("log", &["?x"], &[0]),
    ("log1p", &["?x"], &[0]),
    ("softplus", &["?x"], &[0]),
    ("sigmoid", &["?x"], &[0]),
    ("silu", &["?x"], &[0]),
    ("tanh", &["?x"], &[0]),
    ("sqrt", &["?x"], &[0]),
    ("rsqrt", &["?x"], &[0]),
    ("recip", &["?x"], &[0]),
    ("abs", &["?x"], &[0]),
    ("+", &["?x", "?y"], &[0, 1]),
    ("-", &["?x", "?y"], &[0, 1]),
    ("*", &["?x", "?y"], &[0, 1]),
    ("/", &["?x", "?y"], &[0, 1]),
    ("max", &["?x", "?y"], &[0, 1]),
    ("min", &["?x", "?y"], &[0, 1]),
    ("disc_a", &["?m", "?x", "?y"], &[1, 2]),
    ("disc_b", &["?m", "?x", "?y", "?z"], &[1, 2, 3]),
    ("gate", &["?m", "?x", "?z"], &[1, 2]),
];
const SCAN: &[(&str, &[&str], &[usize])] = &[("scan", &["?x", "?y", "?d", "?r", "?z"], &[0, 1, 4])];
const SUM: &[(&str, &[&str], &[usize])] = &[("sum", &["?x", "?d"], &[0])];
const FINAL: &[(&str, &[&str], &[usize])] = &[("final", &["?x"], &[0])];

type Producer = fn(Kind, &EGraph<Ssm, SsmAnalysis>, &Subst) -> bool;

fn elementwise(k: Kind, _: &EGraph<Ssm, SsmAnalysis>, _: &Subst) -> bool {
    k == Kind::Elementwise
}

fn any_scan(k: Kind, _: &EGraph<Ssm, SsmAnalysis>, _: &Subst) -> bool {
    matches!(k, Kind::Scan(..))
}

/// A scan along `l` into a sum over another dim (the sum over `state` of `C * h`).
fn scan_not_along_sum_dim(k: Kind, g: &EGraph<Ssm, SsmAnalysis>, s: &Subst) -> bool {
    let sum_dim = g[s["?d".parse::<Var>().expect("var")]].data.dim();
    matches!(k, Kind::Scan(d, _) if Some(d) != sum_dim)
}

fn any_sum(k: Kind, _: &EGraph<Ssm, SsmAnalysis>, _: &Subst) -> bool {
    matches!(k, Kind::Sum(_))
}

fn any_conv(k: Kind, _: &EGraph<Ssm, SsmAnalysis>, _: &Subst) -> bool {
    matches!(k, Kind::Conv(_))
}

/// Consumer patterns of a law: (pattern name, op names, operand positions that may fuse).
type Consumers = &'static [(&'static str, &'static [&'static str], &'static [usize])];

/// The fusion laws: (name, consumers, which producers may be pulled in).
fn laws() -> Vec<(&'static str, Consumers, Producer)> {
    vec![
        ("fuse-elementwise-chain", ELEMENTWISE, elementwise),
        ("fuse-elementwise-into-scan", SCAN, elementwise),
        ("fuse-elementwise-into-sum", SUM, elementwise),
        ("fuse-scan-into-elementwise", ELEMENTWISE, any_scan),
        ("fuse-scan-into-sum", SUM, scan_not_along_sum_dim),
        ("fuse-scan-into-final-state", FINAL, any_scan),
        ("fuse-sum-into-epilogue", ELEMENTWISE, any_sum),
        ("fuse-conv-into-elementwise", ELEMENTWISE, any_conv),
    ]
}

/// Every fusion rewrite: one per law, consumer and value position.
pub fn rules() -> Vec<Rewrite> {
    let mut out = Vec::new();
    for (law, consumers, producer) in laws() {
        for (op, vars, positions) in consumers {
            for &pos in *positions {
                let with = |replacement: &str| {
                    let args: Vec<String> =
                        vars.iter().enumerate().map(|(i, v)| if i == pos { replacement.to_string() } else { v.to_string() }).collect();
                    format!("({op} {})", args.join(" "))
                };
                let lhs: Pattern<Ssm> = with("(mat ?p)").parse().expect("fusion pattern");
                let rhs: Pattern<Ssm> = with("?p").parse().expect("fusion pattern");
                let p: Var = "?p".parse().expect("var");
                let cond = move |g: &mut EGraph<Ssm, SsmAnalysis>, _: Id, s: &Subst| producer(g[s[p]].data.kind, g, s);
                let name = format!("{law}/{op}#{pos}");
                out.push(Rewrite::new(name, lhs, egg::ConditionalApplier { condition: cond, applier: rhs }).expect("valid rewrite"));
            }
        }
    }
    out
}

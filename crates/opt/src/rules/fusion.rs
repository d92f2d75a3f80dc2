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
//! | `fuse-conv-into-elementwise` | conv1d, shift, window | elementwise                       |
//! | `fuse-scan-into-shift`       | scan         | shift along its dim and direction, filled with its initial state (its state before the step; with [`crate::Forms::replay`]) |

use super::Rewrite;
use crate::analysis::{Kind, SsmAnalysis};
use crate::lang::Ssm;
use egg::{EGraph, Id, Pattern, Subst, Var};
use ssmc_ir::{BinaryOp, UnaryOp};

/// A consumer pattern: its op, its operand variables, and the operand positions that are values
/// (a producer may fuse there).
type Consumer = (String, &'static [&'static str], &'static [usize]);

/// Every elementwise consumer: each unary and binary op of the IR (as the term language writes
/// it), then the discretizations, the gate and broadcast.
fn elementwise_consumers() -> Vec<Consumer> {
    let unary = UnaryOp::ALL.into_iter().map(|u| (u.to_string(), &["?x"][..], &[0][..]));
    let binary = BinaryOp::ALL.into_iter().map(|b| (b.to_string(), &["?x", "?y"][..], &[0, 1][..]));
    let others: [(&str, &'static [&'static str], &'static [usize]); 4] = [
        ("disc_a", &["?m", "?x", "?y"], &[1, 2]),
        ("disc_b", &["?m", "?x", "?y", "?z"], &[1, 2, 3]),
        ("gate", &["?m", "?x", "?z"], &[1, 2]),
        ("bcast", &["?x", "?d"], &[0]),
    ];
    unary.chain(binary).chain(others.into_iter().map(|(op, vars, at)| (op.to_string(), vars, at))).collect()
}

fn scan_consumers() -> Vec<Consumer> {
    vec![("scan".into(), &["?x", "?y", "?d", "?r", "?z"], &[0, 1, 4])]
}

fn sum_consumers() -> Vec<Consumer> {
    vec![("sum".into(), &["?x", "?d"], &[0])]
}

fn final_consumers() -> Vec<Consumer> {
    vec![("final".into(), &["?x"], &[0])]
}

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

/// The consumers of a law.
type Consumers = fn() -> Vec<Consumer>;

/// The fusion laws: (name, consumers, which producers may be pulled in).
fn laws() -> Vec<(&'static str, Consumers, Producer)> {
    vec![
        ("fuse-elementwise-chain", elementwise_consumers, elementwise),
        ("fuse-elementwise-into-scan", scan_consumers, elementwise),
        ("fuse-elementwise-into-sum", sum_consumers, elementwise),
        ("fuse-scan-into-elementwise", elementwise_consumers, any_scan),
        ("fuse-scan-into-sum", sum_consumers, scan_not_along_sum_dim),
        ("fuse-scan-into-final-state", final_consumers, any_scan),
        ("fuse-sum-into-epilogue", elementwise_consumers, any_sum),
        ("fuse-conv-into-elementwise", elementwise_consumers, any_conv),
    ]
}

/// `shift(scan(a, b, d, r, init), d, init, r)`: the scan's state before each step, which a
/// kernel walking `d` that way holds (see [`crate::Forms::replay`]).
fn scan_into_shift() -> Rewrite {
    let lhs: Pattern<Ssm> = "(shift (mat ?p) ?d ?f ?r)".parse().expect("fusion pattern");
    let rhs: Pattern<Ssm> = "(shift ?p ?d ?f ?r)".parse().expect("fusion pattern");
    let [p, d, f, r] = ["?p", "?d", "?f", "?r"].map(|v| v.parse::<Var>().expect("var"));
    let cond = move |g: &mut EGraph<Ssm, SsmAnalysis>, _: Id, s: &Subst| {
        let same = |a: Id, b: Id| g.find(a) == g.find(b);
        g[s[p]].nodes.iter().any(|n| matches!(n, Ssm::Scan([_, _, sd, sr, si]) if same(*sd, s[d]) && same(*sr, s[r]) && same(*si, s[f])))
    };
    Rewrite::new("fuse-scan-into-shift", lhs, egg::ConditionalApplier { condition: cond, applier: rhs }).expect("valid rewrite")
}

/// Every fusion rewrite: one per law, consumer and value position; with `forms.replay`, also
/// [`scan_into_shift`].
pub fn rules(forms: crate::Forms) -> Vec<Rewrite> {
    let mut out = Vec::new();
    if forms.replay {
        out.push(scan_into_shift());
    }
    for (law, consumers, producer) in laws() {
        for (op, vars, positions) in consumers() {
            for &pos in positions {
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

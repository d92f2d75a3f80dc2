//! The printer and the parser agree: printing a graph and parsing the text gives the same graph,
//! for every example and for random graphs; mutated specs give errors, never panics.

use proptest::prelude::*;
use ssmc_dsl::{parse_named, parse_str};
use ssmc_ir::gen::{random_graph, GenOptions};
use ssmc_ir::print::{print, print_annotated};
use ssmc_ir::Op;
use std::path::PathBuf;

fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ssm"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() >= 6, "expected the example specs in {}", dir.display());
    v
}

#[test]
fn every_example_round_trips() {
    for (name, src) in examples() {
        let g = parse_named(&name, &src).unwrap_or_else(|e| panic!("{e}"));
        for text in [print(&g), print_annotated(&g)] {
            let back = parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert!(g.same_as(&back), "{name}: printing changed the graph:\n{text}");
            assert_eq!(print(&back), print(&g), "{name}: printing is not a fixed point");
        }
    }
}

#[test]
fn mamba1_prints_as_written() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/mamba1.ssm")).unwrap();
    let text = print(&parse_str(&src).unwrap());
    for line in [
        "    let dt = softplus(delta + delta_bias);",
        "    let dA = discretize_a(zoh, dt, A);",
        "    let dBu = discretize_b(euler, dt, A, B) * u;",
        "    let h = scan(dA, dBu, len);",
        "    let y = sum(C * h, state) + D * u;",
        "    output out = gate(y, z, silu);",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
}

#[test]
fn precedence_and_negative_constants_survive_printing() {
    let src = "layer P { dims n; input a: [n]; input b: [n];
        output y = a - (b - a) * -2.0 / (a + b) - neg(-0.5) + max(a, b - 1.0); }";
    let g = parse_str(src).unwrap();
    let text = print(&g);
    assert!(parse_str(&text).unwrap().same_as(&g), "{text}");
    assert!(text.contains("a - (b - a) * -2.0 / (a + b)"), "{text}");
}

#[test]
fn every_op_kind_is_covered_by_the_random_graphs() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..400 {
        for n in random_graph(seed, GenOptions::default()).nodes() {
            seen.insert(match &n.op {
                Op::Unary(..) => "unary",
                other => other.name(),
            });
        }
    }
    for want in ["input", "param", "const", "unary", "add", "sum", "discretize_a", "discretize_b", "scan", "final_state", "gate", "conv1d"] {
        assert!(seen.contains(want), "random graphs never contain `{want}`: {seen:?}");
    }
}

/// Small edits of a valid spec: delete, duplicate or replace a slice, or insert a token.
fn mutate(src: &str, kind: u8, at: usize, len: usize, token: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + len).min(chars.len());
    let (head, mid, tail): (String, String, String) =
        (chars[..at].iter().collect(), chars[at..end].iter().collect(), chars[end..].iter().collect());
    match kind % 4 {
        0 => format!("{head}{tail}"),
        1 => format!("{head}{mid}{mid}{tail}"),
        2 => format!("{head}{token}{tail}"),
        _ => format!("{head}{token}{mid}{tail}"),
    }
}

const TOKENS: [&str; 16] =
    ["x", "len", "state", ";", ",", "(", ")", "[", "]", "{", "=", "scan(", "sum(h, len)", "-1e309", "0.5..", "\""];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_graphs_round_trip(seed in any::<u64>(), ops in 1usize..16) {
        let g = random_graph(seed, GenOptions { ops, partial_ops: true });
        let text = print(&g);
        let back = parse_str(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(g.same_as(&back), "printing changed the graph:\n{}", text);
    }

    #[test]
    fn mutated_specs_error_without_panicking(
        which in 0usize..7, kind in any::<u8>(), at in any::<usize>(), len in 0usize..12, tok in 0usize..TOKENS.len(),
    ) {
        let ex = examples();
        let (_, src) = &ex[which % ex.len()];
        let text = mutate(src, kind, at, len, TOKENS[tok]);
        if let Err(d) = parse_str(&text) {
            prop_assert!(!d.errors.is_empty());
            for e in &d.errors {
                prop_assert!(!e.message.is_empty());
            }
            let _ = d.to_string(); // rendering with carets never panics either
        }
    }
}

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
fn every_unary_and_binary_op_parses_by_its_name_and_prints_back() {
    // the ops come from the IR's tables: an op added there is in the DSL with no edit here
    let mut texts: Vec<String> = ssmc_ir::UnaryOp::ALL.iter().map(|u| format!("{}(x)", u.name())).collect();
    texts.extend(ssmc_ir::BinaryOp::ALL.iter().map(|b| format!("{}(x, y)", b.name())));
    for expr in texts {
        let src = format!("layer O {{ dims n; input x: [n]; input y: [n]; output o = {expr}; }}");
        let g = parse_str(&src).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let text = print(&g);
        assert!(parse_str(&text).unwrap().same_as(&g), "{expr}: {text}");
    }
    let g = parse_str("layer R { dims n; input x: [n]; output o = sin(x) * sin(x) + cos(x) * cos(x); }").unwrap();
    assert!(print(&g).contains("output o = sin(x) * sin(x) + cos(x) * cos(x);"), "{}", print(&g));
}

#[test]
fn every_op_kind_is_covered_by_the_random_graphs() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..ssmc_ir::gen::test_cases(400) as u64 {
        for n in random_graph(seed, GenOptions::default()).nodes() {
            seen.insert(match &n.op {
                Op::Unary(..) => "unary",
                other => other.name(),
            });
        }
    }
    for want in ["input", "param", "const", "unary", "add", "sum", "discretize_a", "discretize_b", "scan", "final_state", "gate", "conv1d", "shift", "window", "broadcast"] {
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
    #![proptest_config(ProptestConfig::with_cases(ssmc_ir::gen::test_cases(256)))]

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
        match parse_str(&text) {
            Err(d) => {
                prop_assert!(!d.errors.is_empty());
                for e in &d.errors {
                    prop_assert!(!e.message.is_empty());
                }
                let _ = d.to_string(); // rendering with carets never panics either
            }
            // a mutant that is still a layer prints and parses back like any other
            Ok(g) => {
                let printed = print(&g);
                let back = parse_str(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
                prop_assert!(g.same_as(&back), "printing changed the mutant:\n{}", printed);
            }
        }
    }
}

/// `x + x + ... + x` with `terms` terms, `(((x)))` `depth` deep, and `exp(exp(x))` `depth` deep.
fn long_specs(terms: usize, depth: usize) -> [String; 3] {
    let layer = |e: String| format!("layer L {{ dims n; input x: [n]; output y = {e}; }}");
    [
        layer(vec!["x"; terms].join(" + ")),
        layer(format!("{}x{}", "(".repeat(depth), ")".repeat(depth))),
        layer(format!("{}x{}", "exp(".repeat(depth), ")".repeat(depth))),
    ]
}

/// Statements whose parse recurses once a token: `- - ... - x` (prefix operators) and
/// `x = x = ... = x` (assignment, which syn reads right to left before the layer language
/// rejects it), `tokens` tokens long with `output y = ;`.
fn deepest_specs(tokens: usize) -> [String; 2] {
    let layer = |e: String| format!("layer L {{ dims n; input x: [n]; output y = {e}; }}");
    let n = tokens - 4;
    [layer(format!("{}x", "- ".repeat(n - 1))), layer(vec!["x"; n.div_ceil(2)].join(" = "))]
}

#[test]
fn specs_at_the_size_limits_parse_on_a_test_threads_stack() {
    // a test thread has 2 MiB of stack; the layer's braces are one level of the nesting
    let limit = ssmc_dsl::MAX_STATEMENT_TOKENS;
    for spec in long_specs(limit / 2 - 2, ssmc_dsl::MAX_NESTING - 1) {
        let g = parse_str(&spec).unwrap_or_else(|e| panic!("{e}"));
        assert!(g.same_as(&parse_str(&print(&g)).unwrap()));
    }
    let [minus, assign] = deepest_specs(limit);
    let g = parse_str(&minus).unwrap_or_else(|e| panic!("{e}"));
    assert!(g.same_as(&parse_str(&print(&g)).unwrap()));
    // reaches the language's check, which rejects `=` in an expression
    let e = parse_str(&assign).unwrap_err();
    assert!(!e.errors[0].message.contains("split"), "{e}");
}

#[test]
fn specs_past_the_size_limits_are_errors_at_a_token() {
    let [long, _, _] = long_specs(ssmc_dsl::MAX_STATEMENT_TOKENS, 1);
    let e = parse_str(&long).unwrap_err();
    assert!(e.errors[0].message.contains("longer than 1024 tokens; split it with `let`"), "{e}");
    assert_eq!(e.errors[0].line_col().0, 1);
    // far past them, where parsing would overflow any stack
    for spec in long_specs(200_000, 100_000) {
        let e = parse_str(&spec).unwrap_err();
        assert!(e.errors[0].message.contains("split"), "{e}");
    }
    for spec in deepest_specs(ssmc_dsl::MAX_STATEMENT_TOKENS + 1) {
        let e = parse_str(&spec).unwrap_err();
        assert!(e.errors[0].message.contains("longer than 1024 tokens"), "{e}");
    }
    // a `;` inside brackets does not end the statement: `m!(;)` and `[x; 1]` are Rust
    // expressions syn reads, and a long enough chain of them must still be refused
    for piece in ["m!(;)", "[x; 1]"] {
        let chain = vec![piece; 3000].join(" = ");
        let e = parse_str(&format!("layer L {{ dims n; input x: [n]; output y = {chain}; }}")).unwrap_err();
        assert!(e.errors[0].message.contains("longer than 1024 tokens"), "{piece}: {e}");
    }
    let [_, parens, calls] = long_specs(1, ssmc_dsl::MAX_NESTING);
    for spec in [parens, calls] {
        let e = parse_str(&spec).unwrap_err();
        assert!(e.errors[0].message.contains("nested more than 64 deep"), "{e}");
    }
}

#[test]
fn numbers_out_of_range_of_f64_are_errors() {
    let at = "layer L { dims n; input x: [n]; output y = ".len() + 1;
    for (lit, col) in [("1e309".to_string(), at), ("-1e309".to_string(), at + 1), ("1".repeat(400), at)] {
        let spec = format!("layer L {{ dims n; input x: [n]; output y = {lit} * x; }}");
        let e = parse_str(&spec).unwrap_err();
        assert!(e.errors[0].message.contains("is out of range of f64"), "{e}");
        assert_eq!(e.errors[0].line_col(), (1, col));
    }
    // the largest finite f64 is a number like any other
    assert!(parse_str("layer L { dims n; input x: [n]; output y = 1.7976931348623157e308 * x; }").is_ok());
}

#[test]
fn long_chains_and_wide_trees_print_in_statements_the_parser_takes() {
    use ssmc_ir::{BinaryOp, Graph, InputKind, UnaryOp};
    // unnamed nodes used once, each defined just before its user: inlined whole, the chain
    // would print as one statement nesting 5000 deep, and the tree as one of some 3000 tokens
    let mut g = Graph::new("L");
    let n = g.add_dim("n").unwrap();
    let x = g.input("x", InputKind::Input, &[n], None).unwrap();
    let mut v = x;
    for _ in 0..5000 {
        let e = g.unary(UnaryOp::Exp, v).unwrap();
        let half = g.constant(0.5).unwrap();
        v = g.binary(BinaryOp::Mul, e, half).unwrap();
    }
    g.add_output("chain", v).unwrap();
    fn tree(g: &mut Graph, x: ssmc_ir::NodeId, depth: usize) -> ssmc_ir::NodeId {
        if depth == 0 {
            return g.unary(UnaryOp::Exp, x).unwrap();
        }
        let l = tree(g, x, depth - 1);
        let r = tree(g, x, depth - 1);
        g.binary(BinaryOp::Add, l, r).unwrap()
    }
    let t = tree(&mut g, x, 10);
    g.add_output("tree", t).unwrap();
    let text = print(&g);
    // the parser's limits hold for every printed statement, so it reads the text back
    let back = parse_str(&text).unwrap_or_else(|e| panic!("{}", e.one_line()));
    assert!(g.same_as(&back));
    let nesting = |l: &str| {
        l.chars().fold((0i32, 0i32), |(d, most), c| match c {
            '(' => (d + 1, most.max(d + 1)),
            ')' => (d - 1, most),
            _ => (d, most),
        }).1 as usize
    };
    let deepest = text.lines().map(nesting).max().unwrap();
    assert!(deepest <= ssmc_ir::print::INLINE_DEPTH + 1, "a statement nests {deepest} deep");
    let longest = text.lines().map(|l| l.split_whitespace().count()).max().unwrap();
    assert!(longest < ssmc_dsl::MAX_STATEMENT_TOKENS / 2, "a statement has {longest} words");
    assert!(text.lines().count() > 5000 * 2 / ssmc_ir::print::INLINE_DEPTH, "{} lines", text.lines().count());
}

#[test]
fn shifts_windows_broadcasts_reversed_convs_and_output_layouts_round_trip() {
    let src = "layer N {
        dims b, l, n, k;
        input x: [b, l];
        input f: [b];
        param w: [k];
        let s = shift(x, l, fill = f) + shift(x, l, reverse = true);
        let c = conv1d(x, w, l, reverse = true);
        let v = sum(window(x, l, k, reverse = true) * w, k);
        output y: [l, b] = s + c + v;
        output z: [n, l, b] = broadcast(s, n);
    }";
    let g = parse_str(src).unwrap_or_else(|e| panic!("{e}"));
    let text = print(&g);
    for want in [
        "shift(x, l, fill = f)",
        "shift(x, l, reverse = true)",
        "conv1d(x, w, l, reverse = true)",
        "window(x, l, k, reverse = true)",
        "broadcast(s, n)",
        "output y: [l, b] =",
        "output z: [n, l, b] =",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    assert!(parse_str(&text).unwrap().same_as(&g), "{text}");
}

#[test]
fn the_new_ops_and_layouts_report_errors_at_the_token() {
    let at = |body: &str| {
        let src = format!("layer E {{ dims b, l, k; input x: [b, l]; input y: [b]; {body} }}");
        let err = parse_str(&src).unwrap_err();
        let e = &err.errors[0];
        let (line, col) = e.line_col();
        assert_eq!(line, 1);
        (e.message.clone(), src.chars().skip(col - 1).take(8).collect::<String>())
    };
    let (m, token) = at("output o = shift(y, l);");
    assert!(m.contains("shift along `l`") && token.starts_with("l)"), "{m} at {token}");
    let (m, token) = at("output o = shift(x, l, fill = x);");
    assert!(m.contains("fill of a shift"), "{m} at {token}");
    let (m, token) = at("output o = window(y, l, k);");
    assert!(m.contains("window along `l`") && token.starts_with("l, k)"), "{m} at {token}");
    let (m, _) = at("output o = broadcast(x, l);");
    assert!(m.contains("broadcast adds `l`"), "{m}");
    let (m, token) = at("output o: [l, q] = x;");
    assert!(m.contains("unknown dim `q`") && token.starts_with("q]"), "{m} at {token}");
    let (m, token) = at("output o: [l] = x;");
    assert!(m.contains("laid out as [l]") && token.starts_with("o:"), "{m} at {token}");
}

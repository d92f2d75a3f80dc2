//! The canonical text of a graph: `.ssm` source that parses back to the same graph.
//!
//! One statement per named node; an unnamed node used once is written inline in its user when
//! that keeps the definition order (so parsing recreates the nodes in the same order), up to
//! [`INLINE_DEPTH`] deep and [`INLINE_NODES`] nodes a statement, so that printed statements stay
//! well inside the parser's limits on nesting and length however long a chain is.

use crate::graph::{Graph, NodeId};
use crate::op::Op;
use std::collections::HashSet;
use std::fmt::Write;

/// Prints `g` as `.ssm` source.
///
/// ```
/// use ssmc_ir::{Graph, InputKind, UnaryOp, print::print};
/// let mut g = Graph::new("l");
/// let n = g.add_dim("n").unwrap();
/// let x = g.input("x", InputKind::Input, &[n], None).unwrap();
/// let y = g.unary(UnaryOp::Exp, x).unwrap();
/// g.add_output("y", y).unwrap();
/// assert_eq!(print(&g), "layer l {\n    dims n;\n    input x: [n];\n    output y = exp(x);\n}\n");
/// ```
pub fn print(g: &Graph) -> String {
    Printer::new(g, false).run()
}

/// [`print`] with each statement followed by a comment giving its value's dims; still valid
/// `.ssm` source that parses back to the same graph.
pub fn print_annotated(g: &Graph) -> String {
    Printer::new(g, true).run()
}

/// How deep inline operands nest in one printed statement.
pub const INLINE_DEPTH: usize = 16;

/// How many nodes one printed statement writes inline (a node prints as at most 16 tokens, so a
/// statement stays under the parser's 1024).
pub const INLINE_NODES: usize = 48;

struct Printer<'a> {
    g: &'a Graph,
    /// Inline operands open around the one being written.
    depth: usize,
    /// Nodes the current statement may still write inline.
    budget: usize,
    uses: Vec<usize>,
    names: Vec<String>,
    inlined: Vec<bool>,
    inline_outputs: bool,
    annotate: bool,
}

impl<'a> Printer<'a> {
    fn new(g: &'a Graph, annotate: bool) -> Self {
        let outs = g.outputs();
        let inline_outputs = outs.windows(2).all(|w| w[0].node < w[1].node)
            && outs.iter().all(|o| !matches!(g.node(o.node).op, Op::Input(_)));
        let mut p = Printer { g, depth: 0, budget: 0, uses: g.use_counts(), names: vec![], inlined: vec![false; g.nodes().len()], inline_outputs, annotate };
        p.names = p.assign_names();
        p
    }

    /// A unique name per node: its declared name, the output it is printed as, its bound name,
    /// else `_<index>`.
    fn assign_names(&self) -> Vec<String> {
        let mut taken: HashSet<String> = HashSet::new();
        for o in self.g.outputs() {
            taken.insert(o.name.clone());
        }
        let mut names = Vec::with_capacity(self.g.nodes().len());
        for (i, n) in self.g.nodes().iter().enumerate() {
            let id = NodeId(i as u32);
            let wanted = match (&n.op, self.output_of(id)) {
                (Op::Input(d), _) => Some(d.name.clone()),
                (_, Some(out)) => {
                    names.push(out.to_string());
                    continue;
                }
                _ => n.name.clone().filter(|s| !taken.contains(s)),
            };
            let mut name = wanted.unwrap_or_else(|| format!("_{i}"));
            if !matches!(n.op, Op::Input(_)) {
                while taken.contains(&name) {
                    name.push('_');
                }
            }
            taken.insert(name.clone());
            names.push(name);
        }
        names
    }

    /// `: [dims]` for an output stored in other than the canonical order, else nothing.
    fn layout_of(&self, output: &str) -> String {
        match self.g.outputs().iter().find(|o| o.name == output) {
            Some(o) if o.layout != self.g.node(o.node).shape => format!(": {}", self.g.fmt_shape(&o.layout)),
            _ => String::new(),
        }
    }

    fn output_of(&self, id: NodeId) -> Option<&str> {
        if !self.inline_outputs {
            return None;
        }
        self.g.outputs().iter().find(|o| o.node == id).map(|o| o.name.as_str())
    }

    fn can_inline(&self, id: NodeId) -> bool {
        let n = self.g.node(id);
        !matches!(n.op, Op::Input(_))
            && n.name.is_none()
            && self.uses[id.index()] == 1
            && self.output_of(id).is_none()
            && !self.g.outputs().iter().any(|o| o.node == id)
    }

    fn run(mut self) -> String {
        let count = self.g.nodes().len();
        let mut stmts: Vec<Option<String>> = vec![None; count];
        for i in (0..count).rev() {
            if self.inlined[i] {
                continue;
            }
            let id = NodeId(i as u32);
            let mut s = self.statement(id);
            if self.annotate && !matches!(self.g.node(id).op, Op::Input(_)) {
                s = format!("{s} // {}", self.g.fmt_shape(&self.g.node(id).shape));
            }
            stmts[i] = Some(s);
        }
        let mut out = String::new();
        let _ = writeln!(out, "layer {} {{", self.g.name());
        let dims: Vec<&str> = self.g.dims().map(|(_, n)| n).collect();
        if !dims.is_empty() {
            let _ = writeln!(out, "    dims {};", dims.join(", "));
        }
        for s in stmts.into_iter().flatten() {
            let _ = writeln!(out, "    {s}");
        }
        if !self.inline_outputs {
            for o in self.g.outputs() {
                let _ = writeln!(out, "    output {}{} = {};", o.name, self.layout_of(&o.name), self.names[o.node.index()]);
            }
        }
        out.push_str("}\n");
        out
    }

    fn statement(&mut self, id: NodeId) -> String {
        let n = self.g.node(id);
        if let Op::Input(d) = &n.op {
            let dtype = d.dtype.map_or(String::new(), |t| t.name().to_string());
            let mut s = format!("{} {}: {dtype}{};", d.kind.keyword(), d.name, self.g.fmt_shape(&d.layout));
            if let Some((lo, hi)) = d.range {
                s.insert_str(s.len() - 1, &format!(" in {lo:?}..{hi:?}"));
            }
            return s;
        }
        let mut cursor = id.0 as i64 - 1;
        self.budget = INLINE_NODES;
        let expr = self.expr(id, &mut cursor);
        match self.output_of(id) {
            Some(o) => format!("output {}{} = {expr};", o, self.layout_of(o)),
            None => format!("let {} = {expr};", self.names[id.index()]),
        }
    }

    /// The operand as text: inline if it is the node just before in definition order.
    fn operand(&mut self, id: NodeId, cursor: &mut i64) -> (String, Option<u8>) {
        if id.0 as i64 == *cursor && self.can_inline(id) && self.depth < INLINE_DEPTH && self.budget > 0 {
            self.inlined[id.index()] = true;
            self.budget -= 1;
            *cursor -= 1;
            let prec = match &self.g.node(id).op {
                Op::Binary(b, ..) => b.precedence(),
                _ => None,
            };
            self.depth += 1;
            let text = self.expr(id, cursor);
            self.depth -= 1;
            (text, prec)
        } else {
            (self.names[id.index()].clone(), None)
        }
    }

    /// Renders node `id`'s op; operands are visited last to first, as the cursor walks back.
    fn expr(&mut self, id: NodeId, cursor: &mut i64) -> String {
        let op = self.g.node(id).op.clone();
        let operands = op.operands();
        let mut texts: Vec<(String, Option<u8>)> = vec![(String::new(), None); operands.len()];
        for (k, &o) in operands.iter().enumerate().rev() {
            texts[k] = self.operand(o, cursor);
        }
        let plain: Vec<String> = texts.iter().map(|t| t.0.clone()).collect();
        let dim = |d| self.g.dim_name(d).to_string();
        match &op {
            Op::Input(_) => unreachable!("inputs are declarations"),
            Op::Const(v) => format!("{v:?}"),
            Op::Unary(u, _) => format!("{}({})", u.name(), plain[0]),
            Op::Binary(b, ..) => match b.precedence() {
                Some(p) => {
                    let l = paren(&texts[0], |c| c < p);
                    let r = paren(&texts[1], |c| c <= p);
                    format!("{l} {b} {r}")
                }
                None => format!("{}({}, {})", b.name(), plain[0], plain[1]),
            },
            Op::Sum { dim: d, .. } => format!("sum({}, {})", plain[0], dim(*d)),
            Op::DiscretizeA { method, .. } => format!("discretize_a({}, {}, {})", method.name(), plain[0], plain[1]),
            Op::DiscretizeB { method, .. } => {
                format!("discretize_b({}, {}, {}, {})", method.name(), plain[0], plain[1], plain[2])
            }
            Op::Scan { dim: d, reverse, init, .. } => {
                let mut s = format!("scan({}, {}, {}", plain[0], plain[1], dim(*d));
                if init.is_some() {
                    let _ = write!(s, ", init = {}", plain[2]);
                }
                if *reverse {
                    s.push_str(", reverse = true");
                }
                s + ")"
            }
            Op::ScanFinal(_) => format!("final_state({})", plain[0]),
            Op::Gate { kind, .. } => format!("gate({}, {}, {})", plain[0], plain[1], kind.name()),
            Op::Conv1d { bias, dim: d, reverse, .. } => {
                let mut s = format!("conv1d({}, {}, {}", plain[0], plain[1], dim(*d));
                if bias.is_some() {
                    let _ = write!(s, ", bias = {}", plain[2]);
                }
                if *reverse {
                    s.push_str(", reverse = true");
                }
                s + ")"
            }
            Op::Shift { dim: d, fill, reverse, .. } => {
                let mut s = format!("shift({}, {}", plain[0], dim(*d));
                if fill.is_some() {
                    let _ = write!(s, ", fill = {}", plain[1]);
                }
                if *reverse {
                    s.push_str(", reverse = true");
                }
                s + ")"
            }
            Op::Window { dim: d, taps, reverse, .. } => {
                let s = format!("window({}, {}, {}", plain[0], dim(*d), dim(*taps));
                if *reverse {
                    s + ", reverse = true)"
                } else {
                    s + ")"
                }
            }
            Op::Broadcast { dims, .. } => {
                let names: Vec<String> = dims.dims().iter().map(|&d| dim(d)).collect();
                format!("broadcast({}, {})", plain[0], names.join(", "))
            }
        }
    }
}

fn paren(t: &(String, Option<u8>), needs: impl Fn(u8) -> bool) -> String {
    match t.1 {
        Some(c) if needs(c) => format!("({})", t.0),
        _ => t.0.clone(),
    }
}

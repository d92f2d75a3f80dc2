//! Resolution, checks and lowering: the AST into an [`ssmc_ir::Graph`], collecting every error.
//!
//! A statement whose expression has an error binds its name to nothing, so later uses of that
//! name stay quiet instead of reporting the same mistake again.

use crate::ast::{Arg, Decl, Expr, Layer, Stmt};
use crate::error::DslError;
use proc_macro2::{Ident, Span};
use ssmc_ir::{BinaryOp, DType, DimId, GateKind, Graph, Method, NodeId, Op, Shape, UnaryOp};
use std::collections::HashMap;

/// Lowers a parsed layer, or returns every error found.
pub fn lower(layer: &Layer) -> Result<Graph, Vec<DslError>> {
    let mut cx = Lowering { g: Graph::new(layer.name.to_string()), env: HashMap::new(), errors: vec![] };
    for stmt in &layer.stmts {
        cx.stmt(stmt);
    }
    if cx.errors.is_empty() && cx.g.outputs().is_empty() {
        cx.err(layer.name.span(), format!("layer `{}` has no `output`", layer.name));
    }
    if cx.errors.is_empty() {
        Ok(cx.g)
    } else {
        Err(cx.errors)
    }
}

struct Lowering {
    g: Graph,
    /// Each bound name: its node, or `None` if its definition had an error.
    env: HashMap<String, Option<NodeId>>,
    errors: Vec<DslError>,
}

fn ir_span(s: Span) -> ssmc_ir::Span {
    let lc = s.start();
    ssmc_ir::Span::new(lc.line as u32, lc.column as u32 + 1)
}

impl Lowering {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.errors.push(DslError::new(span, msg));
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Dims(names) => {
                for n in names {
                    if let Err(e) = self.g.add_dim(&n.to_string()) {
                        self.err(n.span(), e.message);
                    }
                }
            }
            Stmt::Decl(d) => {
                let node = self.decl(d);
                self.bind(&d.name, node);
            }
            Stmt::Let(name, e) => {
                let node = self.expr(e);
                if let Some(n) = node {
                    if self.g.node(n).name.is_none() && !matches!(self.g.node(n).op, Op::Input(_)) {
                        self.g.set_name(n, &name.to_string());
                    }
                }
                self.bind(name, node);
            }
            Stmt::Output(name, layout, e) => {
                let node = self.expr(e);
                // Some(None): a layout naming an unknown dim (reported)
                let layout: Option<Option<Vec<DimId>>> = layout.as_ref().map(|dims| {
                    let ids: Vec<Option<DimId>> = dims.iter().map(|d| self.dim(d)).collect();
                    ids.into_iter().collect()
                });
                if self.bind(name, node) {
                    if let (Some(n), false) = (node, matches!(layout, Some(None))) {
                        let added = match layout.flatten() {
                            Some(l) => self.g.add_output_as(&name.to_string(), n, &l),
                            None => self.g.add_output(&name.to_string(), n),
                        };
                        if let Err(err) = added {
                            self.err(name.span(), err.message);
                        }
                    }
                }
            }
        }
    }

    /// Binds `name`; reports a duplicate and returns false.
    fn bind(&mut self, name: &Ident, node: Option<NodeId>) -> bool {
        let key = name.to_string();
        if self.env.contains_key(&key) {
            self.err(name.span(), format!("`{key}` is defined twice"));
            return false;
        }
        self.env.insert(key, node);
        true
    }

    fn dim(&mut self, name: &Ident) -> Option<DimId> {
        let found = self.g.dim(&name.to_string());
        if found.is_none() {
            let declared: Vec<String> = self.g.dims().map(|(_, n)| format!("`{n}`")).collect();
            let hint = if declared.is_empty() { "no dims are declared".to_string() } else { format!("declared: {}", declared.join(", ")) };
            self.err(name.span(), format!("unknown dim `{name}` ({hint})"));
        }
        found
    }

    fn decl(&mut self, d: &Decl) -> Option<NodeId> {
        let mut ok = true;
        let mut layout = Vec::new();
        for n in &d.dims {
            match self.dim(n) {
                Some(id) if layout.contains(&id) => {
                    self.err(n.span(), format!("dim `{n}` appears twice in the layout of `{}`", d.name));
                    ok = false;
                }
                Some(id) => layout.push(id),
                None => ok = false,
            }
        }
        let dtype = match &d.dtype {
            Some(t) => match t.to_string().parse::<DType>() {
                Ok(t) => Some(t),
                Err(msg) => {
                    self.err(t.span(), msg);
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let range = match &d.range {
            Some((lo, hi)) => match (self.number(lo), self.number(hi)) {
                (Some(a), Some(b)) if a < b => Some((a, b)),
                (Some(_), Some(_)) => {
                    self.err(lo.span(), "the range's start must be below its end");
                    ok = false;
                    None
                }
                _ => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        if !ok {
            return None;
        }
        let name = d.name.to_string();
        let node = match self.g.input(&name, d.kind, &layout, dtype) {
            Ok(n) => n,
            Err(e) => {
                self.err(d.name.span(), e.message);
                return None;
            }
        };
        self.g.set_span(node, ir_span(d.name.span()));
        if let Some((lo, hi)) = range {
            if let Err(e) = self.g.set_input_range(node, lo, hi) {
                self.err(d.name.span(), e.message);
            }
        }
        Some(node)
    }

    /// A literal number, possibly negated.
    fn number(&mut self, e: &Expr) -> Option<f64> {
        match e {
            Expr::Lit(v, _) => Some(*v),
            Expr::Neg(inner, _) => self.number(inner).map(|v| -v),
            other => {
                self.err(other.span(), "expected a number");
                None
            }
        }
    }

    fn push(&mut self, op: Op, span: Span) -> Option<NodeId> {
        self.push_blaming(op, span, span)
    }

    /// [`Self::push`], reporting a shape error at `at` (the argument it is about) instead.
    fn push_blaming(&mut self, op: Op, span: Span, at: Span) -> Option<NodeId> {
        match self.g.push_spanned(op, None, Some(ir_span(span))) {
            Ok(n) => Some(n),
            Err(e) => {
                self.err(at, e.message);
                None
            }
        }
    }

    /// Where to point if `op` (a call written at `span`) breaks a shape rule: the argument the
    /// rule is about (the dim a scan, sum or conv runs along, a scan's `init`, a conv's weights
    /// or bias, `final_state`'s operand), else `span`. Mirrors the order of the checks in
    /// `ssmc_ir::infer`; only consulted when the push fails.
    fn blame(&self, op: &Op, pos: &[&Expr], init: Option<&Expr>, bias: Option<&Expr>, span: Span) -> Span {
        let shape = |n: NodeId| &self.g.node(n).shape;
        match op {
            Op::Sum { x, dim } if !shape(*x).contains(*dim) => pos[1].span(),
            Op::Scan { a, b, dim, init: Some(h0), .. } => {
                let s = Shape::union([shape(*a), shape(*b)]);
                match init {
                    Some(e) if s.contains(*dim) && !shape(*h0).is_subset_of(&s.without(*dim)) => e.span(),
                    _ => pos[2].span(),
                }
            }
            Op::Scan { .. } => pos[2].span(),
            Op::ScanFinal(_) => pos[0].span(),
            Op::Shift { x, dim, .. } if !shape(*x).contains(*dim) => pos[1].span(),
            Op::Window { x, dim, .. } if !shape(*x).contains(*dim) => pos[1].span(),
            Op::Window { .. } => pos[2].span(),
            Op::Conv1d { x, weight, dim, .. } => {
                let (xs, ws) = (shape(*x), shape(*weight));
                let taps = ws.dims().iter().filter(|d| !xs.contains(**d)).count();
                if !xs.contains(*dim) {
                    pos[2].span()
                } else if ws.contains(*dim) || taps != 1 {
                    pos[1].span()
                } else {
                    bias.map_or(span, Expr::span)
                }
            }
            _ => span,
        }
    }

    fn expr(&mut self, e: &Expr) -> Option<NodeId> {
        match e {
            Expr::Name(id) => {
                let key = id.to_string();
                match self.env.get(&key) {
                    Some(node) => *node,
                    None if self.g.dim(&key).is_some() => {
                        self.err(id.span(), format!("`{key}` is a dim, not a value"));
                        None
                    }
                    None => {
                        self.err(id.span(), format!("undefined name `{key}`"));
                        None
                    }
                }
            }
            Expr::Lit(v, s) => self.push(Op::Const(*v), *s),
            Expr::Neg(inner, s) => match &**inner {
                Expr::Lit(v, _) => self.push(Op::Const(-v), *s),
                _ => {
                    let x = self.expr(inner)?;
                    self.push(Op::Unary(UnaryOp::Neg, x), *s)
                }
            },
            Expr::Binary(op, a, b, s) => {
                let (a, b) = (self.expr(a), self.expr(b));
                self.push(Op::Binary(*op, a?, b?), *s)
            }
            Expr::Call(f, args, s) => self.call(f, args, *s),
        }
    }

    fn call(&mut self, f: &Ident, args: &[Arg], span: Span) -> Option<NodeId> {
        let name = f.to_string();
        let Some(sig) = signature(&name) else {
            let hint = suggest(&name).map_or(String::new(), |s| format!("; did you mean `{s}`?"));
            self.err(f.span(), format!("unknown op `{name}`{hint}"));
            // Still check the arguments, so their own mistakes are reported too.
            for a in args {
                let (Arg::Pos(e) | Arg::Kw(_, e)) = a;
                if !matches!(e, Expr::Name(_)) {
                    self.expr(e);
                }
            }
            return None;
        };
        let mut pos = Vec::new();
        let mut kws: Vec<(&Ident, &Expr)> = Vec::new();
        for a in args {
            match a {
                Arg::Pos(e) if kws.is_empty() => pos.push(e),
                Arg::Pos(e) => {
                    self.err(e.span(), "positional arguments come before keyword arguments");
                    return None;
                }
                Arg::Kw(k, e) => {
                    if !sig.keywords.contains(&k.to_string().as_str()) {
                        let allowed = if sig.keywords.is_empty() {
                            "none".to_string()
                        } else {
                            sig.keywords.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        };
                        self.err(k.span(), format!("`{name}` has no argument `{k}` (keyword arguments: {allowed})"));
                        return None;
                    }
                    if kws.iter().any(|(k2, _)| *k2 == k) {
                        self.err(k.span(), format!("argument `{k}` is given twice"));
                        return None;
                    }
                    kws.push((k, e));
                }
            }
        }
        if pos.len() < sig.min || pos.len() > sig.max {
            let want = match sig.max {
                max if max == sig.min => format!("{max}"),
                usize::MAX => format!("at least {}", sig.min),
                max => format!("{} to {max}", sig.min),
            };
            let plural = if sig.max == 1 { "" } else { "s" };
            self.err(f.span(), format!("`{name}` takes {want} positional argument{plural} ({}), found {}", sig.usage, pos.len()));
            return None;
        }
        let kw = |k: &str| kws.iter().find(|(n, _)| *n == k).map(|(_, e)| *e);
        if let Some(u) = UnaryOp::from_name(&name) {
            let x = self.expr(pos[0])?;
            return self.push(Op::Unary(u, x), span);
        }
        if let Some(b) = BinaryOp::from_name(&name) {
            let (a, c) = (self.expr(pos[0]), self.expr(pos[1]));
            return self.push(Op::Binary(b, a?, c?), span);
        }
        let op = match name.as_str() {
            "sum" => {
                let x = self.expr(pos[0]);
                let dim = self.dim_arg(pos[1]);
                Op::Sum { x: x?, dim: dim? }
            }
            "discretize_a" | "discretize_b" => {
                let method = self.word_arg(pos[0], "discretization method", Method::from_name, &["zoh", "euler", "bilinear"]);
                let operands: Vec<Option<NodeId>> = pos[1..].iter().map(|e| self.expr(e)).collect();
                let (method, dt, a) = (method?, operands[0]?, operands[1]?);
                match operands.get(2) {
                    Some(b) => Op::DiscretizeB { method, dt, a, b: (*b)? },
                    None => Op::DiscretizeA { method, dt, a },
                }
            }
            "scan" => {
                let a = self.expr(pos[0]);
                let b = self.expr(pos[1]);
                let dim = self.dim_arg(pos[2]);
                let init = kw("init").map(|e| self.expr(e));
                let reverse = match kw("reverse") {
                    Some(e) => self.bool_arg(e)?,
                    None => false,
                };
                let init = match init {
                    Some(i) => Some(i?),
                    None => None,
                };
                Op::Scan { a: a?, b: b?, dim: dim?, reverse, init }
            }
            "final_state" => Op::ScanFinal(self.expr(pos[0])?),
            "gate" => {
                let x = self.expr(pos[0]);
                let z = self.expr(pos[1]);
                let kind = match pos.get(2) {
                    Some(k) => self.word_arg(k, "gate kind", GateKind::from_name, &["silu", "sigmoid"])?,
                    None => GateKind::Silu,
                };
                Op::Gate { kind, x: x?, z: z? }
            }
            "conv1d" => {
                let x = self.expr(pos[0]);
                let w = self.expr(pos[1]);
                let dim = self.dim_arg(pos[2]);
                let bias = match kw("bias").map(|e| self.expr(e)) {
                    Some(b) => Some(b?),
                    None => None,
                };
                let reverse = match kw("reverse") {
                    Some(e) => self.bool_arg(e)?,
                    None => false,
                };
                Op::Conv1d { x: x?, weight: w?, bias, dim: dim?, reverse }
            }
            "shift" => {
                let x = self.expr(pos[0]);
                let dim = self.dim_arg(pos[1]);
                let fill = match kw("fill").map(|e| self.expr(e)) {
                    Some(f) => Some(f?),
                    None => None,
                };
                let reverse = match kw("reverse") {
                    Some(e) => self.bool_arg(e)?,
                    None => false,
                };
                Op::Shift { x: x?, dim: dim?, fill, reverse }
            }
            "window" => {
                let x = self.expr(pos[0]);
                let dim = self.dim_arg(pos[1]);
                let taps = self.dim_arg(pos[2]);
                let reverse = match kw("reverse") {
                    Some(e) => self.bool_arg(e)?,
                    None => false,
                };
                Op::Window { x: x?, dim: dim?, taps: taps?, reverse }
            }
            "broadcast" => {
                let x = self.expr(pos[0]);
                let dims: Vec<Option<DimId>> = pos[1..].iter().map(|e| self.dim_arg(e)).collect();
                let dims: Option<Vec<DimId>> = dims.into_iter().collect();
                Op::Broadcast { x: x?, dims: Shape(dims?).canonical() }
            }
            other => unreachable!("`{other}` has a signature but no lowering"),
        };
        let at = self.blame(&op, &pos, kw("init"), kw("bias"), span);
        self.push_blaming(op, span, at)
    }

    fn dim_arg(&mut self, e: &Expr) -> Option<DimId> {
        match e {
            Expr::Name(id) => self.dim(id),
            other => {
                self.err(other.span(), "expected a dim name");
                None
            }
        }
    }

    fn word_arg<T>(&mut self, e: &Expr, what: &str, look: fn(&str) -> Option<T>, options: &[&str]) -> Option<T> {
        let list = options.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ");
        match e {
            Expr::Name(id) => {
                let found = look(&id.to_string());
                if found.is_none() {
                    self.err(id.span(), format!("unknown {what} `{id}` (expected {list})"));
                }
                found
            }
            other => {
                self.err(other.span(), format!("expected a {what} ({list})"));
                None
            }
        }
    }

    fn bool_arg(&mut self, e: &Expr) -> Option<bool> {
        match e {
            Expr::Name(id) if id == "true" => Some(true),
            Expr::Name(id) if id == "false" => Some(false),
            other => {
                self.err(other.span(), "expected `true` or `false`");
                None
            }
        }
    }
}

/// What a built-in op accepts.
struct Signature {
    min: usize,
    max: usize,
    keywords: &'static [&'static str],
    usage: &'static str,
}

fn signature(name: &str) -> Option<Signature> {
    let s = |min, max, keywords, usage| Some(Signature { min, max, keywords, usage });
    if UnaryOp::from_name(name).is_some() {
        return s(1, 1, &[], "x");
    }
    if BinaryOp::from_name(name).is_some() {
        return s(2, 2, &[], "a, b");
    }
    match name {
        "sum" => s(2, 2, &[], "x, dim"),
        "discretize_a" => s(3, 3, &[], "method, dt, A"),
        "discretize_b" => s(4, 4, &[], "method, dt, A, B"),
        "scan" => s(3, 3, &["init", "reverse"], "a, b, dim"),
        "final_state" => s(1, 1, &[], "h"),
        "gate" => s(2, 3, &[], "x, z, kind"),
        "conv1d" => s(3, 3, &["bias", "reverse"], "x, weight, dim"),
        "shift" => s(2, 2, &["fill", "reverse"], "x, dim"),
        "window" => s(3, 3, &["reverse"], "x, dim, taps"),
        "broadcast" => s(2, usize::MAX, &[], "x, dim, ..."),
        _ => None,
    }
}

/// Every op name the language knows.
pub fn op_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = UnaryOp::ALL.iter().map(|u| u.name()).collect();
    v.extend(BinaryOp::ALL.iter().map(|b| b.name()));
    v.extend(["sum", "discretize_a", "discretize_b", "scan", "final_state", "gate", "conv1d", "shift", "window", "broadcast"]);
    v
}

/// The closest known op name, if it is close enough to be a typo.
fn suggest(name: &str) -> Option<&'static str> {
    op_names()
        .into_iter()
        .map(|cand| (edit_distance(name, cand), cand))
        .filter(|(d, cand)| *d <= 2.max(cand.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j])).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

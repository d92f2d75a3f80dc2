//! Between the IR and the e-graph language: a graph becomes a term (every computed value wrapped
//! in `mat`, the unfused form), and an extracted term becomes a graph plus the set of values it
//! stores.

use crate::lang::{dim_tag, input_tag, tag_dim, tag_input, Real, Ssm};
use egg::{Id, RecExpr, Symbol};
use ssmc_ir::{Graph, IrError, NodeId, Op};
use std::collections::BTreeSet;

/// The unfused term of `g`: every computed, non-constant value is stored (`mat`) and read back.
pub fn to_term(g: &Graph) -> RecExpr<Ssm> {
    let mut e = RecExpr::default();
    let mut reads: Vec<Id> = Vec::with_capacity(g.nodes().len());
    let tag = |e: &mut RecExpr<Ssm>, s: &str| e.add(Ssm::Tag(Symbol::from(s)));
    for node in g.nodes() {
        let r = |n: NodeId| reads[n.index()];
        let value = match &node.op {
            Op::Input(d) => e.add(Ssm::Tag(input_tag(&d.name))),
            Op::Const(v) => e.add(Ssm::Num(Real::new(*v))),
            Op::Unary(u, x) => e.add(Ssm::Unary(*u, [r(*x)])),
            Op::Binary(b, x, y) => e.add(Ssm::Binary(*b, [r(*x), r(*y)])),
            Op::Sum { x, dim } => {
                let d = e.add(Ssm::Tag(dim_tag(*dim)));
                e.add(Ssm::Sum([r(*x), d]))
            }
            Op::DiscretizeA { method, dt, a } => {
                let m = tag(&mut e, method.name());
                e.add(Ssm::DiscA([m, r(*dt), r(*a)]))
            }
            Op::DiscretizeB { method, dt, a, b } => {
                let m = tag(&mut e, method.name());
                e.add(Ssm::DiscB([m, r(*dt), r(*a), r(*b)]))
            }
            Op::Scan { a, b, dim, reverse, init } => {
                let d = e.add(Ssm::Tag(dim_tag(*dim)));
                let dir = tag(&mut e, if *reverse { "rev" } else { "fwd" });
                let i = match init {
                    Some(i) => r(*i),
                    None => tag(&mut e, "none"),
                };
                e.add(Ssm::Scan([r(*a), r(*b), d, dir, i]))
            }
            Op::ScanFinal(s) => e.add(Ssm::Final(r(*s))),
            Op::Gate { kind, x, z } => {
                let k = tag(&mut e, kind.name());
                e.add(Ssm::Gate([k, r(*x), r(*z)]))
            }
            Op::Conv1d { x, weight, bias, dim, reverse } => {
                let b = match bias {
                    Some(b) => r(*b),
                    None => tag(&mut e, "none"),
                };
                let d = e.add(Ssm::Tag(dim_tag(*dim)));
                let dir = tag(&mut e, if *reverse { "rev" } else { "fwd" });
                e.add(Ssm::Conv([r(*x), r(*weight), b, d, dir]))
            }
            Op::Shift { x, dim, fill, reverse } => {
                let d = e.add(Ssm::Tag(dim_tag(*dim)));
                let f = match fill {
                    Some(f) => r(*f),
                    None => tag(&mut e, "none"),
                };
                let dir = tag(&mut e, if *reverse { "rev" } else { "fwd" });
                e.add(Ssm::Shift([r(*x), d, f, dir]))
            }
            Op::Window { x, dim, taps, reverse } => {
                let d = e.add(Ssm::Tag(dim_tag(*dim)));
                let t = e.add(Ssm::Tag(dim_tag(*taps)));
                let dir = tag(&mut e, if *reverse { "rev" } else { "fwd" });
                e.add(Ssm::Window([r(*x), d, t, dir]))
            }
            Op::Broadcast { x, dims } => {
                let mut v = r(*x);
                for &dim in dims.dims() {
                    let d = e.add(Ssm::Tag(dim_tag(dim)));
                    v = e.add(Ssm::Bcast([v, d]));
                }
                v
            }
        };
        let read = match &node.op {
            Op::Input(_) | Op::Const(_) => value,
            _ => e.add(Ssm::Mat(value)),
        };
        reads.push(read);
    }
    let outs: Vec<Id> = g.outputs().iter().map(|o| reads[o.node.index()]).collect();
    e.add(Ssm::Outs(outs.into_boxed_slice()));
    e
}

/// A graph rebuilt from a term, and the nodes the term stores in memory.
pub struct FromTerm {
    /// The graph (inputs first, in the source's order; then the term's ops).
    pub graph: Graph,
    /// Values under `mat`.
    pub stored: BTreeSet<NodeId>,
}

/// Rebuilds a graph from an extracted term of `source` (same dims, inputs and output names).
pub fn from_term(source: &Graph, term: &RecExpr<Ssm>) -> Result<FromTerm, IrError> {
    let mut g = Graph::new(source.name());
    for (_, name) in source.dims() {
        g.add_dim(name)?;
    }
    for (_, decl) in source.inputs() {
        g.push(Op::Input(decl.clone()))?;
    }
    let nodes = term.as_ref();
    let mut map: Vec<Option<NodeId>> = vec![None; nodes.len()];
    let mut stored = BTreeSet::new();
    let mut outputs: Vec<NodeId> = Vec::new();
    let bad = |what: &str| IrError::new(format!("malformed optimized term: {what}"));
    for (i, n) in nodes.iter().enumerate() {
        let v = |id: Id| map[usize::from(id)].ok_or_else(|| bad("an operand is not a value"));
        let word = |id: Id| match &nodes[usize::from(id)] {
            Ssm::Tag(s) => Ok(s.as_str()),
            _ => Err(bad("expected a tag")),
        };
        let dim = |id: Id| match &nodes[usize::from(id)] {
            Ssm::Tag(s) => tag_dim(*s).ok_or_else(|| bad("expected a dim")),
            _ => Err(bad("expected a dim")),
        };
        let optional = |id: Id| match &nodes[usize::from(id)] {
            Ssm::Tag(s) if s.as_str() == "none" => Ok(None),
            _ => v(id).map(Some),
        };
        let op = match n {
            Ssm::Tag(s) => {
                if let Some(name) = tag_input(*s) {
                    map[i] = Some(g.input_named(name).ok_or_else(|| bad("unknown input"))?.0);
                }
                continue;
            }
            Ssm::Mat(x) => {
                let node = v(*x)?;
                stored.insert(node);
                map[i] = Some(node);
                continue;
            }
            Ssm::Outs(xs) => {
                outputs = xs.iter().map(|&x| v(x)).collect::<Result<_, _>>()?;
                continue;
            }
            Ssm::Num(r) => Op::Const(r.get()),
            Ssm::Sum([x, d]) => Op::Sum { x: v(*x)?, dim: dim(*d)? },
            Ssm::DiscA([m, dt, a]) => Op::DiscretizeA {
                method: ssmc_ir::Method::from_name(word(*m)?).ok_or_else(|| bad("method"))?,
                dt: v(*dt)?,
                a: v(*a)?,
            },
            Ssm::DiscB([m, dt, a, b]) => Op::DiscretizeB {
                method: ssmc_ir::Method::from_name(word(*m)?).ok_or_else(|| bad("method"))?,
                dt: v(*dt)?,
                a: v(*a)?,
                b: v(*b)?,
            },
            Ssm::Scan([a, b, d, dir, init]) => {
                Op::Scan { a: v(*a)?, b: v(*b)?, dim: dim(*d)?, reverse: word(*dir)? == "rev", init: optional(*init)? }
            }
            Ssm::Final(s) => Op::ScanFinal(v(*s)?),
            Ssm::Gate([k, x, z]) => Op::Gate {
                kind: ssmc_ir::GateKind::from_name(word(*k)?).ok_or_else(|| bad("gate kind"))?,
                x: v(*x)?,
                z: v(*z)?,
            },
            Ssm::Conv([x, w, b, d, dir]) => Op::Conv1d {
                x: v(*x)?,
                weight: v(*w)?,
                bias: optional(*b)?,
                dim: dim(*d)?,
                reverse: word(*dir)? == "rev",
            },
            Ssm::Shift([x, d, f, dir]) => {
                Op::Shift { x: v(*x)?, dim: dim(*d)?, fill: optional(*f)?, reverse: word(*dir)? == "rev" }
            }
            Ssm::Window([x, d, t, dir]) => {
                Op::Window { x: v(*x)?, dim: dim(*d)?, taps: dim(*t)?, reverse: word(*dir)? == "rev" }
            }
            Ssm::Bcast([x, d]) => Op::Broadcast { x: v(*x)?, dims: ssmc_ir::Shape(vec![dim(*d)?]) },
            Ssm::Unary(u, [x]) => Op::Unary(*u, v(*x)?),
            Ssm::Binary(b, [x, y]) => Op::Binary(*b, v(*x)?, v(*y)?),
        };
        map[i] = Some(g.push(op)?);
    }
    for (o, node) in source.outputs().iter().zip(outputs) {
        g.add_output_as(&o.name, node, o.layout.dims())?;
    }
    g.validate()?;
    Ok(FromTerm { graph: g, stored })
}

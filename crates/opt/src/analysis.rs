//! What every e-class knows: its shape, its constant value if any, and what kind of computation
//! produces it (which fusion rules look at). Constants are folded here.

use crate::lang::{tag_dim, tag_input, Ssm};
use egg::{Analysis, DidMerge, EGraph, Id, Language, Symbol};
use ssmc_ir::{BinaryOp, DimId, Graph, Shape, UnaryOp};

/// What produces a value, as far as fusion cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A tag (dim, method, flag) or a caller's input: already in memory or not a value.
    Leaf,
    /// Pointwise: constants, unary and binary ops, discretizations, gates.
    Elementwise,
    /// A scan along a dim, in a direction (`true` = reverse).
    Scan(DimId, bool),
    /// A sum over a dim.
    Sum(DimId),
    /// An op that reads its operand at other positions along a dim (conv1d, shift, window).
    Conv(DimId),
    /// The final state of a scan.
    Final,
    /// A stored value (a kernel boundary).
    Mat,
    /// The outputs list.
    Outs,
}

impl Kind {
    /// Which kind a class of equal values takes when its nodes differ: the kind of the op that
    /// computes it, before a pointwise op of it (`scan * 1`), before a stored copy of it (`mat`),
    /// before a leaf.
    fn precedence(self) -> u8 {
        match self {
            Kind::Leaf | Kind::Outs => 0,
            Kind::Mat => 1,
            Kind::Elementwise => 2,
            Kind::Scan(..) | Kind::Sum(_) | Kind::Conv(_) | Kind::Final => 3,
        }
    }
}

/// Per-class facts.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// The value's dims (canonical for computed values; inputs keep their layout).
    pub shape: Shape,
    /// The constant value, when the class is one.
    pub konst: Option<f64>,
    /// What produces it.
    pub kind: Kind,
    /// For tag leaves: the tag.
    pub tag: Option<Symbol>,
    /// For scans, stored or not: the dim scanned along (what `final` removes).
    pub scan_dim: Option<DimId>,
}

impl Facts {
    /// The dim a tag class names.
    pub fn dim(&self) -> Option<DimId> {
        self.tag.and_then(tag_dim)
    }
}

/// The analysis: it needs the source graph to know input layouts.
#[derive(Clone, Debug)]
pub struct SsmAnalysis {
    /// The graph being optimized (for input layouts and dim names).
    pub graph: Graph,
    /// How many classes constant folding created.
    pub folded: usize,
}

impl SsmAnalysis {
    /// An analysis for terms built from `graph`.
    pub fn new(graph: &Graph) -> Self {
        SsmAnalysis { graph: graph.clone(), folded: 0 }
    }
}

/// The shape of a term node, from its children's facts (the IR's inference rules).
pub fn node_shape(graph: &Graph, enode: &Ssm, child: impl Fn(Id) -> Facts) -> Shape {
    let union = |ids: &[Id]| Shape::union(ids.iter().map(|&i| child(i).shape).collect::<Vec<_>>().iter());
    match enode {
        Ssm::Tag(s) => match tag_input(*s) {
            Some(name) => graph.input_named(name).map(|(_, d)| d.layout.clone()).unwrap_or_default(),
            None => Shape::scalar(),
        },
        Ssm::Num(_) | Ssm::Outs(_) => Shape::scalar(),
        Ssm::Mat(x) => child(*x).shape,
        Ssm::Sum([x, d]) => child(*x).shape.without(child(*d).dim().unwrap_or(DimId(u32::MAX))),
        Ssm::Scan([a, b, ..]) => union(&[*a, *b]),
        Ssm::Final(s) => {
            let f = child(*s);
            match f.scan_dim {
                Some(d) => f.shape.without(d),
                None => f.shape,
            }
        }
        Ssm::Conv([x, ..]) | Ssm::Shift([x, ..]) => child(*x).shape.canonical(),
        Ssm::Window([x, _, t, _]) => {
            Shape::union([&child(*x).shape, &Shape(child(*t).dim().into_iter().collect())])
        }
        Ssm::Bcast([x, d]) => Shape::union([&child(*x).shape, &Shape(child(*d).dim().into_iter().collect())]),
        Ssm::DiscA([_, dt, a]) => union(&[*dt, *a]),
        Ssm::DiscB([_, dt, a, b]) => union(&[*dt, *a, *b]),
        Ssm::Gate([_, x, z]) => union(&[*x, *z]),
        other => union(other.children()).canonical(),
    }
}

/// The IR unary op of a term node, if it is one.
pub fn unary_of(n: &Ssm) -> Option<(UnaryOp, Id)> {
    match n {
        Ssm::Unary(u, [x]) => Some((*u, *x)),
        _ => None,
    }
}

/// The IR binary op of a term node, if it is one.
pub fn binary_of(n: &Ssm) -> Option<(BinaryOp, Id, Id)> {
    match n {
        Ssm::Binary(b, [x, y]) => Some((*b, *x, *y)),
        _ => None,
    }
}

/// The fusion kind of a term node.
pub fn node_kind(enode: &Ssm, child: impl Fn(Id) -> Facts) -> Kind {
    match enode {
        Ssm::Tag(_) => Kind::Leaf,
        Ssm::Mat(_) => Kind::Mat,
        Ssm::Outs(_) => Kind::Outs,
        Ssm::Sum([_, d]) => child(*d).dim().map_or(Kind::Leaf, Kind::Sum),
        Ssm::Scan([_, _, d, dir, _]) => {
            let rev = child(*dir).tag == Some(Symbol::from("rev"));
            child(*d).dim().map_or(Kind::Leaf, |d| Kind::Scan(d, rev))
        }
        Ssm::Conv([_, _, _, d, _]) | Ssm::Shift([_, d, _, _]) | Ssm::Window([_, d, _, _]) => {
            child(*d).dim().map_or(Kind::Leaf, Kind::Conv)
        }
        Ssm::Final(_) => Kind::Final,
        _ => Kind::Elementwise,
    }
}

impl Analysis<Ssm> for SsmAnalysis {
    type Data = Facts;

    fn make(egraph: &mut EGraph<Ssm, Self>, enode: &Ssm) -> Facts {
        let child = |i: Id| egraph[i].data.clone();
        let shape = node_shape(&egraph.analysis.graph, enode, child);
        let kind = node_kind(enode, child);
        let konst = match enode {
            Ssm::Num(r) => Some(r.get()),
            _ => fold(enode, |i| egraph[i].data.konst),
        };
        let tag = match enode {
            Ssm::Tag(s) => Some(*s),
            _ => None,
        };
        let scan_dim = match (enode, kind) {
            (_, Kind::Scan(d, _)) => Some(d),
            (Ssm::Mat(x), _) => egraph[*x].data.scan_dim,
            _ => None,
        };
        Facts { shape, konst, kind, tag, scan_dim }
    }

    fn merge(&mut self, a: &mut Facts, b: Facts) -> DidMerge {
        debug_assert_eq!(a.shape, b.shape, "a rewrite changed a shape");
        let mut changed_a = false;
        if a.konst.is_none() && b.konst.is_some() {
            a.konst = b.konst;
            changed_a = true;
        }
        // A class's kind is its computing node's, whichever class came first: identities merge
        // `scan * 1` (elementwise) and `mat(scan)` with the scan, which fusion must still see as
        // a scan. (Between two computing kinds, which no law makes equal, the first is kept.)
        if b.kind.precedence() > a.kind.precedence() {
            a.kind = b.kind;
            changed_a = true;
        }
        // the scan a stored copy or a pointwise op of it came from, for `final`'s shape
        if a.scan_dim.is_none() && b.scan_dim.is_some() {
            a.scan_dim = b.scan_dim;
            changed_a = true;
        }
        DidMerge(changed_a, a.konst != b.konst || a.kind != b.kind || a.scan_dim != b.scan_dim)
    }

    fn modify(egraph: &mut EGraph<Ssm, Self>, id: Id) {
        let Some(v) = egraph[id].data.konst else { return };
        let is_value = matches!(egraph[id].data.kind, Kind::Elementwise);
        if is_value && !egraph[id].nodes.iter().any(|n| matches!(n, Ssm::Num(_))) {
            let c = egraph.add(Ssm::Num(crate::lang::Real::new(v)));
            egraph.union(id, c);
            egraph.analysis.folded += 1;
        }
    }
}

/// The constant value of an elementwise node whose operands are all constants, where it is
/// finite (an infinity or a NaN stays an expression: a graph's constants are finite numbers).
fn fold(enode: &Ssm, konst: impl Fn(Id) -> Option<f64>) -> Option<f64> {
    let v = if let Some((op, x)) = unary_of(enode) {
        op.eval(konst(x)?)
    } else if let Some((op, a, b)) = binary_of(enode) {
        op.eval(konst(a)?, konst(b)?)
    } else {
        return None;
    };
    v.is_finite().then_some(v)
}

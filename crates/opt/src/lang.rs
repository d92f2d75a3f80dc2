//! The e-graph language: the IR's ops, plus `mat` (a value stored in memory: a kernel boundary)
//! and `outs` (the layer's outputs, the root of every term). Unary and binary ops are one variant
//! each, carrying the IR's [`UnaryOp`] or [`BinaryOp`], so an op the IR declares is a term here
//! with no edit: `(sin ?x)` parses as soon as `sin` is in the IR's table.
//!
//! Leaves are numbers ([`Real`]) and tags ([`egg::Symbol`]): `in:NAME` for an input, `d3` for
//! dim 3, and the words `zoh euler bilinear silu sigmoid fwd rev none`.

use egg::{FromOp, FromOpError, Id, Language, Symbol};
use ssmc_ir::{BinaryOp, UnaryOp};
use std::fmt;
use std::str::FromStr;

/// An `f64` constant as an e-graph leaf (compared and hashed by its bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Real(u64);

impl Real {
    /// The leaf for `v`.
    pub fn new(v: f64) -> Self {
        Real(v.to_bits())
    }

    /// The value.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl fmt::Debug for Real {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.get())
    }
}

impl fmt::Display for Real {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.get())
    }
}

impl FromStr for Real {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        // Only plain decimal numbers: words like `inf` or `nan` stay tags.
        if s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
            s.parse::<f64>().map(Real::new).map_err(|_| ())
        } else {
            Err(())
        }
    }
}

/// Terms the optimizer rewrites. Unary and binary ops carry their IR op ([`UnaryOp`],
/// [`BinaryOp`]) and are written as the DSL writes them: `(exp ?x)`, `(+ ?a ?b)`, `(max ?a ?b)`.
///
/// Nodes order (the derived `Ord`, which e-classes sort their nodes by) by variant, then op,
/// then children; the variants' order here and the ops' order in their tables are part of the
/// optimizer's behaviour (extraction breaks ties toward a class's first node).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ssm {
    /// A value stored in memory: a kernel boundary.
    Mat(Id),
    /// The layer's outputs, the root of every term.
    Outs(Box<[Id]>),
    /// An elementwise function of one operand.
    Unary(UnaryOp, [Id; 1]),
    /// An elementwise function of two operands.
    Binary(BinaryOp, [Id; 2]),
    /// x, dim
    Sum([Id; 2]),
    /// method, dt, a
    DiscA([Id; 3]),
    /// method, dt, a, b
    DiscB([Id; 4]),
    /// a, b, dim, fwd|rev, init|none
    Scan([Id; 5]),
    /// The final state of a scan.
    Final(Id),
    /// kind, x, z
    Gate([Id; 3]),
    /// x, weight, bias|none, dim, fwd|rev
    Conv([Id; 5]),
    /// A constant.
    Num(Real),
    /// A tag: an input, a dim or a word.
    Tag(Symbol),
    /// x, dim, fill|none, fwd|rev
    Shift([Id; 4]),
    /// x, dim, taps, fwd|rev
    Window([Id; 4]),
    /// x repeated along one more dim: x, dim
    Bcast([Id; 2]),
}

/// What egg indexes e-classes by when it searches for a pattern's root: the variant, and for
/// unary and binary nodes their op too, so `(exp ?x)` visits only the classes holding an `exp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Head {
    /// A unary op.
    Unary(UnaryOp),
    /// A binary op.
    Binary(BinaryOp),
    /// Any other node, by its variant.
    Other(std::mem::Discriminant<Ssm>),
}

impl Language for Ssm {
    type Discriminant = Head;

    fn discriminant(&self) -> Head {
        match self {
            Ssm::Unary(u, _) => Head::Unary(*u),
            Ssm::Binary(b, _) => Head::Binary(*b),
            other => Head::Other(std::mem::discriminant(other)),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant()
            && match (self, other) {
                (Ssm::Outs(a), Ssm::Outs(b)) => a.len() == b.len(),
                (Ssm::Num(a), Ssm::Num(b)) => a == b,
                (Ssm::Tag(a), Ssm::Tag(b)) => a == b,
                _ => true,
            }
    }

    fn children(&self) -> &[Id] {
        match self {
            Ssm::Mat(x) | Ssm::Final(x) => std::slice::from_ref(x),
            Ssm::Outs(xs) => xs,
            Ssm::Unary(_, xs) => xs,
            Ssm::Binary(_, xs) | Ssm::Sum(xs) | Ssm::Bcast(xs) => xs,
            Ssm::DiscA(xs) | Ssm::Gate(xs) => xs,
            Ssm::DiscB(xs) | Ssm::Shift(xs) | Ssm::Window(xs) => xs,
            Ssm::Scan(xs) | Ssm::Conv(xs) => xs,
            Ssm::Num(_) | Ssm::Tag(_) => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Ssm::Mat(x) | Ssm::Final(x) => std::slice::from_mut(x),
            Ssm::Outs(xs) => xs,
            Ssm::Unary(_, xs) => xs,
            Ssm::Binary(_, xs) | Ssm::Sum(xs) | Ssm::Bcast(xs) => xs,
            Ssm::DiscA(xs) | Ssm::Gate(xs) => xs,
            Ssm::DiscB(xs) | Ssm::Shift(xs) | Ssm::Window(xs) => xs,
            Ssm::Scan(xs) | Ssm::Conv(xs) => xs,
            Ssm::Num(_) | Ssm::Tag(_) => &mut [],
        }
    }
}

impl fmt::Display for Ssm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ssm::Unary(u, _) => write!(f, "{u}"),
            Ssm::Binary(b, _) => write!(f, "{b}"),
            Ssm::Num(r) => write!(f, "{r}"),
            Ssm::Tag(s) => write!(f, "{s}"),
            Ssm::Mat(_) => f.write_str("mat"),
            Ssm::Outs(_) => f.write_str("outs"),
            Ssm::Sum(_) => f.write_str("sum"),
            Ssm::DiscA(_) => f.write_str("disc_a"),
            Ssm::DiscB(_) => f.write_str("disc_b"),
            Ssm::Scan(_) => f.write_str("scan"),
            Ssm::Final(_) => f.write_str("final"),
            Ssm::Gate(_) => f.write_str("gate"),
            Ssm::Conv(_) => f.write_str("conv"),
            Ssm::Shift(_) => f.write_str("shift"),
            Ssm::Window(_) => f.write_str("window"),
            Ssm::Bcast(_) => f.write_str("bcast"),
        }
    }
}

impl FromOp for Ssm {
    type Error = FromOpError;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, FromOpError> {
        // a word with operands is an op; a word without is a number or a tag (so `max` or
        // `silu` alone is a tag, as the gate kind `silu` is)
        let n = children.len();
        let node = match op {
            "outs" => Ssm::Outs(children.into_boxed_slice()),
            "mat" if n == 1 => Ssm::Mat(children[0]),
            "final" if n == 1 => Ssm::Final(children[0]),
            "sum" if n == 2 => Ssm::Sum(fixed(children)),
            "disc_a" if n == 3 => Ssm::DiscA(fixed(children)),
            "disc_b" if n == 4 => Ssm::DiscB(fixed(children)),
            "scan" if n == 5 => Ssm::Scan(fixed(children)),
            "gate" if n == 3 => Ssm::Gate(fixed(children)),
            "conv" if n == 5 => Ssm::Conv(fixed(children)),
            "shift" if n == 4 => Ssm::Shift(fixed(children)),
            "window" if n == 4 => Ssm::Window(fixed(children)),
            "bcast" if n == 2 => Ssm::Bcast(fixed(children)),
            _ if children.is_empty() => match op.parse::<Real>() {
                Ok(r) => Ssm::Num(r),
                Err(()) => Ssm::Tag(Symbol::from(op)),
            },
            _ => match (op.parse::<UnaryOp>(), op.parse::<BinaryOp>()) {
                (Ok(u), _) if n == 1 => Ssm::Unary(u, fixed(children)),
                (_, Ok(b)) if n == 2 => Ssm::Binary(b, fixed(children)),
                _ => return Err(FromOpError::new(op, children)),
            },
        };
        Ok(node)
    }
}

/// The operands as an array of the length the caller checked.
fn fixed<const N: usize>(children: Vec<Id>) -> [Id; N] {
    children.try_into().expect("arity checked")
}

/// The tag leaf of input `name`.
pub fn input_tag(name: &str) -> Symbol {
    Symbol::from(format!("in:{name}"))
}

/// The tag leaf of dim `d`.
pub fn dim_tag(d: ssmc_ir::DimId) -> Symbol {
    Symbol::from(format!("d{}", d.0))
}

/// The dim a tag names, if it is a dim tag.
pub fn tag_dim(s: Symbol) -> Option<ssmc_ir::DimId> {
    s.as_str().strip_prefix('d').and_then(|n| n.parse().ok()).map(ssmc_ir::DimId)
}

/// The input a tag names, if it is an input tag.
pub fn tag_input(s: Symbol) -> Option<&'static str> {
    s.as_str().strip_prefix("in:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_tags_parse_apart() {
        let e: egg::RecExpr<Ssm> = "(* 1.5 (exp2 in:u))".parse().unwrap();
        assert!(matches!(e.as_ref()[0], Ssm::Num(r) if r.get() == 1.5));
        assert!(matches!(e.as_ref()[1], Ssm::Tag(t) if tag_input(t) == Some("u")));
        assert_eq!(tag_dim(dim_tag(ssmc_ir::DimId(3))), Some(ssmc_ir::DimId(3)));
        assert_eq!("inf".parse::<Real>(), Err(()));
    }

    #[test]
    fn ops_parse_from_the_irs_names_and_print_back() {
        let text = "(gate silu (max (sin in:x) -1.5) (- (cos in:x) max))";
        let e: egg::RecExpr<Ssm> = text.parse().unwrap();
        let nodes = e.as_ref();
        assert!(matches!(nodes[0], Ssm::Tag(t) if t.as_str() == "silu"), "a word alone is a tag");
        assert!(nodes.iter().any(|n| matches!(n, Ssm::Unary(UnaryOp::Sin, _))));
        assert!(nodes.iter().any(|n| matches!(n, Ssm::Binary(BinaryOp::Max, _))));
        assert!(nodes.iter().any(|n| matches!(n, Ssm::Binary(BinaryOp::Sub, _))));
        assert!(nodes.iter().any(|n| matches!(n, Ssm::Tag(t) if t.as_str() == "max")), "and so is `max`");
        assert_eq!(e.to_string(), text);
        assert!("(add in:x in:y)".parse::<egg::RecExpr<Ssm>>().is_err(), "terms write `+`");
        assert!("(sin in:x in:y)".parse::<egg::RecExpr<Ssm>>().is_err(), "sin takes one operand");
    }
}

//! The e-graph language: the IR's ops, plus `mat` (a value stored in memory: a kernel boundary)
//! and `outs` (the layer's outputs, the root of every term).
//!
//! Leaves are numbers ([`Real`]) and tags ([`egg::Symbol`]): `in:NAME` for an input, `d3` for
//! dim 3, and the words `zoh euler bilinear silu sigmoid fwd rev none`.

// The variants mirror the IR ops one to one (see `ssmc_ir::Op`); `define_language!` takes no
// per-variant docs.
#![allow(missing_docs)]

use egg::{define_language, Id, Symbol};
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

define_language! {
    /// Terms the optimizer rewrites.
    pub enum Ssm {
        "mat" = Mat(Id),
        "outs" = Outs(Box<[Id]>),
        "neg" = Neg(Id),
        "exp" = Exp(Id),
        "exp2" = Exp2(Id),
        "log" = Log(Id),
        "log1p" = Log1p(Id),
        "softplus" = Softplus(Id),
        "sigmoid" = Sigmoid(Id),
        "silu" = Silu(Id),
        "tanh" = Tanh(Id),
        "sqrt" = Sqrt(Id),
        "rsqrt" = Rsqrt(Id),
        "recip" = Recip(Id),
        "abs" = Abs(Id),
        "+" = Add([Id; 2]),
        "-" = Sub([Id; 2]),
        "*" = Mul([Id; 2]),
        "/" = Div([Id; 2]),
        "max" = Max([Id; 2]),
        "min" = Min([Id; 2]),
        // x, dim
        "sum" = Sum([Id; 2]),
        // method, dt, a
        "disc_a" = DiscA([Id; 3]),
        // method, dt, a, b
        "disc_b" = DiscB([Id; 4]),
        // a, b, dim, fwd|rev, init|none
        "scan" = Scan([Id; 5]),
        "final" = Final(Id),
        // kind, x, z
        "gate" = Gate([Id; 3]),
        // x, weight, bias|none, dim
        "conv" = Conv([Id; 4]),
        Num(Real),
        Tag(Symbol),
    }
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
}

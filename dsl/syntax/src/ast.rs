//! The spanned syntax tree of a layer, as written.

use proc_macro2::{Ident, Span};
use ssmc_ir::{BinaryOp, InputKind};

/// `layer NAME { statements }`
#[derive(Clone, Debug)]
pub struct Layer {
    /// The layer's name (the struct name in `ssm!`).
    pub name: Ident,
    /// Statements in source order.
    pub stmts: Vec<Stmt>,
}

/// One statement.
#[derive(Clone, Debug)]
pub enum Stmt {
    /// `dims batch, dim, len;`
    Dims(Vec<Ident>),
    /// `input u: [batch, dim, len];`, `param A: f32[dim, state] in -4.0..-0.5;`
    Decl(Decl),
    /// `let name = expr;`
    Let(Ident, Expr),
    /// `output name = expr;`, or `output name: [dims] = expr;` to store it in that order
    Output(Ident, Option<Vec<Ident>>, Expr),
}

/// A declared input or parameter.
#[derive(Clone, Debug)]
pub struct Decl {
    /// `input` or `param`.
    pub kind: InputKind,
    /// Its name.
    pub name: Ident,
    /// A required storage dtype (`f32[...]`).
    pub dtype: Option<Ident>,
    /// The layout's dims, outermost first.
    pub dims: Vec<Ident>,
    /// `in lo..hi`: the range `--random` draws from.
    pub range: Option<(Expr, Expr)>,
}

/// An expression.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A name: a value, or (as an argument) a dim, method or gate kind.
    Name(Ident),
    /// A number.
    Lit(f64, Span),
    /// `-e`
    Neg(Box<Expr>, Span),
    /// `a + b`, `a - b`, `a * b`, `a / b`
    Binary(BinaryOp, Box<Expr>, Box<Expr>, Span),
    /// `f(args)`
    Call(Ident, Vec<Arg>, Span),
}

/// A call argument.
#[derive(Clone, Debug)]
pub enum Arg {
    /// `e`
    Pos(Expr),
    /// `name = e`
    Kw(Ident, Expr),
}

impl Expr {
    /// Where the expression was written.
    pub fn span(&self) -> Span {
        match self {
            Expr::Name(i) => i.span(),
            Expr::Lit(_, s) | Expr::Neg(_, s) | Expr::Binary(.., s) | Expr::Call(.., s) => *s,
        }
    }
}

//! The grammar, as syn `Parse` impls: the same code reads `ssm!` tokens and `.ssm` files.
//!
//! Expressions are read with syn's Rust expression parser (so precedence is Rust's) and then
//! narrowed to the forms the language has; anything else is an error at its span.

use crate::ast::{Arg, Decl, Expr, Layer, Stmt};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{bracketed, braced, Ident, Token};
use ssmc_ir::{BinaryOp, InputKind};

impl Parse for Layer {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kw = input.call(Ident::parse_any)?;
        if kw != "layer" {
            return Err(syn::Error::new(kw.span(), format!("expected `layer NAME {{ ... }}`, found `{kw}`")));
        }
        let name: Ident = input.call(Ident::parse_any)?;
        let body;
        braced!(body in input);
        let mut stmts = Vec::new();
        while !body.is_empty() {
            stmts.push(body.parse()?);
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the layer's closing brace"));
        }
        Ok(Layer { name, stmts })
    }
}

impl Parse for Stmt {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![let]) {
            input.parse::<Token![let]>()?;
            let (name, expr) = binding(input)?;
            return Ok(Stmt::Let(name, expr));
        }
        let kw = input.call(Ident::parse_any)?;
        let stmt = match kw.to_string().as_str() {
            "dims" => {
                let mut names = vec![input.call(Ident::parse_any)?];
                while input.peek(Token![,]) {
                    input.parse::<Token![,]>()?;
                    names.push(input.call(Ident::parse_any)?);
                }
                input.parse::<Token![;]>()?;
                Stmt::Dims(names)
            }
            "input" | "param" => {
                let kind = if kw == "input" { InputKind::Input } else { InputKind::Param };
                Stmt::Decl(decl(kind, input)?)
            }
            "output" => {
                let name = input.call(Ident::parse_any)?;
                let layout = if input.peek(Token![:]) {
                    input.parse::<Token![:]>()?;
                    let inner;
                    bracketed!(inner in input);
                    Some(inner.parse_terminated(Ident::parse_any, Token![,])?.into_iter().collect())
                } else {
                    None
                };
                input.parse::<Token![=]>()?;
                let e: syn::Expr = input.parse()?;
                input.parse::<Token![;]>()?;
                Stmt::Output(name, layout, expr(&e)?)
            }
            other => {
                return Err(syn::Error::new(
                    kw.span(),
                    format!("expected `dims`, `input`, `param`, `let` or `output`, found `{other}`"),
                ))
            }
        };
        Ok(stmt)
    }
}

/// `NAME = EXPR ;`
fn binding(input: ParseStream) -> syn::Result<(Ident, Expr)> {
    let name = input.call(Ident::parse_any)?;
    input.parse::<Token![=]>()?;
    let e: syn::Expr = input.parse()?;
    input.parse::<Token![;]>()?;
    Ok((name, expr(&e)?))
}

/// `NAME : DTYPE? [dims] (in LO..HI)? ;`
fn decl(kind: InputKind, input: ParseStream) -> syn::Result<Decl> {
    let name = input.call(Ident::parse_any)?;
    input.parse::<Token![:]>()?;
    let dtype = if input.peek(Ident::peek_any) { Some(input.call(Ident::parse_any)?) } else { None };
    let inner;
    bracketed!(inner in input);
    let dims = inner.parse_terminated(Ident::parse_any, Token![,])?.into_iter().collect();
    let range = if input.peek(Token![in]) {
        input.parse::<Token![in]>()?;
        let e: syn::Expr = input.parse()?;
        match e {
            syn::Expr::Range(r) => match (&r.start, &r.end, &r.limits) {
                (Some(lo), Some(hi), syn::RangeLimits::HalfOpen(_)) => Some((expr(lo)?, expr(hi)?)),
                _ => return Err(syn::Error::new(r.span(), "expected a range `lo..hi`")),
            },
            other => return Err(syn::Error::new(other.span(), "expected a range `lo..hi`")),
        }
    } else {
        None
    };
    input.parse::<Token![;]>()?;
    Ok(Decl { kind, name, dtype, dims, range })
}

/// Narrows a Rust expression to the layer language.
fn expr(e: &syn::Expr) -> syn::Result<Expr> {
    Ok(match e {
        syn::Expr::Paren(p) => expr(&p.expr)?,
        syn::Expr::Group(g) => expr(&g.expr)?,
        syn::Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            Expr::Name(p.path.get_ident().cloned().expect("checked by the guard"))
        }
        syn::Expr::Lit(l) => match &l.lit {
            syn::Lit::Float(f) => Expr::Lit(finite(f.base10_parse::<f64>()?, f.base10_digits(), f.span())?, f.span()),
            syn::Lit::Int(i) => Expr::Lit(finite(i.base10_parse::<f64>()?, i.base10_digits(), i.span())?, i.span()),
            syn::Lit::Bool(b) => Expr::Name(Ident::new(if b.value { "true" } else { "false" }, b.span)),
            other => return Err(syn::Error::new(other.span(), "expected a number")),
        },
        syn::Expr::Unary(u) => match u.op {
            syn::UnOp::Neg(_) => Expr::Neg(Box::new(expr(&u.expr)?), u.span()),
            _ => return Err(syn::Error::new(u.op.span(), "only `-` is a prefix operator here")),
        },
        syn::Expr::Binary(b) => {
            let op = match b.op {
                syn::BinOp::Add(_) => BinaryOp::Add,
                syn::BinOp::Sub(_) => BinaryOp::Sub,
                syn::BinOp::Mul(_) => BinaryOp::Mul,
                syn::BinOp::Div(_) => BinaryOp::Div,
                _ => return Err(syn::Error::new(b.op.span(), "only `+ - * /` are infix operators here")),
            };
            Expr::Binary(op, Box::new(expr(&b.left)?), Box::new(expr(&b.right)?), b.op.span())
        }
        syn::Expr::Call(c) => {
            let func = match &*c.func {
                syn::Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned().expect("checked"),
                other => return Err(syn::Error::new(other.span(), "expected the name of an op")),
            };
            let mut args = Vec::new();
            for a in &c.args {
                args.push(match a {
                    syn::Expr::Assign(kv) => match &*kv.left {
                        syn::Expr::Path(p) if p.path.get_ident().is_some() => {
                            Arg::Kw(p.path.get_ident().cloned().expect("checked"), expr(&kv.right)?)
                        }
                        other => return Err(syn::Error::new(other.span(), "expected `name = value`")),
                    },
                    other => Arg::Pos(expr(other)?),
                });
            }
            Expr::Call(func.clone(), args, func.span())
        }
        _ => {
            return Err(syn::Error::new(e.span(), "expected a name, a number, `-`, `+ - * /`, or a call"))
        }
    })
}

/// A literal's value, which must be a finite `f64` (`1e309` reads as infinity, which no printer
/// writes back as a number).
fn finite(v: f64, digits: &str, span: proc_macro2::Span) -> syn::Result<f64> {
    match v.is_finite() {
        true => Ok(v),
        false => Err(syn::Error::new(span, format!("the number `{digits}` is out of range of f64"))),
    }
}

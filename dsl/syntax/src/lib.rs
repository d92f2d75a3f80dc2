//! ssmc-dsl: the layer language, one grammar for `.ssm` files and the `ssm!` macro.
//!
//! ```
//! let g = ssmc_dsl::parse_str(r#"
//!     layer Decay {
//!         dims len;
//!         input x: [len];
//!         param a: [] in 0.0..1.0;
//!         output h = scan(a, x, len);
//!     }
//! "#).unwrap();
//! assert_eq!(g.name(), "Decay");
//! assert_eq!(g.outputs()[0].name, "h");
//! ```
//!
//! Errors carry the span of the offending token and render like rustc's:
//!
//! ```
//! let err = ssmc_dsl::parse_str("layer L { dims n; input x: [m]; output y = x; }").unwrap_err();
//! assert_eq!(err.errors[0].message, "unknown dim `m` (declared: `n`)");
//! assert_eq!(err.errors[0].line_col(), (1, 29));
//! ```
#![warn(missing_docs)]

pub mod ast;
pub mod error;
pub mod lower;
mod parse;

pub use error::{Diagnostics, DslError};
pub use ssmc_ir as ir;
use proc_macro2::TokenStream;
use ssmc_ir::Graph;

/// How deep brackets may nest in a spec (the layer's braces count).
pub const MAX_NESTING: usize = 64;

/// How many tokens one statement may have (a bracket pair counts as one, and its contents count
/// too). The statements that recurse deepest, a run of prefix `-`, parse at 1536 tokens on a
/// 2 MiB test thread and overflow it at 2044: this leaves half again as much.
pub const MAX_STATEMENT_TOKENS: usize = 1024;

/// Parses a layer from tokens (what `ssm!` receives).
pub fn parse_tokens(tokens: TokenStream) -> Result<(ast::Layer, Graph), Diagnostics> {
    check_size(&tokens).map_err(|e| Diagnostics { errors: vec![e], source: None })?;
    let layer: ast::Layer = syn::parse2(tokens)?;
    let graph = lower::lower(&layer).map_err(|errors| Diagnostics { errors, source: None })?;
    Ok((layer, graph))
}

/// Parses a layer from `.ssm` text. Error spans carry line and column into `src`.
pub fn parse_str(src: &str) -> Result<Graph, Diagnostics> {
    parse_named("<spec>", src)
}

/// [`parse_str`], naming the source (a file path) in rendered errors.
pub fn parse_named(name: &str, src: &str) -> Result<Graph, Diagnostics> {
    let tokens: TokenStream = src.parse().map_err(|e: proc_macro2::LexError| Diagnostics {
        errors: vec![DslError::new(e.span(), format!("cannot read the tokens: {e}"))],
        source: None,
    }.with_source(name, src))?;
    parse_tokens(tokens).map(|(_, g)| g).map_err(|d| d.with_source(name, src))
}

/// Keeps a spec within [`MAX_NESTING`] and [`MAX_STATEMENT_TOKENS`], the bounds under which
/// every recursive pass over it (syn's parser, narrowing, lowering) fits a thread's stack: past
/// them a spec would overflow the stack instead of getting an error. Walks the tokens with a
/// stack of its own, so the check itself cannot overflow.
fn check_size(tokens: &TokenStream) -> Result<(), DslError> {
    use proc_macro2::TokenTree;
    let mut open = vec![tokens.clone().into_iter()];
    let mut in_statement = 0;
    while let Some(level) = open.last_mut() {
        let Some(tt) = level.next() else {
            open.pop();
            continue;
        };
        in_statement += 1;
        if in_statement > MAX_STATEMENT_TOKENS {
            return Err(DslError::new(
                tt.span(),
                format!("a statement longer than {MAX_STATEMENT_TOKENS} tokens; split it with `let`"),
            ));
        }
        match tt {
            // only the `;` that ends a statement in the layer's body (the top level and the
            // braces): syn reads expressions with `;` inside brackets (`m!(;)`, `[x; n]`), and
            // an expression of those pieces must count as one statement
            TokenTree::Punct(p) if p.as_char() == ';' && open.len() <= 2 => in_statement = 0,
            TokenTree::Group(g) => {
                // `open` holds this level and those around it: the group is at depth `open.len()`
                if open.len() > MAX_NESTING {
                    return Err(DslError::new(
                        g.span_open(),
                        format!("brackets nested more than {MAX_NESTING} deep; split the expression with `let`"),
                    ));
                }
                // a group's own tokens are walked next, then the rest of this level
                open.push(g.stream().into_iter());
            }
            _ => {}
        }
    }
    Ok(())
}

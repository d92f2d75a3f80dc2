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

/// Parses a layer from tokens (what `ssm!` receives).
pub fn parse_tokens(tokens: TokenStream) -> Result<(ast::Layer, Graph), Diagnostics> {
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

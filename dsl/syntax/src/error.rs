//! DSL errors: a message and the span of the offending token, rendered like rustc for files.

use proc_macro2::Span;
use std::fmt;

/// One mistake in a spec, at a token.
#[derive(Clone, Debug)]
pub struct DslError {
    /// What is wrong (lowercase, names the thing).
    pub message: String,
    /// The offending token.
    pub span: Span,
}

impl DslError {
    /// An error at `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        DslError { message: message.into(), span }
    }

    /// 1-based line and column of the token (0, 0 when the span carries no position).
    pub fn line_col(&self) -> (usize, usize) {
        let s = self.span.start();
        (s.line, s.column + 1)
    }
}

impl From<syn::Error> for Diagnostics {
    fn from(e: syn::Error) -> Self {
        Diagnostics { errors: e.into_iter().map(|e| DslError::new(e.span(), e.to_string())).collect(), source: None }
    }
}

/// All the errors found in one spec, with the source text they point into.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    /// The errors, in source order.
    pub errors: Vec<DslError>,
    /// The file name and text, when the spec came from a file.
    pub source: Option<(String, String)>,
}

impl Diagnostics {
    /// Attaches the file name and text the spans point into, for rendering.
    pub fn with_source(mut self, name: &str, text: &str) -> Self {
        self.source = Some((name.to_string(), text.to_string()));
        self
    }

    /// The first error as one line: `file:line:col: message`.
    pub fn one_line(&self) -> String {
        let Some(e) = self.errors.first() else { return "invalid spec".into() };
        let (l, c) = e.line_col();
        let more = match self.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        match &self.source {
            Some((name, _)) => format!("{name}:{l}:{c}: {}{more}", e.message),
            None => format!("{l}:{c}: {}{more}", e.message),
        }
    }
}

impl fmt::Display for Diagnostics {
    /// rustc-style: `error: message`, ` --> file:line:col`, the source line and a caret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let (l, c) = e.line_col();
            writeln!(f, "error: {}", e.message)?;
            let Some((name, text)) = &self.source else {
                write!(f, " --> {l}:{c}")?;
                continue;
            };
            write!(f, " --> {name}:{l}:{c}")?;
            if let Some(line) = text.lines().nth(l.wrapping_sub(1)) {
                let end = e.span.end();
                let width = if end.line == l && end.column + 1 > c { end.column + 1 - c } else { 1 };
                let gutter = " ".repeat(l.to_string().len());
                write!(f, "\n{gutter} |\n{l} | {line}\n{gutter} | {}{}", " ".repeat(c - 1), "^".repeat(width))?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

//! The one error type of the IR: a message that says what is wrong, and where.

use crate::graph::NodeId;
use crate::span::Span;
use std::fmt;

/// An invalid graph, or inputs that do not fit one. The message is lowercase and names the
/// things involved (tensor, dim, op); `span` points into the source when the graph came from text.
#[derive(Clone, Debug, PartialEq)]
pub struct IrError {
    /// What is wrong.
    pub message: String,
    /// The node the error is about, if any.
    pub node: Option<NodeId>,
    /// Where that node was written, if known.
    pub span: Option<Span>,
}

impl IrError {
    /// An error not tied to a node.
    pub fn new(message: impl Into<String>) -> Self {
        IrError { message: message.into(), node: None, span: None }
    }

    /// The same error, attributed to `node` written at `span`.
    pub fn at(mut self, node: Option<NodeId>, span: Option<Span>) -> Self {
        self.node = self.node.or(node);
        self.span = self.span.or(span);
        self
    }
}

impl fmt::Display for IrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.span {
            Some(s) => write!(f, "{s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for IrError {}

/// `Result` with [`IrError`].
pub type Result<T, E = IrError> = std::result::Result<T, E>;

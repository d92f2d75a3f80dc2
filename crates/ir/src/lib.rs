//! ssmc-ir: what to compute.
//!
//! A layer is a [`Graph`] of [`Op`]s over named dims. Shapes are inferred as nodes are added, so
//! every graph that exists is valid; [`print`](print::print) writes it as `.ssm` text and
//! [`interp`] evaluates it in `f64`, the oracle every backend is checked against.
//!
//! ```
//! use ssmc_ir::{Graph, InputKind, Method, GateKind, interp::{evaluate, Tensor}};
//! // h[l] = exp(dt * a) * h[l-1] + dt * u[l]; out = h * silu(z)
//! let mut g = Graph::new("tiny");
//! let len = g.add_dim("len").unwrap();
//! let dt = g.input("dt", InputKind::Input, &[len], None).unwrap();
//! let a = g.input("a", InputKind::Param, &[], None).unwrap();
//! let u = g.input("u", InputKind::Input, &[len], None).unwrap();
//! let z = g.input("z", InputKind::Input, &[len], None).unwrap();
//! let da = g.discretize_a(Method::Zoh, dt, a).unwrap();
//! let db = g.discretize_b(Method::Euler, dt, a, u).unwrap();
//! let h = g.scan(da, db, len, false, None).unwrap();
//! let out = g.gate(GateKind::Silu, h, z).unwrap();
//! g.add_output("out", out).unwrap();
//!
//! let t = |v: Vec<f64>| Tensor::new(vec![v.len()], v).unwrap();
//! let (dtv, uv, zv) = (t(vec![0.5, 0.5]), t(vec![1.0, 2.0]), t(vec![0.0, 0.0]));
//! let av = Tensor::new(vec![], vec![-1.0]).unwrap();
//! let res = evaluate(&g, &[("dt", &dtv), ("a", &av), ("u", &uv), ("z", &zv)]).unwrap();
//! // silu(0) = 0, so the gate closes everything.
//! assert_eq!(res["out"].data, vec![0.0, 0.0]);
//! ```
#![warn(missing_docs)]

pub mod dim;
pub mod dtype;
pub mod error;
pub mod gen;
pub mod grad;
pub mod graph;
pub mod infer;
pub mod interp;
pub mod op;
pub mod print;
pub mod span;

pub use dim::{DimId, Shape};
pub use dtype::DType;
pub use error::{IrError, Result};
pub use graph::{Graph, Node, NodeId, Output};
pub use op::{BinaryOp, Domain, GateKind, InputDecl, InputKind, Method, Op, UnaryOp, UnknownOp};
pub use span::Span;

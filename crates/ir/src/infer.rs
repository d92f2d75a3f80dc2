//! Shape inference: the rule each op follows, and the error when a graph breaks it.

use crate::dim::{DimId, Shape};
use crate::error::{IrError, Result};
use crate::graph::{Graph, NodeId};
use crate::op::Op;
use std::collections::HashSet;

/// The shape `op` would have as the next node of `g`, or why it is invalid there.
pub fn infer(g: &Graph, op: &Op) -> Result<Shape> {
    for o in op.operands() {
        if o.index() >= g.nodes().len() {
            return Err(IrError::new(format!("`{}` reads node {} before it is defined", op.name(), o.0)));
        }
    }
    let shape = |n: NodeId| &g.node(n).shape;
    let check_dim = |d: DimId| -> Result<()> {
        if d.index() < g.dim_count() {
            Ok(())
        } else {
            Err(IrError::new(format!("`{}` names dim #{} that is not declared", op.name(), d.0)))
        }
    };
    match op {
        Op::Input(decl) => {
            let mut seen = HashSet::new();
            for &d in decl.layout.dims() {
                check_dim(d)?;
                if !seen.insert(d) {
                    return Err(IrError::new(format!(
                        "`{}` lists dim `{}` twice in its layout",
                        decl.name,
                        g.dim_name(d)
                    )));
                }
            }
            Ok(decl.layout.clone())
        }
        // no text writes back an infinity or a NaN as a number
        Op::Const(v) if !v.is_finite() => Err(IrError::new(format!("the constant {v} is not a finite number"))),
        Op::Const(_) => Ok(Shape::scalar()),
        Op::Unary(_, x) => Ok(shape(*x).canonical()),
        Op::Binary(_, a, b) => Ok(Shape::union([shape(*a), shape(*b)])),
        Op::DiscretizeA { dt, a, .. } => Ok(Shape::union([shape(*dt), shape(*a)])),
        Op::DiscretizeB { dt, a, b, .. } => Ok(Shape::union([shape(*dt), shape(*a), shape(*b)])),
        Op::Gate { x, z, .. } => Ok(Shape::union([shape(*x), shape(*z)])),
        Op::Sum { x, dim } => {
            check_dim(*dim)?;
            let s = shape(*x);
            if !s.contains(*dim) {
                return Err(IrError::new(format!(
                    "sum over `{}`, but the operand has dims {}",
                    g.dim_name(*dim),
                    g.fmt_shape(s)
                )));
            }
            Ok(s.without(*dim))
        }
        Op::Scan { a, b, dim, init, .. } => {
            check_dim(*dim)?;
            let s = Shape::union([shape(*a), shape(*b)]);
            if !s.contains(*dim) {
                return Err(IrError::new(format!(
                    "scan along `{}`, but its operands have dims {}",
                    g.dim_name(*dim),
                    g.fmt_shape(&s)
                )));
            }
            if let Some(h0) = init {
                let state = s.without(*dim);
                if !shape(*h0).is_subset_of(&state) {
                    return Err(IrError::new(format!(
                        "the initial state of a scan has dims {}, but the state has dims {}",
                        g.fmt_shape(shape(*h0)),
                        g.fmt_shape(&state)
                    )));
                }
            }
            Ok(s)
        }
        Op::ScanFinal(s) => match &g.node(*s).op {
            Op::Scan { dim, .. } => Ok(shape(*s).without(*dim)),
            other => Err(IrError::new(format!(
                "`final_state` takes the result of a `scan`, not of `{}`",
                other.name()
            ))),
        },
        Op::Shift { x, dim, fill, .. } => {
            check_dim(*dim)?;
            let xs = shape(*x);
            if !xs.contains(*dim) {
                return Err(IrError::new(format!(
                    "shift along `{}`, but the operand has dims {}",
                    g.dim_name(*dim),
                    g.fmt_shape(xs)
                )));
            }
            if let Some(f) = fill {
                if !shape(*f).is_subset_of(&xs.without(*dim)) {
                    return Err(IrError::new(format!(
                        "the fill of a shift has dims {}, but one step of the operand has dims {}",
                        g.fmt_shape(shape(*f)),
                        g.fmt_shape(&xs.without(*dim))
                    )));
                }
            }
            Ok(xs.canonical())
        }
        Op::Window { x, dim, taps, .. } => {
            check_dim(*dim)?;
            check_dim(*taps)?;
            let xs = shape(*x);
            if !xs.contains(*dim) {
                return Err(IrError::new(format!(
                    "window along `{}`, but the signal has dims {}",
                    g.dim_name(*dim),
                    g.fmt_shape(xs)
                )));
            }
            Ok(Shape::union([xs, &Shape(vec![*taps])]))
        }
        Op::Broadcast { x, dims } => {
            let xs = shape(*x);
            if dims.rank() == 0 {
                return Err(IrError::new("broadcast adds no dim"));
            }
            let mut seen = HashSet::new();
            for &d in dims.dims() {
                check_dim(d)?;
                if xs.contains(d) {
                    return Err(IrError::new(format!(
                        "broadcast adds `{}`, which the value {} already has",
                        g.dim_name(d),
                        g.fmt_shape(xs)
                    )));
                }
                if !seen.insert(d) {
                    return Err(IrError::new(format!("broadcast lists `{}` twice", g.dim_name(d))));
                }
            }
            Ok(Shape::union([xs, dims]))
        }
        Op::Conv1d { x, weight, bias, dim, .. } => {
            check_dim(*dim)?;
            let xs = shape(*x);
            let ws = shape(*weight);
            if !xs.contains(*dim) {
                return Err(IrError::new(format!(
                    "conv1d along `{}`, but the signal has dims {}",
                    g.dim_name(*dim),
                    g.fmt_shape(xs)
                )));
            }
            if ws.contains(*dim) {
                return Err(IrError::new(format!(
                    "conv1d weights must not range over `{}`, the dim convolved along",
                    g.dim_name(*dim)
                )));
            }
            let taps: Vec<DimId> = ws.dims().iter().copied().filter(|d| !xs.contains(*d)).collect();
            if taps.len() != 1 {
                return Err(IrError::new(format!(
                    "conv1d weights {} need exactly one dim the signal {} lacks (the taps), found {}",
                    g.fmt_shape(ws),
                    g.fmt_shape(xs),
                    taps.len()
                )));
            }
            if let Some(bias) = bias {
                let bs = shape(*bias);
                if bs.contains(*dim) || !bs.is_subset_of(xs) {
                    return Err(IrError::new(format!(
                        "conv1d bias has dims {}; it must range over the signal's dims {} except `{}`",
                        g.fmt_shape(bs),
                        g.fmt_shape(xs),
                        g.dim_name(*dim)
                    )));
                }
            }
            Ok(xs.canonical())
        }
    }
}

/// The tap dim of a conv1d: the one dim of the weights the signal lacks.
pub fn conv_taps(g: &Graph, x: NodeId, weight: NodeId) -> Option<DimId> {
    let xs = &g.node(x).shape;
    g.node(weight).shape.dims().iter().copied().find(|d| !xs.contains(*d))
}

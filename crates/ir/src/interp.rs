//! The oracle: an `f64` interpreter that evaluates any valid graph with plain loops.
//!
//! Every backend, fused or unfused, is tested against this file. It favours being obviously right
//! over being fast: each op is one loop nest over named indices, with the scalar semantics from
//! [`crate::op`].

use crate::dim::{DimId, Shape};
use crate::error::{IrError, Result};
use crate::graph::{Graph, NodeId};
use crate::infer::conv_taps;
use crate::op::Op;
use std::collections::BTreeMap;

/// A dense row-major `f64` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Extent of each axis, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor from its shape and data; fails if the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(IrError::new(format!("shape {shape:?} holds {n} values, but {} were given", data.len())));
        }
        Ok(Tensor { shape, data })
    }

    /// A scalar.
    pub fn scalar(v: f64) -> Self {
        Tensor { shape: vec![], data: vec![v] }
    }
}

/// The size of every declared dim, bound from the inputs' shapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimSizes(pub Vec<Option<usize>>);

impl DimSizes {
    /// The size of `d`; dims that no input ranges over have none.
    pub fn get(&self, d: DimId) -> Option<usize> {
        self.0.get(d.index()).copied().flatten()
    }

    /// The extents of `shape`, or the name of the first unbound dim.
    pub fn extents(&self, g: &Graph, shape: &Shape) -> Result<Vec<usize>> {
        shape
            .dims()
            .iter()
            .map(|&d| {
                self.get(d).ok_or_else(|| IrError::new(format!("the size of dim `{}` is not known", g.dim_name(d))))
            })
            .collect()
    }
}

/// Binds every dim's size from the inputs' shapes, checking that the inputs are exactly the
/// declared ones, with the declared rank, and that they agree on every shared dim.
pub fn bind_dims<'a>(g: &Graph, shapes: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> Result<DimSizes> {
    let given: BTreeMap<&str, &[usize]> = shapes.into_iter().collect();
    let declared: Vec<&str> = g.inputs().map(|(_, d)| d.name.as_str()).collect();
    if let Some(extra) = given.keys().find(|k| !declared.contains(k)) {
        return Err(IrError::new(format!(
            "unexpected input `{extra}`; layer `{}` takes {}",
            g.name(),
            declared.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut sizes: Vec<Option<usize>> = vec![None; g.dim_count()];
    let mut bound_by: Vec<&str> = vec![""; g.dim_count()];
    for (_, decl) in g.inputs() {
        // formatted only for an error: this runs on every call of a compiled layer
        let layout = || g.fmt_shape(&decl.layout);
        let shape = given
            .get(decl.name.as_str())
            .ok_or_else(|| IrError::new(format!("missing input `{}` with dims {}", decl.name, layout())))?;
        if shape.len() != decl.layout.rank() {
            return Err(IrError::new(format!(
                "input `{}` has shape {shape:?}, but it is declared with dims {} (rank {})",
                decl.name,
                layout(),
                decl.layout.rank()
            )));
        }
        for (&d, &n) in decl.layout.dims().iter().zip(shape.iter()) {
            let dn = g.dim_name(d);
            if n == 0 {
                return Err(IrError::new(format!("input `{}` has size 0 along `{dn}`", decl.name)));
            }
            match sizes[d.index()] {
                None => {
                    sizes[d.index()] = Some(n);
                    bound_by[d.index()] = &decl.name;
                }
                Some(m) if m != n => {
                    return Err(IrError::new(format!(
                        "input `{}` has `{dn}` = {n}, but `{}` has `{dn}` = {m}",
                        decl.name,
                        bound_by[d.index()]
                    )));
                }
                Some(_) => {}
            }
        }
    }
    let sizes = DimSizes(sizes);
    // Past this, element counts and byte offsets wrap: in kernels' index arithmetic as much as
    // in allocations. Small inputs can make a large value (an outer product).
    for (i, node) in g.nodes().iter().enumerate() {
        let dims = node.shape.dims();
        let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(sizes.get(d).unwrap_or(1)));
        if count.is_none_or(|n| n > MAX_ELEMENTS) {
            let sizes = dims.iter().map(|&d| format!("{}={}", g.dim_name(d), sizes.get(d).unwrap_or(1))).collect::<Vec<_>>();
            return Err(IrError::new(format!(
                "a value over [{}] would have more than 2^{} elements, too large to make",
                sizes.join(", "),
                MAX_ELEMENTS.trailing_zeros()
            ))
            .at(Some(NodeId(i as u32)), node.span));
        }
    }
    Ok(sizes)
}

/// The most elements one value may have (2^40: 4 TiB of `f32`), far past any machine's memory
/// and far below where a count or byte offset wraps.
pub const MAX_ELEMENTS: usize = 1 << 40;

/// Every node's value, for callers that inspect intermediates (plans, tests).
#[derive(Clone, Debug)]
pub struct Values {
    /// The bound dim sizes.
    pub sizes: DimSizes,
    /// One tensor per node, laid out in the node's shape order.
    pub nodes: Vec<Tensor>,
}

/// Evaluates `g` on named inputs; returns the named outputs, each laid out in its node's shape.
///
/// ```
/// use ssmc_ir::{Graph, InputKind, UnaryOp, interp::{evaluate, Tensor}};
/// let mut g = Graph::new("neg");
/// let n = g.add_dim("n").unwrap();
/// let x = g.input("x", InputKind::Input, &[n], None).unwrap();
/// let y = g.unary(UnaryOp::Neg, x).unwrap();
/// g.add_output("y", y).unwrap();
/// let x = Tensor::new(vec![2], vec![1.0, -2.0]).unwrap();
/// let out = evaluate(&g, &[("x", &x)]).unwrap();
/// assert_eq!(out["y"].data, vec![-1.0, 2.0]);
/// ```
pub fn evaluate(g: &Graph, inputs: &[(&str, &Tensor)]) -> Result<BTreeMap<String, Tensor>> {
    evaluate_sized(g, inputs, &DimSizes(Vec::new()))
}

/// `t`, whose axes are the dims of `shape`, with its axes reordered as the dims of `layout`.
pub fn lay_out(t: &Tensor, shape: &Shape, layout: &Shape) -> Tensor {
    if shape == layout {
        return t.clone();
    }
    let ext: Vec<usize> = layout.dims().iter().map(|d| t.shape[shape.position(*d).expect("same dims")]).collect();
    let strides = aligned_strides(shape, &t.shape, layout.dims());
    let mut data = Vec::with_capacity(t.data.len());
    for_each_index(&ext, |_, idx| data.push(t.data[dot(idx, &strides)]));
    Tensor { shape: ext, data }
}

/// Evaluates every node of `g`.
pub fn evaluate_all(g: &Graph, inputs: &[(&str, &Tensor)]) -> Result<Values> {
    evaluate_all_sized(g, inputs, &DimSizes(Vec::new()))
}

/// [`evaluate`] of a piece of a larger graph: dims no input of `g` ranges over (a window's taps,
/// a broadcast's new dims) take their sizes from `known`.
pub fn evaluate_sized(g: &Graph, inputs: &[(&str, &Tensor)], known: &DimSizes) -> Result<BTreeMap<String, Tensor>> {
    let all = evaluate_all_sized(g, inputs, known)?;
    Ok(g
        .outputs()
        .iter()
        .map(|o| (o.name.clone(), lay_out(&all.nodes[o.node.index()], &g.node(o.node).shape, &o.layout)))
        .collect())
}

fn evaluate_all_sized(g: &Graph, inputs: &[(&str, &Tensor)], known: &DimSizes) -> Result<Values> {
    for (name, t) in inputs {
        if t.shape.iter().product::<usize>() != t.data.len() {
            return Err(IrError::new(format!(
                "input `{name}` has shape {:?} but {} values",
                t.shape,
                t.data.len()
            )));
        }
    }
    let mut sizes = bind_dims(g, inputs.iter().map(|(n, t)| (*n, t.shape.as_slice())))?;
    for (i, s) in sizes.0.iter_mut().enumerate() {
        if s.is_none() {
            *s = known.0.get(i).copied().flatten();
        }
    }
    let mut nodes: Vec<Tensor> = Vec::with_capacity(g.nodes().len());
    for (i, node) in g.nodes().iter().enumerate() {
        let value = match &node.op {
            Op::Input(decl) => {
                let t = inputs.iter().find(|(n, _)| *n == decl.name).map(|(_, t)| *t);
                // bind_dims checked that every declared input is present.
                t.cloned().ok_or_else(|| IrError::new(format!("missing input `{}`", decl.name)))?
            }
            op => {
                let ctx = Ctx { g, sizes: &sizes, nodes: &nodes };
                ctx.eval(op, &node.shape).map_err(|e| e.at(Some(NodeId(i as u32)), node.span))?
            }
        };
        nodes.push(value);
    }
    Ok(Values { sizes, nodes })
}

struct Ctx<'a> {
    g: &'a Graph,
    sizes: &'a DimSizes,
    nodes: &'a [Tensor],
}

impl Ctx<'_> {
    fn shape(&self, n: NodeId) -> &Shape {
        &self.g.node(n).shape
    }

    fn val(&self, n: NodeId) -> &[f64] {
        &self.nodes[n.index()].data
    }

    /// Strides of node `n`'s tensor, aligned to the axes `over` (0 where `n` lacks the dim).
    fn strides(&self, n: NodeId, over: &[DimId]) -> Result<Vec<usize>> {
        Ok(aligned_strides(self.shape(n), &self.sizes.extents(self.g, self.shape(n))?, over))
    }

    fn eval(&self, op: &Op, out: &Shape) -> Result<Tensor> {
        let dims = out.dims();
        let ext = self.sizes.extents(self.g, out)?;
        let len: usize = ext.iter().product();
        let mut data = Vec::new();
        // an Err where memory runs short, not an abort (bind_dims bounded the count)
        data.try_reserve_exact(len)
            .map_err(|_| IrError::new(format!("out of memory making a value of {len} elements ({} bytes)", 8 * len)))?;
        data.resize(len, 0.0);
        match op {
            Op::Input(_) => unreachable!("inputs are bound, not evaluated"),
            Op::Const(v) => data[0] = *v,
            Op::Unary(f, x) => {
                let sx = self.strides(*x, dims)?;
                let xv = self.val(*x);
                for_each_index(&ext, |k, idx| data[k] = f.eval(xv[dot(idx, &sx)]));
            }
            Op::Binary(f, a, b) => {
                let (sa, sb) = (self.strides(*a, dims)?, self.strides(*b, dims)?);
                let (av, bv) = (self.val(*a), self.val(*b));
                for_each_index(&ext, |k, idx| data[k] = f.eval(av[dot(idx, &sa)], bv[dot(idx, &sb)]));
            }
            Op::DiscretizeA { method, dt, a } => {
                let (st, sa) = (self.strides(*dt, dims)?, self.strides(*a, dims)?);
                let (tv, av) = (self.val(*dt), self.val(*a));
                for_each_index(&ext, |k, idx| data[k] = method.abar(tv[dot(idx, &st)], av[dot(idx, &sa)]));
            }
            Op::DiscretizeB { method, dt, a, b } => {
                let (st, sa, sb) = (self.strides(*dt, dims)?, self.strides(*a, dims)?, self.strides(*b, dims)?);
                let (tv, av, bv) = (self.val(*dt), self.val(*a), self.val(*b));
                for_each_index(&ext, |k, idx| {
                    data[k] = method.bbar(tv[dot(idx, &st)], av[dot(idx, &sa)], bv[dot(idx, &sb)])
                });
            }
            Op::Gate { kind, x, z } => {
                let (sx, sz) = (self.strides(*x, dims)?, self.strides(*z, dims)?);
                let (xv, zv) = (self.val(*x), self.val(*z));
                for_each_index(&ext, |k, idx| data[k] = kind.eval(xv[dot(idx, &sx)], zv[dot(idx, &sz)]));
            }
            Op::Sum { x, .. } => {
                // Walk the summand; each element adds into the output index it projects to.
                let xs = self.shape(*x);
                let xext = self.sizes.extents(self.g, xs)?;
                let so = aligned_strides(out, &ext, xs.dims());
                let xv = self.val(*x);
                for_each_index(&xext, |k, idx| data[dot(idx, &so)] += xv[k]);
            }
            Op::Scan { a, b, dim, reverse, init } => {
                let p = out.position(*dim).expect("inference checked the scan dim");
                let n = ext[p];
                let (sa, sb) = (self.strides(*a, dims)?, self.strides(*b, dims)?);
                let si = match init {
                    Some(h0) => Some(self.strides(*h0, dims)?),
                    None => None,
                };
                let so = aligned_strides(out, &ext, dims);
                let (av, bv) = (self.val(*a), self.val(*b));
                let mut rows = ext.clone();
                rows[p] = 1;
                for_each_index(&rows, |_, row| {
                    let mut idx = row.to_vec();
                    let mut h = match (&si, init) {
                        (Some(si), Some(h0)) => self.val(*h0)[dot(&idx, si)],
                        _ => 0.0,
                    };
                    for step in 0..n {
                        idx[p] = if *reverse { n - 1 - step } else { step };
                        h = av[dot(&idx, &sa)] * h + bv[dot(&idx, &sb)];
                        data[dot(&idx, &so)] = h;
                    }
                });
            }
            Op::ScanFinal(s) => {
                let Op::Scan { dim, reverse, .. } = &self.g.node(*s).op else {
                    return Err(IrError::new("`final_state` takes the result of a `scan`"));
                };
                let scan_shape = self.shape(*s);
                let p = scan_shape.position(*dim).expect("inference checked the scan dim");
                let scan_ext = self.sizes.extents(self.g, scan_shape)?;
                let last = if *reverse { 0 } else { scan_ext[p] - 1 };
                let ss = self.strides(*s, dims)?;
                let step = aligned_strides(scan_shape, &scan_ext, &[*dim])[0];
                let sv = self.val(*s);
                for_each_index(&ext, |k, idx| data[k] = sv[dot(idx, &ss) + last * step]);
            }
            Op::Broadcast { x, .. } => {
                let sx = self.strides(*x, dims)?;
                let xv = self.val(*x);
                for_each_index(&ext, |k, idx| data[k] = xv[dot(idx, &sx)]);
            }
            Op::Shift { x, dim, fill, reverse } => {
                let p = out.position(*dim).expect("inference checked the shift dim");
                let n = ext[p];
                let sx = self.strides(*x, dims)?;
                let sf = match fill {
                    Some(f) => Some((self.strides(*f, dims)?, self.val(*f))),
                    None => None,
                };
                let xv = self.val(*x);
                for_each_index(&ext, |k, idx| {
                    let at_edge = if *reverse { idx[p] + 1 == n } else { idx[p] == 0 };
                    data[k] = if at_edge {
                        sf.as_ref().map_or(0.0, |(sf, fv)| fv[dot(idx, sf)])
                    } else if *reverse {
                        xv[dot(idx, &sx) + sx[p]]
                    } else {
                        xv[dot(idx, &sx) - sx[p]]
                    };
                });
            }
            Op::Window { x, dim, taps, reverse } => {
                let p = out.position(*dim).expect("inference checked the window dim");
                let q = out.position(*taps).expect("inference added the taps");
                let (n, width) = (ext[p], ext[q]);
                let sx = self.strides(*x, dims)?;
                let xv = self.val(*x);
                for_each_index(&ext, |k, idx| {
                    // tap j reads `back` steps behind (ahead, reversed)
                    let back = width - 1 - idx[q];
                    let inside = if *reverse { idx[p] + back < n } else { back <= idx[p] };
                    data[k] = match (inside, *reverse) {
                        (false, _) => 0.0,
                        (true, false) => xv[dot(idx, &sx) - back * sx[p]],
                        (true, true) => xv[dot(idx, &sx) + back * sx[p]],
                    };
                });
            }
            Op::Conv1d { x, weight, bias, dim, reverse } => {
                let taps = conv_taps(self.g, *x, *weight).expect("inference checked the taps");
                let width = self.sizes.get(taps).ok_or_else(|| IrError::new("the conv1d width is not known"))?;
                let p = out.position(*dim).expect("inference checked the conv dim");
                let sx = self.strides(*x, dims)?;
                let sw = self.strides(*weight, dims)?;
                let tap_stride = self.strides(*weight, &[taps])?[0];
                let sbias = match bias {
                    Some(bias) => Some((self.strides(*bias, dims)?, self.val(*bias))),
                    None => None,
                };
                let (xv, wv) = (self.val(*x), self.val(*weight));
                for_each_index(&ext, |k, idx| {
                    let mut acc = sbias.as_ref().map_or(0.0, |(sb, bv)| bv[dot(idx, sb)]);
                    let (xo, wo) = (dot(idx, &sx), dot(idx, &sw));
                    for j in 0..width {
                        // tap j reads x at position i - (width - 1) + j, zero before the start
                        let back = width - 1 - j;
                        if *reverse && idx[p] + back < ext[p] {
                            acc += wv[wo + j * tap_stride] * xv[xo + back * sx[p]];
                        } else if !*reverse && back <= idx[p] {
                            acc += wv[wo + j * tap_stride] * xv[xo - back * sx[p]];
                        }
                    }
                    data[k] = acc;
                });
            }
        }
        Ok(Tensor { shape: ext, data })
    }
}

/// Row-major strides of a tensor with dims `own` and extents `ext`, listed for the axes `over`
/// (0 for an axis the tensor does not have, which is how broadcasting by name happens).
fn aligned_strides(own: &Shape, ext: &[usize], over: &[DimId]) -> Vec<usize> {
    let mut own_strides = vec![0; ext.len()];
    let mut s = 1;
    for i in (0..ext.len()).rev() {
        own_strides[i] = s;
        s *= ext[i];
    }
    over.iter().map(|d| own.position(*d).map_or(0, |i| own_strides[i])).collect()
}

fn dot(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

/// Calls `f(flat, index)` for every index of a row-major space with extents `ext`, in order.
fn for_each_index(ext: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let total: usize = ext.iter().product();
    let mut idx = vec![0; ext.len()];
    for k in 0..total {
        f(k, &idx);
        for a in (0..ext.len()).rev() {
            idx[a] += 1;
            if idx[a] < ext[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

//! Reverse-mode differentiation: the backward of a layer as another layer.
//!
//! [`grad`] turns a graph into its backward graph. The backward takes the forward's inputs and
//! one cotangent `d_<output>` per output (shaped as that output), and returns `d_<input>` for
//! every input and param (ranging over the input's dims, summed over the dims it was broadcast
//! along). It recomputes the forward values it needs from the inputs: whether a value is kept
//! from a training-mode forward or recomputed is the optimizer's choice, not this pass's.
//!
//! Every op has its rule here, written with the IR's own ops, so the backward prints as
//! `.ssm`, runs on the oracle and compiles like any layer. The adjoint of a scan is a scan in
//! the other direction:
//!
//! ```text
//! h[t] = a[t] h[t-1] + b[t]          (forward, h[-1] = init)
//! q[t] = a[t] q[t+1] + a[t] dh[t]    (reverse, q[last] from d_final)
//! g[t] = dh[t] + q[t+1]              d_b = g,  d_a = g * h[t-1],  d_init = q[first]
//! ```
//!
//! ```
//! use ssmc_ir::{grad::grad, Graph, InputKind, UnaryOp};
//! let mut g = Graph::new("Exp");
//! let n = g.add_dim("n").unwrap();
//! let x = g.input("x", InputKind::Input, &[n], None).unwrap();
//! let y = g.unary(UnaryOp::Exp, x).unwrap();
//! g.add_output("y", y).unwrap();
//! let back = grad(&g).unwrap();
//! let names: Vec<&str> = back.outputs().iter().map(|o| o.name.as_str()).collect();
//! assert_eq!(names, ["d_x"]);
//! assert!(back.input_named("d_y").is_some());
//! ```

use crate::dim::{DimId, Shape};
use crate::error::{IrError, Result};
use crate::graph::{Graph, NodeId};
use crate::op::{BinaryOp, GateKind, InputDecl, InputKind, Method, Op, UnaryOp};
use std::collections::BTreeMap;

/// The name of the cotangent of `name` (`d_out` for `out`).
pub fn cotangent_name(name: &str) -> String {
    format!("d_{name}")
}

/// The backward of `g`: inputs are `g`'s inputs then `d_<output>` per output; outputs are
/// `d_<input>` per input and param, in declaration order.
pub fn grad(g: &Graph) -> Result<Graph> {
    let scanned = g.nodes().iter().filter_map(|n| if let Op::Scan { dim, reverse, .. } = n.op { Some((dim, reverse)) } else { None }).collect();
    let mut b = Builder { g, out: Graph::new(format!("{}_grad", g.name())), map: BTreeMap::new(), scanned };
    for (_, name) in g.dims() {
        b.out.add_dim(name)?;
    }
    let taken = |name: &str| g.input_named(name).is_some() || g.outputs().iter().any(|o| o.name == name);
    for (i, decl) in g.inputs() {
        let id = b.out.push(Op::Input(decl.clone()))?;
        b.map.insert(i, id);
    }
    let mut seeds = Vec::new();
    for o in g.outputs() {
        let name = cotangent_name(&o.name);
        if taken(&name) {
            return Err(IrError::new(format!(
                "the gradient of output `{}` would be the input `{name}`, a name the layer already uses",
                o.name
            )));
        }
        let layout = o.layout.clone();
        let decl = InputDecl { name, kind: InputKind::Input, layout, dtype: None, range: None };
        seeds.push((o.node, b.out.push(Op::Input(decl))?));
    }
    for (_, decl) in g.inputs() {
        let name = cotangent_name(&decl.name);
        if taken(&name) {
            return Err(IrError::new(format!(
                "the gradient of `{}` would be the output `{name}`, a name the layer already uses",
                decl.name
            )));
        }
    }
    // the forward, recomputed
    for (i, node) in g.nodes().iter().enumerate() {
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let op = remap(&node.op, &b.map);
        let id = b.out.push_spanned(op, node.name.clone(), node.span)?;
        b.map.insert(NodeId(i as u32), id);
    }
    let mut adj = Adjoints::default();
    for (node, seed) in seeds {
        b.accumulate(&mut adj.of, node, seed)?;
    }
    for i in (0..g.nodes().len()).rev() {
        let n = NodeId(i as u32);
        b.rule(n, &mut adj).map_err(|e| e.at(Some(n), g.node(n).span))?;
    }
    for (i, decl) in g.inputs() {
        let d = match adj.of.get(&i) {
            Some(&d) => b.with_dims(d, &decl.layout)?,
            None => {
                let zero = b.out.constant(0.0)?;
                b.with_dims(zero, &decl.layout)?
            }
        };
        b.out.add_output_as(&cotangent_name(&decl.name), d, decl.layout.dims())?;
    }
    Ok(b.out)
}

/// The adjoints gathered so far, by forward node.
#[derive(Default)]
struct Adjoints {
    /// The gradient of each value (it may lack dims the value has: it is constant along them).
    of: BTreeMap<NodeId, NodeId>,
    /// The gradient of a scan's final state, read by `final_state`.
    of_final: BTreeMap<NodeId, NodeId>,
}

struct Builder<'a> {
    g: &'a Graph,
    out: Graph,
    /// Forward node to its recomputation in `out`.
    map: BTreeMap<NodeId, NodeId>,
    /// The dims the forward's scans run along.
    scanned: Vec<(DimId, bool)>,
}

impl Builder<'_> {
    fn shape(&self, n: NodeId) -> &Shape {
        &self.out.node(n).shape
    }

    /// The forward value `n`, recomputed.
    fn v(&self, n: NodeId) -> NodeId {
        self.map[&n]
    }

    fn k(&mut self, v: f64) -> Result<NodeId> {
        self.out.constant(v)
    }

    fn un(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        self.out.unary(op, x)
    }

    fn bin(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.out.binary(op, a, b)
    }

    fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.bin(BinaryOp::Mul, a, b)
    }

    /// `x` broadcast to range over every dim of `shape` (itself if it already does).
    fn with_dims(&mut self, x: NodeId, shape: &Shape) -> Result<NodeId> {
        let missing: Vec<DimId> = shape.dims().iter().copied().filter(|d| !self.shape(x).contains(*d)).collect();
        if missing.is_empty() {
            Ok(x)
        } else {
            self.out.broadcast(x, &missing)
        }
    }

    /// Adds `contribution` to the gradient of forward node `to`, first summing it over the
    /// dims `to` does not range over (where `to` was broadcast).
    fn accumulate(&mut self, into: &mut BTreeMap<NodeId, NodeId>, to: NodeId, contribution: NodeId) -> Result<()> {
        let target = self.g.node(to).shape.clone();
        let mut c = contribution;
        let mut extra: Vec<DimId> = self.shape(c).dims().iter().copied().filter(|d| !target.contains(*d)).collect();
        // along a dim the forward scans, the sum is a running sum's last value: a kernel then
        // walks that dim as the scan's adjoint does (the other way), over contiguous rows,
        // instead of reducing across them (`d_A`, summed over `len` and `batch`, sums over
        // `len` first, in the pass that computes it)
        let scanned = self.scanned.clone();
        let walk = |d: DimId| scanned.iter().find(|(s, _)| *s == d).map(|(_, reverse)| !reverse);
        extra.sort_by_key(|d| walk(*d).is_none());
        for d in extra {
            c = if let Some(reverse) = walk(d) {
                let one = self.k(1.0)?;
                let running = self.out.scan(one, c, d, reverse, None)?;
                self.out.scan_final(running)?
            } else {
                self.out.sum(c, d)?
            };
        }
        let total = match into.get(&to) {
            Some(&prev) => self.bin(BinaryOp::Add, prev, c)?,
            None => c,
        };
        into.insert(to, total);
        Ok(())
    }

    /// Propagates the gradient of forward node `n` to its operands.
    fn rule(&mut self, n: NodeId, adj: &mut Adjoints) -> Result<()> {
        let op = self.g.node(n).op.clone();
        if let Op::Scan { a, b, dim, reverse, init } = op {
            return self.scan_rule(n, adj, a, b, dim, reverse, init);
        }
        let Some(&dn) = adj.of.get(&n) else { return Ok(()) };
        let y = self.v(n);
        // a gradient constant along some of the value's dims still counts once per index there
        // (`sum(x + w, d)` gives `w` its gradient `size(d)` times): spell it out before rules
        // sum it into narrower operands
        let full = self.shape(y).clone();
        let dn = self.with_dims(dn, &full)?;
        let mut add = |s: &mut Self, to: NodeId, c: NodeId| s.accumulate(&mut adj.of, to, c);
        match op {
            Op::Input(_) | Op::Const(_) => {}
            Op::Unary(u, x) => {
                let xv = self.v(x);
                let d = self.unary_rule(u, xv, y, dn)?;
                add(self, x, d)?;
            }
            Op::Binary(f, a, b) => {
                let (av, bv) = (self.v(a), self.v(b));
                let (da, db) = match f {
                    BinaryOp::Add => (dn, dn),
                    BinaryOp::Sub => (dn, self.un(UnaryOp::Neg, dn)?),
                    BinaryOp::Mul => (self.mul(dn, bv)?, self.mul(dn, av)?),
                    BinaryOp::Div => {
                        // d(a/b)/db = -(a/b)/b
                        let da = self.bin(BinaryOp::Div, dn, bv)?;
                        let q = self.mul(da, y)?;
                        (da, self.un(UnaryOp::Neg, q)?)
                    }
                    BinaryOp::Max | BinaryOp::Min => {
                        // the larger (smaller) operand takes the gradient; a tie splits it
                        let diff = self.bin(BinaryOp::Sub, av, bv)?;
                        let s = self.un(UnaryOp::Sign, diff)?;
                        let s = if f == BinaryOp::Min { self.un(UnaryOp::Neg, s)? } else { s };
                        let half = self.k(0.5)?;
                        let hs = self.mul(s, half)?;
                        let wa = self.bin(BinaryOp::Add, half, hs)?;
                        let wb = self.bin(BinaryOp::Sub, half, hs)?;
                        (self.mul(dn, wa)?, self.mul(dn, wb)?)
                    }
                };
                add(self, a, da)?;
                add(self, b, db)?;
            }
            Op::Sum { x, .. } => add(self, x, dn)?,
            Op::Broadcast { x, .. } => add(self, x, dn)?,
            Op::DiscretizeA { method, dt, a } => {
                let (tv, av) = (self.v(dt), self.v(a));
                // Abar depends on dt * a: d/d(dt a) is Abar (zoh), 1 (euler), 1/(1 - x/2)^2 (bilinear)
                let slope = match method {
                    Method::Zoh => y,
                    Method::Euler => self.k(1.0)?,
                    Method::Bilinear => self.bilinear_r2(tv, av)?,
                };
                let ds = self.mul(dn, slope)?;
                let ddt = self.mul(ds, av)?;
                let da = self.mul(ds, tv)?;
                add(self, dt, ddt)?;
                add(self, a, da)?;
            }
            Op::DiscretizeB { method, dt, a, b } => {
                let (tv, av, bv) = (self.v(dt), self.v(a), self.v(b));
                match method {
                    Method::Euler => {
                        let ddt = self.mul(dn, bv)?;
                        let db = self.mul(dn, tv)?;
                        add(self, dt, ddt)?;
                        add(self, b, db)?;
                    }
                    Method::Bilinear => {
                        // Bbar = dt b r with r = 1 / (1 - dt a / 2): d/ddt = b r^2,
                        // d/da = dt^2 b r^2 / 2, d/db = dt r
                        let r2 = self.bilinear_r2(tv, av)?;
                        let br2 = self.mul(bv, r2)?;
                        let ddt = self.mul(dn, br2)?;
                        let t2 = self.mul(tv, tv)?;
                        let half = self.k(0.5)?;
                        let t2h = self.mul(t2, half)?;
                        let da = self.mul(ddt, t2h)?;
                        let one = self.k(1.0)?;
                        let per_b = self.out.discretize_b(Method::Bilinear, tv, av, one)?;
                        let db = self.mul(dn, per_b)?;
                        add(self, dt, ddt)?;
                        add(self, a, da)?;
                        add(self, b, db)?;
                    }
                    Method::Zoh => {
                        // Bbar = b (e^{dt a} - 1) / a: d/ddt = b e^{dt a}, d/db = Bbar(b = 1),
                        // d/da = b (dt e^{dt a} - Bbar(b = 1)) / a = b dt^2 f(dt a) with
                        // f(x) = (x e^x - e^x + 1) / x^2, whose difference cancels as x -> 0
                        // (and is 0/0 at a = 0): below |x| = 1/16 the series of f instead
                        let abar = self.out.discretize_a(Method::Zoh, tv, av)?;
                        let one = self.k(1.0)?;
                        let per_b = self.out.discretize_b(Method::Zoh, tv, av, one)?;
                        let dnb = self.mul(dn, bv)?;
                        let ddt = self.mul(dnb, abar)?;
                        let gap = self.zoh_da(tv, av, abar, per_b)?;
                        let da = self.mul(dnb, gap)?;
                        let db = self.mul(dn, per_b)?;
                        add(self, dt, ddt)?;
                        add(self, a, da)?;
                        add(self, b, db)?;
                    }
                }
            }
            Op::Gate { kind, x, z } => {
                let (xv, zv) = (self.v(x), self.v(z));
                let s = self.un(UnaryOp::Sigmoid, zv)?;
                // act(z) and act'(z): silu z s and s (1 + z (1 - s)); sigmoid s and s (1 - s)
                let one = self.k(1.0)?;
                let one_minus = self.bin(BinaryOp::Sub, one, s)?;
                let (act, slope) = match kind {
                    GateKind::Silu => {
                        let act = self.un(UnaryOp::Silu, zv)?;
                        let t = self.mul(zv, one_minus)?;
                        let t = self.bin(BinaryOp::Add, one, t)?;
                        (act, self.mul(s, t)?)
                    }
                    GateKind::Sigmoid => (s, self.mul(s, one_minus)?),
                };
                let dx = self.mul(dn, act)?;
                let dnx = self.mul(dn, xv)?;
                let dz = self.mul(dnx, slope)?;
                add(self, x, dx)?;
                add(self, z, dz)?;
            }
            Op::ScanFinal(s) => {
                let total = match adj.of_final.get(&s) {
                    Some(&prev) => self.bin(BinaryOp::Add, prev, dn)?,
                    None => dn,
                };
                adj.of_final.insert(s, total);
            }
            Op::Scan { .. } => unreachable!("handled above"),
            Op::Conv1d { x, weight, bias, dim, reverse } => {
                // the transpose of a causal conv looks ahead: d_x[m] = sum_j w[j] dy[m + k-1 - j]
                let (xv, wv) = (self.v(x), self.v(weight));
                let dx = self.out.push(Op::Conv1d { x: dn, weight: wv, bias: None, dim, reverse: !reverse })?;
                add(self, x, dx)?;
                let taps = crate::infer::conv_taps(&self.out, xv, wv).expect("a valid conv has taps");
                let win = self.out.push(Op::Window { x: xv, dim, taps, reverse })?;
                let dw = self.mul(win, dn)?;
                add(self, weight, dw)?;
                if let Some(bias) = bias {
                    add(self, bias, dn)?;
                }
            }
            Op::Shift { x, dim, fill, reverse } => {
                // the value at i came from i - 1: its gradient goes back one step the other way
                let dx = self.out.shift(dn, dim, None, !reverse)?;
                add(self, x, dx)?;
                if let Some(fill) = fill {
                    // the gradient at the first step: the last state of a reverse scan that
                    // forgets everything before it
                    let zero = self.k(0.0)?;
                    let pick = self.out.scan(zero, dn, dim, !reverse, None)?;
                    let first = self.out.scan_final(pick)?;
                    add(self, fill, first)?;
                }
            }
            Op::Window { x, dim, taps, reverse } => {
                // out[i, j] = x[i - (k-1-j)]: x[s] gets dy[s + (k-1-j), j] from each tap, a
                // window of dy itself the other way (tap j reading its own lane), summed over
                // the taps unless x ranges over them too
                let win = self.out.push(Op::Window { x: dn, dim, taps, reverse: !reverse })?;
                let dx = if self.g.node(x).shape.contains(taps) { win } else { self.out.sum(win, taps)? };
                add(self, x, dx)?;
            }
        }
        Ok(())
    }

    /// `d/da` of zoh's `Bbar(b = 1)`, `(dt e^{dt a} - Bbar) / a`, where `|dt a| >= 1/16`, and
    /// `dt^2 (1/2 + x/3 + x^2/8 + x^3/30 + x^4/144)` (x = dt a, relative error below 1e-8)
    /// nearer 0, where the difference would cancel. The two are blended by
    /// `w = (1 + sign(|x| - 1/16)) / 2`; the division takes `a` only where `w = 1` (1 elsewhere),
    /// so the other side stays finite.
    fn zoh_da(&mut self, dt: NodeId, a: NodeId, abar: NodeId, per_b: NodeId) -> Result<NodeId> {
        let x = self.mul(dt, a)?;
        let ax = self.un(UnaryOp::Abs, x)?;
        let edge = self.k(1.0 / 16.0)?;
        let off = self.bin(BinaryOp::Sub, ax, edge)?;
        let side = self.un(UnaryOp::Sign, off)?;
        let one = self.k(1.0)?;
        let half = self.k(0.5)?;
        let w = self.bin(BinaryOp::Add, one, side)?;
        let w = self.mul(w, half)?;
        let not_w = self.bin(BinaryOp::Sub, one, w)?;
        // far side: (dt abar - per_b) / a_safe, a_safe = w a + (1 - w)
        let wa = self.mul(w, a)?;
        let a_safe = self.bin(BinaryOp::Add, wa, not_w)?;
        let te = self.mul(dt, abar)?;
        let gap = self.bin(BinaryOp::Sub, te, per_b)?;
        let far = self.bin(BinaryOp::Div, gap, a_safe)?;
        // near side: dt^2 times the series, by Horner
        let mut poly = self.k(1.0 / 144.0)?;
        for c in [1.0 / 30.0, 1.0 / 8.0, 1.0 / 3.0, 0.5] {
            let px = self.mul(poly, x)?;
            let c = self.k(c)?;
            poly = self.bin(BinaryOp::Add, px, c)?;
        }
        let t2 = self.mul(dt, dt)?;
        let near = self.mul(t2, poly)?;
        let far = self.mul(w, far)?;
        let near = self.mul(not_w, near)?;
        self.bin(BinaryOp::Add, far, near)
    }

    /// `1 / (1 - dt a / 2)^2`, the slope of the bilinear rule.
    fn bilinear_r2(&mut self, dt: NodeId, a: NodeId) -> Result<NodeId> {
        let x = self.mul(dt, a)?;
        let half = self.k(0.5)?;
        let hx = self.mul(x, half)?;
        let one = self.k(1.0)?;
        let den = self.bin(BinaryOp::Sub, one, hx)?;
        let r = self.un(UnaryOp::Recip, den)?;
        self.mul(r, r)
    }

    /// The scan's rule (see the module docs); its gradient may come from its values, its final
    /// state or both.
    #[allow(clippy::too_many_arguments)]
    fn scan_rule(
        &mut self,
        n: NodeId,
        adj: &mut Adjoints,
        a: NodeId,
        b: NodeId,
        dim: DimId,
        reverse: bool,
        init: Option<NodeId>,
    ) -> Result<()> {
        let (dh, df) = (adj.of.get(&n).copied(), adj.of_final.get(&n).copied());
        if dh.is_none() && df.is_none() {
            return Ok(());
        }
        let (av, h) = (self.v(a), self.v(n));
        // spelled out over every dim of the states (see `rule`)
        let full = self.shape(h).clone();
        let dh = match dh {
            Some(dh) => Some(self.with_dims(dh, &full)?),
            None => None,
        };
        let df = match df {
            Some(df) => Some(self.with_dims(df, &full.without(dim))?),
            None => None,
        };
        let along = Shape(vec![dim]);
        let addend = match dh {
            Some(dh) => self.mul(av, dh)?,
            None => self.k(0.0)?,
        };
        // the reverse state ranges over the final state's gradient's dims too
        let mut dims = along;
        if let Some(df) = df {
            dims = Shape::union([&dims, self.shape(df)]);
        }
        let addend = self.with_dims(addend, &dims)?;
        // q[t] = a[t] q[t+1] + a[t] dh[t], from d_final, the other way
        let q = self.out.scan(av, addend, dim, !reverse, df)?;
        let next = self.out.shift(q, dim, df, !reverse)?;
        let gsum = match dh {
            Some(dh) => self.bin(BinaryOp::Add, dh, next)?,
            None => next,
        };
        let hv = init.map(|i| self.v(i));
        let prev = self.out.shift(h, dim, hv, reverse)?;
        let da = self.mul(gsum, prev)?;
        self.accumulate(&mut adj.of, a, da)?;
        self.accumulate(&mut adj.of, b, gsum)?;
        if let Some(init) = init {
            let first = self.out.scan_final(q)?;
            self.accumulate(&mut adj.of, init, first)?;
        }
        Ok(())
    }

    /// The derivative of `y = u(x)` times `dn`.
    fn unary_rule(&mut self, u: UnaryOp, x: NodeId, y: NodeId, dn: NodeId) -> Result<NodeId> {
        let d = match u {
            UnaryOp::Neg => return self.un(UnaryOp::Neg, dn),
            UnaryOp::Exp => y,
            UnaryOp::Exp2 => {
                let ln2 = self.k(std::f64::consts::LN_2)?;
                self.mul(y, ln2)?
            }
            UnaryOp::Log => return self.bin(BinaryOp::Div, dn, x),
            UnaryOp::Log1p => {
                let one = self.k(1.0)?;
                let xp = self.bin(BinaryOp::Add, one, x)?;
                return self.bin(BinaryOp::Div, dn, xp);
            }
            UnaryOp::Softplus => self.un(UnaryOp::Sigmoid, x)?,
            UnaryOp::Sigmoid => {
                let one = self.k(1.0)?;
                let om = self.bin(BinaryOp::Sub, one, y)?;
                self.mul(y, om)?
            }
            UnaryOp::Silu => {
                // s (1 + x (1 - s))
                let s = self.un(UnaryOp::Sigmoid, x)?;
                let one = self.k(1.0)?;
                let om = self.bin(BinaryOp::Sub, one, s)?;
                let t = self.mul(x, om)?;
                let t = self.bin(BinaryOp::Add, one, t)?;
                self.mul(s, t)?
            }
            UnaryOp::Tanh => {
                let one = self.k(1.0)?;
                let yy = self.mul(y, y)?;
                self.bin(BinaryOp::Sub, one, yy)?
            }
            UnaryOp::Sqrt => {
                // 1 / (2 sqrt x)
                let half = self.k(0.5)?;
                let h = self.mul(dn, half)?;
                return self.bin(BinaryOp::Div, h, y);
            }
            UnaryOp::Rsqrt => {
                // -x^{-3/2} / 2 = -y^3 / 2
                let yy = self.mul(y, y)?;
                let y3 = self.mul(yy, y)?;
                let mhalf = self.k(-0.5)?;
                self.mul(y3, mhalf)?
            }
            UnaryOp::Recip => {
                let yy = self.mul(y, y)?;
                self.un(UnaryOp::Neg, yy)?
            }
            UnaryOp::Abs => self.un(UnaryOp::Sign, x)?,
            UnaryOp::Sin => self.un(UnaryOp::Cos, x)?,
            UnaryOp::Cos => {
                let s = self.un(UnaryOp::Sin, x)?;
                self.un(UnaryOp::Neg, s)?
            }
            // flat on both sides of its jump
            UnaryOp::Sign => {
                let zero = self.k(0.0)?;
                return self.mul(dn, zero);
            }
        };
        self.mul(dn, d)
    }
}

/// `op` with its operands renamed by `map` (every operand of a valid graph is there).
fn remap(op: &Op, map: &BTreeMap<NodeId, NodeId>) -> Op {
    let m = |n: &NodeId| map[n];
    match op {
        Op::Input(d) => Op::Input(d.clone()),
        Op::Const(v) => Op::Const(*v),
        Op::Unary(u, x) => Op::Unary(*u, m(x)),
        Op::Binary(b, x, y) => Op::Binary(*b, m(x), m(y)),
        Op::Sum { x, dim } => Op::Sum { x: m(x), dim: *dim },
        Op::DiscretizeA { method, dt, a } => Op::DiscretizeA { method: *method, dt: m(dt), a: m(a) },
        Op::DiscretizeB { method, dt, a, b } => Op::DiscretizeB { method: *method, dt: m(dt), a: m(a), b: m(b) },
        Op::Scan { a, b, dim, reverse, init } => {
            Op::Scan { a: m(a), b: m(b), dim: *dim, reverse: *reverse, init: init.as_ref().map(m) }
        }
        Op::ScanFinal(s) => Op::ScanFinal(m(s)),
        Op::Gate { kind, x, z } => Op::Gate { kind: *kind, x: m(x), z: m(z) },
        Op::Conv1d { x, weight, bias, dim, reverse } => {
            Op::Conv1d { x: m(x), weight: m(weight), bias: bias.as_ref().map(m), dim: *dim, reverse: *reverse }
        }
        Op::Shift { x, dim, fill, reverse } => Op::Shift { x: m(x), dim: *dim, fill: fill.as_ref().map(m), reverse: *reverse },
        Op::Window { x, dim, taps, reverse } => Op::Window { x: m(x), dim: *dim, taps: *taps, reverse: *reverse },
        Op::Broadcast { x, dims } => Op::Broadcast { x: m(x), dims: dims.clone() },
    }
}

/// The oracle's gradients: `d_<input>` for every input of `g`, by evaluating [`grad`]'s graph
/// on `inputs` and `cotangents` (named `d_<output>`, or by the output's own name).
pub fn evaluate_grad(
    g: &Graph,
    inputs: &[(&str, &crate::interp::Tensor)],
    cotangents: &[(&str, &crate::interp::Tensor)],
) -> Result<BTreeMap<String, crate::interp::Tensor>> {
    let back = grad(g)?;
    let named: Vec<(String, &crate::interp::Tensor)> = cotangents
        .iter()
        .map(|(n, t)| {
            let is_output = g.outputs().iter().any(|o| o.name == *n);
            (if is_output { cotangent_name(n) } else { n.to_string() }, *t)
        })
        .collect();
    let mut all: Vec<(&str, &crate::interp::Tensor)> = inputs.to_vec();
    all.extend(named.iter().map(|(n, t)| (n.as_str(), *t)));
    crate::interp::evaluate(&back, &all)
}

/// Central finite differences of `sum over outputs of <cotangent, output>` with respect to
/// every element of every input, in `f64`, with step `eps` (scaled by each element's size): what
/// [`evaluate_grad`] must agree with. Costs two forward evaluations per input element.
pub fn finite_differences(
    g: &Graph,
    inputs: &[(&str, &crate::interp::Tensor)],
    cotangents: &[(&str, &crate::interp::Tensor)],
    eps: f64,
) -> Result<BTreeMap<String, crate::interp::Tensor>> {
    let cot = |name: &str| {
        let d = cotangent_name(name);
        cotangents.iter().find(|(n, _)| *n == name || *n == d).map(|(_, t)| *t)
    };
    let loss = |ins: &[(&str, &crate::interp::Tensor)]| -> Result<f64> {
        let out = crate::interp::evaluate(g, ins)?;
        let mut total = 0.0;
        for o in g.outputs() {
            let c = cot(&o.name).ok_or_else(|| IrError::new(format!("no cotangent for output `{}`", o.name)))?;
            let y = &out[&o.name];
            if c.data.len() != y.data.len() {
                return Err(IrError::new(format!("the cotangent of `{}` has {} values, not {}", o.name, c.data.len(), y.data.len())));
            }
            total += c.data.iter().zip(&y.data).map(|(a, b)| a * b).sum::<f64>();
        }
        Ok(total)
    };
    let mut result = BTreeMap::new();
    for (k, (name, t)) in inputs.iter().enumerate() {
        let mut d = vec![0.0; t.data.len()];
        for (i, slot) in d.iter_mut().enumerate() {
            let h = eps * t.data[i].abs().max(1.0);
            let at = |delta: f64| -> Result<f64> {
                let mut moved = (*t).clone();
                moved.data[i] += delta;
                let mut ins = inputs.to_vec();
                ins[k] = (name, &moved);
                loss(&ins)
            };
            *slot = (at(h)? - at(-h)?) / (2.0 * h);
        }
        result.insert(cotangent_name(name), crate::interp::Tensor { shape: t.shape.clone(), data: d });
    }
    Ok(result)
}

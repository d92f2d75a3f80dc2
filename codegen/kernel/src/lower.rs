//! Lowering: one kernel of a [`Plan`] at concrete sizes, under a [`Schedule`], into [`Kir`].

use crate::kir::{Access, Axis, Back, Blocks, Kir, Level, Param, Staging, Step, V};
use crate::schedule::Schedule;
use ssmc_ir::{infer::conv_taps, BinaryOp, DimId, IrError, NodeId, Op, Shape};
use ssmc_opt::{Kernel, Plan};
use std::collections::BTreeMap;

/// Lowers kernel `k` of `plan` at dim extents `sizes`.
pub fn lower(plan: &Plan, k: &Kernel, sizes: &[usize], schedule: &Schedule) -> Result<Kir, IrError> {
    let g = &plan.graph;
    let mut rows: Vec<DimId> = k.space.parallel.clone();
    let seq = k.space.seq;
    let mut inner: Option<DimId> = match k.space.inner.as_slice() {
        [] => None,
        [d] => Some(*d),
        more => {
            return Err(IrError::new(format!("kernel {} has {} inner dims; lowering takes one", k.name, more.len())));
        }
    };
    // an inner loop of one step is no loop: where rows are vectorized instead (the CPU), a sum
    // over it is its summand, and the fastest row dim goes inside (a kernel of many rows that
    // each reduce over a batch of 1 would otherwise pay a row's overhead per element)
    // (kernels that replay or sum across rows keep their rows: each row is one channel)
    let vectorize_rows = schedule.vectorize_rows && k.space.replayed.is_empty() && k.space.row_sums.is_empty();
    let mut elided = None;
    if let Some(d) = inner.filter(|d| vectorize_rows && sizes[d.index()] == 1) {
        let moves_along = k.body.iter().any(|&n| match &g.node(n).op {
            Op::Conv1d { dim, .. } | Op::Shift { dim, .. } => *dim == d,
            Op::Window { dim, taps, .. } => *dim == d || *taps == d,
            _ => false,
        });
        if !moves_along {
            elided = Some(d);
            inner = None;
        }
    }
    if inner.is_none() && vectorize_rows {
        inner = rows.pop();
    }
    // a sum across rows adds into blocks of rows, each laid out in loop order
    let row_extent: usize = rows.iter().map(|d| sizes[d.index()]).product();
    let block_rows = row_extent.div_ceil(ROW_BLOCKS).max(1);
    let block_count = row_extent.div_ceil(block_rows).max(1);
    // A read buffer whose inner dim is not its fastest axis is staged: copied to f32 with the
    // inner dim moved last, so the inner loop reads it contiguously (B and C of Mamba, stored
    // [batch, state, len] and read along state).
    let mut layouts = Vec::new();
    let mut buffers = Vec::new();
    for (b, written) in k.reads.iter().map(|b| (b, false)).chain(k.writes.iter().map(|b| (b, true))) {
        let buf = &plan.buffers[b.0];
        let stored = &buf.shape;
        let len = plan.buffer_bytes(*b, sizes) as usize / buf.dtype.size();
        if written && k.space.row_sums.contains(&buf.node) {
            let in_order: Vec<DimId> =
                rows.iter().copied().chain(seq.map(|s| s.0)).chain(inner).filter(|d| stored.contains(*d)).collect();
            let perm = stored.dims().iter().map(|d| in_order.iter().position(|x| x == d).expect("a row sum ranges over the kernel's loops")).collect();
            let extents = in_order.iter().map(|d| sizes[d.index()]).collect();
            let blocks = Blocks { count: block_count, rows: block_rows, order: Staging { extents, perm } };
            buffers.push(Param { name: buf.name.clone(), dtype: buf.dtype, len: len * block_count, written, stage: None, blocks: Some(blocks) });
            layouts.push(Shape(in_order));
            continue;
        }
        let stage = match inner {
            // (an inner loop of one step reads one element: no order to fix)
            Some(d) if schedule.stage_strided && !written && sizes[d.index()] > 1 && stored.contains(d) && stored.dims().last() != Some(&d) => {
                let pos = stored.position(d).expect("contains");
                let mut perm: Vec<usize> = (0..stored.rank()).filter(|&i| i != pos).collect();
                perm.push(pos);
                Some(perm)
            }
            _ => None,
        };
        let (layout, dtype) = match &stage {
            Some(perm) => (Shape(perm.iter().map(|&i| stored.dims()[i]).collect()), ssmc_ir::DType::F32),
            None => (stored.clone(), buf.dtype),
        };
        let extents = stored.dims().iter().map(|d| sizes[d.index()]).collect();
        buffers.push(Param { name: buf.name.clone(), dtype, len, written, stage: stage.map(|perm| Staging { extents, perm }), blocks: None });
        layouts.push(layout);
    }
    let param_of: BTreeMap<NodeId, usize> =
        k.reads.iter().chain(k.writes.iter()).enumerate().map(|(i, b)| (plan.buffers[b.0].node, i)).collect();
    let mut cx = Lowerer {
        g,
        k,
        sizes,
        rows: rows.clone(),
        seq: seq.map(|s| s.0),
        inner,
        param_of,
        layouts,
        steps: Vec::new(),
        value: BTreeMap::new(),
        loads: BTreeMap::new(),
        post: BTreeMap::new(),
        elided,
        replayed: k.space.replayed.iter().copied().collect(),
        replaying: false,
        plan_forms_replay: plan.forms.replay,
    };
    for &n in &k.body {
        cx.node(n)?;
    }
    // every buffer the kernel writes (a root may be stored in more than one layout)
    for (p, &b) in k.writes.iter().enumerate() {
        let r = plan.buffers[b.0].node;
        let v = cx.value[&r];
        // (a replayed value is stored, or added, from the backward pass, which sees each step once)
        let level = match cx.steps[v].0 {
            Level::Replay => Level::SeqPre,
            Level::ReplayInner => Level::Inner,
            l => l,
        };
        let to = cx.access(k.reads.len() + p, &g.node(r).shape.clone());
        let step = if k.space.row_sums.contains(&r) { Step::AddTo(v, to) } else { Step::Store(v, to) };
        cx.steps.push((level, step));
    }
    // in a kernel of one seq step (a decode step) row-inner values are computed once per row
    // and inner index, as inner ones are
    let one_step = seq.is_none_or(|(d, _)| sizes[d.index()] <= 1);
    reassociate_products(&mut cx.steps, one_step);
    // stable sort by level keeps operand order within a level
    let mut order: Vec<usize> = (0..cx.steps.len()).collect();
    order.sort_by_key(|&i| cx.steps[i].0);
    let mut renumber = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        renumber[old] = new;
    }
    let steps = order.iter().map(|&old| (cx.steps[old].0, renumber_step(&cx.steps[old].1, &renumber))).collect();
    let extent = |d: DimId| sizes[d.index()];
    Ok(Kir {
        name: k.name.clone(),
        buffers,
        rows: rows.iter().map(|&d| extent(d)).collect(),
        seq: seq.map(|(d, rev)| (extent(d), rev)),
        inner: inner.map(extent),
        steps,
        replay: !k.space.replayed.is_empty(),
    })
}

/// How many blocks of rows a sum across rows adds into: a fixed number, so the order of its
/// additions does not depend on the threads.
const ROW_BLOCKS: usize = 16;

/// `(s * x) * t` in the inner loop, with `s` and `t` scalars of the row or step and `x` an
/// inner value used only there, becomes `x * (s * t)`: one multiply per inner index instead of
/// two, the other once per step (a float reassociation). Mamba's `dt * B * u` is the case, and,
/// in a kernel of `one_step` (whose row-inner values count as inner ones), the decode step's
/// `dt * (A * log2 e)`.
/// The new scalar step goes last (the level sort places it); the old product is left unused.
fn reassociate_products(steps: &mut Vec<(Level, Step)>, one_step: bool) {
    let scalar = |l: Level| matches!(l, Level::Row | Level::SeqPre);
    let inner = |l: Level| l == Level::Inner || (one_step && l == Level::RowInner);
    let mut uses = vec![0usize; steps.len()];
    for (_, s) in steps.iter() {
        for v in s.operands() {
            uses[v] += 1;
        }
    }
    for i in 0..steps.len() {
        let (Level::Inner, Step::Binary(BinaryOp::Mul, a, b)) = steps[i] else { continue };
        let (prod, t) = match (steps[a].0, steps[b].0) {
            (la, lb) if inner(la) && scalar(lb) => (a, b),
            (la, lb) if scalar(la) && inner(lb) => (b, a),
            _ => continue,
        };
        let (lprod, Step::Binary(BinaryOp::Mul, p, q)) = steps[prod] else { continue };
        if !inner(lprod) {
            continue;
        }
        let (x, s) = match (steps[p].0, steps[q].0) {
            (lp, lq) if inner(lp) && scalar(lq) => (p, q),
            (lp, lq) if scalar(lp) && inner(lq) => (q, p),
            _ => continue,
        };
        if uses[prod] != 1 {
            continue;
        }
        let level = if steps[s].0 == Level::SeqPre || steps[t].0 == Level::SeqPre { Level::SeqPre } else { Level::Row };
        steps.push((level, Step::Binary(BinaryOp::Mul, s, t)));
        let st = steps.len() - 1;
        steps[i].1 = Step::Binary(BinaryOp::Mul, x, st);
        uses[prod] = 0;
    }
}

fn renumber_step(s: &Step, r: &[usize]) -> Step {
    let m = |v: &V| r[*v];
    match s {
        Step::Load(a) => Step::Load(a.clone()),
        Step::Const(c) => Step::Const(*c),
        Step::Unary(u, x) => Step::Unary(*u, m(x)),
        Step::Binary(b, x, y) => Step::Binary(*b, m(x), m(y)),
        Step::DiscA(me, x, y) => Step::DiscA(*me, m(x), m(y)),
        Step::DiscB(me, x, y, z) => Step::DiscB(*me, m(x), m(y), m(z)),
        Step::Gate(k, x, z) => Step::Gate(*k, m(x), m(z)),
        Step::Scan { a, b, init } => Step::Scan { a: m(a), b: m(b), init: init.as_ref().map(m) },
        Step::Sum(x) => Step::Sum(m(x)),
        Step::Final(x) => Step::Final(m(x)),
        Step::Conv { x, w, tap_stride, taps, axis, x_axis_stride, bias, reverse, extent } => Step::Conv {
            x: x.clone(),
            w: w.clone(),
            tap_stride: *tap_stride,
            taps: *taps,
            axis: *axis,
            x_axis_stride: *x_axis_stride,
            bias: bias.as_ref().map(m),
            reverse: *reverse,
            extent: *extent,
        },
        Step::Gather { x, axis, x_axis_stride, extent, reverse, back, fill } => Step::Gather {
            x: x.clone(),
            axis: *axis,
            x_axis_stride: *x_axis_stride,
            extent: *extent,
            reverse: *reverse,
            back: *back,
            fill: fill.as_ref().map(m),
        },
        Step::Store(v, a) => Step::Store(m(v), a.clone()),
        Step::Prev(x) => Step::Prev(m(x)),
        Step::AddTo(v, a) => Step::AddTo(m(v), a.clone()),
    }
}

struct Lowerer<'a> {
    g: &'a ssmc_ir::Graph,
    k: &'a Kernel,
    sizes: &'a [usize],
    rows: Vec<DimId>,
    seq: Option<DimId>,
    inner: Option<DimId>,
    param_of: BTreeMap<NodeId, usize>,
    layouts: Vec<Shape>,
    steps: Vec<(Level, Step)>,
    value: BTreeMap<NodeId, V>,
    loads: BTreeMap<(NodeId, Level), V>,
    /// Whether a computed node depends on a sum of this kernel.
    post: BTreeMap<NodeId, bool>,
    /// A dim of extent 1 the kernel does not loop over (its index is always 0).
    elided: Option<DimId>,
    /// The replayed nodes (see [`ssmc_opt::Space::replayed`]).
    replayed: std::collections::BTreeSet<NodeId>,
    /// Whether the node being lowered is replayed (its loads are too).
    replaying: bool,
    /// Whether the plan was built for backends that lower a shift of a scan as its state
    /// before the step.
    plan_forms_replay: bool,
}

impl Lowerer<'_> {
    /// Element strides of parameter `p` (laid out as `layout`) for the kernel's loops.
    fn access(&self, p: usize, _value_shape: &Shape) -> Access {
        let layout = &self.layouts[p];
        let stride = |d: DimId| -> usize {
            match layout.position(d) {
                Some(i) => layout.dims()[i + 1..].iter().map(|x| self.sizes[x.index()]).product(),
                None => 0,
            }
        };
        Access {
            buffer: p,
            row: self.rows.iter().map(|&d| stride(d)).collect(),
            seq: self.seq.map_or(0, stride),
            inner: self.inner.map_or(0, stride),
        }
    }

    /// A read of node `x` (from its buffer) `back` steps along `dim` from the loop's position.
    fn gather(&self, x: NodeId, dim: DimId, reverse: bool, back: Back, fill: Option<V>) -> Result<Step, IrError> {
        let px = *self.param_of.get(&x).ok_or_else(|| IrError::new(format!("kernel {} reads node {} from no buffer", self.k.name, x.0)))?;
        let xl = self.layouts[px].clone();
        Ok(Step::Gather {
            x: self.access(px, &xl),
            axis: self.axis(dim)?,
            x_axis_stride: self.stride(&xl, dim),
            extent: self.sizes[dim.index()],
            reverse,
            back,
            fill,
        })
    }

    /// Elements between neighbours along `d` in a buffer laid out as `l` (0 if it lacks `d`).
    fn stride(&self, l: &Shape, d: DimId) -> usize {
        l.position(d).map_or(0, |i| l.dims()[i + 1..].iter().map(|x| self.sizes[x.index()]).product())
    }

    /// Whether a shift of `x` is the state before the step of a scan this kernel computes (see
    /// [`ssmc_opt::Forms::replay`]).
    fn prev_state(&self, x: NodeId, dim: DimId, reverse: bool, fill: Option<NodeId>) -> bool {
        self.plan_forms_replay && self.value.contains_key(&x) && ssmc_opt::plan::shift_is_prev_state(self.g, x, dim, reverse, fill)
    }

    /// Which of the kernel's loops runs along `d`.
    fn axis(&self, d: DimId) -> Result<Axis, IrError> {
        if Some(d) == self.seq {
            Ok(Axis::Seq)
        } else if Some(d) == self.inner {
            Ok(Axis::Inner)
        } else {
            let k = self.rows.iter().position(|r| *r == d);
            k.map(Axis::Row).ok_or_else(|| IrError::new(format!("kernel {} does not loop over dim #{}", self.k.name, d.0)))
        }
    }

    fn level_of(&self, shape: &Shape, post: bool) -> Level {
        let has_seq = self.seq.is_some_and(|d| shape.contains(d));
        let has_inner = self.inner.is_some_and(|d| shape.contains(d));
        let level = match (post, has_seq, has_inner) {
            (_, _, true) if self.seq.is_some() && !has_seq && !post => Level::RowInner,
            (_, _, true) => Level::Inner,
            (true, _, false) => Level::SeqPost,
            (false, true, false) => Level::SeqPre,
            (false, false, false) => Level::Row,
        };
        match level {
            Level::SeqPre if self.replaying => Level::Replay,
            Level::Inner if self.replaying => Level::ReplayInner,
            l => l,
        }
    }

    fn push(&mut self, level: Level, s: Step) -> V {
        self.steps.push((level, s));
        self.steps.len() - 1
    }

    /// The value of operand `o` of a node: computed in this kernel, or loaded from its buffer.
    fn operand(&mut self, o: NodeId) -> Result<V, IrError> {
        if let Some(&v) = self.value.get(&o) {
            return Ok(v);
        }
        let p = *self
            .param_of
            .get(&o)
            .ok_or_else(|| IrError::new(format!("kernel {} reads node {} from no buffer", self.k.name, o.0)))?;
        let shape = self.layouts[p].clone();
        let level = self.level_of(&shape, false);
        if let Some(&v) = self.loads.get(&(o, level)) {
            return Ok(v);
        }
        let v = self.push(level, Step::Load(self.access(p, &shape)));
        self.loads.insert((o, level), v);
        Ok(v)
    }

    fn node(&mut self, n: NodeId) -> Result<(), IrError> {
        let node = self.g.node(n);
        let op = node.op.clone();
        let shape = node.shape.clone();
        self.replaying = self.replayed.contains(&n);
        // a sum across rows is its operand, added into its blocks by its store
        if self.k.space.row_sums.contains(&n) {
            let Op::Sum { x, .. } = op else { return Err(IrError::new("a row sum that is not a sum")) };
            let v = self.operand(x)?;
            self.value.insert(n, v);
            self.post.insert(n, false);
            return Ok(());
        }
        let identity_sum = matches!(op, Op::Sum { dim, .. } if Some(dim) == self.elided);
        let post = (matches!(op, Op::Sum { .. }) && !identity_sum)
            || op.operands().iter().any(|o| self.post.get(o).copied().unwrap_or(false));
        self.post.insert(n, post);
        let mut level = self.level_of(&shape, post);
        let step = match &op {
            Op::Input(_) => return Ok(()),
            Op::Const(c) => {
                level = Level::Row;
                Step::Const(*c as f32)
            }
            Op::Unary(u, x) => Step::Unary(*u, self.operand(*x)?),
            Op::Binary(b, x, y) => Step::Binary(*b, self.operand(*x)?, self.operand(*y)?),
            Op::DiscretizeA { method, dt, a } => Step::DiscA(*method, self.operand(*dt)?, self.operand(*a)?),
            Op::DiscretizeB { method, dt, a, b } => {
                Step::DiscB(*method, self.operand(*dt)?, self.operand(*a)?, self.operand(*b)?)
            }
            Op::Gate { kind, x, z } => Step::Gate(*kind, self.operand(*x)?, self.operand(*z)?),
            Op::Sum { x, .. } if identity_sum => {
                // the sum of one element (a copy, so the value sits at its own level)
                let one = self.push(Level::Row, Step::Const(1.0));
                Step::Binary(BinaryOp::Mul, self.operand(*x)?, one)
            }
            Op::Sum { x, .. } => {
                level = Level::SeqPost;
                Step::Sum(self.operand(*x)?)
            }
            Op::Scan { a, b, init, .. } => {
                let init = match init {
                    Some(i) => Some(self.operand(*i)?),
                    None => None,
                };
                Step::Scan { a: self.operand(*a)?, b: self.operand(*b)?, init }
            }
            Op::ScanFinal(s) => {
                level = Level::Final;
                Step::Final(self.operand(*s)?)
            }
            Op::Broadcast { x, .. } => {
                // a copy at the level of the wider shape (a store or sum there needs a value there)
                let one = self.push(Level::Row, Step::Const(1.0));
                Step::Binary(BinaryOp::Mul, self.operand(*x)?, one)
            }
            // a scan's state before the step: at the scan's level (a replayed scan's is kept)
            Op::Shift { x, dim, fill, reverse } if self.prev_state(*x, *dim, *reverse, *fill) => {
                let s = self.value[x];
                level = self.steps[s].0;
                Step::Prev(s)
            }
            Op::Shift { x, dim, fill, reverse } => {
                let fill = match fill {
                    Some(f) => Some(self.operand(*f)?),
                    None => None,
                };
                self.gather(*x, *dim, *reverse, Back::Fixed(1), fill)?
            }
            Op::Window { x, dim, taps, reverse } => {
                let back = Back::Taps { axis: self.axis(*taps)?, taps: self.sizes[taps.index()] };
                self.gather(*x, *dim, *reverse, back, None)?
            }
            Op::Conv1d { x, weight, bias, dim, reverse } => {
                let taps = conv_taps(self.g, *x, *weight).ok_or_else(|| IrError::new("conv1d without taps"))?;
                let px = *self.param_of.get(x).ok_or_else(|| IrError::new("conv1d signal not in memory"))?;
                let pw = *self.param_of.get(weight).ok_or_else(|| IrError::new("conv1d weights not in memory"))?;
                let (xl, wl) = (self.layouts[px].clone(), self.layouts[pw].clone());
                let (tap_stride, x_axis_stride) = (self.stride(&wl, taps), self.stride(&xl, *dim));
                let axis = self.axis(*dim)?;
                let bias = match bias {
                    Some(b) => Some(self.operand(*b)?),
                    None => None,
                };
                // the taps dim is indexed by the conv itself, even if the kernel also loops over it
                let mut w = self.access(pw, &wl);
                let zero_taps = |stride: &mut usize, d: Option<DimId>| {
                    if d == Some(taps) {
                        *stride = 0;
                    }
                };
                for (s, d) in w.row.iter_mut().zip(self.rows.iter()) {
                    zero_taps(s, Some(*d));
                }
                zero_taps(&mut w.seq, self.seq);
                zero_taps(&mut w.inner, self.inner);
                Step::Conv {
                    x: self.access(px, &xl),
                    w,
                    tap_stride,
                    taps: self.sizes[taps.index()],
                    axis,
                    x_axis_stride,
                    bias,
                    reverse: *reverse,
                    extent: self.sizes[dim.index()],
                }
            }
        };
        let v = self.push(level, step);
        self.value.insert(n, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(buffer: usize) -> Step {
        Step::Load(Access { buffer, row: vec![], seq: 0, inner: 0 })
    }

    #[test]
    fn a_product_of_two_step_scalars_and_an_inner_value_multiplies_the_scalars_once_per_step() {
        // (dt * B) * u  ->  B * (dt * u)
        let mut steps = vec![
            (Level::SeqPre, load(0)),
            (Level::Inner, load(1)),
            (Level::SeqPre, load(2)),
            (Level::Inner, Step::Binary(BinaryOp::Mul, 0, 1)),
            (Level::Inner, Step::Binary(BinaryOp::Mul, 3, 2)),
        ];
        reassociate_products(&mut steps, false);
        assert_eq!(steps.len(), 6);
        assert_eq!(steps[5], (Level::SeqPre, Step::Binary(BinaryOp::Mul, 0, 2)));
        assert_eq!(steps[4].1, Step::Binary(BinaryOp::Mul, 1, 5));
    }

    #[test]
    fn a_product_used_elsewhere_or_of_two_inner_values_stays() {
        let shared = vec![
            (Level::SeqPre, load(0)),
            (Level::Inner, load(1)),
            (Level::SeqPre, load(2)),
            (Level::Inner, Step::Binary(BinaryOp::Mul, 0, 1)),
            (Level::Inner, Step::Binary(BinaryOp::Mul, 3, 2)),
            (Level::Inner, Step::Unary(ssmc_ir::UnaryOp::Neg, 3)),
        ];
        let mut steps = shared.clone();
        reassociate_products(&mut steps, false);
        assert_eq!(steps, shared);
        let inner_only = vec![
            (Level::Inner, load(0)),
            (Level::Inner, load(1)),
            (Level::SeqPre, load(2)),
            (Level::Inner, Step::Binary(BinaryOp::Mul, 0, 1)),
            (Level::Inner, Step::Binary(BinaryOp::Mul, 3, 2)),
        ];
        let mut steps = inner_only.clone();
        reassociate_products(&mut steps, false);
        assert_eq!(steps, inner_only);
    }

    #[test]
    fn in_a_one_step_kernel_a_row_inner_product_counts_as_inner() {
        // dt * (A * log2 e) -> A * (log2 e * dt) in a decode step; not where the seq loop runs
        // longer (there `A * log2 e` is hoisted out of it and paid once per row)
        let steps = vec![
            (Level::Row, Step::Const(std::f32::consts::LOG2_E)),
            (Level::RowInner, load(0)),
            (Level::RowInner, Step::Binary(BinaryOp::Mul, 1, 0)),
            (Level::SeqPre, load(1)),
            (Level::Inner, Step::Binary(BinaryOp::Mul, 3, 2)),
        ];
        let mut long = steps.clone();
        reassociate_products(&mut long, false);
        assert_eq!(long, steps);
        let mut one = steps.clone();
        reassociate_products(&mut one, true);
        assert_eq!(one[5], (Level::SeqPre, Step::Binary(BinaryOp::Mul, 0, 3)));
        assert_eq!(one[4].1, Step::Binary(BinaryOp::Mul, 1, 5));
    }
}

//! Plans: the kernels a layer runs as, the buffers between them, and how each kernel iterates.
//!
//! A plan is built from a graph and the set of values it stores. Each stored value (and each
//! output) roots a kernel whose body is everything reachable from the root without crossing
//! another stored value or an input. Kernels that share body nodes are merged (one pass computes
//! both roots), and every kernel is checked against the row template the backends lower:
//!
//! ```text
//! for p in parallel:                      // rows, split over threads / GPU lanes
//!     for l in seq (in its direction):    // at most one scanned dim
//!         for i in inner:                 // one dim, reduced by a sum or carried as scan state
//!             ...                         // elementwise work, scan updates, sum accumulation
//!         ...                             // epilogue on the sums
//!     ...                                 // final states
//! ```
//!
//! A kernel that does not fit is split by storing one more value, and the plan says so in
//! [`Plan::notes`].

use ssmc_ir::interp::{evaluate_sized, Tensor};
use ssmc_ir::{DType, DimId, Graph, IrError, NodeId, Op, Shape};
use std::collections::{BTreeMap, BTreeSet};

/// Which plan to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fusion {
    /// One kernel per op, every intermediate in memory: what a naive framework does.
    Off,
    /// The plan equality saturation finds under the bytes-moved cost model.
    On,
}

/// Kernel forms beyond the row template that the backend running a plan can lower. Plans for a
/// backend without them keep to the template (and store what it cannot hold).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Forms {
    /// Replay: a kernel that walks its seq dim backwards may hold scans along it forwards (a
    /// backward's recomputed forward states). Each row's seq loop then runs in chunks, from the
    /// last: the forward scans replayed over the chunk from a checkpoint of their states (kept
    /// in the row's own memory), then the chunk's steps backwards, reading what the replay kept.
    /// A shift of a scan along its dim and direction (filled with the scan's initial state) is
    /// then the scan's state before the step, not a read of memory.
    pub replay: bool,
    /// Sums across rows: a kernel may store sums over a dim its rows range over (a backward's
    /// gradient of a value broadcast along that dim), added up per block of rows in a fixed
    /// order and then over the blocks, so the result is the same bits on any number of threads.
    pub row_sums: bool,
}

impl Forms {
    /// Every form (what the CPU backend lowers).
    pub const ALL: Forms = Forms { replay: true, row_sums: true };
}

/// Index of a buffer in [`Plan::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub usize);

/// What a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    /// A caller's input.
    Input,
    /// A value one kernel writes and later kernels read.
    Intermediate,
    /// A layer output (later kernels may read it too).
    Output,
}

/// A tensor in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// Input or output name, or `t<node>` for an intermediate.
    pub name: String,
    /// The node whose value it holds.
    pub node: NodeId,
    /// Input, intermediate or output.
    pub kind: BufferKind,
    /// Its dims, in storage order.
    pub shape: Shape,
    /// Storage dtype.
    pub dtype: DType,
}

/// How a kernel iterates (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Space {
    /// Independent rows.
    pub parallel: Vec<DimId>,
    /// The dim walked in order, and whether backwards.
    pub seq: Option<(DimId, bool)>,
    /// Dims reduced or carried inside a row.
    pub inner: Vec<DimId>,
    /// Scans replayed forwards along the (backwards) seq dim, and what they need (see
    /// [`Forms::replay`]); empty in kernels of the row template.
    pub replayed: Vec<NodeId>,
    /// Roots that are sums over one of the rows' dims (see [`Forms::row_sums`]).
    pub row_sums: Vec<NodeId>,
}

/// One kernel: the nodes it computes, what it reads and what it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// A readable name (`k0_gate`).
    pub name: String,
    /// The nodes it stores.
    pub roots: Vec<NodeId>,
    /// Every node it computes, in definition order (roots included; inputs and buffers read are not).
    pub body: Vec<NodeId>,
    /// Buffers it reads.
    pub reads: Vec<BufferId>,
    /// Buffers it writes.
    pub writes: Vec<BufferId>,
    /// Its iteration space.
    pub space: Space,
}

/// The kernels of a layer, in launch order, and their buffers.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Fused or not.
    pub fusion: Fusion,
    /// The graph the kernels compute (after the optimizer's algebra, for fused plans).
    pub graph: Graph,
    /// Every buffer: inputs first, then kernel outputs.
    pub buffers: Vec<Buffer>,
    /// Kernels in an order that respects their buffers.
    pub kernels: Vec<Kernel>,
    /// Output name to buffer.
    pub outputs: Vec<(String, BufferId)>,
    /// Why kernels were split, if any were.
    pub notes: Vec<String>,
    /// The kernel forms it was built for.
    pub forms: Forms,
}

/// Why a kernel does not fit the row template, and which value to store to fix it.
struct Violation {
    store: NodeId,
    why: String,
}

impl Plan {
    /// The unfused plan of `g`: every computed value is stored.
    pub fn unfused(g: &Graph, input_dtype: DType) -> Result<Plan, IrError> {
        let stored = g
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| !matches!(n.op, Op::Input(_) | Op::Const(_)))
            .map(|(i, _)| NodeId(i as u32))
            .collect();
        Plan::build(g.clone(), stored, Fusion::Off, input_dtype, Forms::default())
    }

    /// Builds the plan that stores `stored` (and the outputs), merging and splitting kernels
    /// until every kernel fits the row template.
    pub fn build(mut graph: Graph, mut stored: BTreeSet<NodeId>, fusion: Fusion, input_dtype: DType, forms: Forms) -> Result<Plan, IrError> {
        let mut notes = Vec::new();
        // an output that is an input laid out otherwise is a copy (`x * 1`, exact)
        let relaid: Vec<(String, NodeId)> = graph
            .outputs()
            .iter()
            .filter(|o| matches!(&graph.node(o.node).op, Op::Input(d) if d.layout != o.layout))
            .map(|o| (o.name.clone(), o.node))
            .collect();
        for (name, x) in relaid {
            let one = graph.constant(1.0)?;
            let copy = graph.binary(ssmc_ir::BinaryOp::Mul, x, one)?;
            graph.retarget_output(&name, copy)?;
        }
        // inputs are in memory already; an output that is an input is read from its buffer
        stored.retain(|n| !matches!(graph.node(*n).op, Op::Input(_)));
        for o in graph.outputs() {
            if !matches!(graph.node(o.node).op, Op::Input(_)) {
                stored.insert(o.node);
            }
        }
        let groups = loop {
            let mut groups: Vec<Group> = stored.iter().map(|&r| Group::rooted(&graph, &stored, vec![r])).collect();
            merge_siblings(&graph, &stored, &mut groups, forms);
            let violation = groups.iter().find_map(|gr| gr.check(&graph, forms).err().map(|v| (gr, v)));
            let Some((group, v)) = violation else { break groups };
            // A stored scan is only inside another kernel because a final state pulls it in:
            // then store that final state (its own kernel with the scan) instead.
            let finals = group.body.iter().copied().filter(|&n| matches!(graph.node(n).op, Op::ScanFinal(s) if s == v.store));
            let Some(store) = std::iter::once(v.store).chain(finals).find(|n| !stored.contains(n)) else {
                return Err(IrError::new(format!("cannot split a kernel: {}", v.why)));
            };
            notes.push(format!("stored {} ({}): {}", describe(&graph, store), graph.fmt_shape(&graph.node(store).shape), v.why));
            stored.insert(store);
        };
        let groups = order(&graph, groups)?;

        let mut buffers = Vec::new();
        let mut buffer_of: BTreeMap<NodeId, BufferId> = BTreeMap::new();
        for (id, decl) in graph.inputs() {
            buffer_of.insert(id, BufferId(buffers.len()));
            let dtype = decl.dtype.unwrap_or(input_dtype);
            buffers.push(Buffer { name: decl.name.clone(), node: id, kind: BufferKind::Input, shape: decl.layout.clone(), dtype });
        }
        let mut output_buffer: BTreeMap<(NodeId, Shape), BufferId> = BTreeMap::new();
        let mut kernels = Vec::new();
        for (k, mut group) in groups.into_iter().enumerate() {
            // outputs in declaration order, then intermediates
            let rank = |r: &NodeId| graph.outputs().iter().position(|o| o.node == *r).unwrap_or(usize::MAX);
            group.roots.sort_by_key(|r| (rank(r), *r));
            let mut writes = Vec::new();
            for &r in &group.roots {
                // one buffer per layout the outputs of `r` ask for (outputs laid out alike share
                // it), or an intermediate one
                let mut layouts: Vec<(String, Shape)> = Vec::new();
                for o in graph.outputs().iter().filter(|o| o.node == r) {
                    if !layouts.iter().any(|(_, l)| *l == o.layout) {
                        layouts.push((o.name.clone(), o.layout.clone()));
                    }
                }
                let kind = if layouts.is_empty() { BufferKind::Intermediate } else { BufferKind::Output };
                if layouts.is_empty() {
                    layouts.push((format!("t{}", r.0), graph.node(r).shape.clone()));
                }
                buffer_of.insert(r, BufferId(buffers.len()));
                for (name, shape) in layouts {
                    output_buffer.insert((r, shape.clone()), BufferId(buffers.len()));
                    writes.push(BufferId(buffers.len()));
                    buffers.push(Buffer { name, node: r, kind, shape, dtype: DType::F32 });
                }
            }
            let reads = group.leaves.iter().map(|l| buffer_of[l]).collect();
            let space = group.check(&graph, forms).map_err(|v| IrError::new(v.why))?;
            let name = format!("k{k}_{}", graph.node(group.roots[0]).op.name());
            kernels.push(Kernel { name, roots: group.roots, body: group.body, reads, writes, space });
        }
        // an output of an input reads the input's buffer (in the input's layout)
        let outputs = graph
            .outputs()
            .iter()
            .map(|o| (o.name.clone(), output_buffer.get(&(o.node, o.layout.clone())).copied().unwrap_or(buffer_of[&o.node])))
            .collect();
        Ok(Plan { fusion, graph, buffers, kernels, outputs, notes, forms })
    }

    /// Bytes a buffer occupies at `sizes`.
    pub fn buffer_bytes(&self, b: BufferId, sizes: &[usize]) -> u64 {
        let buf = &self.buffers[b.0];
        let n: u64 = buf.shape.dims().iter().map(|d| sizes[d.index()] as u64).product();
        n * buf.dtype.size() as u64
    }

    /// Bytes kernel `k` reads and writes at `sizes` (each buffer once).
    pub fn kernel_bytes(&self, k: &Kernel, sizes: &[usize]) -> (u64, u64) {
        let r = k.reads.iter().map(|&b| self.buffer_bytes(b, sizes)).sum();
        let w = k.writes.iter().map(|&b| self.buffer_bytes(b, sizes)).sum();
        (r, w)
    }

    /// Total bytes moved through memory at `sizes`.
    pub fn bytes(&self, sizes: &[usize]) -> u64 {
        self.kernels.iter().map(|k| {
            let (r, w) = self.kernel_bytes(k, sizes);
            r + w
        }).sum()
    }

    /// Evaluates the plan kernel by kernel with the `f64` oracle: each kernel sees only the
    /// buffers it declares, so a kernel that reads something it does not declare fails here.
    pub fn evaluate(&self, inputs: &[(&str, &Tensor)]) -> Result<BTreeMap<String, Tensor>, IrError> {
        let mut values: BTreeMap<BufferId, Tensor> = BTreeMap::new();
        for (i, b) in self.buffers.iter().enumerate() {
            if b.kind == BufferKind::Input {
                let t = inputs
                    .iter()
                    .find(|(n, _)| *n == b.name)
                    .ok_or_else(|| IrError::new(format!("missing input `{}`", b.name)))?;
                values.insert(BufferId(i), t.1.clone());
            }
        }
        // every dim's size, for kernels whose reads do not give them all (a window's taps)
        let known = ssmc_ir::interp::bind_dims(&self.graph, inputs.iter().map(|(n, t)| (*n, t.shape.as_slice())))?;
        for k in &self.kernels {
            let (sub, names) = self.kernel_graph(k)?;
            let args: Vec<(&str, &Tensor)> = k.reads.iter().map(|b| (names[b].as_str(), &values[b])).collect();
            let out = evaluate_sized(&sub, &args, &known).map_err(|e| IrError::new(format!("kernel {}: {}", k.name, e.message)))?;
            for &w in &k.writes {
                values.insert(w, out[&names[&w]].clone());
            }
        }
        Ok(self.outputs.iter().map(|(n, b)| (n.clone(), values[b].clone())).collect())
    }

    /// A kernel as a graph of its own: its reads as inputs, its body, its writes as outputs.
    fn kernel_graph(&self, k: &Kernel) -> Result<(Graph, BTreeMap<BufferId, String>), IrError> {
        let mut sub = Graph::new(&k.name);
        for (_, name) in self.graph.dims() {
            sub.add_dim(name)?;
        }
        let mut names = BTreeMap::new();
        let mut map: BTreeMap<NodeId, NodeId> = BTreeMap::new();
        for &b in &k.reads {
            let buf = &self.buffers[b.0];
            let name = format!("b{}", b.0);
            let id = sub.input(&name, ssmc_ir::InputKind::Input, buf.shape.dims(), None)?;
            map.insert(buf.node, id);
            names.insert(b, name);
        }
        for &n in &k.body {
            let op = remap(&self.graph.node(n).op, &map)
                .ok_or_else(|| IrError::new(format!("kernel {} reads node {} it neither computes nor declares", k.name, n.0)))?;
            map.insert(n, sub.push(op)?);
        }
        for &b in &k.writes {
            let name = format!("b{}", b.0);
            let buf = &self.buffers[b.0];
            sub.add_output_as(&name, map[&buf.node], buf.shape.dims())?;
            names.insert(b, name);
        }
        Ok((sub, names))
    }
}

/// `op` with its operands renamed by `map` (None if one is missing).
fn remap(op: &Op, map: &BTreeMap<NodeId, NodeId>) -> Option<Op> {
    let m = |n: &NodeId| map.get(n).copied();
    Some(match op {
        Op::Input(_) => return None,
        Op::Const(v) => Op::Const(*v),
        Op::Unary(u, x) => Op::Unary(*u, m(x)?),
        Op::Binary(b, x, y) => Op::Binary(*b, m(x)?, m(y)?),
        Op::Sum { x, dim } => Op::Sum { x: m(x)?, dim: *dim },
        Op::DiscretizeA { method, dt, a } => Op::DiscretizeA { method: *method, dt: m(dt)?, a: m(a)? },
        Op::DiscretizeB { method, dt, a, b } => Op::DiscretizeB { method: *method, dt: m(dt)?, a: m(a)?, b: m(b)? },
        Op::Scan { a, b, dim, reverse, init } => {
            let init = match init {
                Some(i) => Some(m(i)?),
                None => None,
            };
            Op::Scan { a: m(a)?, b: m(b)?, dim: *dim, reverse: *reverse, init }
        }
        Op::ScanFinal(s) => Op::ScanFinal(m(s)?),
        Op::Gate { kind, x, z } => Op::Gate { kind: *kind, x: m(x)?, z: m(z)? },
        Op::Conv1d { x, weight, bias, dim, reverse } => {
            let bias = match bias {
                Some(b) => Some(m(b)?),
                None => None,
            };
            Op::Conv1d { x: m(x)?, weight: m(weight)?, bias, dim: *dim, reverse: *reverse }
        }
        Op::Shift { x, dim, fill, reverse } => {
            let fill = match fill {
                Some(f) => Some(m(f)?),
                None => None,
            };
            Op::Shift { x: m(x)?, dim: *dim, fill, reverse: *reverse }
        }
        Op::Window { x, dim, taps, reverse } => Op::Window { x: m(x)?, dim: *dim, taps: *taps, reverse: *reverse },
        Op::Broadcast { x, dims } => Op::Broadcast { x: m(x)?, dims: dims.clone() },
    })
}

fn describe(g: &Graph, n: NodeId) -> String {
    format!("`{}` (node {})", g.node(n).op.name(), n.0)
}

/// A kernel in the making.
#[derive(Clone, Debug)]
struct Group {
    roots: Vec<NodeId>,
    body: Vec<NodeId>,
    leaves: Vec<NodeId>,
}

impl Group {
    /// The kernel computing `roots`: everything reachable without crossing a stored value.
    fn rooted(g: &Graph, stored: &BTreeSet<NodeId>, roots: Vec<NodeId>) -> Group {
        let mut body = BTreeSet::new();
        let mut leaves = BTreeSet::new();
        let mut stack: Vec<NodeId> = roots.clone();
        while let Some(n) = stack.pop() {
            if !body.insert(n) {
                continue;
            }
            // a final state is a by-product of its scan's loop: the scan is always in its kernel
            let of_final = matches!(g.node(n).op, Op::ScanFinal(_));
            for o in g.node(n).op.operands() {
                let is_leaf =
                    matches!(g.node(o).op, Op::Input(_)) || (stored.contains(&o) && !roots.contains(&o) && !of_final);
                if is_leaf {
                    leaves.insert(o);
                } else {
                    stack.push(o);
                }
            }
        }
        Group { roots, body: body.into_iter().collect(), leaves: leaves.into_iter().collect() }
    }

    /// Checks the row template (widened by `forms`); returns the iteration space, or the value
    /// to store.
    fn check(&self, g: &Graph, forms: Forms) -> Result<Space, Violation> {
        let in_body = |n: NodeId| self.body.binary_search(&n).is_ok();
        let shape = |n: NodeId| &g.node(n).shape;
        // 1. at most one sequential dim and direction; with replay, scans along it both ways
        // (the kernel walks backwards, the forward scans are replayed)
        let mut seq: Option<(DimId, bool)> = None;
        let mut first_scan = None;
        let mut both_ways = false;
        for &n in &self.body {
            // (a conv reads its signal from memory at shifted positions, so it needs no order)
            let this = match &g.node(n).op {
                Op::Scan { dim, reverse, .. } => Some((*dim, *reverse)),
                _ => None,
            };
            if let Some(t) = this {
                match (seq, first_scan) {
                    (None, _) | (_, None) => (seq, first_scan) = (Some(t), Some(n)),
                    (Some(s), _) if s.0 == t.0 && (s.1 == t.1 || both_ways) => {}
                    (Some(s), _) if s.0 == t.0 && forms.replay => {
                        both_ways = true;
                        seq = Some((s.0, true));
                    }
                    (Some(_), Some(first)) => {
                        // store whichever of the two is not already a root of this kernel
                        let store = if self.roots.contains(&n) { first } else { n };
                        return Err(Violation { store, why: "a kernel walks one dim in one direction".into() });
                    }
                }
            }
        }
        let replayed = match (both_ways, seq) {
            (true, Some((d, _))) => self.replayed(g, d)?,
            _ => Vec::new(),
        };
        // a shift of a scan along its own walk, filled with its initial state, is its state
        // before the step (no read of memory)
        let prev_state = |x: NodeId, dim: DimId, reverse: bool, fill: Option<NodeId>| {
            forms.replay && in_body(x) && shift_is_prev_state(g, x, dim, reverse, fill)
        };
        let l = seq.map(|s| s.0);
        for &n in &self.body {
            match &g.node(n).op {
                // 2. a conv reads its signal at shifted positions and its taps along a dim of their own: both from memory
                Op::Conv1d { x, weight, bias, .. } => {
                    for (o, what) in [(Some(*x), "signal"), (Some(*weight), "weights"), (*bias, "bias")] {
                        if let Some(o) = o.filter(|o| in_body(*o) && !matches!(g.node(*o).op, Op::Const(_))) {
                            return Err(Violation { store: o, why: format!("a conv1d reads its {what} from memory") });
                        }
                    }
                }
                // so do shift and window (and a shift its fill, read at the edge)
                Op::Shift { x, dim, fill, reverse } if prev_state(*x, *dim, *reverse, *fill) => {}
                Op::Shift { x, fill, .. } => {
                    for (o, what) in [(Some(*x), "operand"), (*fill, "fill")] {
                        if let Some(o) = o.filter(|o| in_body(*o) && !matches!(g.node(*o).op, Op::Const(_))) {
                            return Err(Violation { store: o, why: format!("a shift reads its {what} from memory") });
                        }
                    }
                }
                Op::Window { x, .. } if in_body(*x) && !matches!(g.node(*x).op, Op::Const(_)) => {
                    return Err(Violation { store: *x, why: "a window reads its signal from memory".into() });
                }
                // 3. no sum over the sequential dim
                Op::Sum { x, dim } if Some(*dim) == l => {
                    let store = if in_body(*x) { *x } else { n };
                    return Err(Violation { store, why: "a sum over the scanned dim needs its own kernel".into() });
                }
                _ => {}
            }
        }
        // 4. final states are written after the loop, so nothing in the kernel reads them
        for &n in &self.body {
            for o in g.node(n).op.operands() {
                if in_body(o) && matches!(g.node(o).op, Op::ScanFinal(_)) {
                    return Err(Violation { store: o, why: "a final state is only known after the loop".into() });
                }
            }
        }
        // 5. one level of inner loops: sums reduce inner dims to row level, nothing inner reads a sum
        let without_seq = |r: NodeId| match l {
            Some(l) => shape(r).without(l),
            None => shape(r).canonical(),
        };
        let meet = |p: Option<Shape>, s: Shape| {
            Some(match p {
                None => s,
                Some(p) => Shape(p.dims().iter().copied().filter(|d| s.contains(*d)).collect()),
            })
        };
        // with sums across rows, a root summing over a dim the other roots range over is one
        let candidate = |r: &NodeId| forms.row_sums && matches!(g.node(*r).op, Op::Sum { .. });
        let mut row_sums: Vec<NodeId> = Vec::new();
        let mut parallel: Option<Shape> = None;
        if self.roots.iter().all(candidate) {
            for &r in &self.roots {
                parallel = meet(parallel, without_seq(r));
            }
        } else {
            let mut ranges: Vec<NodeId> = self.roots.iter().copied().filter(|r| !candidate(r)).collect();
            loop {
                let mut p = None;
                for &r in &ranges {
                    p = meet(p, without_seq(r));
                }
                let p = p.unwrap_or_default();
                // (each row adds its value once: the sum must range over every other row dim)
                let across = |r: &NodeId| {
                    matches!(g.node(*r).op, Op::Sum { dim, .. } if p.contains(dim) && p.dims().iter().all(|d| *d == dim || shape(*r).contains(*d)))
                };
                match self.roots.iter().copied().find(|r| candidate(r) && !ranges.contains(r) && !across(r)) {
                    Some(r) => ranges.push(r),
                    None => {
                        row_sums = self.roots.iter().copied().filter(|r| candidate(r) && !ranges.contains(r)).collect();
                        parallel = Some(p);
                        break;
                    }
                }
            }
        }
        let parallel = parallel.unwrap_or_default();
        // a sum across rows is complete only after every row: nothing in the kernel reads it
        for &n in &self.body {
            if let Some(&s) = g.node(n).op.operands().iter().find(|o| row_sums.contains(o)) {
                return Err(Violation { store: s, why: "a sum across rows is complete only after the kernel".into() });
            }
        }
        if let Some(&r) = replayed.iter().find(|r| row_sums.contains(r) || self.roots.contains(r)) {
            return Err(Violation { store: r, why: "a replayed value is not stored".into() });
        }
        // a sum reduces inside a row: over a dim the rows range over, it would need every row
        for &n in &self.body {
            if let Op::Sum { dim, .. } = &g.node(n).op {
                if parallel.contains(*dim) && !self.roots.contains(&n) {
                    return Err(Violation { store: n, why: "a sum over a dim the kernel's rows range over needs its own kernel".into() });
                }
            }
        }
        let outer = |n: NodeId| shape(n).dims().iter().all(|d| parallel.contains(*d) || Some(*d) == l);
        let mut after_sum = BTreeSet::new();
        for &n in &self.body {
            let reads_sum = g.node(n).op.operands().into_iter().any(|o| in_body(o) && after_sum.contains(&o));
            // (a sum across rows adds its operand where it is)
            let is_sum = matches!(g.node(n).op, Op::Sum { .. }) && !row_sums.contains(&n);
            if is_sum && !outer(n) {
                return Err(Violation { store: n, why: "a sum must reduce to the kernel's rows".into() });
            }
            if (is_sum || reads_sum) && !outer(n) {
                let sum = g.node(n).op.operands().into_iter().find(|o| after_sum.contains(o)).unwrap_or(n);
                return Err(Violation { store: sum, why: "inner loops cannot read a sum of the same kernel".into() });
            }
            if is_sum || reads_sum {
                after_sum.insert(n);
            }
        }
        // every dim the kernel touches, in what it computes and what it reads (a conv's taps
        // are indexed by the conv itself)
        let touched = |n: NodeId| {
            let mut ds = shape(n).dims().to_vec();
            match &g.node(n).op {
                Op::Conv1d { x, .. } | Op::Window { x, .. } => ds.extend(shape(*x).dims()),
                Op::Shift { x, fill, .. } => {
                    ds.extend(shape(*x).dims());
                    fill.iter().for_each(|f| ds.extend(shape(*f).dims()));
                }
                op => op.operands().into_iter().for_each(|o| ds.extend(shape(o).dims())),
            }
            ds
        };
        let mut inner: Vec<DimId> = self
            .body
            .iter()
            .flat_map(|&n| touched(n))
            .filter(|d| !parallel.contains(*d) && Some(*d) != l)
            .collect();
        inner.sort();
        inner.dedup();
        // 6. one inner dim: the backends lower one inner loop
        if let [first, _, ..] = inner[..] {
            let extra = |n: NodeId| shape(n).dims().iter().any(|d| !parallel.contains(*d) && Some(*d) != l && *d != first);
            let found = self.body.iter().find_map(|&n| {
                // the first value with a second inner dim: computed here (store it) or read (store its reader)
                if extra(n) && !self.roots.contains(&n) {
                    Some(n)
                } else {
                    g.node(n).op.operands().into_iter().find(|&o| extra(o)).map(|_| n).filter(|n| !self.roots.contains(n))
                }
            });
            match found {
                Some(n) => return Err(Violation { store: n, why: "a kernel has one inner loop".into() }),
                None => return Err(Violation { store: self.roots[0], why: "a kernel has one inner loop".into() }),
            }
        }
        Ok(Space { parallel: parallel.canonical().dims().to_vec(), seq, inner, replayed, row_sums })
    }

    /// The forward scans along `d` of a kernel that walks it both ways, and the body values
    /// they read (in definition order); an error where they cannot be replayed.
    fn replayed(&self, g: &Graph, d: DimId) -> Result<Vec<NodeId>, Violation> {
        let in_body = |n: NodeId| self.body.binary_search(&n).is_ok();
        let mut marked: BTreeSet<NodeId> = BTreeSet::new();
        for &n in self.body.iter().rev() {
            let forward = matches!(g.node(n).op, Op::Scan { dim, reverse: false, .. } if dim == d);
            if !forward && !marked.contains(&n) {
                continue;
            }
            marked.insert(n);
            match &g.node(n).op {
                Op::Scan { dim, reverse: true, .. } if *dim == d => {
                    return Err(Violation { store: n, why: "a replayed scan reads a scan in the kernel's direction".into() });
                }
                Op::Sum { .. } => return Err(Violation { store: n, why: "a replayed scan reads a sum".into() }),
                _ => {}
            }
            for o in g.node(n).op.operands() {
                if in_body(o) {
                    marked.insert(o);
                }
            }
        }
        // a replayed scan's state is known at each step of a chunk, not after the loop
        for &n in &self.body {
            if let Op::ScanFinal(s) = g.node(n).op {
                if marked.contains(&s) {
                    return Err(Violation { store: n, why: "a replayed scan has no final state in the kernel".into() });
                }
            }
        }
        Ok(marked.into_iter().collect())
    }
}

/// Whether `shift(x, dim, fill, reverse)` is the state of scan `x` before each step: `x` scans
/// along `dim` the same way and starts from `fill` (see [`Forms::replay`]).
pub fn shift_is_prev_state(g: &Graph, x: NodeId, dim: DimId, reverse: bool, fill: Option<NodeId>) -> bool {
    matches!(g.node(x).op, Op::Scan { dim: d, reverse: r, init, .. } if d == dim && r == reverse && init == fill)
}

/// Merges kernels that compute a common node (one pass instead of two recomputations), when
/// the merged kernel still fits and no other kernel sits between them.
fn merge_siblings(g: &Graph, stored: &BTreeSet<NodeId>, groups: &mut Vec<Group>, forms: Forms) {
    let mut i = 0;
    while i < groups.len() {
        let mut j = i + 1;
        while j < groups.len() {
            let shares = groups[i]
                .body
                .iter()
                .any(|n| !matches!(g.node(*n).op, Op::Const(_)) && groups[j].body.binary_search(n).is_ok());
            if shares {
                let mut roots = groups[i].roots.clone();
                roots.extend(groups[j].roots.iter().copied());
                let merged = Group::rooted(g, stored, roots);
                let mut trial = groups.clone();
                trial[i] = merged.clone();
                trial.remove(j);
                // (the merged kernel's space, checked once, serves the strided-store count)
                let keeps_stores = |space: &Space| {
                    strided_stores(g, &merged.roots, space)
                        <= [&groups[i], &groups[j]].iter().map(|gr| gr.check(g, forms).map_or(0, |s| strided_stores(g, &gr.roots, &s))).sum::<usize>()
                };
                if merged.check(g, forms).is_ok_and(|space| keeps_stores(&space)) && order(g, trial.clone()).is_ok() {
                    *groups = trial;
                    continue;
                }
            }
            j += 1;
        }
        i += 1;
    }
}

/// How many of `roots` a kernel iterating `space` stores across its inner loop's grain: the stored value's
/// last dim is not the inner dim, so consecutive inner steps write far apart. A merge that
/// makes a store strided (Mamba's states `h` written from a loop over `dim`) costs more than
/// the recomputation it saves. (A sum across rows adds into blocks laid out in the kernel's
/// order.)
fn strided_stores(g: &Graph, roots: &[NodeId], space: &Space) -> usize {
    let Some(inner) = space.inner.first().copied() else { return 0 };
    let strided = |r: &&NodeId| {
        let shape = &g.node(**r).shape;
        !space.row_sums.contains(r) && shape.contains(inner) && shape.canonical().dims().last() != Some(&inner)
    };
    roots.iter().filter(strided).count()
}

/// Orders kernels so each comes after the kernels whose buffers it reads.
fn order(g: &Graph, groups: Vec<Group>) -> Result<Vec<Group>, IrError> {
    let writer: BTreeMap<NodeId, usize> =
        groups.iter().enumerate().flat_map(|(k, gr)| gr.roots.iter().map(move |&r| (r, k))).collect();
    let mut done = vec![false; groups.len()];
    let mut out = Vec::with_capacity(groups.len());
    while out.len() < groups.len() {
        // the first kernel (by root order) whose inputs are all written
        let next = (0..groups.len()).find(|&k| {
            !done[k] && groups[k].leaves.iter().all(|l| matches!(g.node(*l).op, Op::Input(_)) || writer.get(l).is_some_and(|&w| done[w] || w == k))
        });
        match next {
            Some(k) => {
                done[k] = true;
                out.push(k);
            }
            None => return Err(IrError::new("the kernels depend on each other in a cycle")),
        }
    }
    let mut groups: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    Ok(out.into_iter().map(|k| groups[k].take().expect("each kernel once")).collect())
}

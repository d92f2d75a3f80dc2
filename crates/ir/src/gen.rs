//! Random valid graphs, for property tests of every stage (printer, optimizer, backends).
//!
//! The generator proposes random ops over random earlier nodes and keeps the ones
//! [`Graph::push`] accepts, so it also exercises every validation path. It is deterministic in
//! its seed.

use crate::graph::{Graph, NodeId};
use crate::op::{BinaryOp, Domain, GateKind, InputKind, Method, Op, UnaryOp};
use crate::dim::DimId;

/// SplitMix64, enough for choosing ops.
struct Pick(u64);

impl Pick {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn of<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// Options for [`random_graph`].
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    /// How many ops to try adding after the inputs.
    pub ops: usize,
    /// Include the ops that can leave their domain (`log`, `sqrt`, ...: [`Domain::Partial`]).
    pub partial_ops: bool,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { ops: 10, partial_ops: true }
    }
}

/// The dims every generated graph declares: `b, d, l, n` and the tap dim `k` (used only by the
/// conv weight `w` and by windows).
pub const DIMS: [&str; 5] = ["b", "d", "l", "n", "k"];

/// A random valid graph with at least one output.
pub fn random_graph(seed: u64, opts: GenOptions) -> Graph {
    let mut p = Pick(seed);
    let mut g = Graph::new("Random");
    let dims: Vec<DimId> = DIMS.iter().map(|d| g.add_dim(d).expect("distinct names")).collect();
    let (main, k) = (&dims[..4], dims[4]);
    let n_inputs = 2 + p.below(3);
    for i in 0..n_inputs {
        let mut layout: Vec<DimId> = main.iter().copied().filter(|_| p.chance(60)).collect();
        if i == 0 && !layout.contains(&main[2]) {
            layout.push(main[2]); // one input along `l`, so scans and convs have something to do
        }
        // shuffle the layout: inputs may be stored in any order
        for j in (1..layout.len()).rev() {
            layout.swap(j, p.below(j + 1));
        }
        let kind = if p.chance(50) { InputKind::Input } else { InputKind::Param };
        g.input(&format!("x{i}"), kind, &layout, None).expect("valid layout");
    }
    let w = g.input("w", InputKind::Param, &[k], None).expect("valid layout");
    // `Small`-domain ops (sin, cos) are left out: random chains give them arguments far too
    // large for an f32 kernel to agree with the oracle (see `Domain::Small`), and so is `sign`,
    // which jumps where f32 and f64 may round to opposite sides of 0; the tests of each such
    // op give it chosen inputs instead
    let unary: Vec<UnaryOp> = UnaryOp::ALL
        .into_iter()
        .filter(|u| match u.domain() {
            Domain::All => true,
            Domain::Partial => opts.partial_ops,
            Domain::Small | Domain::Jump => false,
        })
        .collect();
    let bound: Vec<DimId> = g.inputs().flat_map(|(_, decl)| decl.layout.dims().to_vec()).collect();
    let mut tries = 0;
    let mut added = 0;
    while added < opts.ops && tries < opts.ops * 20 {
        tries += 1;
        let count = g.nodes().len();
        let mut any = || NodeId(p.below(count) as u32);
        let (a, b, c) = (any(), any(), any());
        let d = main[p.below(4)];
        let op = match p.below(15) {
            0 => Op::Const((p.below(41) as f64 - 20.0) / 8.0),
            1 | 2 => Op::Unary(p.of(&unary), a),
            3 | 4 => Op::Binary(p.of(&BinaryOp::ALL), a, b),
            5 => Op::Sum { x: a, dim: d },
            6 => Op::DiscretizeA { method: p.of(&Method::ALL), dt: a, a: b },
            7 => Op::DiscretizeB { method: p.of(&Method::ALL), dt: a, a: b, b: c },
            8 => Op::Scan { a, b, dim: d, reverse: p.chance(30), init: if p.chance(30) { Some(c) } else { None } },
            9 => {
                let scans: Vec<NodeId> = (0..count)
                    .filter(|&i| matches!(g.nodes()[i].op, Op::Scan { .. }))
                    .map(|i| NodeId(i as u32))
                    .collect();
                if scans.is_empty() {
                    continue;
                }
                Op::ScanFinal(p.of(&scans))
            }
            10 => Op::Gate { kind: p.of(&GateKind::ALL), x: a, z: b },
            11 => Op::Shift { x: a, dim: d, fill: if p.chance(40) { Some(c) } else { None }, reverse: p.chance(40) },
            12 => Op::Window { x: a, dim: d, taps: k, reverse: p.chance(40) },
            // along a dim some input gives a size to
            13 if bound.contains(&d) => Op::Broadcast { x: a, dims: crate::dim::Shape(vec![d]) },
            13 => continue,
            _ => Op::Conv1d { x: a, weight: w, bias: if p.chance(50) { Some(b) } else { None }, dim: d, reverse: false },
        };
        if g.push(op).is_ok() {
            added += 1;
        }
    }
    let last = NodeId(g.nodes().len() as u32 - 1);
    let other = NodeId(p.below(g.nodes().len()) as u32);
    let second = other != last && p.chance(50);
    // outputs in either order relative to their nodes, to exercise both printing styles
    if second && p.chance(50) {
        g.add_output("y0", other).expect("fresh name");
    }
    g.add_output("y", last).expect("fresh name");
    if second && g.outputs().len() == 1 {
        g.add_output("y0", other).expect("fresh name");
    }
    g
}

/// Random extents for every dim of `g` (1 to `max` each; the tap dim 1 to 4).
pub fn random_sizes(g: &Graph, seed: u64, max: usize) -> Vec<usize> {
    let mut p = Pick(seed ^ 0x5151);
    g.dims().map(|(_, name)| if name == "k" { 1 + p.below(4) } else { 1 + p.below(max) }).collect()
}

/// Random input tensors for `g` with the given dim extents, values uniform in `-1..1` (or the
/// input's declared range).
pub fn random_inputs(g: &Graph, sizes: &[usize], seed: u64) -> Vec<(String, crate::interp::Tensor)> {
    let mut p = Pick(seed ^ 0xA5A5);
    g.inputs()
        .map(|(_, decl)| {
            let shape: Vec<usize> = decl.layout.dims().iter().map(|d| sizes[d.index()]).collect();
            let n: usize = shape.iter().product();
            let (lo, hi) = decl.range.unwrap_or((-1.0, 1.0));
            let data = (0..n).map(|_| lo + (hi - lo) * ((p.next() >> 11) as f64 / (1u64 << 53) as f64)).collect();
            (decl.name.clone(), crate::interp::Tensor { shape, data })
        })
        .collect()
}

/// How many random cases a property test runs: `full`, or a tenth of it (at least 2) where
/// `SSMC_QUICK` is set (`./test.sh quick`, the development tier).
pub fn test_cases(full: u32) -> u32 {
    if quick() {
        (full / 10).max(2)
    } else {
        full
    }
}

/// Whether `SSMC_QUICK` asks for the quick test tier.
pub fn quick() -> bool {
    std::env::var_os("SSMC_QUICK").is_some()
}

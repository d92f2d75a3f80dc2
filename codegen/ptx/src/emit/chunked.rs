//! Scans cut into chunks: thread `(row, chunk)` walks its piece of the seq dim. A summary pass
//! stores each chunk's decay product and end state, a combine pass carries the state across
//! chunks with the associative operator, and the main pass rescans each chunk from its true
//! start state.

use super::{entry, Mapping, Tiling, Translator};
use crate::isa::fimm;
use crate::regs::Regs;
use ssmc_kernel::{Kir, Level, Schedule, Step, V};
use std::collections::HashMap;

/// Which pass of a chunked scan an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkPass {
    /// Scan each chunk from zero; store its decay product `P = prod a` and end state `H`.
    Summary,
    /// Scan each chunk from its true start state and compute everything else.
    Main,
}

/// A kernel whose seq loop is cut into chunks run by separate threads (see [`entry_chunked`]).
pub(crate) struct Chunked {
    pub(crate) chunks: usize,
    pub(crate) len: usize,
    pub(crate) pass: ChunkPass,
    pub(crate) scan: V,
    /// This thread's chunk.
    pub(crate) c: String,
    /// Base pointers of the extra buffers (P, H for the summary; the start states for main).
    pub(crate) extra: Vec<String>,
    /// The decay product per inner index (summary).
    pub(crate) prods: HashMap<usize, String>,
    /// Byte offset of this (row, chunk)'s first element in the `[rows, chunks, inner]` buffers.
    pub(crate) slot: String,
    /// The steps the scan depends on (all a summary computes).
    pub(crate) needed: std::collections::HashSet<V>,
}

/// The one scan a kernel can be chunked on: a forward scan at the inner level, unrolled, with
/// no second scan and no conv.
pub(crate) fn chunkable(k: &Kir, schedule: &Schedule) -> Option<V> {
    let scans: Vec<V> = k.steps.iter().enumerate().filter(|(_, (_, st))| matches!(st, Step::Scan { .. })).map(|(i, _)| i).collect();
    let (extent, reverse) = k.seq?;
    let n = k.inner?;
    let ok = scans.len() == 1
        && !reverse
        && extent >= 64
        && n <= schedule.unroll_limit
        && k.steps[scans[0]].0 == Level::Inner
        && !k.steps.iter().any(|(_, st)| matches!(st, Step::Conv { .. } | Step::Gather { .. }));
    ok.then(|| scans[0])
}

/// One pass of `k` with its seq loop cut into `chunks` pieces on `scan` (from [`chunkable`]):
/// thread `chunk * rows + row` walks its piece (in tiles where that applies). Parameters: the
/// kernel's buffers, then P and H (`Summary`) or the start states (`Main`), each
/// `[rows, chunks, inner]` f32, then `rows`.
pub(crate) fn entry_chunked(k: &Kir, name: &str, schedule: &Schedule, scan: V, chunks: usize, pass: ChunkPass, tiling: Tiling) -> String {
    let extent = k.seq.map_or(1, |s| s.0);
    let mut needed = std::collections::HashSet::new();
    let mut stack = vec![scan];
    while let Some(v) = stack.pop() {
        if needed.insert(v) {
            stack.extend(k.steps[v].1.operands());
        }
    }
    let chunked = Chunked {
        chunks,
        len: extent.div_ceil(chunks),
        pass,
        scan,
        c: String::new(),
        extra: vec![],
        prods: HashMap::new(),
        slot: String::new(),
        needed,
    };
    let extra = if pass == ChunkPass::Summary { 2 } else { 1 };
    entry(k, name, schedule, Mapping::Chunked(chunked), extra, tiling)
}

impl Translator<'_> {
    /// Thread `chunk * rows + row` (a warp's threads share a chunk when rows % 32 == 0): its
    /// row and chunk; threads past the last chunk exit.
    pub(super) fn chunks_prologue(&mut self, thread: &str, rows: &str, done: &str) -> (String, String) {
        let Translator { w, mapping, .. } = self;
        let (r, c) = (w.rd(), w.rd());
        w.ins(format!("rem.u64 {r}, {thread}, {rows}"));
        w.ins(format!("div.u64 {c}, {thread}, {rows}"));
        if let Mapping::Chunked(ch) = mapping {
            w.exit_if_ge(&c, &ch.chunks.to_string(), done);
            ch.c = c;
        }
        (r.clone(), r)
    }

    /// The extra buffers' base pointers of a chunked pass (P and H, or the start states).
    pub(super) fn chunks_params(&mut self) {
        let first = self.k.buffers.len();
        let Translator { w, mapping, .. } = self;
        let Mapping::Chunked(ch) = mapping else { return };
        let count = if ch.pass == ChunkPass::Summary { 2 } else { 1 };
        for i in first..first + count {
            let (g, base) = (w.rd(), w.rd());
            w.ins(format!("ld.param.u64 {g}, [buf{i}]"));
            w.ins(format!("cvta.to.global.u64 {base}, {g}"));
            ch.extra.push(base);
        }
    }

    /// The byte offset of this (row, chunk)'s slot in the `[rows, chunks, inner]` buffers.
    pub(super) fn chunks_slot(&mut self, row: &str) {
        let n = self.k.inner.unwrap_or(1);
        let Translator { w, mapping, .. } = self;
        let Mapping::Chunked(ch) = mapping else { return };
        let (a, b) = (w.rd(), w.rd());
        w.ins(format!("mad.lo.u64 {a}, {row}, {}, {}", ch.chunks, ch.c));
        w.ins(format!("mul.lo.u64 {b}, {a}, {}", n * 4));
        ch.slot = b;
    }
}

/// Chunk summaries the combine pass loads before using them.
const COMBINE_BATCH: usize = 16;

/// The combine pass: per (row, inner index), walk the chunks in order, writing each chunk's start
/// state and carrying `h = P h + H` (the associative operator `(a1,b1) o (a2,b2) = (a1 a2,
/// a2 b1 + b2)` applied left to right). Parameters: P, H, start states, then the number of
/// (row, inner index) pairs.
pub(crate) fn combine_entry(name: &str, chunks: usize, inner: usize) -> String {
    let mut w = Regs::default();
    let (tid, ntid, ctaid) = (w.r(), w.r(), w.r());
    w.ins(format!("mov.u32 {tid}, %tid.x"));
    w.ins(format!("mov.u32 {ntid}, %ntid.x"));
    w.ins(format!("mov.u32 {ctaid}, %ctaid.x"));
    let (a, b, g, rows) = (w.rd(), w.rd(), w.rd(), w.rd());
    w.ins(format!("mul.wide.u32 {a}, {ctaid}, {ntid}"));
    w.ins(format!("cvt.u64.u32 {b}, {tid}"));
    w.ins(format!("add.u64 {g}, {a}, {b}"));
    w.ins(format!("ld.param.u64 {rows}, [rows]"));
    let p = w.p();
    let done = w.label("exit");
    w.ins(format!("setp.ge.u64 {p}, {g}, {rows}"));
    w.ins(format!("@{p} bra {done}"));
    let mut base = vec![];
    for i in 0..3 {
        let (x, y) = (w.rd(), w.rd());
        w.ins(format!("ld.param.u64 {x}, [buf{i}]"));
        w.ins(format!("cvta.to.global.u64 {y}, {x}"));
        base.push(y);
    }
    // pair g = row * inner + i; chunk c of it lives at (row * chunks + c) * inner + i
    let (row, i, first) = (w.rd(), w.rd(), w.rd());
    w.ins(format!("div.u64 {row}, {g}, {inner}"));
    w.ins(format!("rem.u64 {i}, {g}, {inner}"));
    w.ins(format!("mul.lo.u64 {first}, {row}, {}", chunks * inner));
    w.ins(format!("add.u64 {first}, {first}, {i}"));
    w.ins(format!("shl.b64 {first}, {first}, 2"));
    let h = w.f();
    w.ins(format!("mov.f32 {h}, {}", fimm(0.0)));
    let (pa, ha, sa) = (w.rd(), w.rd(), w.rd());
    w.ins(format!("add.u64 {pa}, {}, {first}", base[0]));
    w.ins(format!("add.u64 {ha}, {}, {first}", base[1]));
    w.ins(format!("add.u64 {sa}, {}, {first}", base[2]));
    // a batch of chunks' summaries loaded at once (independent loads in flight together), then
    // the dependent chain through them
    for batch in (0..chunks).collect::<Vec<_>>().chunks(COMBINE_BATCH) {
        let loaded: Vec<(String, String)> = batch
            .iter()
            .map(|&c| {
                let off = c * inner * 4;
                let (pv, hv) = (w.f(), w.f());
                w.ins(format!("ld.global.nc.f32 {pv}, [{pa}+{off}]"));
                w.ins(format!("ld.global.nc.f32 {hv}, [{ha}+{off}]"));
                (pv, hv)
            })
            .collect();
        for (&c, (pv, hv)) in batch.iter().zip(loaded) {
            w.ins(format!("st.global.f32 [{sa}+{}], {h}", c * inner * 4));
            w.ins(format!("fma.rn.f32 {h}, {pv}, {h}, {hv}"));
        }
    }
    w.put_label(&done);
    w.ins("ret");
    let mut s = format!(".visible .entry {name}(\n\t.param .u64 buf0,\n\t.param .u64 buf1,\n\t.param .u64 buf2,\n\t.param .u64 rows\n)\n{{\n");
    s.push_str(&w.decls());
    s.push_str(&w.body);
    s.push_str("}\n");
    s
}


//! PtxWriter: one [`Kir`] into a PTX `.entry`, one GPU thread per row (or one lane per inner
//! index, or per run of them: [`Lane::width`]), or a (row, chunk) pair for a scan cut
//! into chunks (`crate::chunked`).
//!
//! Each thread walks its row exactly as the CPU kernel does: the seq loop in order, the inner
//! dim unrolled (the scan state of every inner index in its own register) or, when longer than
//! the schedule's unroll limit, looped with the states in local memory. With tiles the seq loop
//! runs a tile of steps at a time through shared memory (`tiles`). Values are virtual
//! registers in SSA form except the loop-carried ones (states, sums, counters); ptxas allocates.
//! Files: the thread's layout and loops here; `steps` selects the instructions of one step;
//! `memory` addresses and loads; `tiles` and `lanes` the two staged seq loops.

use crate::isa::fimm;
use crate::regs::Regs;
use ssmc_kernel::{Access, Kir, Level, Schedule, Step, V};
use std::collections::HashMap;

mod chunked;
mod lanes;
mod memory;
mod rows;
mod steps;
mod tiles;
mod warpscan;
pub(crate) use chunked::{chunkable, combine_entry, entry_chunked, ChunkPass, Chunked};
pub(crate) use lanes::{lanes_per_row, Lane};
pub(crate) use tiles::Tiling;
pub(crate) use warpscan::{regions_fit, warp_scannable, WarpScan};
pub use warpscan::PER_LANE;
use std::fmt::Write;

/// The entry point name of kernel `i`.
pub(crate) fn entry_name(k: &Kir, i: usize) -> String {
    format!("{}_{i}", k.name)
}

/// How a kernel's threads map onto its rows: each mapping's prologue, seq loop and shared
/// memory live in its own module.
pub(crate) enum Mapping {
    /// One thread per row (`rows`; with tiles, `tiles`).
    Rows,
    /// One thread per (row, chunk) of a scan cut into chunks (`chunked`).
    Chunked(Chunked),
    /// Lanes over the inner dim (`lanes`); the lane's registers are set by its prologue.
    Lanes(Lane),
    /// A warp per row, its lanes over seq (`warpscan`).
    Warp(WarpScan),
}

/// One kernel as a PTX `.entry NAME(.param .u64 buf0, ..., .param .u64 rows)` under `mapping`,
/// its seq loop in tiles staged through shared memory where `tiling` asks for them and they
/// apply; `extra_params` buffers follow the kernel's (a chunked pass's summaries).
pub(crate) fn entry(k: &Kir, name: &str, schedule: &Schedule, mapping: Mapping, extra_params: usize, tiling: Tiling) -> String {
    let (lanes, width) = match &mapping {
        Mapping::Lanes(l) => (lanes_per_row(k, l.width), l.width),
        _ => (1, 0),
    };
    // lanes that do not apply to this kernel: one thread per row
    let mapping = if lanes == 1 && matches!(mapping, Mapping::Lanes(_)) { Mapping::Rows } else { mapping };
    // a lane's own run of inner indices is unrolled (it is at most 16 long)
    let lane_width = if lanes > 1 { width.max(1) } else { 1 };
    let unrolled = unrolled(k, schedule) || lane_width > 1;
    let tile_plan = match &mapping {
        Mapping::Warp(_) => None,
        Mapping::Chunked(ch) => tiles::plan(k, tiling, lanes, unrolled, Some(ch)),
        _ => tiles::plan(k, tiling, lanes, unrolled, None),
    };
    let warp = matches!(mapping, Mapping::Warp(_));
    let mut t = Translator {
        w: Regs::default(),
        k,
        unrolled,
        bases: vec![],
        row_idx: vec![],
        l: None,
        scalars: HashMap::new(),
        per_chunk: HashMap::new(),
        cur: HashMap::new(),
        states: HashMap::new(),
        locals: vec![],
        row_bases: HashMap::new(),
        seq_bases: HashMap::new(),
        lanes,
        lane_width,
        mapping,
        tile: None,
        tile_at: None,
        rows_param: String::new(),
        valid: None,
        vec_values: HashMap::new(),
        seqvec: None,
        vec_step: 0,
        ahead: HashMap::new(),
        row_offsets: HashMap::new(),
        row_guard: None,
        warps: tiling.warps.max(1),
    };
    t.body(tile_plan);
    let mut s = format!(".visible .entry {name}(\n");
    let params: Vec<String> = (0..k.buffers.len() + extra_params)
        .map(|i| format!("\t.param .u64 buf{i}"))
        .chain(["\t.param .u64 rows".to_string()])
        .collect();
    s.push_str(&params.join(",\n"));
    s.push_str("\n)\n");
    if warp {
        let _ = writeln!(s, ".maxnreg {}", warpscan::MAX_REGS);
    }
    s.push_str("{\n");
    s.push_str(&t.w.decls());
    for (name, bytes) in &t.locals {
        let _ = writeln!(s, "\t.local .align 4 .b8 {name}[{bytes}];");
    }
    if let Some(d) = t.tile_decl().or_else(|| t.warp_decl()) {
        s.push_str(&d);
    }
    s.push_str(&t.w.body);
    s.push_str("}\n");
    s
}

/// Whether kernel `k` under `schedule` (with lanes of `lane_width`, 0 for none), one thread per
/// row or per (row, chunk) with `chunked`, stages tiles through shared memory under `tiling`.
pub(crate) fn tiled(k: &Kir, schedule: &Schedule, lane_width: usize, tiling: Tiling, chunked: bool) -> bool {
    if chunked && !k.row_count().is_multiple_of(32) {
        return false;
    }
    let lanes = if chunked { 1 } else { lanes_per_row(k, lane_width) };
    tiles::plan(k, tiling, lanes, unrolled(k, schedule), None).is_some()
}

/// Whether `k`'s inner dim is unrolled (its states in registers) under `schedule`.
fn unrolled(k: &Kir, schedule: &Schedule) -> bool {
    k.inner.is_none_or(|n| n <= schedule.unroll_limit.max(1))
}

struct Translator<'a> {
    w: Regs,
    k: &'a Kir,
    unrolled: bool,
    bases: Vec<String>,
    row_idx: Vec<String>,
    l: Option<String>,
    scalars: HashMap<V, String>,
    per_chunk: HashMap<(V, usize), String>,
    cur: HashMap<V, String>,
    /// Scan states: a register per inner index when unrolled; else a local array name.
    states: HashMap<(V, usize), String>,
    locals: Vec<(String, usize)>,
    /// Byte address of each (buffer, row strides) at this thread's row, computed once.
    row_bases: HashMap<(usize, Vec<usize>), String>,
    /// Byte address at the current seq step, per (buffer, row strides, seq stride).
    seq_bases: memory::SeqBases,
    /// Threads per row (1; the inner extent rounded up to a power of two; or that extent over
    /// `lane_width`).
    lanes: u32,
    /// Consecutive inner indices per lane (1 unless the lanes each own a run of them; see
    /// [`Translator::lane_run`]).
    lane_width: usize,
    /// How the kernel's threads map onto its rows.
    mapping: Mapping,
    /// Tiles staged through shared memory (set up by `tile_setup`).
    tile: Option<tiles::Tile>,
    /// Inside a tile's steps: this thread's row pointer and its warp's uniform pointer at the
    /// current step in shared memory.
    tile_at: Option<(String, String)>,
    /// The `rows` parameter (u64 register).
    rows_param: String,
    /// Whether this thread's row exists, where threads past the end stay alive (tiles).
    valid: Option<String>,
    vec_values: HashMap<memory::VecKey, String>,
    /// The seq-contiguous vectors of the current block (the warp scan, lane blocks).
    seqvec: Option<warpscan::SeqVec>,
    /// Which of the lane's steps in those vectors is being emitted.
    vec_step: usize,
    /// Lane blocks: seq-level loads of this lane's step, loaded a block ahead (as stored).
    ahead: HashMap<ssmc_kernel::Access, String>,
    /// 32-bit element offsets of rows by row strides, where the addresses of seq steps start
    /// from the buffers' parameters (the warp scan: [`Self::set_row_offsets`]).
    row_offsets: HashMap<Vec<usize>, String>,
    /// The guard of row-level stores where it is not the mapping's own (a lane's own step).
    row_guard: Option<String>,
    /// Warps per block of threads (each its own region of shared memory).
    warps: usize,
}

/// The inner index of the value being emitted: a constant when unrolled, a register in a loop.
#[derive(Clone)]
enum Inner {
    None,
    Static(usize),
    Reg(String),
    /// This thread's lane: one inner index per thread (lanes-over-inner schedule).
    Lane(String),
}

impl Translator<'_> {
    fn steps_at(&self, level: Level) -> Vec<V> {
        self.k.steps.iter().enumerate().filter(|(_, (l, _))| *l == level).map(|(i, _)| i).collect()
    }

    fn level(&self, v: V) -> Level {
        self.k.steps[v].0
    }

    fn body(&mut self, tile_plan: Option<tiles::TilePlan>) {
        let w = &mut self.w;
        let (tid, ntid, ctaid) = (w.r(), w.r(), w.r());
        w.ins(format!("mov.u32 {tid}, %tid.x"));
        w.ins(format!("mov.u32 {ntid}, %ntid.x"));
        w.ins(format!("mov.u32 {ctaid}, %ctaid.x"));
        let (a, b, thread) = (w.rd(), w.rd(), w.rd());
        w.ins(format!("mul.wide.u32 {a}, {ctaid}, {ntid}"));
        w.ins(format!("cvt.u64.u32 {b}, {tid}"));
        w.ins(format!("add.u64 {thread}, {a}, {b}"));
        let rows = w.rd();
        w.ins(format!("ld.param.u64 {rows}, [rows]"));
        self.rows_param = rows.clone();
        let done = w.label("exit");
        // this thread's row, and the row before clamping (tiles keep a warp's threads past the
        // end alive)
        let (row, unclamped) = match &self.mapping {
            Mapping::Lanes(_) => (self.lanes_prologue(&thread, &rows), thread.clone()),
            Mapping::Chunked(_) => self.chunks_prologue(&thread, &rows, &done),
            Mapping::Warp(_) => (self.warp_prologue(&thread, &rows, &done), thread.clone()),
            Mapping::Rows if tile_plan.is_some() => (self.tiles_prologue(&thread, &rows, &done), thread.clone()),
            Mapping::Rows => (self.rows_prologue(&thread, &rows, &done), thread.clone()),
        };
        for i in 0..self.k.buffers.len() {
            let (g, base) = (self.w.rd(), self.w.rd());
            self.w.ins(format!("ld.param.u64 {g}, [buf{i}]"));
            self.w.ins(format!("cvta.to.global.u64 {base}, {g}"));
            self.bases.push(base);
        }
        self.chunks_params();
        let row_for_slot = row.clone();
        self.row_idx = self.row_indices(&row);
        // every access's row part, once per thread: the loops then only add seq and inner terms
        let accesses: Vec<Access> = self
            .k
            .steps
            .iter()
            .filter_map(|(_, st)| match st {
                Step::Load(a) | Step::Store(_, a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        for a in accesses {
            let key = self.base_key(&a);
            if self.row_bases.contains_key(&key) {
                continue;
            }
            let size = self.k.buffers[a.buffer].dtype.size();
            let mut at = self.bases[a.buffer].clone();
            for (k, &stride) in a.row.iter().enumerate() {
                if stride != 0 {
                    let n = self.w.rd();
                    self.w.ins(format!("mad.lo.u64 {n}, {}, {}, {at}", self.row_idx[k], stride * size));
                    at = n;
                }
            }
            if let (Some(first), true) = (self.lane_run(), a.inner != 0) {
                let n = self.w.rd();
                self.w.ins(format!("mad.lo.u64 {n}, {first}, {}, {at}", a.inner * size));
                at = n;
            }
            self.row_bases.insert(key, at);
        }
        if let Some(plan) = tile_plan {
            self.tile_setup(plan, &unclamped, &tid);
        }
        self.chunks_slot(&row_for_slot);
        for v in self.steps_at(Level::Row) {
            self.scalar_step(v);
        }
        if let Some(i) = self.lane_index() {
            self.cur.clear();
            for v in self.steps_at(Level::RowInner) {
                self.inner_step(v, Inner::Lane(i.clone()));
                if let Some(val) = self.cur.get(&v).cloned() {
                    self.per_chunk.insert((v, 0), val);
                }
            }
        } else if self.unrolled {
            for c in 0..self.static_inner() {
                self.cur.clear();
                for v in self.steps_at(Level::RowInner) {
                    self.inner_step(v, Inner::Static(c));
                    if let Some(val) = self.cur.get(&v).cloned() {
                        self.per_chunk.insert((v, c), val);
                    }
                }
            }
        }
        self.init_states();
        self.seq_loop();
        self.final_level();
        self.w.put_label(&done);
        self.w.ins("ret");
    }

    /// The inner indices a thread walks as `Inner::Static`: the whole inner dim, or its lane's
    /// run (numbered from the run's start; addresses add the start, see [`Self::base_key`]).
    fn static_inner(&self) -> usize {
        if self.lane_run().is_some() {
            self.lane_width
        } else {
            self.k.inner.unwrap_or(1)
        }
    }

    /// The first inner index of this lane's run, where lanes own runs of inner indices.
    fn lane_run(&self) -> Option<String> {
        match &self.mapping {
            Mapping::Lanes(l) if self.lane_width > 1 => Some(l.i.clone()),
            _ => None,
        }
    }

    /// The inner index this lane owns, where lanes own one inner index each.
    fn lane_index(&self) -> Option<String> {
        match &self.mapping {
            Mapping::Lanes(l) if self.lane_width == 1 => Some(l.i.clone()),
            _ => None,
        }
    }

    /// The key of `a`'s row base address: where lanes own runs of inner indices, an access
    /// along the inner dim starts at its lane's run (its base includes the run's start).
    fn base_key(&self, a: &Access) -> (usize, Vec<usize>) {
        let mut row = a.row.clone();
        if self.lane_run().is_some() && a.inner != 0 {
            row.extend([usize::MAX, a.inner]);
        }
        (a.buffer, row)
    }

    /// The row dims' indices of row `row` (u64 registers), last dim fastest. A `div.u64` or
    /// `rem.u64`, even by a constant power of two, becomes a call to a 64-bit division routine
    /// of about 60 instructions in SASS; with fewer than 2^32 rows the split runs in 32 bits,
    /// where ptxas divides by a constant with a multiply and shifts.
    fn row_indices(&mut self, row: &str) -> Vec<String> {
        let n = self.k.rows.len();
        let mut idx = vec![String::new(); n];
        if n == 1 {
            idx[0] = row.to_string();
            return idx;
        }
        if self.k.row_count() > u32::MAX as usize {
            let mut rest = row.to_string();
            for (k, &extent) in self.k.rows.iter().enumerate().rev() {
                if k == 0 {
                    idx[k] = rest.clone();
                } else {
                    let (r, q) = (self.w.rd(), self.w.rd());
                    self.w.ins(format!("rem.u64 {r}, {rest}, {extent}"));
                    self.w.ins(format!("div.u64 {q}, {rest}, {extent}"));
                    idx[k] = r;
                    rest = q;
                }
            }
            return idx;
        }
        let mut rest = self.w.r();
        self.w.ins(format!("cvt.u32.u64 {rest}, {row}"));
        for (k, &extent) in self.k.rows.iter().enumerate().rev() {
            let i = self.w.rd();
            if k == 0 {
                self.w.ins(format!("cvt.u64.u32 {i}, {rest}"));
            } else {
                let (r, q) = (self.w.r(), self.w.r());
                self.w.ins(format!("rem.u32 {r}, {rest}, {extent}"));
                self.w.ins(format!("div.u32 {q}, {rest}, {extent}"));
                self.w.ins(format!("cvt.u64.u32 {i}, {r}"));
                rest = q;
            }
            idx[k] = i;
        }
        idx
    }

    fn inner_indices(&mut self, mut f: impl FnMut(&mut Self, Inner)) {
        let n = self.static_inner();
        if let Some(i) = self.lane_index() {
            self.cur.clear();
            f(self, Inner::Lane(i));
            return;
        }
        if self.unrolled {
            for c in 0..n {
                self.cur.clear();
                f(self, Inner::Static(c));
            }
            return;
        }
        let i = self.w.rd();
        self.w.ins(format!("mov.u64 {i}, 0"));
        let (head, done) = self.w.loop_head("inner", &i, &n.to_string());
        self.cur.clear();
        if let Some(rows_inner) = Some(self.steps_at(Level::RowInner)) {
            for v in rows_inner {
                self.inner_step(v, Inner::Reg(i.clone()));
            }
        }
        f(self, Inner::Reg(i.clone()));
        self.w.ins(format!("add.u64 {i}, {i}, 1"));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
    }

    fn init_states(&mut self) {
        let scans: Vec<V> = (0..self.k.steps.len()).filter(|&v| matches!(self.k.steps[v].1, Step::Scan { .. })).collect();
        for v in scans {
            let Step::Scan { init, .. } = self.k.steps[v].1.clone() else { unreachable!() };
            if self.level(v) != Level::Inner {
                let h = self.w.f();
                match init {
                    Some(i) => self.w.ins(format!("mov.f32 {h}, {}", self.scalars[&i])),
                    None => self.w.ins(format!("mov.f32 {h}, {}", fimm(0.0))),
                }
                self.states.insert((v, usize::MAX), h);
                continue;
            }
            if !self.unrolled {
                let name = format!("state{v}");
                self.locals.push((name.clone(), self.k.inner.unwrap_or(1) * 4));
                self.states.insert((v, usize::MAX), name);
            }
            self.inner_indices(|t, at| {
                let h0 = match init {
                    Some(i) => t.operand(i, &at),
                    None => fimm(0.0),
                };
                match at {
                    Inner::Static(c) => {
                        let h = t.w.f();
                        let chunk = match &t.mapping {
                            Mapping::Chunked(ch) if ch.scan == v => Some((ch.pass, ch.c.clone(), ch.slot.clone(), ch.extra.clone())),
                            _ => None,
                        };
                        match chunk {
                            Some((ChunkPass::Summary, chunk_reg, ..)) => {
                                // chunk 0 from the scan's own initial state, the others from
                                // zero: the combine (from zero) then carries the initial state
                                // into every later chunk's start through chunk 0's end state
                                if init.is_some() {
                                    let first = t.w.p();
                                    t.w.ins(format!("setp.eq.u64 {first}, {chunk_reg}, 0"));
                                    t.w.ins(format!("selp.f32 {h}, {h0}, {}, {first}", fimm(0.0)));
                                } else {
                                    t.w.ins(format!("mov.f32 {h}, {}", fimm(0.0)));
                                }
                                let p = t.w.f();
                                t.w.ins(format!("mov.f32 {p}, {}", fimm(1.0)));
                                if let Mapping::Chunked(ch) = &mut t.mapping {
                                    ch.prods.insert(c, p);
                                }
                            }
                            Some((ChunkPass::Main, chunk_reg, slot, extra)) => {
                                // chunk 0 starts from the scan's own initial state
                                let (addr, start, first) = (t.w.rd(), t.w.f(), t.w.p());
                                t.w.ins(format!("add.u64 {addr}, {}, {slot}", extra[0]));
                                t.w.ins(format!("ld.global.f32 {start}, [{addr}+{}]", c * 4));
                                t.w.ins(format!("setp.eq.u64 {first}, {chunk_reg}, 0"));
                                t.w.ins(format!("selp.f32 {h}, {h0}, {start}, {first}"));
                            }
                            None => t.w.ins(format!("mov.f32 {h}, {h0}")),
                        }
                        t.states.insert((v, c), h);
                    }
                    Inner::Lane(_) => {
                        let h = t.w.f();
                        t.w.ins(format!("mov.f32 {h}, {h0}"));
                        t.states.insert((v, 0), h);
                    }
                    Inner::Reg(i) => {
                        let addr = t.local_addr(v, &i);
                        t.w.ins(format!("st.local.f32 [{addr}], {h0}"));
                    }
                    Inner::None => unreachable!("inner states have an inner index"),
                }
            });
        }
    }

    /// The inner pass of one seq step and the reduction of its sums (left in `scalars`; with
    /// `partial`, each lane's partial sums, which the caller reduces).
    fn inner_and_sums(&mut self, partial: bool) {
        let summary = matches!(&self.mapping, Mapping::Chunked(c) if c.pass == ChunkPass::Summary);
        let sums: Vec<V> = if summary {
            vec![]
        } else {
            self.steps_at(Level::SeqPost).into_iter().filter(|&v| matches!(self.k.steps[v].1, Step::Sum(_))).collect()
        };
        // an unrolled inner dim of 8 or more sums into 4 partial sums (4 short dependency chains
        // instead of one long one; a float reassociation), added pairwise at the end
        let n = self.k.inner.unwrap_or(1);
        let parts = if self.unrolled && !matches!(self.mapping, Mapping::Lanes(_)) && n >= 8 { 4 } else { 1 };
        let mut accs: HashMap<V, Vec<String>> = HashMap::new();
        for &s in &sums {
            let regs: Vec<String> = (0..parts).map(|_| self.w.f()).collect();
            for acc in &regs {
                self.w.ins(format!("mov.f32 {acc}, {}", fimm(0.0)));
            }
            accs.insert(s, regs);
        }
        let inner = self.steps_at(Level::Inner);
        self.inner_indices(|tr, at| {
            for &v in &inner {
                tr.inner_step(v, at.clone());
            }
            for &s in &sums {
                let Step::Sum(x) = tr.k.steps[s].1 else { unreachable!() };
                let val = tr.operand(x, &at);
                let part = match at {
                    Inner::Static(c) => c % parts,
                    _ => 0,
                };
                let acc = accs[&s][part].clone();
                tr.w.ins(format!("add.f32 {acc}, {acc}, {val}"));
            }
        });
        for &s in &sums {
            let mut level = accs[&s].clone();
            while level.len() > 1 {
                level = level
                    .chunks(2)
                    .map(|p| {
                        let d = self.w.f();
                        self.w.ins(format!("add.f32 {d}, {}, {}", p[0], p[1]));
                        d
                    })
                    .collect();
            }
            let mut acc = level.pop().expect("one sum");
            if let (Mapping::Lanes(lane), false) = (&self.mapping, partial) {
                // inactive lanes add nothing; then a butterfly over the row's lanes
                let active = lane.active.clone();
                let m = self.w.f();
                self.w.ins(format!("selp.f32 {m}, {acc}, {}, {active}", fimm(0.0)));
                acc = m;
                let mut off = self.lanes / 2;
                while off >= 1 {
                    let (t, n) = (self.w.f(), self.w.f());
                    self.w.ins(format!("shfl.sync.bfly.b32 {t}, {acc}, {off}, 31, -1"));
                    self.w.ins(format!("add.f32 {n}, {acc}, {t}"));
                    acc = n;
                    off /= 2;
                }
            }
            self.scalars.insert(s, acc);
        }
    }

    /// The seq loop of the thread's mapping.
    fn seq_loop(&mut self) {
        if let Mapping::Warp(ws) = &self.mapping {
            let ws = ws.clone();
            return self.seq_loop_warp_scan(&ws);
        }
        if let (Mapping::Lanes(lane), Some(extent)) = (&self.mapping, self.lane_blocks()) {
            let lane = lane.clone();
            return self.seq_loop_lane_blocks(&lane, extent);
        }
        self.seq_loop_rows();
    }

    /// One seq step at the current `l`: its seq-level values, the inner pass, the sums and the
    /// epilogue.
    pub(super) fn one_step(&mut self) {
        let pre = self.step_pre();
        self.step_rest(pre);
    }

    /// A step's seq-level values before its inner pass (the scalars in scope with them).
    pub(super) fn step_pre(&mut self) -> HashMap<V, String> {
        let saved = self.scalars.clone();
        for v in self.steps_at(Level::SeqPre) {
            self.scalar_step(v);
        }
        std::mem::replace(&mut self.scalars, saved)
    }

    /// The rest of a step (inner pass, sums, epilogue), with `pre` from [`Self::step_pre`].
    pub(super) fn step_rest(&mut self, pre: HashMap<V, String>) {
        let saved = std::mem::replace(&mut self.scalars, pre);
        self.inner_and_sums(false);
        for v in self.steps_at(Level::SeqPost) {
            self.scalar_step(v);
        }
        self.scalars = saved;
    }

    fn final_level(&mut self) {
        let chunk = match &self.mapping {
            Mapping::Chunked(ch) => Some((ch.pass, ch.c.clone(), ch.slot.clone(), ch.extra.clone(), ch.chunks, ch.scan, ch.prods.clone())),
            _ => None,
        };
        if let Some((pass, c, slot, extra, chunks, scan, prods)) = chunk {
            if pass == ChunkPass::Summary {
                let (pa, ha) = (self.w.rd(), self.w.rd());
                self.w.ins(format!("add.u64 {pa}, {}, {slot}", extra[0]));
                self.w.ins(format!("add.u64 {ha}, {}, {slot}", extra[1]));
                for i in 0..self.k.inner.unwrap_or(1) {
                    let p = prods[&i].clone();
                    let h = self.states[&(scan, i)].clone();
                    self.w.ins(format!("st.global.f32 [{pa}+{}], {p}", i * 4));
                    self.w.ins(format!("st.global.f32 [{ha}+{}], {h}", i * 4));
                }
                return;
            }
            // only the last chunk holds the final states
            let skip = self.w.label("not_last");
            let p = self.w.p();
            self.w.ins(format!("setp.ne.u64 {p}, {c}, {}", chunks - 1));
            self.w.ins(format!("@{p} bra {skip}"));
            self.final_steps();
            self.w.put_label(&skip);
            return;
        }
        self.final_steps();
    }

    fn final_steps(&mut self) {
        let steps = self.steps_at(Level::Final);
        let chunked = |t: &Self, v: V| match &t.k.steps[v].1 {
            Step::Final(s) => t.level(*s) == Level::Inner,
            Step::Store(x, _) => matches!(&t.k.steps[*x].1, Step::Final(s) if t.level(*s) == Level::Inner),
            _ => false,
        };
        let (vec_steps, scalar_steps): (Vec<V>, Vec<V>) = steps.into_iter().partition(|&v| chunked(self, v));
        for v in scalar_steps {
            self.scalar_step(v);
        }
        if !vec_steps.is_empty() {
            self.inner_indices(|t, at| {
                for &v in &vec_steps {
                    t.inner_step(v, at.clone());
                }
            });
        }
    }

    fn operand(&mut self, v: V, at: &Inner) -> String {
        match (self.level(v), at) {
            (Level::Row | Level::SeqPre | Level::SeqPost, _) => self.scalars[&v].clone(),
            (Level::RowInner, Inner::Static(c)) if self.unrolled => self.per_chunk[&(v, *c)].clone(),
            (Level::RowInner, Inner::Lane(_)) => self.per_chunk[&(v, 0)].clone(),
            _ => self.cur[&v].clone(),
        }
    }

    fn scalar_step(&mut self, v: V) {
        if let Some(val) = self.emit(v, Inner::None, true) {
            self.scalars.insert(v, val);
        }
    }

    fn inner_step(&mut self, v: V, at: Inner) {
        if let Some(val) = self.emit(v, at, false) {
            self.cur.insert(v, val);
        }
    }
}

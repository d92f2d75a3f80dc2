//! Tiles: the seq loop in blocks of `T` steps, each warp staging its 32 rows' seq-indexed
//! inputs for a block through its own region of shared memory, and writing its outputs back
//! the same way.
//!
//! One thread per row reads `u[row, l]` with neighbouring lanes `len` elements apart: every
//! warp load touches 32 cache lines. Staged, a warp instead reads each row's `T` consecutive
//! elements with `T` lanes at once (coalesced), stores them to `[32 rows][T + 1]` (padded, so
//! both the fill and the per-step reads are free of bank conflicts), and each thread then walks
//! its row's `T` steps from shared memory. Inputs the whole warp shares (`B[b, n, l]` for a warp
//! inside one batch) are staged once per warp as `[T][stride]` and read with broadcast
//! `ld.shared.v4`. Only `bar.warp.sync` is needed: a warp never reads another warp's region.

use super::{Chunked, Inner, Translator};
use ssmc_kernel::{Access, Kir, Level, Step};

/// Steps per iteration of the loop over a full tile.
const UNROLL: usize = 4;
/// Static shared memory one block may use.
pub(crate) const SHARED_LIMIT: usize = 48 * 1024;

/// What one staged access holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StageKind {
    /// A value per row and step (`[32][T + 1]` f32); `store`: written by the steps, flushed to
    /// global memory after each tile.
    PerRow { store: bool },
    /// `n` values per step shared by the warp's rows (`[T][stride]` f32).
    Uniform { n: usize },
}

/// One staged access.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub(crate) access: Access,
    pub(crate) kind: StageKind,
    /// Byte offset in the warp's region.
    pub(crate) offset: usize,
    /// Per-row only: lane `r`'s row sits `r` rows after lane 0's in the last row dim, so its
    /// address is lane 0's plus a constant (no shuffle per row).
    pub(crate) affine: bool,
}

/// How a kernel's seq loop is tiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Tiling {
    /// Steps per tile (0: no tiles; else a divisor of 32).
    pub steps: usize,
    /// Issue each tile's global loads into registers before the previous tile's steps (hides
    /// their latency; costs a register per fill instruction, so fewer warps fit an SM).
    pub prefetch: bool,
    /// Warps per block of threads, each with its own region of shared memory (tiles, the warp
    /// scan's combine), all within [`SHARED_LIMIT`].
    pub warps: usize,
}

/// The tile layout of one kernel.
#[derive(Clone, Debug)]
pub(crate) struct TilePlan {
    /// Steps per tile (`T`, a divisor of 32).
    pub(crate) steps: usize,
    pub(crate) stages: Vec<Stage>,
    /// Bytes of shared memory per warp.
    pub(crate) warp_bytes: usize,
    /// Words per step in uniform stages.
    pub(crate) stride: usize,
    /// Whether each tile's loads are issued before the previous tile's steps.
    pub(crate) prefetch: bool,
    /// Warps per block (one region each).
    pub(crate) warps: usize,
    /// The seq dim's extent and whether the scan runs in reverse.
    seq: (usize, bool),
}

/// Whether `a` has the same address for all 32 rows of a warp: its trailing zero-stride row
/// dims span a multiple of 32 rows.
fn warp_uniform(k: &Kir, a: &Access) -> bool {
    let mut span = 1;
    for (&extent, &stride) in k.rows.iter().zip(&a.row).rev() {
        if stride != 0 {
            break;
        }
        span *= extent;
    }
    span % 32 == 0
}

/// The tile layout for `k` with `steps` steps per tile, or `None` where tiles do not apply
/// (lanes, no seq dim, a seq shorter than a tile, chunks that split a warp, nothing to stage).
pub(crate) fn plan(k: &Kir, tiling: Tiling, lanes: u32, unrolled: bool, chunked: Option<&Chunked>) -> Option<TilePlan> {
    let steps = tiling.steps;
    let (extent, reverse) = k.seq?;
    if steps == 0 || 32 % steps != 0 || lanes != 1 || extent < steps {
        return None;
    }
    if chunked.is_some() && !k.row_count().is_multiple_of(32) {
        return None;
    }
    let last_extent = *k.rows.last()?;
    let mut per_row: Vec<(Access, bool)> = vec![];
    let mut uniform: Vec<(Access, usize)> = vec![];
    for (v, (level, step)) in k.steps.iter().enumerate() {
        if chunked.is_some_and(|c| c.pass == super::ChunkPass::Summary && !c.needed.contains(&v)) {
            continue;
        }
        match (level, step) {
            (Level::SeqPre, Step::Load(a)) if a.seq != 0 => {
                if warp_uniform(k, a) {
                    uniform.push((a.clone(), 1));
                } else {
                    per_row.push((a.clone(), false));
                }
            }
            (Level::Inner, Step::Load(a)) if a.seq != 0 && unrolled && warp_uniform(k, a) => uniform.push((a.clone(), k.inner.unwrap_or(1))),
            (Level::SeqPost, Step::Store(_, a)) if a.seq != 0 && !warp_uniform(k, a) => per_row.push((a.clone(), true)),
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    per_row.retain(|x| seen.insert((x.0.clone(), x.1)));
    let mut seen = std::collections::HashSet::new();
    uniform.retain(|x| seen.insert(x.0.clone()));
    let stride = uniform.iter().map(|&(_, n)| if n == 1 { 1 } else { n.next_multiple_of(4) + 4 }).max().unwrap_or(1);
    let warps = tiling.warps.max(1);
    let mut stages = vec![];
    let mut used = 0;
    let mut add = |access: Access, kind: StageKind, bytes: usize| {
        if (used + bytes) * warps <= SHARED_LIMIT {
            // lane r's row is r rows after lane 0's, at an offset that fits an immediate
            let step = access.row.last().copied().unwrap_or(0) * k.buffers[access.buffer].dtype.size();
            let affine = matches!(kind, StageKind::PerRow { .. }) && last_extent % 32 == 0 && 32 * step < i32::MAX as usize;
            stages.push(Stage { access, kind, offset: used, affine });
            used += bytes;
        }
    };
    // loads a thread would read 32 lines apart gain most; then stores; then shared inputs
    for store in [false, true] {
        for (a, s) in per_row.iter().filter(|x| x.1 == store) {
            add(a.clone(), StageKind::PerRow { store: *s }, 32 * (steps + 1) * 4);
        }
    }
    for (a, n) in uniform {
        add(a, StageKind::Uniform { n }, steps * stride * 4);
    }
    (!stages.is_empty()).then_some(TilePlan { steps, stages, warp_bytes: used, stride, prefetch: tiling.prefetch, warps, seq: (extent, reverse) })
}

/// A tiled kernel's registers.
#[derive(Clone)]
pub(crate) struct Tile {
    pub(crate) plan: TilePlan,
    /// `lane / T`: the row (per-row stages) or inner index (uniform) this lane fills (u64).
    sub: String,
    /// `lane % T`: the step this lane fills (u64).
    jj: String,
    /// The row lane 0 handles (before clamping), u64.
    pub(crate) warp_row0: String,
    /// Per stage: this lane's fill address in shared memory (u32) and the global address its
    /// fill starts from (u64; per-row stages without `affine`: this thread's own row base).
    fill: Vec<(String, String)>,
    /// This thread's row in per-row stages at step 0 (u32).
    row_ptr0: String,
    /// The warp's region (u32).
    warp_base: String,
    /// Per stage, per fill instruction: its guard (`@p ` where the lanes past a uniform
    /// stage's last inner index fill nothing, else empty), computed once per thread.
    guards: Vec<Vec<String>>,
}

impl Translator<'_> {
    /// One thread per row, a warp alive while any of its rows exists: the others repeat the
    /// last row, unstored (their `valid` is false).
    pub(super) fn tiles_prologue(&mut self, thread: &str, rows: &str, done: &str) -> String {
        let w = &mut self.w;
        let (lane, w0) = (w.rd(), w.rd());
        w.ins(format!("and.b64 {lane}, {thread}, 31"));
        w.ins(format!("sub.u64 {w0}, {thread}, {lane}"));
        w.exit_if_ge(&w0, rows, done);
        let (valid, last, rc) = (w.p(), w.rd(), w.rd());
        w.ins(format!("setp.lt.u64 {valid}, {thread}, {rows}"));
        w.ins(format!("sub.u64 {last}, {rows}, 1"));
        w.ins(format!("min.u64 {rc}, {thread}, {last}"));
        self.valid = Some(valid);
        rc
    }

    /// Sets up the tile registers (once per thread): `row` is this thread's row before clamping.
    pub(super) fn tile_setup(&mut self, plan: TilePlan, row: &str, tid: &str) {
        let t = plan.steps as u64;
        let w = &mut self.w;
        let (lane, sub, jj, warp_row0) = (w.rd(), w.rd(), w.rd(), w.rd());
        let lane32 = w.r();
        w.ins(format!("and.b32 {lane32}, {tid}, 31"));
        w.ins(format!("cvt.u64.u32 {lane}, {lane32}"));
        w.ins(format!("and.b64 {jj}, {lane}, {}", t - 1));
        w.ins(format!("shr.u64 {sub}, {lane}, {}", t.trailing_zeros()));
        w.ins(format!("sub.u64 {warp_row0}, {row}, {lane}"));
        let (warp, base) = (w.r(), w.r());
        w.ins(format!("shr.u32 {warp}, {tid}, 5"));
        w.ins(format!("mov.u32 {base}, tile_smem"));
        w.ins(format!("mad.lo.u32 {base}, {warp}, {}, {base}", plan.warp_bytes));
        let row_ptr0 = w.r();
        w.ins(format!("mad.lo.u32 {row_ptr0}, {lane32}, {}, {base}", (plan.steps + 1) * 4));
        let (sub32, jj32) = (w.r(), w.r());
        w.ins(format!("cvt.u32.u64 {sub32}, {sub}"));
        w.ins(format!("cvt.u32.u64 {jj32}, {jj}"));
        let mut fill = vec![];
        for s in &plan.stages {
            let a = &s.access;
            let size = self.k.buffers[a.buffer].dtype.size();
            let own = self.row_bases[&(a.buffer, a.row.clone())].clone();
            let w = &mut self.w;
            let sh = w.r();
            let g = match s.kind {
                StageKind::PerRow { .. } => {
                    // [r][j] at (r * (T + 1) + j) * 4: lane fills row sub + k R, step jj
                    w.ins(format!("mad.lo.u32 {sh}, {sub32}, {}, {jj32}", plan.steps + 1));
                    w.ins(format!("mad.lo.u32 {sh}, {sh}, 4, {base}"));
                    if s.affine {
                        let g = w.rd();
                        shfl_u64(w, &g, &own, "0");
                        w.ins(format!("mad.lo.u64 {g}, {sub}, {}, {g}", a.row.last().copied().unwrap_or(0) * size));
                        g
                    } else {
                        own
                    }
                }
                StageKind::Uniform { .. } => {
                    // [j][i] at (j * stride + i) * 4: lane fills inner index sub + k R, step jj
                    w.ins(format!("mad.lo.u32 {sh}, {jj32}, {}, {sub32}", plan.stride));
                    w.ins(format!("mad.lo.u32 {sh}, {sh}, 4, {base}"));
                    let g = w.rd();
                    w.ins(format!("mad.lo.u64 {g}, {sub}, {}, {own}", a.inner * size));
                    g
                }
            };
            w.ins(format!("add.u32 {sh}, {sh}, {}", s.offset));
            fill.push((sh, g));
        }
        let rows_per = 32 / plan.steps;
        let guards = plan
            .stages
            .iter()
            .map(|s| match s.kind {
                StageKind::PerRow { store: true } => vec![],
                StageKind::PerRow { store: false } => vec![String::new(); plan.steps],
                StageKind::Uniform { n } => (0..n.div_ceil(rows_per))
                    .map(|k| {
                        let i0 = k * rows_per;
                        if i0 + rows_per <= n {
                            return String::new();
                        }
                        let p = self.w.p();
                        self.w.ins(format!("setp.lt.u64 {p}, {sub}, {}", n - i0));
                        format!("@{p} ")
                    })
                    .collect(),
            })
            .collect();
        self.tile = Some(Tile { plan, sub, jj, warp_row0, fill, row_ptr0, warp_base: base, guards });
    }

    /// The seq loop, tile by tile: stage, walk the tile's steps, flush.
    pub(super) fn seq_loop_tiles(&mut self, tile: &Tile, start: String, end: String) {
        let (extent, reverse) = tile.plan.seq;
        let (steps, jj) = (tile.plan.steps, tile.jj.clone());
        let t = self.w.rd();
        self.w.ins(format!("mov.u64 {t}, {start}"));
        let last = self.w.rd();
        self.w.ins(format!("sub.u64 {last}, {end}, 1"));
        // the step lane jj fills in the tile at `from` (clamped to the last step: slots past
        // the end are never read, and a tile past the end only loads the last step again)
        let lane_step = |tr: &mut Self, from: &str, ahead: usize| {
            let lel = tr.w.rd();
            tr.w.ins(format!("add.u64 {lel}, {from}, {jj}"));
            if ahead > 0 {
                tr.w.ins(format!("add.u64 {lel}, {lel}, {ahead}"));
            }
            tr.w.ins(format!("min.u64 {lel}, {lel}, {last}"));
            if reverse {
                tr.w.ins(format!("sub.u64 {lel}, {}, {lel}", extent - 1));
            }
            lel
        };
        // software pipelining: the first tile's loads before the loop, each next tile's issued
        // before the current tile's steps, so their latency hides behind the steps
        let regs = self.fill_regs(tile);
        let prefetch = tile.plan.prefetch;
        if prefetch {
            let lel0 = lane_step(self, &t, 0);
            self.tile_issue(tile, &lel0, &regs);
        }
        let (head, done) = self.w.loop_head("tile", &t, &end);
        let count = self.w.rd();
        self.w.ins(format!("sub.u64 {count}, {end}, {t}"));
        self.w.ins(format!("min.u64 {count}, {count}, {steps}"));
        let lel = lane_step(self, &t, 0);
        let in_tile = self.w.p();
        self.w.ins(format!("setp.lt.u64 {in_tile}, {jj}, {count}"));
        self.w.ins("bar.warp.sync -1");
        if !prefetch {
            self.tile_issue(tile, &lel, &regs);
        }
        self.tile_commit(tile, &regs);
        self.w.ins("bar.warp.sync -1");
        if prefetch {
            let next = lane_step(self, &t, steps);
            self.tile_issue(tile, &next, &regs);
        }
        // the tile's steps: a full tile UNROLL steps per iteration (so that ptxas interleaves
        // the independent parts of neighbouring steps: an in-order warp otherwise waits out each
        // step's dependency chain), a partial one step by step
        let (rolled, steps_done) = (self.w.label("tile_part"), self.w.label("steps_done"));
        let unroll = UNROLL.min(steps);
        if unroll > 1 {
            let full = self.w.p();
            self.w.ins(format!("setp.ne.u64 {full}, {count}, {steps}"));
            self.w.ins(format!("@{full} bra {rolled}"));
            self.tile_steps(tile, &t, &count, unroll);
            self.w.ins(format!("bra {steps_done}"));
        }
        self.w.put_label(&rolled);
        self.tile_steps(tile, &t, &count, 1);
        self.w.put_label(&steps_done);
        self.set_l(None);
        self.w.ins("bar.warp.sync -1");
        self.tile_flush(tile, &lel, &in_tile);
        self.w.ins(format!("add.u64 {t}, {t}, {steps}"));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
    }

    /// The steps `t + j` for `j < count`, `unroll` per loop iteration (`count` a multiple).
    fn tile_steps(&mut self, tile: &Tile, t: &str, count: &str, unroll: usize) {
        let (extent, reverse) = tile.plan.seq;
        let (row_ptr0, warp_base, stride) = (tile.row_ptr0.clone(), tile.warp_base.clone(), tile.plan.stride);
        let (j, rp, up) = (self.w.rd(), self.w.r(), self.w.r());
        self.w.ins(format!("mov.u64 {j}, 0"));
        self.w.ins(format!("mov.u32 {rp}, {row_ptr0}"));
        self.w.ins(format!("mov.u32 {up}, {warp_base}"));
        let (head, done) = self.w.loop_head("step", &j, count);
        // every step's seq-level work first (it never depends on an earlier step's inner pass),
        // so that ptxas sees it as independent of the scan chain
        let mut pre = vec![];
        for u in 0..unroll {
            let (l, rpu, upu) = (self.w.rd(), self.w.r(), self.w.r());
            self.w.ins(format!("add.u64 {l}, {t}, {j}"));
            if u > 0 {
                self.w.ins(format!("add.u64 {l}, {l}, {u}"));
            }
            if reverse {
                self.w.ins(format!("sub.u64 {l}, {}, {l}", extent - 1));
            }
            self.w.ins(format!("add.u32 {rpu}, {rp}, {}", u * 4));
            self.w.ins(format!("add.u32 {upu}, {up}, {}", u * stride * 4));
            self.set_l(Some(l.clone()));
            self.tile_at = Some((rpu.clone(), upu.clone()));
            let values = self.step_pre();
            pre.push((l, rpu, upu, values));
        }
        for (l, rpu, upu, values) in pre {
            self.set_l(Some(l));
            self.tile_at = Some((rpu, upu));
            self.step_rest(values);
        }
        self.tile_at = None;
        self.w.ins(format!("add.u64 {j}, {j}, {unroll}"));
        self.w.ins(format!("add.u32 {rp}, {rp}, {}", unroll * 4));
        self.w.ins(format!("add.u32 {up}, {up}, {}", unroll * stride * 4));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
    }

    /// Global byte offset of seq step `lel` in `a`.
    fn seq_offset(&mut self, a: &Access, lel: &str) -> String {
        let size = self.k.buffers[a.buffer].dtype.size();
        let o = self.w.rd();
        self.w.ins(format!("mul.lo.u64 {o}, {lel}, {}", a.seq * size));
        o
    }

    /// The global address lane `sub + k R` of the warp fills from, for per-row stage `s`
    /// (`k` counted in rows).
    fn row_source(&mut self, tile: &Tile, s: usize, r0: usize, seq_off: &str) -> String {
        let stage = tile.plan.stages[s].clone();
        let (g, sub) = (tile.fill[s].1.clone(), tile.sub.clone());
        let size = self.k.buffers[stage.access.buffer].dtype.size();
        let a = self.w.rd();
        if stage.affine {
            let off = r0 * stage.access.row.last().copied().unwrap_or(0) * size;
            self.w.ins(format!("add.u64 {a}, {g}, {seq_off}"));
            if off > 0 {
                self.w.ins(format!("add.u64 {a}, {a}, {off}"));
            }
        } else {
            let src = self.w.r();
            self.w.ins(format!("cvt.u32.u64 {src}, {sub}"));
            self.w.ins(format!("add.u32 {src}, {src}, {r0}"));
            let b = self.w.rd();
            shfl_u64(&mut self.w, &b, &g, &src);
            self.w.ins(format!("add.u64 {a}, {b}, {seq_off}"));
        }
        a
    }

    /// Registers for one tile's fill: per stage, one per fill instruction (none for stores).
    fn fill_regs(&mut self, tile: &Tile) -> Vec<Vec<String>> {
        let counts: Vec<(usize, ssmc_ir::DType)> =
            tile.plan.stages.iter().zip(&tile.guards).map(|(s, g)| (g.len(), self.k.buffers[s.access.buffer].dtype)).collect();
        counts.into_iter().map(|(count, dtype)| (0..count).map(|_| self.raw_reg(dtype)).collect()).collect()
    }

    /// Issues the global loads of the tile whose lane-`jj` step is `lel` into `regs` (nothing
    /// waits for them here).
    fn tile_issue(&mut self, tile: &Tile, lel: &str, regs: &[Vec<String>]) {
        let plan = &tile.plan;
        let rows_per = 32 / plan.steps;
        for (s, stage) in plan.stages.iter().enumerate() {
            let a = &stage.access;
            let (dtype, size) = (self.k.buffers[a.buffer].dtype, self.k.buffers[a.buffer].dtype.size());
            match stage.kind {
                StageKind::PerRow { store: true } => {}
                StageKind::PerRow { store: false } => {
                    let so = self.seq_offset(a, lel);
                    for (k, r) in regs[s].iter().enumerate() {
                        let addr = self.row_source(tile, s, k * rows_per, &so);
                        self.load_raw(dtype, r, &addr, "");
                    }
                }
                StageKind::Uniform { .. } => {
                    let so = self.seq_offset(a, lel);
                    let g = tile.fill[s].1.clone();
                    let base = self.w.rd();
                    self.w.ins(format!("add.u64 {base}, {g}, {so}"));
                    for (k, r) in regs[s].iter().enumerate() {
                        let guard = tile.guards[s][k].clone();
                        self.load_raw(dtype, r, &format!("{base}+{}", k * rows_per * a.inner * size), &guard);
                    }
                }
            }
        }
    }

    /// Stores the values in `regs` (from [`Self::tile_issue`]) to the warp's region.
    fn tile_commit(&mut self, tile: &Tile, regs: &[Vec<String>]) {
        let plan = &tile.plan;
        let rows_per = 32 / plan.steps;
        for (s, stage) in plan.stages.iter().enumerate() {
            let dtype = self.k.buffers[stage.access.buffer].dtype;
            let sh = tile.fill[s].0.clone();
            for (k, r) in regs[s].iter().enumerate() {
                let v = self.widen(dtype, r);
                let (guard, at) = match stage.kind {
                    StageKind::Uniform { .. } => (tile.guards[s][k].clone(), k * rows_per * 4),
                    StageKind::PerRow { .. } => (String::new(), k * rows_per * (plan.steps + 1) * 4),
                };
                self.w.ins(format!("{guard}st.shared.f32 [{sh}+{at}], {v}"));
            }
        }
    }

    fn tile_flush(&mut self, tile: &Tile, lel: &str, in_tile: &str) {
        let plan = &tile.plan;
        let rows_per = 32 / plan.steps;
        let rows = self.rows_param.clone();
        for (s, stage) in plan.stages.iter().enumerate() {
            if stage.kind != (StageKind::PerRow { store: true }) {
                continue;
            }
            let so = self.seq_offset(&stage.access, lel);
            let sh = tile.fill[s].0.clone();
            for k in 0..plan.steps {
                let r0 = k * rows_per;
                let v = self.w.f();
                self.w.ins(format!("ld.shared.f32 {v}, [{sh}+{}]", r0 * (plan.steps + 1) * 4));
                let addr = self.row_source(tile, s, r0, &so);
                // the source row must exist (the last warp may run past the rows)
                let (w0, sub) = (tile.warp_row0.clone(), tile.sub.clone());
                let (r, ok, p) = (self.w.rd(), self.w.p(), self.w.p());
                self.w.ins(format!("add.u64 {r}, {w0}, {sub}"));
                self.w.ins(format!("add.u64 {r}, {r}, {r0}"));
                self.w.ins(format!("setp.lt.u64 {ok}, {r}, {rows}"));
                self.w.ins(format!("and.pred {p}, {ok}, {in_tile}"));
                self.w.ins(format!("@{p} st.global.f32 [{addr}], {v}"));
            }
        }
    }

    /// Where a tile's step is being emitted, the stage holding `a` (as loaded, or as stored
    /// with `store`) and the step's row and uniform pointers in shared memory.
    fn stage_of(&self, a: &Access, store: bool) -> Option<(Stage, String, String)> {
        let tile = self.tile.as_ref()?;
        let (rp, up) = self.tile_at.clone()?;
        let stage = tile.plan.stages.iter().find(|s| {
            s.access == *a
                && match s.kind {
                    StageKind::PerRow { store: st } => st == store,
                    StageKind::Uniform { .. } => !store,
                }
        })?;
        Some((stage.clone(), rp, up))
    }

    /// A staged load of the current step (from shared memory), or `None` if `a` is not staged.
    pub(super) fn tile_read(&mut self, a: &Access, at: &Inner) -> Option<String> {
        let (stage, rp, up) = self.stage_of(a, false)?;
        match stage.kind {
            StageKind::PerRow { .. } => {
                let d = self.w.f();
                self.w.ins(format!("ld.shared.f32 {d}, [{rp}+{}]", stage.offset));
                Some(d)
            }
            StageKind::Uniform { n } => {
                let c = match at {
                    Inner::Static(c) => *c,
                    _ => 0,
                };
                if n % 4 == 0 {
                    // four inner indices at once, broadcast to the warp
                    return Some(self.load4(a, c, |_, c0| (format!("{up}+{}", stage.offset + c0 * 4), "shared")));
                }
                let d = self.w.f();
                self.w.ins(format!("ld.shared.f32 {d}, [{up}+{}]", stage.offset + c * 4));
                Some(d)
            }
        }
    }

    /// Writes `val` to the staged copy of `a` (flushed after the tile); false if not staged.
    pub(super) fn tile_write(&mut self, a: &Access, val: &str) -> bool {
        let Some((stage, rp, _)) = self.stage_of(a, true) else { return false };
        self.w.ins(format!("st.shared.f32 [{rp}+{}], {val}", stage.offset));
        true
    }

    /// The `.shared` declaration of a tiled entry.
    pub(super) fn tile_decl(&self) -> Option<String> {
        let t = self.tile.as_ref()?;
        Some(format!("\t.shared .align 16 .b8 tile_smem[{}];\n", t.plan.warp_bytes * t.plan.warps))
    }
}

/// `dst = src` of lane `from` (a u64 through two 32-bit shuffles).
fn shfl_u64(w: &mut crate::regs::Regs, dst: &str, src: &str, from: &str) {
    let (lo, hi, lo2, hi2) = (w.r(), w.r(), w.r(), w.r());
    w.ins(format!("mov.b64 {{{lo}, {hi}}}, {src}"));
    w.ins(format!("shfl.sync.idx.b32 {lo2}, {lo}, {from}, 31, -1"));
    w.ins(format!("shfl.sync.idx.b32 {hi2}, {hi}, {from}, 31, -1"));
    w.ins(format!("mov.b64 {dst}, {{{lo2}, {hi2}}}"));
}

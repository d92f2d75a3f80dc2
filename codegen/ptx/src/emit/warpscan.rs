//! The warp scan: one warp per row, its lanes over seq. Each block of `32 * p` steps gives lane
//! `j` the `p` consecutive steps from `t + j * p` (`p`: [`PER_LANE`], or twice that in two
//! passes). A lane walks its steps from
//! a zero state, keeping the decay product `P` and state `h` of its piece for every inner index;
//! the lanes then combine their pieces with the associative operator `(a1,b1) o (a2,b2) =
//! (a1 a2, a2 b1 + b2)`: through shared memory, where lane `c` walks state `c` through the 32
//! pieces in order from its carried state (up to 32 states), or else in five `shfl.sync.up`
//! levels (Kogge-Stone), the block's carried state folded into lane 0 first. Every `exp` of the
//! discretization runs once: the chunked schedule's
//! second scan is not needed, because the scan's consumers are linear in the state. A step's
//! `sum(x * h)` with the true state `h = h_local + P h_in` is `sum(x h_local) + sum((x P) h_in)`:
//! the lane keeps `x P` per step and inner index until `h_in`, the state entering its piece, is
//! known. Seq-level work (loads, softplus, the epilogue) runs once per step, on the lane that
//! owns it, and seq-contiguous accesses move as one vector per lane (`PER_LANE` steps). With
//! 16-bit inputs a block can instead give each lane 8 steps and take the states in two passes
//! (pieces, combine and sums of half the states each, the steps' sums carried across): the
//! combine then moves half the bytes per step ([`WarpScan::passes`]).

use super::{Inner, Mapping, Translator};
use crate::isa::fimm;
use ssmc_ir::{BinaryOp, DType};
use ssmc_kernel::{Access, Kir, Level, Schedule, Step, V};
use std::collections::{HashMap, HashSet};

/// Consecutive steps per lane.
pub const PER_LANE: usize = 4;

/// Registers per thread the warp scan's entries are held to (`.maxnreg`): 12 warps fit an SM,
/// so the 1536 rows of a batch of Mamba's smaller layers run in one wave on an H200 (132 SMs).
/// Left alone, ptxas hoists every vector load of a block and takes 254.
pub(crate) const MAX_REGS: usize = 168;

/// What the warp scan needs to know about a kernel (from [`warp_scannable`]).
#[derive(Clone, Debug)]
pub(crate) struct WarpScan {
    /// The seq dim's extent.
    pub extent: usize,
    /// The scan step.
    pub scan: V,
    /// The products `x * h` the sums consume: (product step, `x`, its sum step).
    pub products: Vec<(V, V, V)>,
    /// Every seq-indexed input is 16-bit, so the kernel has registers to spare at
    /// [`MAX_REGS`]. Then each piece's last step sums `x` times the next piece's entering state
    /// (its true state) instead of `x h_local + (x P) h_in` (16 fewer instructions a state per
    /// block, the entering and leaving states live together), whole blocks skip the clamps and
    /// step guards, and each step's correction is one chain. With f32 inputs (twice the
    /// registers per vector) ptxas spills more with these, inside the loop, so they are left
    /// out there.
    pub narrow: bool,
    /// A lane's piece is emitted state by state (each state through the lane's steps, its
    /// `(P, h)` stored for the combine as soon as it is complete) instead of step by step
    /// (every state at each step). With f32 inputs ptxas then spills less and the kernel runs
    /// faster; with 16-bit inputs it ran slower, so those keep the step-by-step order
    /// (docs/benchmarks.md).
    pub state_major: bool,
    /// Consecutive steps per lane: [`PER_LANE`], or twice that in two passes.
    pub per_lane: usize,
    /// The block's states in this many passes (1 or 2), each its own pieces, combine and
    /// sums, the steps' sums carried from one to the next. Two passes of 8 steps a lane (blocks
    /// of 256 steps) move half the combine's bytes per step: the 32 pieces' `(P, h)` of half
    /// the states per pass, over twice the steps. Where every seq-indexed input is 16-bit, the
    /// block whole and the states 8 to 32, an even count, summed only against something (a
    /// little faster there; with f32 vectors of 8 steps the registers run out).
    pub passes: usize,
    /// The lanes' vectors of outputs stored past L1 (`st.global.L1::no_allocate`; the
    /// schedule's choice, [`crate::GpuSchedule::WarpScan`]).
    pub stream_out: bool,
}

/// Whether `k` runs under the warp scan: a forward scan along seq (at least 64 steps) at the
/// inner level, the inner dim unrolled, no conv, no second scan, and every use of the state
/// either its final value or a product `x * h` (with `x` independent of the state) summed over
/// the inner dim: the consumers are then linear in the state, which the combine relies on.
pub(crate) fn warp_scannable(k: &Kir, schedule: &Schedule) -> Option<WarpScan> {
    let (extent, reverse) = k.seq?;
    let n = k.inner?;
    if reverse || extent < 64 || n > schedule.unroll_limit.max(1) {
        return None;
    }
    if k.steps.iter().any(|(_, st)| matches!(st, Step::Conv { .. } | Step::Gather { .. })) {
        return None;
    }
    let scans: Vec<V> = (0..k.steps.len()).filter(|&v| matches!(k.steps[v].1, Step::Scan { .. })).collect();
    let [scan] = scans[..] else { return None };
    if k.steps[scan].0 != Level::Inner {
        return None;
    }
    let users = |v: V| -> Vec<V> { (0..k.steps.len()).filter(|&u| k.steps[u].1.operands().contains(&v)).collect() };
    let mut products = vec![];
    for u in users(scan) {
        match k.steps[u].1 {
            Step::Final(_) => {}
            Step::Binary(BinaryOp::Mul, x, y) if k.steps[u].0 == Level::Inner && (x == scan) != (y == scan) => {
                let x = if x == scan { y } else { x };
                let sums = users(u);
                let [sum] = sums[..] else { return None };
                if !matches!(k.steps[sum].1, Step::Sum(_)) {
                    return None;
                }
                products.push((u, x, sum));
            }
            _ => return None,
        }
    }
    let narrow = k.steps.iter().all(|(_, st)| !matches!(st, Step::Load(a) if a.seq != 0 && k.buffers[a.buffer].dtype.size() != 2));
    // two passes of 8 steps a lane: whole blocks of 16-bit inputs, an even count of 8 to 32
    // states summed only against something
    let plain = k.steps.iter().enumerate().any(|(v, (_, st))| matches!(st, Step::Sum(_)) && !products.iter().any(|&(_, _, s)| s == v));
    let two = narrow && n.is_multiple_of(2) && (8..=32).contains(&n) && !plain && extent.is_multiple_of(32 * 2 * PER_LANE);
    let (per_lane, passes) = if two { (2 * PER_LANE, 2) } else { (PER_LANE, 1) };
    Some(WarpScan { extent, scan, products, narrow, state_major: !narrow, per_lane, passes, stream_out: false })
}

/// The shared-memory combine's name for its array, and the bytes per state in a warp's region:
/// the 32 pieces' `(P, h)` pairs, padded so that the walkers' 16-byte reads of 8 consecutive
/// states fall in distinct banks.
const SMEM: &str = "wscan_smem";
const ROW: usize = (2 * 32 + 4) * 4;

/// Bytes of one warp's region: per state, each piece's decay product and local state (the
/// first 32 words later its entering states).
fn region_bytes(n: usize) -> usize {
    n * ROW
}

/// Whether the shared-memory combine's regions of `warps` warps, `n` states each, fit a block's
/// shared memory (more than 32 states combine with shuffles, needing none).
pub(crate) fn regions_fit(n: usize, warps: usize) -> bool {
    n > 32 || region_bytes(n) * warps <= super::tiles::SHARED_LIMIT
}

/// A vector of 32-bit registers at `addr` in parts of at most 16 bytes (what one `ld` or `st`
/// moves): each part's address, register count and register list.
fn parts_of_16_bytes(addr: &str, regs: &[String]) -> Vec<(String, usize, String)> {
    regs.chunks(4)
        .enumerate()
        .map(|(q, part)| (if q == 0 { addr.to_string() } else { format!("{addr}+{}", 16 * q) }, part.len(), part.join(", ")))
        .collect()
}

/// Registers of the shared-memory combine.
struct Shared {
    lane32: String,
    /// This warp's region (a shared address).
    region: String,
    /// Lane c: state c carried from block to block.
    carry: String,
    /// Whether this lane walks a state (lane < inner extent).
    act: String,
}

/// One of a lane's steps in a block, from the pre pass to its epilogue.
struct StepVals {
    /// The step (clamped into range) and whether it exists (always, where every block is
    /// whole: `None`).
    l: String,
    valid: Option<String>,
    /// Its seq-level values (with the row's).
    scalars: HashMap<V, String>,
    /// Per product: `x h_local` summed over the states, and `x P` per state; at the lane's
    /// last step no local sum, and `x` itself per state (its true state is the next piece's
    /// entering state, known after the combine).
    local: Vec<String>,
    xp: Vec<Vec<String>>,
    /// Per plain sum: its value.
    plain: Vec<String>,
    /// Per product: the sum over the states of the passes so far.
    sums: Vec<Option<String>>,
}

/// The lane's piece of a block: per state its decay product and state from zero, and its steps.
struct Pieces {
    prod: Vec<String>,
    hl: Vec<String>,
    steps: Vec<StepVals>,
}

/// Seq-contiguous accesses of the current block, one vector per lane.
pub(super) struct SeqVec {
    /// The first step of the lane's piece, clamped so that the vector stays in range.
    pub(super) base: String,
    /// Loaded values per (access, inner index), one per step.
    pub(super) loads: HashMap<(Access, Option<usize>), Vec<String>>,
    /// Values waiting to be stored per access, one per step so far.
    pub(super) stores: HashMap<Access, Vec<String>>,
    /// The registers the block's seq-level vectors were loaded into during the previous block
    /// (their latency hidden behind its scan and epilogue), as stored.
    pub(super) prefetched: HashMap<(Access, Option<usize>), Vec<String>>,
    /// Seq parts of vector addresses by first step (the block's, the next block's).
    pub(super) addrs: HashMap<String, super::memory::SeqBases>,
    /// Only accesses at an inner index move as vectors (the lane blocks: seq-level values are
    /// each lane's own step's).
    pub(super) inner_only: bool,
}

impl SeqVec {
    /// Vectors from step `base` on, nothing loaded or prefetched yet.
    pub(super) fn new(base: String, inner_only: bool) -> Self {
        SeqVec { base, loads: HashMap::new(), stores: HashMap::new(), prefetched: HashMap::new(), addrs: HashMap::new(), inner_only }
    }
}


impl Translator<'_> {
    /// Consecutive steps per lane of the warp scan's vectors (the lane blocks': [`PER_LANE`]).
    pub(super) fn per_lane(&self) -> usize {
        match &self.mapping {
            Mapping::Warp(ws) => ws.per_lane,
            _ => PER_LANE,
        }
    }

    /// Whether `a` moves as one vector of a lane's steps ([`Self::per_lane`]): contiguous in
    /// seq, every other stride a multiple of that many elements (with device buffers at least 256-byte aligned,
    /// each vector is then aligned to its size), 32- or 16-bit.
    pub(super) fn seq_vector_ok(&self, a: &Access) -> bool {
        let extent = self.k.seq.map_or(1, |s| s.0);
        let pl = self.per_lane();
        let strides_ok = a.row.iter().all(|s| s % pl == 0) && a.inner.is_multiple_of(pl);
        let dtype_ok = matches!(self.k.buffers[a.buffer].dtype, DType::F32 | DType::BF16 | DType::F16);
        a.seq == 1 && extent.is_multiple_of(pl) && strides_ok && dtype_ok
    }

    /// The address of `a` (at inner index `at`) at step `base`, its seq part computed once per
    /// buffer and block; the current step's own addresses are left as they are.
    fn vector_addr(&mut self, a: &Access, at: &Inner, base: &str) -> String {
        let cache = self.seqvec.as_mut().and_then(|sv| sv.addrs.remove(base)).unwrap_or_default();
        let outer = std::mem::replace(&mut self.seq_bases, cache);
        let l = self.l.replace(base.to_string());
        let addr = self.addr(a, at);
        self.l = l;
        let cache = std::mem::replace(&mut self.seq_bases, outer);
        if let Some(sv) = self.seqvec.as_mut() {
            sv.addrs.insert(base.to_string(), cache);
        }
        addr
    }

    /// One lane's vector of `a` (at inner index `at`) from step `base`, as stored: an f32
    /// register per step, or 16-bit values in pairs per b32 register (16 bytes a load); into
    /// `into` when given.
    pub(super) fn vector_raw(&mut self, a: &Access, at: &Inner, base: &str, into: Option<&[String]>) -> Vec<String> {
        let addr = self.vector_addr(a, at, base);
        let pl = self.per_lane();
        let (f32, n) = match self.k.buffers[a.buffer].dtype {
            DType::F32 => (true, pl),
            _ => (false, pl / 2),
        };
        let regs: Vec<String> = match into {
            Some(r) => r.to_vec(),
            None => (0..n).map(|_| if f32 { self.w.f() } else { self.w.r() }).collect(),
        };
        let ty = if f32 { "f32" } else { "b32" };
        // a row's own input (no other row reads it: every row stride nonzero) is read once and
        // skips L1, which then keeps the inputs rows share (Mamba's B and C, read by every warp
        // of a batch)
        let hint = if a.row.iter().all(|&s| s != 0) { ".L1::no_allocate" } else { "" };
        for (at, width, part) in parts_of_16_bytes(&addr, &regs) {
            self.w.ins(format!("ld.global.nc{hint}.v{width}.{ty} {{{part}}}, [{at}]"));
        }
        regs
    }

    /// The `f32` values of a vector from [`Self::vector_raw`], in fresh registers when `copy`
    /// (the raw registers are reloaded while the values are still in use).
    fn vector_values(&mut self, dtype: DType, raw: &[String], copy: bool) -> Vec<String> {
        match dtype {
            DType::F32 if !copy => raw.to_vec(),
            DType::F32 => raw.iter().map(|r| self.widen_copy(DType::F32, r)).collect(),
            DType::BF16 => raw
                .iter()
                .flat_map(|w| {
                    // a bf16 is the top half of an f32: shift the low one up, mask the high one
                    let (lo, hi, flo, fhi) = (self.w.r(), self.w.r(), self.w.f(), self.w.f());
                    self.w.ins(format!("shl.b32 {lo}, {w}, 16"));
                    self.w.ins(format!("and.b32 {hi}, {w}, -65536"));
                    self.w.ins(format!("mov.b32 {flo}, {lo}"));
                    self.w.ins(format!("mov.b32 {fhi}, {hi}"));
                    [flo, fhi]
                })
                .collect(),
            _ => raw
                .iter()
                .flat_map(|w| {
                    let (hlo, hhi, flo, fhi) = (self.w.h(), self.w.h(), self.w.f(), self.w.f());
                    self.w.ins(format!("mov.b32 {{{hlo}, {hhi}}}, {w}"));
                    self.w.ins(format!("cvt.f32.f16 {flo}, {hlo}"));
                    self.w.ins(format!("cvt.f32.f16 {fhi}, {hhi}"));
                    [flo, fhi]
                })
                .collect(),
        }
    }

    /// `a` at the current step from the lane's vector (prefetched, or loaded at its first step).
    pub(super) fn seq_vec_load(&mut self, a: &Access, at: &Inner) -> Option<String> {
        if !self.seq_vector_ok(a) {
            return None;
        }
        let sv = self.seqvec.as_ref()?;
        let c = match at {
            Inner::Static(c) => Some(*c),
            Inner::Lane(_) => Some(0),
            Inner::None if !sv.inner_only => None,
            _ => return None,
        };
        let key = (a.clone(), c.filter(|_| a.inner != 0));
        let i = self.vec_step;
        if let Some(vals) = sv.loads.get(&key) {
            return Some(vals[i].clone());
        }
        let dtype = self.k.buffers[a.buffer].dtype;
        let vals = match sv.prefetched.get(&key).cloned() {
            Some(raw) => self.vector_values(dtype, &raw, true),
            None => {
                let base = sv.base.clone();
                let raw = self.vector_raw(a, at, &base, None);
                self.vector_values(dtype, &raw, false)
            }
        };
        let v = vals[i].clone();
        if let Some(sv) = self.seqvec.as_mut() {
            sv.loads.insert(key, vals);
        }
        Some(v)
    }

    /// Stores `val` to `a` as part of the lane's vector (written at its last step, under
    /// `guard`); false where `a` does not vectorize.
    pub(super) fn seq_vec_store(&mut self, a: &Access, at: &Inner, val: &str, guard: &str) -> bool {
        let pl = self.per_lane();
        let stream_out = matches!(&self.mapping, Mapping::Warp(ws) if ws.stream_out);
        if !matches!(at, Inner::None) || !self.seq_vector_ok(a) || a.inner != 0 || self.k.buffers[a.buffer].dtype != DType::F32 {
            return false;
        }
        let Some(sv) = self.seqvec.as_mut().filter(|sv| !sv.inner_only) else { return false };
        let vals = sv.stores.entry(a.clone()).or_default();
        vals.push(val.to_string());
        if vals.len() == pl {
            let vals = std::mem::take(vals);
            sv.stores.remove(a);
            let base = sv.base.clone();
            let addr = self.vector_addr(a, &Inner::None, &base);
            let hint = if stream_out { ".L1::no_allocate" } else { "" };
            for (at, width, part) in parts_of_16_bytes(&addr, &vals) {
                self.w.ins(format!("{guard}st.global{hint}.v{width}.f32 [{at}], {{{part}}}"));
            }
        }
        true
    }

    /// The `.shared` array of the shared-memory combine, where the kernel uses it.
    pub(super) fn warp_decl(&self) -> Option<String> {
        let n = self.k.inner.unwrap_or(1);
        (matches!(self.mapping, Mapping::Warp(_)) && n <= 32).then(|| format!("\t.shared .align 16 .b8 {SMEM}[{}];\n", region_bytes(n) * self.warps))
    }

    /// The combine through shared memory: lane `j` writes its piece's `(P, h)` per state (one
    /// 8-byte store each); lane `c` then walks state `c` through the 32 pieces in order from its
    /// carried state, four pieces a time, writing their entering states over the first words of
    /// its row (pairs it has already read); lane `j` reads its entering states back.
    /// Pieces of lanes past the end (`valid`: whether this lane's piece exists, where some may
    /// not) are written as identities, so the carry ends at the last step. With `leaving`, the
    /// walkers also write the block's end state after the 32 entering states, and lane `j`
    /// reads the state leaving its piece (piece `j + 1`'s entering) too.
    fn shared_combine(&mut self, states: std::ops::Range<usize>, pieces: Option<(&[String], &[String], Option<&str>)>, sh: &Shared, leaving: bool) -> (Vec<String>, Vec<String>) {
        let mine = match pieces {
            Some((prod, hl, valid)) => {
                let (pair, mine) = (self.w.r(), self.w.r());
                self.w.ins(format!("mad.lo.u32 {pair}, {}, 8, {}", sh.lane32, sh.region));
                self.w.ins(format!("mad.lo.u32 {mine}, {}, 4, {}", sh.lane32, sh.region));
                self.w.ins("bar.warp.sync -1");
                for c in states.clone() {
                    self.store_piece(c, &prod[c - states.start], &hl[c - states.start], &pair, valid);
                }
                mine
            }
            None => {
                let mine = self.w.r();
                self.w.ins(format!("mad.lo.u32 {mine}, {}, 4, {}", sh.lane32, sh.region));
                mine
            }
        };
        self.w.ins("bar.warp.sync -1");
        let skip = self.w.label("wscan_walk");
        let act = if states == (0..self.k.inner.unwrap_or(1)) {
            sh.act.clone()
        } else {
            // the walkers of these states
            let (lo, act) = (self.w.p(), self.w.p());
            self.w.ins(format!("setp.ge.u32 {lo}, {}, {}", sh.lane32, states.start));
            self.w.ins(format!("setp.lt.and.u32 {act}, {}, {}, {lo}", sh.lane32, states.end));
            act
        };
        self.w.ins(format!("@!{act} bra {skip}"));
        let own = self.w.r();
        self.w.ins(format!("mad.lo.u32 {own}, {}, {ROW}, {}", sh.lane32, sh.region));
        let h = sh.carry.clone();
        for k in (0..32).step_by(4) {
            // pieces k .. k+3 as (P, h) pairs
            let ph: Vec<String> = (0..8).map(|_| self.w.f()).collect();
            self.w.ins(format!("ld.shared.v4.f32 {{{}}}, [{own}+{}]", ph[..4].join(", "), k * 8));
            self.w.ins(format!("ld.shared.v4.f32 {{{}}}, [{own}+{}]", ph[4..].join(", "), k * 8 + 16));
            let mut entering = vec![];
            for j in 0..4 {
                let e = self.w.f();
                self.w.ins(format!("mov.f32 {e}, {h}"));
                entering.push(e);
                self.w.ins(format!("fma.rn.f32 {h}, {}, {h}, {}", ph[2 * j], ph[2 * j + 1]));
            }
            self.w.ins(format!("st.shared.v4.f32 [{own}+{}], {{{}}}", k * 4, entering.join(", ")));
        }
        if leaving {
            // after the 32 entering states, the block's end state: lane 31's next piece's
            self.w.ins(format!("st.shared.f32 [{own}+{}], {h}", 32 * 4));
        }
        self.w.put_label(&skip);
        self.w.ins("bar.warp.sync -1");
        let mut read = |at: usize| -> Vec<String> {
            states
                .clone()
                .map(|c| {
                    let d = self.w.f();
                    self.w.ins(format!("ld.shared.f32 {d}, [{mine}+{}]", c * ROW + at));
                    d
                })
                .collect()
        };
        let h_in = read(0);
        (h_in, if leaving { read(4) } else { vec![] })
    }

    /// Lane `j`'s piece of state `c` into the shared-memory combine's row `c` (one 8-byte store
    /// at `pair`: lane `j`'s pair), the identity where the piece does not exist (`valid` false).
    fn store_piece(&mut self, c: usize, p: &str, h: &str, pair: &str, valid: Option<&str>) {
        let (mut p, mut h) = (p.to_string(), h.to_string());
        if let Some(v) = valid {
            let (p2, h2) = (self.w.f(), self.w.f());
            self.w.ins(format!("selp.f32 {p2}, {p}, {}, {v}", fimm(1.0)));
            self.w.ins(format!("selp.f32 {h2}, {h}, {}, {v}", fimm(0.0)));
            (p, h) = (p2, h2);
        }
        self.w.ins(format!("st.shared.v2.f32 [{pair}+{}], {{{p}, {h}}}", c * ROW));
    }

    /// The seq loop of the warp scan (see the module docs). The carried state lives in the scan's
    /// state registers (the same value in every lane), or, with the shared-memory combine, in
    /// lane `c`'s carry register for state `c`; either way the final steps read it from the
    /// state registers.
    pub(super) fn seq_loop_warp_scan(&mut self, ws: &WarpScan) {
        let extent = ws.extent;
        let n = self.k.inner.unwrap_or(1);
        let pl = ws.per_lane;
        let block = 32 * pl;
        // this thread's lane
        let (tid, lane, lane32) = (self.w.r(), self.w.rd(), self.w.r());
        self.w.ins(format!("mov.u32 {tid}, %tid.x"));
        self.w.ins(format!("and.b32 {lane32}, {tid}, 31"));
        self.w.ins(format!("cvt.u64.u32 {lane}, {lane32}"));
        let (lane0, prev) = (self.w.p(), self.w.r());
        self.w.ins(format!("setp.eq.u32 {lane0}, {lane32}, 0"));
        self.w.ins(format!("add.u32 {prev}, {lane32}, 31"));
        self.w.ins(format!("and.b32 {prev}, {prev}, 31"));
        let shared = (n <= 32).then(|| self.shared_setup(ws, &tid, &lane32));
        self.set_row_offsets();

        // the seq-level vectors (a row's own inputs, streamed from memory) are loaded a block
        // ahead; the first block's here
        let ahead: Vec<Access> = self
            .steps_at(Level::SeqPre)
            .into_iter()
            .filter_map(|v| match &self.k.steps[v].1 {
                Step::Load(a) if self.seq_vector_ok(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        let last_base = extent.saturating_sub(pl);
        let first0 = self.w.rd();
        self.w.ins(format!("mul.lo.u64 {first0}, {lane}, {pl}"));
        self.w.ins(format!("min.u64 {first0}, {first0}, {last_base}"));
        let mut prefetched = HashMap::new();
        for a in &ahead {
            let raw = self.vector_raw(a, &Inner::None, &first0, None);
            prefetched.insert((a.clone(), None), raw);
        }
        let t = self.w.rd();
        self.w.ins(format!("mov.u64 {t}, 0"));
        let (head, done) = self.w.loop_head("wscan", &t, &extent.to_string());
        let first = self.w.rd();
        self.w.ins(format!("mad.lo.u64 {first}, {lane}, {pl}, {t}"));
        // whole blocks: every vector in range, every step there
        let whole = ws.narrow && extent.is_multiple_of(block);
        let vbase = self.w.rd();
        self.w.ins(if whole { format!("mov.u64 {vbase}, {first}") } else { format!("min.u64 {vbase}, {first}, {last_base}") });
        self.seqvec = Some(SeqVec { prefetched: prefetched.clone(), ..SeqVec::new(vbase, false) });
        self.vec_step = 0;

        let saved = self.scalars.clone();
        // pieces past the end hold clamped steps where whole vectors skip the identities
        let partial = extent.is_multiple_of(pl) && !extent.is_multiple_of(block);
        let early = shared.as_ref().filter(|_| ws.state_major);
        let pass_states = |p: usize| p * n / ws.passes..(p + 1) * n / ws.passes;
        let mut pieces = self.lane_pieces(ws, &first, &saved, whole, early.map(|sh| (sh, partial)), pass_states(0), vec![]);

        // the next block's seq-level vectors (clamped into range after the last block)
        if !ahead.is_empty() {
            let next = self.w.rd();
            self.w.ins(format!("add.u64 {next}, {first}, {block}"));
            self.w.ins(format!("min.u64 {next}, {next}, {last_base}"));
            for a in &ahead {
                let regs = prefetched[&(a.clone(), None)].clone();
                self.vector_raw(a, &Inner::None, &next, Some(&regs));
            }
        }

        // per pass, combine the lanes' pieces: through shared memory (one lane per state walks
        // the pieces in order), or, for more states than lanes, with shuffles; from the states
        // entering the lane's piece and leaving it (the next piece's entering), the pass's part
        // of each step's sums (the last pass: the steps' epilogues)
        let mut last_h = vec![];
        for pass in 0..ws.passes {
            if pass > 0 {
                pieces = self.lane_pieces(ws, &first, &saved, whole, early.map(|sh| (sh, partial)), pass_states(pass), pieces.steps);
            }
            let (h_in, h_next) = match &shared {
                Some(sh) => {
                    let valid0 = partial.then(|| pieces.steps[0].valid.clone()).flatten();
                    let stores = early.is_none().then_some((&pieces.prod[..], &pieces.hl[..], valid0.as_deref()));
                    self.shared_combine(pass_states(pass), stores, sh, ws.narrow)
                }
                None => {
                    let (h_in, lh) = self.shuffle_combine(ws, &pieces.prod, &pieces.hl, &lane0, &prev);
                    last_h = lh.clone();
                    (h_in, lh)
                }
            };
            self.step_epilogues(ws, &mut pieces.steps, &h_in, &h_next, pass + 1 == ws.passes);
        }
        self.scalars = saved;
        self.seqvec = None;
        self.w.ins(format!("add.u64 {t}, {t}, {block}"));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
        self.set_l(None);
        // the final state is lane 0's carry, unless the last block ends before its last lane
        // (whose piece then holds clamped steps): then it is the inclusive state of the lane
        // holding the last step. Lane 0 stores it.
        let last_lane = ((extent - 1) % block) / pl;
        if let Some(sh) = &shared {
            // lane c walked state c's pieces to the end (those past the end are identities)
            for c in 0..n {
                let h = self.states[&(ws.scan, c)].clone();
                self.w.ins(format!("shfl.sync.idx.b32 {h}, {}, {c}, 31, -1", sh.carry));
            }
        } else if last_lane != 31 {
            for (c, h) in last_h.iter().enumerate() {
                let carry = self.states[&(ws.scan, c)].clone();
                self.w.ins(format!("shfl.sync.idx.b32 {carry}, {h}, {last_lane}, 31, -1"));
            }
        }
        self.valid = Some(lane0);
    }

    /// Thread `row * 32 + lane`: a warp per row, all of it alive for the combine.
    pub(super) fn warp_prologue(&mut self, thread: &str, rows: &str, done: &str) -> String {
        let r = self.w.rd();
        self.w.ins(format!("shr.u64 {r}, {thread}, 5"));
        self.w.exit_if_ge(&r, rows, done);
        r
    }

    /// The shared-memory combine's registers: this warp's region, and lane `c`'s carried state
    /// of state `c` (from the scan's initial states).
    fn shared_setup(&mut self, ws: &WarpScan, tid: &str, lane32: &str) -> Shared {
        let n = self.k.inner.unwrap_or(1);
        let (warp, region, carry, act) = (self.w.r(), self.w.r(), self.w.f(), self.w.p());
        self.w.ins(format!("shr.u32 {warp}, {tid}, 5"));
        self.w.ins(format!("mov.u32 {region}, {SMEM}"));
        self.w.ins(format!("mad.lo.u32 {region}, {warp}, {}, {region}", region_bytes(n)));
        self.w.ins(format!("mov.f32 {carry}, {}", fimm(0.0)));
        for c in 0..n {
            let (is_c, h0) = (self.w.p(), self.states[&(ws.scan, c)].clone());
            self.w.ins(format!("setp.eq.u32 {is_c}, {lane32}, {c}"));
            self.w.ins(format!("@{is_c} mov.f32 {carry}, {h0}"));
        }
        self.w.ins(format!("setp.lt.u32 {act}, {lane32}, {n}"));
        Shared { lane32: lane32.to_string(), region, carry, act }
    }

    /// The lane's steps of the block from a zero state (`first`: its first step): per state the
    /// piece's decay product `P` and state, per step its seq-level values and the parts of each
    /// sum (`x h_local` summed over the states, `x P` per state). State by state or step by step
    /// ([`WarpScan::state_major`]); with `early` (the combine's registers, whether some pieces
    /// may not exist), each state's piece is stored for the combine once complete. Only the
    /// `states` of this pass; a later pass takes the earlier one's steps (`carried`: their
    /// seq-level values, and sums that its local sums start from).
    #[allow(clippy::too_many_arguments)]
    fn lane_pieces(&mut self, ws: &WarpScan, first: &str, saved: &HashMap<V, String>, whole: bool, early: Option<(&Shared, bool)>, states: std::ops::Range<usize>, carried: Vec<StepVals>) -> Pieces {
        // with whole vectors a lane's steps all exist or none do
        let vector = ws.extent.is_multiple_of(ws.per_lane);
        let dep: HashSet<V> = ws.products.iter().flat_map(|&(m, _, s)| [m, s]).chain([ws.scan]).collect();
        let inner_steps: Vec<V> = self.steps_at(Level::Inner).into_iter().filter(|v| !dep.contains(v)).collect();
        let Step::Scan { a: sa, b: sb, .. } = self.k.steps[ws.scan].1 else { unreachable!() };
        let plain_sums = self.plain_sums(ws);
        let (mut prod, mut hl): (Vec<String>, Vec<String>) = (vec![], vec![]);
        // (state, step) in emission order; each step's seq-level values before its first state
        // (state by state: every step's, first)
        let pl = ws.per_lane;
        let lo = states.start;
        let order: Vec<(usize, usize)> = if ws.state_major {
            states.clone().flat_map(|c| (0..pl).map(move |i| (c, i))).collect()
        } else {
            (0..pl).flat_map(|i| states.clone().map(move |c| (c, i))).collect()
        };
        let mut steps: Vec<Option<StepVals>> = (0..pl).map(|_| None).collect();
        for (i, mut st) in carried.into_iter().enumerate() {
            // a later pass: the steps' values stay, their parts of the sums start again
            st.local.clear();
            st.xp.iter_mut().for_each(Vec::clear);
            steps[i] = Some(st);
        }
        if ws.state_major {
            for (i, st) in steps.iter_mut().enumerate().filter(|(_, st)| st.is_none()) {
                *st = Some(self.step_head(ws, i, first, saved, whole));
            }
        }
        // the previous block's readers of the combine's rows are done once the warp syncs
        let pair = early.map(|(sh, _)| {
            let pair = self.w.r();
            self.w.ins(format!("mad.lo.u32 {pair}, {}, 8, {}", sh.lane32, sh.region));
            self.w.ins("bar.warp.sync -1");
            pair
        });
        let mut at_step = None;
        for (c, i) in order {
            if steps[i].is_none() {
                // (it leaves the step current)
                steps[i] = Some(self.step_head(ws, i, first, saved, whole));
                at_step = Some(i);
            }
            let st = steps[i].as_mut().expect("set");
            if at_step != Some(i) {
                self.vec_step = i;
                self.set_l(Some(st.l.clone()));
                at_step = Some(i);
            }
            self.scalars = std::mem::take(&mut st.scalars);
            let valid = st.valid.clone();
            self.cur.clear();
            for &v in &inner_steps {
                self.inner_step(v, Inner::Static(c));
            }
            let at = Inner::Static(c);
            let (mut a, mut b) = (self.operand(sa, &at), self.operand(sb, &at));
            if let Some(valid) = valid.as_ref().filter(|_| !vector) {
                // a lane's steps past the end leave its piece unchanged
                let (a2, b2) = (self.w.f(), self.w.f());
                self.w.ins(format!("selp.f32 {a2}, {a}, {}, {valid}", fimm(1.0)));
                self.w.ins(format!("selp.f32 {b2}, {b}, {}, {valid}", fimm(0.0)));
                (a, b) = (a2, b2);
            }
            if i == 0 {
                prod.push(a);
                hl.push(b);
            } else {
                let (p, h) = (self.w.f(), self.w.f());
                self.w.ins(format!("mul.f32 {p}, {}, {a}", prod[c - lo]));
                self.w.ins(format!("fma.rn.f32 {h}, {a}, {}, {b}", hl[c - lo]));
                prod[c - lo] = p;
                hl[c - lo] = h;
            }
            let mut st = steps[i].take().expect("set");
            for (j, &(_, x, _)) in ws.products.iter().enumerate() {
                let xv = self.operand(x, &at);
                if ws.narrow && i == pl - 1 {
                    st.xp[j].push(xv);
                    continue;
                }
                let q = self.w.f();
                self.w.ins(format!("mul.f32 {q}, {xv}, {}", prod[c - lo]));
                st.xp[j].push(q);
                let s = self.w.f();
                if c == lo {
                    // from the earlier passes' sum
                    match st.sums[j].clone() {
                        Some(prev) => self.w.ins(format!("fma.rn.f32 {s}, {xv}, {}, {prev}", hl[c - lo])),
                        None => self.w.ins(format!("mul.f32 {s}, {xv}, {}", hl[c - lo])),
                    }
                    st.local.push(s);
                } else {
                    self.w.ins(format!("fma.rn.f32 {s}, {xv}, {}, {}", hl[c - lo], st.local[j]));
                    st.local[j] = s;
                }
            }
            for (j, &s) in plain_sums.iter().enumerate() {
                let Step::Sum(x) = self.k.steps[s].1 else { unreachable!() };
                let xv = self.operand(x, &at);
                if c == 0 {
                    st.plain.push(xv);
                } else {
                    let d = self.w.f();
                    self.w.ins(format!("add.f32 {d}, {}, {xv}", st.plain[j]));
                    st.plain[j] = d;
                }
            }
            st.scalars = std::mem::replace(&mut self.scalars, saved.clone());
            steps[i] = Some(st);
            if let (Some(pair), Some((_, partial)), true) = (&pair, early, i == pl - 1) {
                let valid0 = if partial { steps[0].as_ref().and_then(|s| s.valid.clone()) } else { None };
                let (p, h) = (prod[c - lo].clone(), hl[c - lo].clone());
                self.store_piece(c, &p, &h, pair, valid0.as_deref());
            }
        }
        Pieces { prod, hl, steps: steps.into_iter().map(|s| s.expect("every step")).collect() }
    }

    /// Step `i` of the lane's piece: its index (clamped, and whether it exists unless every
    /// block is whole) and its seq-level values.
    fn step_head(&mut self, ws: &WarpScan, i: usize, first: &str, saved: &HashMap<V, String>, whole: bool) -> StepVals {
        let (extent, products) = (ws.extent, ws.products.len());
        let (l, valid) = if whole {
            let lc = self.w.rd();
            self.w.ins(format!("add.u64 {lc}, {first}, {i}"));
            (lc, None)
        } else {
            let (lj, lc, valid) = (self.w.rd(), self.w.rd(), self.w.p());
            self.w.ins(format!("add.u64 {lj}, {first}, {i}"));
            self.w.ins(format!("setp.lt.u64 {valid}, {lj}, {extent}"));
            self.w.ins(format!("min.u64 {lc}, {lj}, {}", extent - 1));
            (lc, Some(valid))
        };
        self.vec_step = i;
        self.set_l(Some(l.clone()));
        self.scalars = saved.clone();
        for v in self.steps_at(Level::SeqPre) {
            self.scalar_step(v);
        }
        let scalars = std::mem::replace(&mut self.scalars, saved.clone());
        StepVals { l, valid, scalars, local: vec![], xp: vec![vec![]; products], plain: vec![], sums: vec![None; products] }
    }

    /// Sums over the inner dim of values that do not involve the state.
    fn plain_sums(&self, ws: &WarpScan) -> Vec<V> {
        let dep: HashSet<V> = ws.products.iter().map(|&(_, _, s)| s).collect();
        self.steps_at(Level::SeqPost).into_iter().filter(|&v| matches!(self.k.steps[v].1, Step::Sum(_)) && !dep.contains(&v)).collect()
    }

    /// The combine with shuffles (for more states than lanes): per state, the carried state
    /// folded into lane 0, an inclusive Kogge-Stone scan in five `shfl.sync.up` levels, and one
    /// rotation (`prev`: the lane before) handing each lane its entering state and lane 0 the
    /// next carry. Returns the entering states and each lane's inclusive state.
    fn shuffle_combine(&mut self, ws: &WarpScan, prod: &[String], hl: &[String], lane0: &str, prev: &str) -> (Vec<String>, Vec<String>) {
        debug_assert_eq!(ws.passes, 1, "two passes take at most 32 states: the shared-memory combine");
        let (mut h_in, mut last_h) = (vec![], vec![]);
        for (c, (pc, hc)) in prod.iter().zip(hl).enumerate() {
            let carry = self.states[&(ws.scan, c)].clone();
            let (p, h) = (self.w.f(), self.w.f());
            self.w.ins(format!("mov.f32 {p}, {pc}"));
            self.w.ins(format!("mov.f32 {h}, {hc}"));
            self.w.ins(format!("@{lane0} fma.rn.f32 {h}, {p}, {carry}, {h}"));
            let mut off = 1;
            while off < 32 {
                let (hp, pp, has) = (self.w.f(), self.w.f(), self.w.p());
                self.w.ins(format!("shfl.sync.up.b32 {hp}|{has}, {h}, {off}, 0, -1"));
                if off < 16 {
                    self.w.ins(format!("shfl.sync.up.b32 {pp}, {p}, {off}, 0, -1"));
                }
                self.w.ins(format!("@{has} fma.rn.f32 {h}, {p}, {hp}, {h}"));
                if off < 16 {
                    self.w.ins(format!("@{has} mul.f32 {p}, {p}, {pp}"));
                }
                off *= 2;
            }
            let (rot, hin) = (self.w.f(), self.w.f());
            self.w.ins(format!("shfl.sync.idx.b32 {rot}, {h}, {prev}, 31, -1"));
            self.w.ins(format!("selp.f32 {hin}, {carry}, {rot}, {lane0}"));
            self.w.ins(format!("@{lane0} mov.f32 {carry}, {rot}"));
            h_in.push(hin);
            last_h.push(h);
        }
        (h_in, last_h)
    }

    /// Each step's sums with the true state (`h_in`: the state entering the lane's piece) over
    /// this pass's states, added to the earlier passes'; with `finish` (the last pass), then the
    /// step's epilogue (stores under the step's own guard).
    fn step_epilogues(&mut self, ws: &WarpScan, steps: &mut [StepVals], h_in: &[String], h_next: &[String], finish: bool) {
        let plain_sums = self.plain_sums(ws);
        let saved_valid = self.valid.clone();
        for (i, st) in steps.iter_mut().enumerate() {
            if finish {
                self.vec_step = i;
                self.set_l(Some(st.l.clone()));
                self.scalars = std::mem::take(&mut st.scalars);
            }
            // the last step: x times its true state; the others: the local sum and x P times
            // the entering state
            let (states, local) = if ws.narrow && i == ws.per_lane - 1 { (h_next, None) } else { (h_in, Some(&st.local)) };
            for (j, &(_, _, sum)) in ws.products.iter().enumerate() {
                // from the local sum, one chain (16-bit inputs: the lane's steps are independent
                // chains) or two joined at the end (a float reassociation either way)
                let chains = if ws.narrow { 1 } else { 2 };
                let mut acc: Vec<Option<String>> = vec![None; chains];
                acc[0] = local.map(|l| l[j].clone()).or_else(|| st.sums[j].clone());
                for (c, (xp, hin)) in st.xp[j].iter().zip(states).enumerate() {
                    let d = self.w.f();
                    match &acc[c % chains] {
                        None => self.w.ins(format!("mul.f32 {d}, {xp}, {hin}")),
                        Some(a) => self.w.ins(format!("fma.rn.f32 {d}, {xp}, {hin}, {a}")),
                    }
                    acc[c % chains] = Some(d);
                }
                let mut total = acc[0].clone().expect("at least one state");
                if let Some(b) = acc.get(1).cloned().flatten() {
                    let d = self.w.f();
                    self.w.ins(format!("add.f32 {d}, {total}, {b}"));
                    total = d;
                }
                st.sums[j] = Some(total.clone());
                if finish {
                    self.scalars.insert(sum, total);
                }
            }
            if !finish {
                continue;
            }
            for (j, &s) in plain_sums.iter().enumerate() {
                self.scalars.insert(s, st.plain[j].clone());
            }
            self.valid = st.valid.clone();
            for v in self.steps_at(Level::SeqPost) {
                if !matches!(self.k.steps[v].1, Step::Sum(_)) {
                    self.scalar_step(v);
                }
            }
        }
        self.valid = saved_valid;
    }
}

//! Replay kernels (see [`ssmc_kernel::Kir::replay`]): the seq loop in chunks, each replayed
//! forwards and then walked backwards; and the adds of sums across rows into their blocks.
//!
//! ```text
//! for each chunk but the last:   checkpoint the replayed scans' states; replay the chunk
//! for each chunk, last first:    restore its checkpoint; replay it forwards, keeping in the
//!                                row's stack memory each replay value a later level reads;
//!                                walk it backwards, reading those values back
//! ```
//!
//! The kept values of a chunk and the checkpoints are stack buffers: a whole row's kept values
//! where they fit [`ROW_BYTES`] (then there are no checkpoints to make), else chunks of
//! [`KEEP_BYTES`] (and at most [`CHECKPOINTS`] checkpoints).

use super::{Chunk, KernelTranslator};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, MemFlagsData, StackSlot, StackSlotData, StackSlotKind, Value};
use ssmc_kernel::{Access, Level, Step, V};
use std::collections::HashMap;

/// A row whose kept values take at most this many bytes replays in one chunk, with no
/// checkpoint pass (they stay in the L2 cache).
const ROW_BYTES: usize = 640 << 10;
/// Otherwise, bytes of kept values per chunk. (Mamba-1's backward at (1, 1536, 2048, 16) on a
/// 2-core EPYC: 287 ms in chunks of 24 kB, 229 ms of 96 kB, 202 ms in one chunk of 540 kB.)
const KEEP_BYTES: usize = 96 << 10;
/// At most this many chunk checkpoints (longer walks take longer chunks).
const CHECKPOINTS: usize = 1024;

/// A replay loop's stack buffers.
pub(super) struct Replay {
    /// Per kept value, its values through the chunk (`n` floats a step for inner values).
    kept: HashMap<V, StackSlot>,
    /// Per replayed scan, its state at each chunk's start.
    checkpoints: HashMap<V, StackSlot>,
    /// Where the backward walk is within its chunk (while it runs).
    pub(super) at: Option<Value>,
}

fn is_replay(l: Level) -> bool {
    matches!(l, Level::Replay | Level::ReplayInner)
}

impl KernelTranslator<'_, '_> {
    /// Whether the kernel runs only on the plain row loop (no seq or row blocks and chunks):
    /// replays, sums across rows and states before a step are emitted there only.
    pub(super) fn plain_only(&self) -> bool {
        self.k.replay || self.k.steps.iter().any(|(_, st)| matches!(st, Step::Prev(_) | Step::AddTo(..)))
    }

    /// Floats a value of `level` takes per step.
    fn floats(&self, level: Level) -> usize {
        if level == Level::ReplayInner {
            self.k.inner.unwrap_or(1)
        } else {
            1
        }
    }

    fn slot(&mut self, bytes: usize) -> StackSlot {
        self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes.max(4) as u32, 4))
    }

    /// The seq loop of a replay kernel (see the module docs).
    pub(super) fn replay_loop(&mut self) {
        let (extent, _) = self.k.seq.expect("a replay kernel walks a seq dim");
        let mut kept: Vec<V> = Vec::new();
        for (_, st) in self.k.steps.iter().filter(|(l, _)| !is_replay(*l)) {
            for o in st.operands() {
                if is_replay(self.level(o)) && !kept.contains(&o) {
                    kept.push(o);
                }
            }
        }
        let scans: Vec<V> = (0..self.k.steps.len()).filter(|&v| is_replay(self.level(v)) && matches!(self.k.steps[v].1, Step::Scan { .. })).collect();
        let per_step: usize = kept.iter().map(|&v| self.floats(self.level(v))).sum::<usize>().max(1);
        let per_checkpoint: usize = scans.iter().map(|&s| self.floats(self.level(s))).sum::<usize>().max(1);
        let mut chunk = match self.replay_chunk {
            0 if extent * per_step * 4 <= ROW_BYTES => extent,
            0 => KEEP_BYTES / 4 / per_step,
            given => given,
        }
        .clamp(1, extent);
        let most = (CHECKPOINTS * 16 / per_checkpoint).clamp(1, CHECKPOINTS);
        if extent.div_ceil(chunk) > most {
            chunk = extent.div_ceil(most);
        }
        let chunks = extent.div_ceil(chunk);
        let mut slots = Replay { kept: HashMap::new(), checkpoints: HashMap::new(), at: None };
        for &v in &kept {
            let s = self.slot(chunk * self.floats(self.level(v)) * 4);
            slots.kept.insert(v, s);
        }
        for &s in &scans {
            let slot = self.slot(chunks * self.floats(self.level(s)) * 4);
            slots.checkpoints.insert(s, slot);
        }
        self.replay = Some(slots);
        if chunks > 1 {
            // the checkpoints: every chunk's start, replaying all but the last chunk
            let last = self.b.ins().iconst(types::I64, (chunks - 1) as i64);
            let zero = self.b.ins().iconst(types::I64, 0);
            self.range_loop(zero, last, false, |t, c| {
                t.checkpoint(&scans, c, true);
                let lo = t.b.ins().imul_imm_s(c, chunk as i64);
                let hi = t.b.ins().iadd_imm_s(lo, chunk as i64);
                t.range_loop(lo, hi, false, |t, l| t.replay_step(l, None));
            });
            self.checkpoint(&scans, last, true);
        }
        let zero = self.b.ins().iconst(types::I64, 0);
        let count = self.b.ins().iconst(types::I64, chunks as i64);
        self.range_loop(zero, count, true, |t, c| {
            if chunks > 1 {
                t.checkpoint(&scans, c, false);
            }
            let lo = t.b.ins().imul_imm_s(c, chunk as i64);
            let hi = t.b.ins().iadd_imm_s(lo, chunk as i64);
            let end = t.b.ins().iconst(types::I64, extent as i64);
            let hi = t.b.ins().umin(hi, end);
            t.range_loop(lo, hi, false, |t, l| {
                let at = t.b.ins().isub(l, lo);
                t.replay_step(l, Some(at));
            });
            t.range_loop(lo, hi, true, |t, l| {
                let at = t.b.ins().isub(l, lo);
                t.main_step(l, at);
            });
        });
        self.l = None;
    }

    /// `for v in from..to` (backwards when `reverse`), `v` an i64 value.
    fn range_loop(&mut self, from: Value, to: Value, reverse: bool, body: impl FnOnce(&mut Self, Value)) {
        let var = self.b.declare_var(types::I64);
        self.b.def_var(var, if reverse { to } else { from });
        // backwards, the variable runs one past the step it walks
        let more = |t: &mut Self, v: Value| match reverse {
            true => t.b.ins().icmp(IntCC::UnsignedGreaterThan, v, from),
            false => t.b.ins().icmp(IntCC::UnsignedLessThan, v, to),
        };
        let body = |t: &mut Self, v: Value| {
            let this = if reverse { t.b.ins().iadd_imm_s(v, -1) } else { v };
            body(t, this);
        };
        self.while_loop(var, if reverse { -1 } else { 1 }, more, body);
    }

    /// Saves (or restores) the replayed scans' states at chunk `c`'s checkpoint.
    fn checkpoint(&mut self, scans: &[V], c: Value, save: bool) {
        for &s in scans {
            let slot = self.replay.as_ref().expect("in a replay").checkpoints[&s];
            let outer = self.level(s) == Level::Replay;
            let floats = self.floats(self.level(s));
            let base = self.b.ins().stack_addr(types::I64, slot, 0);
            let at = self.b.ins().imul_imm_s(c, (floats * 4) as i64);
            let base = self.b.ins().iadd(base, at);
            let each = |t: &mut Self, ch: Chunk| {
                let ty = t.vty(ch.width);
                let off = t.b.ins().imul_imm_s(ch.i, 4);
                let addr = t.b.ins().iadd(base, off);
                if save {
                    let h = t.state_get(s, ch, outer);
                    t.b.ins().store(MemFlagsData::trusted(), h, addr, 0);
                } else {
                    let h = t.b.ins().load(ty, MemFlagsData::trusted(), addr, 0);
                    t.state_set(s, ch, outer, h);
                }
            };
            if outer {
                let i = self.b.ins().iconst(types::I64, 0);
                each(self, Chunk { width: 1, i, unrolled: None });
            } else {
                self.each_chunk(each);
            }
        }
    }

    /// The stack address of kept value `v` at step `at` of the chunk, inner index `i`.
    fn kept_addr(&mut self, v: V, at: Value, i: Option<Value>) -> Option<Value> {
        let slot = *self.replay.as_ref()?.kept.get(&v)?;
        let floats = self.floats(self.level(v));
        let base = self.b.ins().stack_addr(types::I64, slot, 0);
        let mut off = self.b.ins().imul_imm_s(at, (floats * 4) as i64);
        if let Some(i) = i {
            let io = self.b.ins().imul_imm_s(i, 4);
            off = self.b.ins().iadd(off, io);
        }
        Some(self.b.ins().iadd(base, off))
    }

    /// One forward step of the replay at `l`; with `keep`, the kept values stored at that step
    /// of the chunk.
    fn replay_step(&mut self, l: Value, keep: Option<Value>) {
        self.l = Some(l);
        let saved = self.scalars.clone();
        for v in self.steps_at(Level::Replay) {
            self.scalar_step(v);
            if let Some(at) = keep {
                if let Some(addr) = self.kept_addr(v, at, None) {
                    let x = self.scalars[&v];
                    self.b.ins().store(MemFlagsData::trusted(), x, addr, 0);
                }
            }
        }
        let inner = self.steps_at(Level::ReplayInner);
        let run = |t: &mut Self, ch: Chunk| {
            for &v in &inner {
                t.vector_step(v, ch);
                if let Some(at) = keep {
                    if let Some(addr) = t.kept_addr(v, at, Some(ch.i)) {
                        let x = t.cur[&v];
                        t.b.ins().store(MemFlagsData::trusted(), x, addr, 0);
                    }
                }
            }
        };
        self.each_chunk(run);
        self.scalars = saved;
    }

    /// One backward step at `l`, step `at` of its chunk: the kernel's own levels, reading the
    /// replay's kept values.
    fn main_step(&mut self, l: Value, at: Value) {
        self.l = Some(l);
        let saved = self.scalars.clone();
        let mut kept: Vec<V> = self.replay.as_ref().map(|r| r.kept.keys().copied().collect()).unwrap_or_default();
        kept.sort_unstable();
        kept.retain(|&v| self.level(v) == Level::Replay);
        for v in kept {
            let addr = self.kept_addr(v, at, None).expect("kept");
            let x = self.b.ins().load(types::F32, MemFlagsData::trusted(), addr, 0);
            self.scalars.insert(v, x);
        }
        if let Some(r) = self.replay.as_mut() {
            r.at = Some(at);
        }
        for v in self.steps_at(Level::SeqPre) {
            self.scalar_step(v);
        }
        self.inner_level();
        for v in self.steps_at(Level::SeqPost) {
            self.scalar_step(v);
        }
        if let Some(r) = self.replay.as_mut() {
            r.at = None;
        }
        self.scalars = saved;
    }

    /// A kept inner value of the replay, read back by the backward walk.
    pub(super) fn recall(&mut self, v: V, ch: Chunk) -> Option<Value> {
        let at = self.replay.as_ref()?.at?;
        if self.level(v) != Level::ReplayInner {
            return None;
        }
        let addr = self.kept_addr(v, at, Some(ch.i))?;
        let ty = self.vty(ch.width);
        Some(self.b.ins().load(ty, MemFlagsData::trusted(), addr, 0))
    }

    /// `x` added into its row block's partial sums at `a` (see [`ssmc_kernel::Blocks`]).
    pub(super) fn add_to(&mut self, x: Value, a: &Access, ch: Option<Chunk>) {
        let p = &self.k.buffers[a.buffer];
        let blocks = p.blocks.as_ref().expect("a row sum adds into blocks");
        let block_len = p.len / blocks.count;
        let r = self.row_value.expect("inside a row");
        let block = self.b.ins().udiv_imm_u(r, blocks.rows as i64);
        let block_off = self.b.ins().imul_imm_s(block, block_len as i64);
        let (stride, i) = match ch {
            Some(c) => (a.inner, Some(c.i)),
            None => (0, None),
        };
        let off = self.offset(a, i);
        let off = self.b.ins().iadd(off, block_off);
        let addr = self.address(a.buffer, off);
        let flags = MemFlagsData::new().with_notrap();
        let ty = self.b.func.dfg.value_type(x);
        if ty == types::F32X4 && stride == 1 {
            let old = self.b.ins().load(types::F32X4, flags, addr, 0);
            let new = self.b.ins().fadd(old, x);
            self.b.ins().store(flags, new, addr, 0);
        } else if ty == types::F32X4 {
            for lane in 0..4u8 {
                let at = (lane as usize * stride * 4) as i32;
                let s = self.b.ins().extractlane(x, lane);
                let old = self.b.ins().load(types::F32, flags, addr, at);
                let new = self.b.ins().fadd(old, s);
                self.b.ins().store(flags, new, addr, at);
            }
        } else {
            let old = self.b.ins().load(types::F32, flags, addr, 0);
            let new = self.b.ins().fadd(old, x);
            self.b.ins().store(flags, new, addr, 0);
        }
    }
}

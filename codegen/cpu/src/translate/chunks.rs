//! Seq chunks: a prefill's seq loop as chunks of steps, each in three passes, so that a scan
//! state stays in one register through the chunk (see [`ssmc_kernel::Schedule::seq_chunk`]).
//!
//! ```text
//! for each group of 4 steps:  seq-level work as vectors along seq; store what the inner
//!                             level reads; check the `exp2` arguments' range
//! for each pair of inner vectors:  load their loop-invariant values
//!     for each step:          the pair's inner work (states in registers; the seq-level
//!                             values loaded splat); the pair's sum terms added and stored
//! for each group of 4 steps:  the pairs' partials added, four steps' sums reduced together;
//!                             the epilogue along seq
//! ```
//!
//! Row chunks do the same over the rows of a one-step kernel (a decode step), where each row's
//! state starts from its own initial state and ends in its own final store.
//!
//! Every (step, inner vector) pair computes what the seq block computes, in an order that keeps
//! each scan's steps in order and adds each sum's terms in the same order (vector 0 first). The
//! first term of each pair of vectors (`C h`) is rounded before it is added, where the seq
//! block adds every term with one FMA: the results differ within float rounding, not more.

use super::{math, new_vector_slot, vector_slot, Chunk, KernelTranslator};
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, InstBuilder, MemFlagsData, StackSlot, StackSlotData, StackSlotKind, Value,
};
use cranelift_frontend::Variable;
use ssmc_ir::{BinaryOp, UnaryOp};
use ssmc_kernel::{Level, Step, V};
use std::collections::HashMap;

/// A seq chunk's check of its `exp2` arguments. Where an `exp2`'s argument is the product of a
/// seq-level and a row-level value (Mamba's `exp2(dt * A log2 e)`), the first pass checks each
/// step's seq-level factor against the row's largest row-level factor: when every product lies
/// in [-125, 125], the chunk's second pass runs those `exp2`s as [`math::exp2_small`], without
/// the clamp; otherwise (NaN, infinity, large products) as the clamped `exp2`.
struct RangeCheck {
    /// (the `exp2`, its seq-level factor, its row-level factor) (see `ranged_exp2s`).
    ranged: Vec<(V, V, V)>,
    /// Per entry, the row's largest `|row-level factor|`, splat, in a stack slot.
    row_max: Vec<StackSlot>,
    /// All lanes true while every step checked so far is in range.
    in_range: Variable,
}

impl KernelTranslator<'_, '_> {
    /// Steps per chunk when the seq loop runs in chunks: a forward seq loop of at least one
    /// chunk whose seq blocks apply, with the inner dim unrolled into whole vectors, and an
    /// inner level that stores nothing (one that stores every step, as the unfused plan's scan
    /// does, is bound by memory, and walking its rows' lines once per inner vector made it
    /// slower).
    pub(super) fn seq_chunks(&self) -> Option<usize> {
        let steps = self.seq_chunk;
        let extent = self.k.seq?.0;
        (steps >= 4
            && extent >= steps
            && self.seq_blocks()
            && self.unrolled
            && self.k.inner.is_some()
            && self.chunks.iter().all(|&(_, w)| w == 4)
            && !self.k.steps.iter().any(|(l, st)| *l == Level::Inner && matches!(st, Step::Conv { .. } | Step::Gather { .. } | Step::Store(..))))
        .then_some(steps)
    }

    /// `steps` forward seq steps from `l0`, in the three passes of the module docs.
    pub(super) fn seq_chunk(&mut self, l0: Value, steps: usize) {
        let saved: HashMap<V, Value> = self.scalars.clone();
        let pre = self.steps_at(Level::SeqPre);
        let inner = self.steps_at(Level::Inner);
        let sums = self.sums();
        let mut read: Vec<V> = inner.iter().flat_map(|&v| self.k.steps[v].1.operands()).filter(|&x| self.level(x) == Level::SeqPre).collect();
        read.sort_unstable();
        read.dedup();
        self.chunk_slots(&read, &sums, steps);

        // 1: the seq-level work, four steps a vector; each value the inner level reads is
        // stored, for the second pass to load splat per step; the `exp2` arguments checked
        let check = self.range_check();
        self.first_pass_groups(steps, |t, k| {
            t.group_values(l0, k, &pre);
            t.check_group(&check);
            t.along_seq = false;
            t.store_values(&read, k);
        });

        // 2: the inner vectors, two at a time, through the chunk's steps; a sum's terms are
        // kept per pair. With the checked `exp2`s as `exp2_small` of their product when every
        // argument of the chunk is in range, clamped otherwise (`exp2_small` saves three of a
        // state vector's ~22 instructions a step: at (1, 1536, 2048, 16) on one thread, 44.2 to
        // 41.1 ms without the clamp and with 2^n an integer add, 38.4 to 37.8 with the product
        // folded into the reduction)
        if check.ranged.is_empty() {
            self.state_pass(l0, steps, &read, &inner, &sums);
        } else {
            let acc = self.b.use_var(check.in_range);
            let fits = self.b.ins().vall_true(acc);
            let (fast, slow, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
            self.b.ins().brif(fits, fast, &[], slow, &[]);
            self.b.switch_to_block(fast);
            self.unclamped = check.ranged.iter().map(|&(e, _, _)| e).collect();
            self.state_pass(l0, steps, &read, &inner, &sums);
            self.unclamped.clear();
            self.b.ins().jump(join, &[]);
            self.b.switch_to_block(slow);
            self.state_pass(l0, steps, &read, &inner, &sums);
            self.b.ins().jump(join, &[]);
            self.b.switch_to_block(join);
        }

        // 3: each step's terms added (pair 0 first), four steps' partial sums reduced
        // together, then the epilogue along seq
        self.groups(steps, 4, |t, k| {
            // the seq-level values again, for the epilogue (what it does not read is dead)
            let lanes = t.group_values(l0, k, &pre);
            t.chunk_epilogue(&sums, k, steps, lanes);
            t.along_seq = false;
        });
        self.l = None;
        self.scalars = saved;
    }

    /// A seq chunk's second pass: the inner vectors, two at a time, through the chunk's steps.
    fn state_pass(&mut self, l0: Value, steps: usize, read: &[V], inner: &[V], sums: &[V]) {
        let vectors = self.chunks.len();
        // steps per loop iteration (the loop's own instructions and the constants it reloads
        // come once per iteration)
        let unroll = if steps.is_multiple_of(8) { 8 } else { 4 };
        // two vectors a pass: they share the loads of the seq-level values and the loop, and
        // their states and row-invariant vectors still fit beside the exp constants (one
        // vector a pass: 23.9 to 24.0 ms at (1, 1536, 2048, 16) reused, two: 23.3, four: 24.4)
        for cs in (0..vectors).collect::<Vec<usize>>().chunks(2) {
            let mut parked_all = Vec::new();
            for &c in cs {
                let mut keys: Vec<(V, usize)> = self.row_slots.keys().copied().filter(|&(_, cc)| cc == c).collect();
                keys.sort_unstable();
                for key in keys {
                    let val = self.b.ins().stack_load(types::I64, types::F32X4, self.row_slots[&key], 0);
                    self.chunk_row_inner.insert(key, val);
                }
                let mut parked: Vec<(V, usize)> = self.parked.keys().copied().filter(|&(_, cc)| cc == c).collect();
                parked.sort_unstable();
                for &key in &parked {
                    let h = self.b.ins().stack_load(types::I64, types::F32X4, self.parked[&key], 0);
                    self.b.def_var(self.state_vars[&key], h);
                }
                parked_all.extend(parked);
            }
            self.groups(steps, unroll, |t, k| {
                let l = t.b.ins().iadd(l0, k);
                t.l = Some(l);
                for &v in read {
                    let addr = t.slot_at(t.chunk_pre[&v], k, 4);
                    t.chunk_group.insert(v, addr);
                }
                for j in 0..unroll as u8 {
                    t.l_step = j as usize;
                    t.pair_step(cs, j, k, steps, inner, sums, None);
                }
                t.l_step = 0;
                t.in_chunk = None;
                t.chunk_group.clear();
            });
            self.chunk_row_inner.clear();
            for &key in &parked_all {
                let h = self.b.use_var(self.state_vars[&key]);
                self.b.ins().stack_store(types::I64, h, self.parked[&key], 0);
            }
        }
    }

    /// A seq chunk's range check (see [`RangeCheck`]), its row-level bounds computed.
    fn range_check(&mut self) -> RangeCheck {
        let ranged = self.ranged_exp2s();
        // each in a stack slot, loaded in the loop: left as values, Cranelift places their
        // pure computation at their use, in the loop
        let row_max = ranged
            .iter()
            .map(|&(_, _, r)| {
                let m = self.abs_max(r);
                let slot = new_vector_slot(self.b);
                self.b.ins().stack_store(types::I64, m, slot, 0);
                slot
            })
            .collect();
        let in_range = self.b.declare_var(types::I32X4);
        let all = self.b.ins().iconst(types::I32, -1);
        let all = self.b.ins().splat(types::I32X4, all);
        self.b.def_var(in_range, all);
        RangeCheck { ranged, row_max, in_range }
    }

    /// The current group's seq-level factors (in `seq_vecs`) checked: each `|factor| * row max`
    /// at most [`math::EXP2_SMALL`], or the chunk's `in_range` lane goes false (so does NaN).
    fn check_group(&mut self, check: &RangeCheck) {
        for (&(_, s, _), &slot) in check.ranged.iter().zip(&check.row_max) {
            let m = self.b.ins().stack_load(types::I64, types::F32X4, slot, 0);
            // |x| as one `and` with a constant (`fabs` builds its mask in two instructions)
            let mask = math::konst(self.b, types::F32X4, f32::from_bits(0x7fff_ffff));
            let a = self.b.ins().band(self.seq_vecs[&s], mask);
            let x = self.b.ins().fmul(a, m);
            let lim = math::konst(self.b, types::F32X4, math::EXP2_SMALL);
            let fits = self.b.ins().fcmp(FloatCC::LessThanOrEqual, x, lim);
            let acc = self.b.use_var(check.in_range);
            let acc = self.b.ins().band(acc, fits);
            self.b.def_var(check.in_range, acc);
        }
    }

    /// The inner `exp2` steps whose argument is a product of a seq-level and a row-level value
    /// (Mamba's `exp2(dt * A log2 e)`): (the `exp2`, the seq-level factor, the row-level one).
    fn ranged_exp2s(&self) -> Vec<(V, V, V)> {
        let row_level = |x: V| matches!(self.level(x), Level::Row | Level::RowInner);
        self.steps_at(Level::Inner)
            .into_iter()
            .filter_map(|v| {
                let Step::Unary(UnaryOp::Exp2, m) = self.k.steps[v].1 else { return None };
                let Step::Binary(BinaryOp::Mul, p, q) = self.k.steps[m].1 else { return None };
                match (self.level(p), self.level(q)) {
                    (Level::SeqPre, _) if row_level(q) => Some((v, p, q)),
                    (_, Level::SeqPre) if row_level(p) => Some((v, q, p)),
                    _ => None,
                }
            })
            .collect()
    }

    /// The row's largest `|v|` (NaN if any is NaN), splat: over its inner vectors for a
    /// row-invariant inner value, else of the row's scalar.
    fn abs_max(&mut self, v: V) -> Value {
        let vectors = if self.level(v) == Level::RowInner { self.chunks.len() } else { 1 };
        let mut m: Option<Value> = None;
        for c in 0..vectors {
            let ch = self.chunk(c);
            let x = self.operand(v, ch);
            let a = self.b.ins().fabs(x);
            m = Some(match m {
                Some(m) => self.b.ins().fmax(m, a),
                None => a,
            });
        }
        let mut m = m.expect("at least one vector");
        for lanes in [[2, 3, 0, 1], [1, 0, 3, 2]] {
            let swapped = self.shuffle_lanes(m, m, lanes);
            m = self.b.ins().fmax(m, swapped);
        }
        m
    }

    /// Rows per row chunk, when a one-step kernel's rows run in chunks
    /// ([`Self::row_chunk`]): row blocks apply, whole inner vectors, a scan at the inner
    /// level, no inner stores, only final states at the final level, and a chunk size among
    /// 64, 32, 16, 8 that divides the last row dim (so that a chunk's rows differ only in it).
    pub(super) fn row_chunks(&self) -> Option<usize> {
        let inner = |f: &dyn Fn(&Step) -> bool| self.k.steps.iter().any(|(l, st)| *l == Level::Inner && f(st));
        let final_state = |v: V| matches!(self.k.steps[v].1, Step::Final(s) if self.level(s) == Level::Inner);
        let fits = self.seq_chunk > 0
            && self.row_blocks()
            && self.chunks.iter().all(|&(_, w)| w == 4)
            && inner(&|st| matches!(st, Step::Scan { .. }))
            && !inner(&|st| matches!(st, Step::Store(..) | Step::Conv { .. } | Step::Gather { .. }))
            && self.steps_at(Level::Final).into_iter().all(|v| match self.k.steps[v].1 {
                Step::Store(x, _) => final_state(x),
                _ => final_state(v),
            });
        let last = *self.k.rows.last()?;
        [64, 32, 16, 8].into_iter().find(|&r| fits && last % r == 0)
    }

    /// Rows `r0 .. r0 + rows` of a one-step kernel (a decode step), in three passes as a seq
    /// chunk's steps: the row-level work four rows a vector, each value the inner level reads
    /// stored (and loaded splat per row); then two state vectors at a time through the chunk's rows (a row's
    /// inner work, its state from `h0`, its final state stored; the vectors' `B` and `C` loaded
    /// once for all the rows); then the sums, four rows' reduced together, and the epilogue
    /// four rows a vector. Row blocks of four, each row's state vectors in turn, kept the
    /// block's `B` and `C` vectors, its splat values and the `exp` constants live at once:
    /// about 190 of a block's 695 instructions moved values to and from the stack.
    pub(super) fn row_chunk(&mut self, r0: Value, rows: usize) {
        self.scalars.clear();
        self.per_chunk.clear();
        let first = self.decompose_row(r0);
        let last = first.len() - 1;
        self.l = self.k.seq.map(|_| self.b.ins().iconst(types::I64, 0));
        // only what reaches a store: a dead step's operands are not loaded
        let live = self.live_steps();
        let at = |t: &Self, level: Level| -> Vec<V> { t.steps_at(level).into_iter().filter(|&v| live[v]).collect() };
        let outer: Vec<V> = at(self, Level::Row).into_iter().chain(at(self, Level::SeqPre)).collect();
        let (row_inner, inner, finals) = (at(self, Level::RowInner), at(self, Level::Inner), at(self, Level::Final));
        let sums = self.sums();
        let mut read: Vec<V> = row_inner.iter().chain(&inner).flat_map(|&v| self.k.steps[v].1.operands()).filter(|&x| matches!(self.level(x), Level::Row | Level::SeqPre)).collect();
        read.sort_unstable();
        read.dedup();
        let vectors = self.chunks.len();
        self.chunk_slots(&read, &sums, rows);
        // the rows from `r0 + k`: only the last row dim's index moves within a chunk
        let rows_at = |t: &mut Self, k: Value| -> Chunk {
            t.row_idx = first.clone();
            t.row_idx[last] = t.b.ins().iadd(first[last], k);
            let r = t.b.ins().iadd(r0, k);
            Chunk { width: 4, i: r, unrolled: None }
        };

        // 1: the row-level work, four rows a vector; each value the inner level reads is
        // stored
        self.first_pass_groups(rows, |t, k| {
            let lanes = rows_at(t, k);
            t.along_rows = true;
            t.lane_values(&outer, lanes);
            t.along_rows = false;
            t.store_values(&read, k);
        });

        // 2: the state vectors, two at a time, through the chunk's rows
        let unroll = if rows.is_multiple_of(8) { 8 } else { 4 };
        for cs in (0..vectors).collect::<Vec<usize>>().chunks(2) {
            self.groups(rows, unroll, |t, k| {
                rows_at(t, k);
                for &v in &read {
                    let addr = t.slot_at(t.chunk_pre[&v], k, 4);
                    t.chunk_group.insert(v, addr);
                }
                for j in 0..unroll as u8 {
                    t.row_step = j as usize;
                    t.pair_step(cs, j, k, rows, &inner, &sums, Some((&row_inner, &finals)));
                }
                t.row_step = 0;
                t.in_chunk = None;
                t.chunk_group.clear();
            });
        }

        // 3: each row's pair partials added, four rows' sums reduced together, the epilogue
        self.groups(rows, 4, |t, k| {
            let lanes = rows_at(t, k);
            t.along_rows = true;
            // the row-level values again, for the epilogue (what it does not read is dead)
            t.lane_values(&outer, lanes);
            t.chunk_epilogue(&sums, k, rows, lanes);
            t.along_rows = false;
        });
        self.row_idx = first;
        self.l = None;
    }

    /// The stack buffers of a chunk of `n` steps or rows (made once per kernel): `n` floats per
    /// value in `read`, `n` vectors of partials per pair of state vectors per sum.
    fn chunk_slots(&mut self, read: &[V], sums: &[V], n: usize) {
        for &v in read {
            if !self.chunk_pre.contains_key(&v) {
                let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (n * 4) as u32, 4));
                self.chunk_pre.insert(v, slot);
            }
        }
        for &s in sums {
            if !self.chunk_sums.contains_key(&s) {
                let bytes = self.chunks.len().div_ceil(2) * n * 16;
                let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes as u32, 4));
                self.chunk_sums.insert(s, slot);
            }
        }
    }

    /// Each value of `read` (a vector along the group at `k`, in `seq_vecs`) stored, where the
    /// state pass loads each step's or row's lane splat (one `vbroadcastss`: storing four splat
    /// vectors took four shuffles and stores a group, 39.4 against 38.4 ms at
    /// (1, 1536, 2048, 16) on one thread).
    fn store_values(&mut self, read: &[V], k: Value) {
        for &v in read {
            let val = self.seq_vecs[&v];
            let addr = self.slot_at(self.chunk_pre[&v], k, 4);
            self.b.ins().store(MemFlagsData::trusted(), val, addr, 0);
        }
        self.seq_vecs.clear();
    }

    /// Step (or row) `j` of the group at `k`, for the state vectors `cs` (a pair, or one): their
    /// inner work, and each sum's terms added into one partial (the second with one FMA when a
    /// product), stored with `n` partials per pair. A row chunk's rows (`rowwise`: the
    /// row-invariant and final steps) also load their row-invariant vectors, start their states
    /// and store their final states.
    #[allow(clippy::too_many_arguments)]
    fn pair_step(&mut self, cs: &[usize], j: u8, k: Value, n: usize, inner: &[V], sums: &[V], rowwise: Option<(&[V], &[V])>) {
        self.in_chunk = Some(j);
        let mut partial: HashMap<V, Value> = HashMap::new();
        for &c in cs {
            let ch = self.chunk(c);
            self.cur.clear();
            if let Some((row_inner, _)) = rowwise {
                for &v in row_inner {
                    self.vector_step(v, ch);
                    if let Some(&val) = self.cur.get(&v) {
                        self.per_chunk.insert((v, c), val);
                    }
                }
                self.init_chunk_states(ch);
            }
            for &v in inner {
                self.vector_step(v, ch);
            }
            for &s in sums {
                let acc = self.add_to_sum(s, partial.get(&s).copied(), ch);
                partial.insert(s, acc);
            }
            if let Some((_, finals)) = rowwise {
                for &v in finals {
                    self.vector_step(v, ch);
                }
            }
        }
        for &s in sums {
            let addr = self.slot_at(self.chunk_sums[&s], k, 16);
            let at = ((cs[0] / 2 * n + j as usize) * 16) as i32;
            self.b.ins().store(MemFlagsData::trusted(), partial[&s], addr, at);
        }
    }

    /// The epilogue of the four steps or rows from `k` (of a chunk of `n`), as vectors along
    /// `lanes`: each sum's pair partials added and the four reduced together, then the rest.
    fn chunk_epilogue(&mut self, sums: &[V], k: Value, n: usize, lanes: Chunk) {
        for &s in sums {
            let total = self.pair_sums(self.chunk_sums[&s], k, n);
            self.seq_vecs.insert(s, total);
        }
        self.lane_epilogue(sums, &HashMap::new(), lanes);
    }

    /// The sums of the four steps or rows from `k`: each one's pair partials (in `slot`, `n`
    /// per pair) added, pair 0 first, then the four reduced together.
    fn pair_sums(&mut self, slot: StackSlot, k: Value, n: usize) -> Value {
        let vectors = self.chunks.len();
        let addr = self.slot_at(slot, k, 16);
        let parts: Vec<Value> = (0..4)
            .map(|j| {
                let term = |t: &mut Self, pair: usize| t.b.ins().load(types::F32X4, MemFlagsData::trusted(), addr, ((pair * n + j) * 16) as i32);
                let mut acc = term(self, 0);
                for pair in 1..vectors.div_ceil(2) {
                    let x = term(self, pair);
                    acc = self.b.ins().fadd(acc, x);
                }
                acc
            })
            .collect();
        self.transpose_sum(&parts)
    }

    /// Which steps a store depends on.
    fn live_steps(&self) -> Vec<bool> {
        let mut live: Vec<bool> = self.k.steps.iter().map(|(_, st)| matches!(st, Step::Store(..))).collect();
        for v in (0..self.k.steps.len()).rev() {
            if live[v] {
                for x in self.k.steps[v].1.operands() {
                    live[x] = true;
                }
            }
        }
        live
    }

    /// The inner scans' states of chunk `ch` (an unrolled chunk) at their initial values.
    fn init_chunk_states(&mut self, ch: Chunk) {
        let c = ch.unrolled.expect("an unrolled chunk");
        for v in self.steps_at(Level::Inner) {
            let Step::Scan { init, .. } = self.k.steps[v].1 else { continue };
            let h0 = match init {
                Some(i) => self.operand(i, ch),
                None => math::konst(self.b, types::F32X4, 0.0),
            };
            let var = self.b.declare_var(types::F32X4);
            self.b.def_var(var, h0);
            self.state_vars.insert((v, c), var);
        }
    }

    /// Moves the inner scan states into stack slots for the chunks, where each inner vector's
    /// pass loads its state and stores it back: as variables live through the whole chunk
    /// loop, Cranelift's register allocator keeps them on the stack even in the pass that
    /// updates them (one load and one store per step).
    pub(super) fn park_states(&mut self) {
        let mut keys: Vec<(V, usize)> = self.state_vars.keys().copied().filter(|&(v, c)| c != usize::MAX && self.level(v) == Level::Inner).collect();
        keys.sort_unstable();
        for key in keys {
            let slot = vector_slot(self.b, &mut self.parked, key);
            let h = self.b.use_var(self.state_vars[&key]);
            self.b.ins().stack_store(types::I64, h, slot, 0);
        }
    }

    /// The states back in their variables after the chunks.
    pub(super) fn unpark_states(&mut self) {
        let mut keys: Vec<(V, usize)> = self.parked.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let h = self.b.ins().stack_load(types::I64, types::F32X4, self.parked[&key], 0);
            self.b.def_var(self.state_vars[&key], h);
        }
    }

    /// The seq-level values of the four steps from `l0 + k` as vectors along seq (in
    /// `seq_vecs`; `along_seq` is left on).
    fn group_values(&mut self, l0: Value, k: Value, pre: &[V]) -> Chunk {
        let l = self.b.ins().iadd(l0, k);
        let lanes = Chunk { width: 4, i: l, unrolled: None };
        self.l = Some(l);
        self.along_seq = true;
        self.lane_values(pre, lanes);
        lanes
    }

    /// The address of step `k`'s `bytes` in a chunk buffer.
    fn slot_at(&mut self, slot: StackSlot, k: Value, bytes: i64) -> Value {
        let base = self.b.ins().stack_addr(types::I64, slot, 0);
        let at = self.b.ins().imul_imm_s(k, bytes);
        self.b.ins().iadd(base, at)
    }

    /// A chunk's first pass: `f` for each group of four steps or rows from `k`, two groups a
    /// loop iteration where they divide the chunk (a little faster for prefill and decode; the
    /// third pass gained nothing so).
    fn first_pass_groups(&mut self, n: usize, mut f: impl FnMut(&mut Self, Value)) {
        let per = if n.is_multiple_of(8) { 8 } else { 4 };
        self.groups(n, per, |t, k| {
            for g in (0..per).step_by(4) {
                let kg = t.b.ins().iadd_imm_s(k, g as i64);
                f(t, kg);
            }
        });
    }

    /// A loop over `0, stride, .., steps - stride`, `f` emitting its body for the group at `k`
    /// (an i64).
    fn groups(&mut self, steps: usize, stride: usize, f: impl FnOnce(&mut Self, Value)) {
        let k = self.b.declare_var(types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(k, zero);
        let more = |t: &mut Self, kv: Value| t.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, kv, steps as i64);
        self.while_loop(k, stride as i64, more, f);
    }
}

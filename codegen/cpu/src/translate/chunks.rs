//! Seq chunks: a prefill's seq loop as chunks of steps, each in three passes, so that a scan
//! state stays in one register through the chunk (see [`ssmc_kernel::Schedule::seq_chunk`]).
//!
//! ```text
//! for each group of 4 steps:  seq-level work as vectors along seq; store what the inner level reads
//! for each pair of inner vectors:  load their loop-invariant values
//!     for each step:          the pair's inner work (states in registers); sum terms into a buffer
//! for each group of 4 steps:  the sums' partial vectors reduced together; the epilogue along seq
//! ```
//!
//! Every (step, inner vector) pair computes what the seq block computes, in an order that keeps
//! each scan's steps in order and adds each sum's terms in the same order (vector 0 first). The
//! first term of each pair of vectors (`C h`) is rounded before it is added, where the seq
//! block adds every term with one FMA: the results differ within float rounding, not more.

use super::{Chunk, KernelTranslator};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, MemFlagsData, StackSlot, StackSlotData, StackSlotKind, Value};
use ssmc_kernel::{Level, Step, V};
use std::collections::HashMap;

impl KernelTranslator<'_, '_> {
    /// Steps per chunk when the seq loop runs in chunks: a forward seq loop of at least one
    /// chunk whose seq blocks apply, with the inner dim unrolled into whole vectors, and an
    /// inner level that stores nothing (one that stores every step, as the unfused plan's scan
    /// does, is bound by memory, and walking its rows' lines once per inner vector made it
    /// slower: 94 to 102 against 89 ms at (1, 1536, 2048, 16)).
    pub(super) fn seq_chunks(&self) -> Option<usize> {
        let steps = self.seq_chunk;
        let extent = self.k.seq?.0;
        (steps >= 4
            && extent >= steps
            && self.seq_blocks()
            && self.unrolled
            && self.k.inner.is_some()
            && self.chunks.iter().all(|&(_, w)| w == 4)
            && !self.k.steps.iter().any(|(l, st)| *l == Level::Inner && matches!(st, Step::Conv { .. } | Step::Store(..))))
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
        for &v in &read {
            if !self.chunk_pre.contains_key(&v) {
                let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (steps * 16) as u32, 4));
                self.chunk_pre.insert(v, slot);
            }
        }
        for &s in &sums {
            if !self.chunk_sums.contains_key(&s) {
                let bytes = self.chunks.len().div_ceil(2) * steps * 16;
                let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes as u32, 4));
                self.chunk_sums.insert(s, slot);
            }
        }

        // 1: the seq-level work, four steps a vector; each value the inner level reads is
        // stored as four f32s
        self.groups(steps, 4, |t, k| {
            t.group_values(l0, k, &pre);
            t.along_seq = false;
            for &v in &read {
                let val = t.seq_vecs[&v];
                let addr = t.slot_at(t.chunk_pre[&v], k);
                for j in 0..4u8 {
                    let splat = t.shuffle_lanes(val, val, [j; 4]);
                    t.b.ins().store(MemFlagsData::trusted(), splat, addr, 16 * j as i32);
                }
            }
            t.seq_vecs.clear();
        });

        // 2: the inner vectors, two at a time, through the chunk's steps; a sum's terms are
        // kept per pair
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
                let parked: Vec<(V, usize)> = self.parked.keys().copied().filter(|&(_, cc)| cc == c).collect();
                for &key in &parked {
                    let h = self.b.ins().stack_load(types::I64, types::F32X4, self.parked[&key], 0);
                    self.b.def_var(self.state_vars[&key], h);
                }
                parked_all.extend(parked);
            }
            self.groups(steps, unroll, |t, k| {
                let l = t.b.ins().iadd(l0, k);
                t.l = Some(l);
                for &v in &read {
                    let addr = t.slot_at(t.chunk_pre[&v], k);
                    t.chunk_group.insert(v, addr);
                }
                for j in 0..unroll as u8 {
                    t.l_step = j as usize;
                    t.in_chunk = Some(j);
                    // the pair's terms added here (the second with one FMA when a product)
                    let mut partial: HashMap<V, Value> = HashMap::new();
                    for &c in cs {
                        let ch = t.chunk(c);
                        t.cur.clear();
                        for &v in &inner {
                            t.vector_step(v, ch);
                        }
                        for &s in &sums {
                            let acc = match partial.get(&s) {
                                Some(&acc) => t.add_to_sum(s, acc, ch),
                                None => t.sum_term(s, ch),
                            };
                            partial.insert(s, acc);
                        }
                    }
                    for &s in &sums {
                        let addr = t.slot_at(t.chunk_sums[&s], k);
                        let at = ((cs[0] / 2 * steps + j as usize) * 16) as i32;
                        t.b.ins().store(MemFlagsData::trusted(), partial[&s], addr, at);
                    }
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

        // 3: each step's terms added (pair 0 first), four steps' partial sums reduced
        // together, then the epilogue along seq
        self.groups(steps, 4, |t, k| {
            // the seq-level values again, for the epilogue (what it does not read is dead)
            let lanes = t.group_values(l0, k, &pre);
            for &s in &sums {
                let addr = t.slot_at(t.chunk_sums[&s], k);
                let parts: Vec<Value> = (0..4)
                    .map(|j| {
                        let term = |t: &mut Self, pair: usize| t.b.ins().load(types::F32X4, MemFlagsData::trusted(), addr, ((pair * steps + j) * 16) as i32);
                        let mut acc = term(t, 0);
                        for pair in 1..vectors.div_ceil(2) {
                            let x = term(t, pair);
                            acc = t.b.ins().fadd(acc, x);
                        }
                        acc
                    })
                    .collect();
                let total = t.transpose_sum(&parts);
                t.seq_vecs.insert(s, total);
            }
            t.lane_epilogue(&sums, &HashMap::new(), lanes);
            t.along_seq = false;
        });
        self.l = None;
        self.scalars = saved;
    }

    /// Moves the inner scan states into stack slots for the chunks, where each inner vector's
    /// pass loads its state and stores it back: as variables live through the whole chunk
    /// loop, Cranelift's register allocator keeps them on the stack even in the pass that
    /// updates them (one load and one store per step).
    pub(super) fn park_states(&mut self) {
        let mut keys: Vec<(V, usize)> = self.state_vars.keys().copied().filter(|&(v, c)| c != usize::MAX && self.level(v) == Level::Inner).collect();
        keys.sort_unstable();
        for key in keys {
            let slot = match self.parked.get(&key) {
                Some(&slot) => slot,
                None => {
                    let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4));
                    self.parked.insert(key, slot);
                    slot
                }
            };
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

    /// The address of step `k`'s 16 bytes in a chunk buffer.
    fn slot_at(&mut self, slot: StackSlot, k: Value) -> Value {
        let base = self.b.ins().stack_addr(types::I64, slot, 0);
        let at = self.b.ins().imul_imm_s(k, 16);
        self.b.ins().iadd(base, at)
    }

    /// A loop over `0, stride, .., steps - stride`, `f` emitting its body for the group at `k`
    /// (an i64).
    fn groups(&mut self, steps: usize, stride: usize, mut f: impl FnMut(&mut Self, Value)) {
        let k = self.b.declare_var(types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(k, zero);
        let (head, body, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let kv = self.b.use_var(k);
        let more = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, kv, steps as i64);
        self.b.ins().brif(more, body, &[], done, &[]);
        self.b.switch_to_block(body);
        f(self, kv);
        let kv = self.b.use_var(k);
        let next = self.b.ins().iadd_imm_s(kv, stride as i64);
        self.b.def_var(k, next);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(done);
    }
}

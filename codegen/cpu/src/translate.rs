//! KernelTranslator: one [`Kir`] into a Cranelift function
//! `extern "C" fn(buffers: *const *mut u8, row_start: u64, row_end: u64)`.
//!
//! Rows loop outermost; inside a row the seq loop walks its dim; inner work runs in chunks of
//! four lanes (`f32x4`) and a scalar tail. Short inner loops are unrolled at JIT time so each
//! chunk's scan state lives in a register across the whole seq loop; long ones loop, with the
//! states in a stack buffer.

use crate::math;
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, AbiParam, InstBuilder, MemFlagsData, StackSlot, StackSlotData, StackSlotKind, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use ssmc_ir::{BinaryOp, GateKind, Method, UnaryOp};
use ssmc_kernel::{Axis, Back, Kir, Level, Schedule, Step, V};
use std::collections::HashMap;

mod blocks;
mod chunks;
mod memory;
mod replay;

/// Memory flags for kernel loads and stores: the buffers are checked before launch, so accesses
/// do not trap; they may be unaligned (inputs come straight from files).
fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Loads read buffers the kernel never writes (a kernel's reads and writes are distinct), so
/// they may move: Cranelift then places each load next to its first use instead of keeping all
/// loads at the top of the loop body, which would spill registers.
fn load_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap().with_readonly().with_can_move()
}

/// The signature every kernel has.
pub fn signature(sig: &mut cranelift_codegen::ir::Signature) {
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
}

/// Where inner-level values live while translating one chunk.
#[derive(Clone, Copy)]
struct Chunk {
    /// Lanes: 4 (a vector) or 1 (a scalar).
    width: usize,
    /// The first inner index (i64).
    i: Value,
    /// The chunk's number when the inner loop is unrolled.
    unrolled: Option<usize>,
}

/// Translates one kernel.
pub struct KernelTranslator<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    k: &'a Kir,
    vw: usize,
    unrolled: bool,
    bases: Vec<Value>,
    row_idx: Vec<Value>,
    l: Option<Value>,
    scalars: HashMap<V, Value>,
    per_chunk: HashMap<(V, usize), Value>,
    cur: HashMap<V, Value>,
    /// Scan states: per chunk Variables when unrolled; a stack buffer per scan when looped.
    state_vars: HashMap<(V, usize), Variable>,
    state_slots: HashMap<V, StackSlot>,
    /// Whether [`KernelTranslator::inner_level`] leaves its sums as vectors of partial sums (in
    /// `deferred`, one per step) for the seq block to reduce.
    defer_sums: bool,
    deferred: HashMap<V, Vec<Value>>,
    /// A row's loop-invariant inner vectors, per (step, chunk), kept in stack slots for a seq
    /// loop of more than one step (see [`KernelTranslator::keep_row_inner`]).
    row_slots: HashMap<(V, usize), StackSlot>,
    /// Per sum: (vector accumulator, scalar accumulator).
    sum_vars: HashMap<V, (Variable, Variable)>,
    chunks: Vec<(usize, usize)>,
    /// While emitting a block of four seq steps at once: lanes run along seq, and these are the
    /// vector values of the seq-level steps.
    along_seq: bool,
    seq_vecs: HashMap<V, Value>,
    /// While emitting a block of four rows at once: lanes run along the last row dim (the
    /// vectors are kept in `seq_vecs`).
    along_rows: bool,
    /// Steps per seq chunk ([`Schedule::seq_chunk`]; 0: no seq or row chunks).
    seq_chunk: usize,
    /// The stack buffers of a seq or row chunk (see `chunks.rs`): per outer value the inner
    /// level reads, its value per step or row; per sum, one vector of partial sums per
    /// pair of state vectors and step or row.
    chunk_pre: HashMap<V, StackSlot>,
    chunk_sums: HashMap<V, StackSlot>,
    /// While emitting a chunk's state pass: the step or row within the current group, and
    /// where the group's seq-level (or row-level) values are.
    in_chunk: Option<u8>,
    chunk_group: HashMap<V, Value>,
    /// The current state vectors' loop-invariant values, loaded once before the chunk's steps.
    chunk_row_inner: HashMap<(V, usize), Value>,
    /// Where inner scan states wait between a seq chunk's passes (see `park_states`).
    parked: HashMap<(V, usize), StackSlot>,
    /// Loads and stores at seq step `l` address step `l + l_step` (a seq chunk's step within
    /// its group, as an immediate offset), and at row `r` (the last row dim) row `r + row_step`.
    l_step: usize,
    row_step: usize,
    /// `exp2` steps emitted without their clamp: a seq chunk checked that their arguments are
    /// in range (see `ranged_exp2s`).
    unclamped: Vec<V>,
    /// Steps per chunk of a replay ([`Schedule::replay_chunk`]).
    replay_chunk: usize,
    /// A replay kernel's stack buffers (see `replay.rs`).
    replay: Option<replay::Replay>,
    /// The current row's number (sums across rows add into its block).
    row_value: Option<Value>,
    /// Each scan's state before the current step's update (what `Step::Prev` reads).
    prev_state: HashMap<V, Value>,
}

/// How many vector steps an inner loop without scan states may unroll into.
const UNROLL_BUDGET: usize = 256;

impl<'a, 'b> KernelTranslator<'a, 'b> {
    /// Emits the whole function body into `b` (whose signature is [`signature`]) and returns the
    /// row alignment it needs: every row range a call runs must start on a multiple of it (a
    /// row chunk never straddles two calls).
    pub fn translate(b: &'a mut FunctionBuilder<'b>, k: &'a Kir, schedule: &Schedule) -> usize {
        let n = k.inner.unwrap_or(1);
        let vw = if schedule.vector_width >= 4 { 4 } else { 1 };
        // unrolled, inner scan states live in registers; without them, unrolling only saves
        // loop overhead, not worth Cranelift's time on long bodies (a backward's sums over `dim`)
        let inner_steps = k.steps.iter().filter(|(l, _)| *l == Level::Inner).count();
        let carries_states =
            k.steps.iter().any(|(l, st)| matches!(l, Level::Inner | Level::RowInner | Level::ReplayInner) && matches!(st, Step::Scan { .. }));
        let short = n <= schedule.unroll_limit.max(1) && (carries_states || n.div_ceil(vw) * inner_steps <= UNROLL_BUDGET);
        let unrolled = short || k.inner.is_none();
        let mut chunks = Vec::new();
        let mut at = 0;
        while at < n {
            let w = if vw == 4 && n - at >= 4 { 4 } else { 1 };
            chunks.push((at, w));
            at += w;
        }
        let mut t = KernelTranslator {
            b,
            k,
            vw,
            unrolled,
            bases: vec![],
            row_idx: vec![],
            l: None,
            scalars: HashMap::new(),
            per_chunk: HashMap::new(),
            cur: HashMap::new(),
            state_vars: HashMap::new(),
            state_slots: HashMap::new(),
            row_slots: HashMap::new(),
            defer_sums: false,
            deferred: HashMap::new(),
            sum_vars: HashMap::new(),
            chunks,
            along_seq: false,
            seq_vecs: HashMap::new(),
            along_rows: false,
            seq_chunk: schedule.seq_chunk / 4 * 4,
            replay_chunk: schedule.replay_chunk,
            chunk_pre: HashMap::new(),
            chunk_sums: HashMap::new(),
            in_chunk: None,
            chunk_group: HashMap::new(),
            chunk_row_inner: HashMap::new(),
            l_step: 0,
            row_step: 0,
            parked: HashMap::new(),
            unclamped: Vec::new(),
            replay: None,
            row_value: None,
            prev_state: HashMap::new(),
        };
        t.body();
        // a sum across rows adds each block of rows on one thread
        if let Some(blocks) = k.buffers.iter().find_map(|p| p.blocks.as_ref()) {
            return blocks.rows;
        }
        t.row_chunks().unwrap_or(4)
    }

    fn steps_at(&self, level: Level) -> Vec<V> {
        self.k.steps.iter().enumerate().filter(|(_, (l, _))| *l == level).map(|(i, _)| i).collect()
    }

    /// The sums of the kernel (they complete after the inner loop).
    fn sums(&self) -> Vec<V> {
        self.steps_at(Level::SeqPost).into_iter().filter(|&v| matches!(self.k.steps[v].1, Step::Sum(_))).collect()
    }

    /// The index of the loop `axis` at inner index `i` (None outside the inner loop).
    fn axis_index(&self, axis: Axis, i: Option<Value>) -> Value {
        match axis {
            Axis::Row(k) => self.row_idx[k],
            Axis::Seq => self.l.expect("a step along seq runs inside the seq loop"),
            Axis::Inner => i.expect("a step along the inner dim runs per lane"),
        }
    }

    fn level(&self, v: V) -> Level {
        self.k.steps[v].0
    }

    fn vty(&self, width: usize) -> Type {
        if width == 4 {
            types::F32X4
        } else {
            types::F32
        }
    }

    fn body(&mut self) {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let params = self.b.block_params(entry).to_vec();
        let (bufs, start, end) = (params[0], params[1], params[2]);
        for p in 0..self.k.buffers.len() {
            let base = self.b.ins().load(types::I64, MemFlagsData::trusted().with_readonly(), bufs, (p * 8) as i32);
            self.bases.push(base);
        }
        // states of looped inner loops live in stack buffers
        if !self.unrolled {
            let n = self.k.inner.unwrap_or(1);
            for v in 0..self.k.steps.len() {
                if matches!(self.k.steps[v].1, Step::Scan { .. }) && matches!(self.level(v), Level::Inner | Level::ReplayInner) {
                    let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (n * 4) as u32, 4));
                    self.state_slots.insert(v, slot);
                }
            }
        }
        let r = self.b.declare_var(types::I64);
        self.b.def_var(r, start);
        if let Some(rows) = self.row_chunks() {
            // whole chunks first (calls start on multiples of `rows`), then blocks of four
            let more = |t: &mut Self, rv: Value| {
                let past = t.b.ins().iadd_imm_s(rv, rows as i64);
                t.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, past, end)
            };
            self.while_loop(r, rows as i64, more, |t, rv| t.row_chunk(rv, rows));
        }
        let (head, row, exit) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let rv = self.b.use_var(r);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, rv, end);
        self.b.ins().brif(more, row, &[], exit, &[]);
        self.b.switch_to_block(row);
        let step = if self.row_blocks() {
            self.row_block(rv);
            4
        } else {
            self.row(rv);
            1
        };
        let rv = self.b.use_var(r);
        let next = self.b.ins().iadd_imm_s(rv, step);
        self.b.def_var(r, next);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(exit);
        self.b.ins().return_(&[]);
        self.b.seal_all_blocks();
    }

    /// One row: decompose the row number, then the levels in order.
    fn row(&mut self, r: Value) {
        self.scalars.clear();
        self.per_chunk.clear();
        self.row_idx = self.decompose_row(r);
        self.row_value = Some(r);
        self.l = None;
        for v in self.steps_at(Level::Row) {
            self.scalar_step(v);
        }
        if self.unrolled {
            self.row_inner_values();
            self.keep_row_inner();
        }
        self.init_states();
        if self.k.replay {
            self.replay_loop();
        } else {
            self.seq_loop();
        }
        self.final_level();
    }

    /// The row dims' indices of row `r`, last dim fastest.
    fn decompose_row(&mut self, r: Value) -> Vec<Value> {
        let mut rest = r;
        let mut idx = vec![rest; self.k.rows.len()];
        for (k, &extent) in self.k.rows.iter().enumerate().rev() {
            if k == 0 {
                idx[k] = rest;
            } else {
                idx[k] = self.b.ins().urem_imm_u(rest, extent as i64);
                rest = self.b.ins().udiv_imm_u(rest, extent as i64);
            }
        }
        idx
    }

    /// The row's loop-invariant inner values, per (unrolled) chunk.
    fn row_inner_values(&mut self) {
        for c in 0..self.chunks.len() {
            let ch = self.chunk(c);
            self.cur.clear();
            for v in self.steps_at(Level::RowInner) {
                self.vector_step(v, ch);
                if let Some(&val) = self.cur.get(&v) {
                    self.per_chunk.insert((v, c), val);
                }
            }
        }
    }

    /// Stores the row's loop-invariant inner vectors in stack slots, where a seq loop of more
    /// than one step reads them, one load at each use. Left as values, Cranelift's egraph pass
    /// places their pure computation (a movable load of `A`, a multiply by `log2 e` whose
    /// constant is itself spilled) inside the loop at their use, every step: the loop has more
    /// live vectors than x86's 16 registers.
    fn keep_row_inner(&mut self) {
        if self.k.seq.is_none_or(|(extent, _)| extent <= 1) {
            return;
        }
        let mut keys: Vec<(V, usize)> = self.per_chunk.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let val = self.per_chunk[&key];
            if self.b.func.dfg.value_type(val) != types::F32X4 {
                continue;
            }
            let slot = vector_slot(self.b, &mut self.row_slots, key);
            self.b.ins().stack_store(types::I64, val, slot, 0);
        }
    }

    fn chunk(&mut self, c: usize) -> Chunk {
        let (at, width) = self.chunks[c];
        let i = self.b.ins().iconst(types::I64, at as i64);
        Chunk { width, i, unrolled: Some(c) }
    }

    fn init_states(&mut self) {
        let scans: Vec<V> = (0..self.k.steps.len()).filter(|&v| matches!(self.k.steps[v].1, Step::Scan { .. })).collect();
        for v in scans {
            let Step::Scan { init, .. } = self.k.steps[v].1.clone() else { unreachable!() };
            if matches!(self.level(v), Level::Inner | Level::ReplayInner) {
                if self.unrolled {
                    for c in 0..self.chunks.len() {
                        let ch = self.chunk(c);
                        let ty = self.vty(ch.width);
                        let h0 = match init {
                            Some(i) => self.operand(i, ch),
                            None => math::konst(self.b, ty, 0.0),
                        };
                        let var = self.b.declare_var(ty);
                        self.b.def_var(var, h0);
                        self.state_vars.insert((v, c), var);
                    }
                } else {
                    let slot = self.state_slots[&v];
                    self.inner_loops(|t, ch| {
                        let ty = t.vty(ch.width);
                        for v in t.steps_at(Level::RowInner) {
                            t.vector_step(v, ch);
                        }
                        let h0 = match init {
                            Some(i) => t.operand(i, ch),
                            None => math::konst(t.b, ty, 0.0),
                        };
                        let off = t.b.ins().imul_imm_s(ch.i, 4);
                        let addr = t.b.ins().stack_addr(types::I64, slot, 0);
                        let addr = t.b.ins().iadd(addr, off);
                        t.b.ins().store(MemFlagsData::trusted(), h0, addr, 0);
                    });
                }
            } else {
                let h0 = match init {
                    Some(i) => self.scalars[&i],
                    None => self.b.ins().f32const(0.0),
                };
                let var = self.b.declare_var(types::F32);
                self.b.def_var(var, h0);
                self.state_vars.insert((v, usize::MAX), var);
            }
        }
    }

    /// Runs `f` over the inner index space as a vector loop and a scalar tail loop (looped mode).
    fn inner_loops(&mut self, mut f: impl FnMut(&mut Self, Chunk)) {
        let n = self.k.inner.unwrap_or(1);
        let n4 = if self.vw == 4 { n / 4 * 4 } else { 0 };
        for (lo, hi, width) in [(0, n4, 4), (n4, n, 1)] {
            if lo >= hi {
                continue;
            }
            let i = self.b.declare_var(types::I64);
            let start = self.b.ins().iconst(types::I64, lo as i64);
            self.b.def_var(i, start);
            let (head, body, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
            self.b.ins().jump(head, &[]);
            self.b.switch_to_block(head);
            let iv = self.b.use_var(i);
            let more = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, iv, hi as i64);
            self.b.ins().brif(more, body, &[], done, &[]);
            self.b.switch_to_block(body);
            self.cur.clear();
            f(self, Chunk { width, i: iv, unrolled: None });
            let iv = self.b.use_var(i);
            let next = self.b.ins().iadd_imm_s(iv, width as i64);
            self.b.def_var(i, next);
            self.b.ins().jump(head, &[]);
            self.b.switch_to_block(done);
        }
    }

    fn seq_loop(&mut self) {
        let (extent, reverse) = self.k.seq.unwrap_or((1, false));
        let t = self.b.declare_var(types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(t, zero);
        // `t` below `limit`: a whole chunk or block of steps is left
        let below = |limit: i64| move |t: &mut Self, tv: Value| t.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, tv, limit);
        if let Some(steps) = self.seq_chunks() {
            self.park_states();
            self.while_loop(t, steps as i64, below((extent - steps + 1) as i64), |t, tv| t.seq_chunk(tv, steps));
            self.unpark_states();
        }
        if self.seq_blocks() {
            self.while_loop(t, 4, below(extent as i64 - 3), |t, tv| t.seq_block(tv));
        }
        let (head, body, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let tv = self.b.use_var(t);
        let more = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, tv, extent as i64);
        self.b.ins().brif(more, body, &[], done, &[]);
        self.b.switch_to_block(body);
        let l = if reverse {
            let last = self.b.ins().iconst(types::I64, extent as i64 - 1);
            self.b.ins().isub(last, tv)
        } else {
            tv
        };
        self.l = Some(l);
        let saved: HashMap<V, Value> = self.scalars.clone();
        for v in self.steps_at(Level::SeqPre) {
            self.scalar_step(v);
        }
        self.inner_level();
        for v in self.steps_at(Level::SeqPost) {
            self.scalar_step(v);
        }
        // values defined inside the loop body are not visible after it
        self.scalars = saved;
        let tv = self.b.use_var(t);
        let next = self.b.ins().iadd_imm_s(tv, 1);
        self.b.def_var(t, next);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(done);
        self.l = None;
    }

    /// `while more(var) { body(var); var += stride }`, `var` an i64 variable already defined.
    fn while_loop(&mut self, var: Variable, stride: i64, more: impl FnOnce(&mut Self, Value) -> Value, body: impl FnOnce(&mut Self, Value)) {
        let (head, block, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let v = self.b.use_var(var);
        let go = more(self, v);
        self.b.ins().brif(go, block, &[], done, &[]);
        self.b.switch_to_block(block);
        body(self, v);
        let v = self.b.use_var(var);
        let next = self.b.ins().iadd_imm_s(v, stride);
        self.b.def_var(var, next);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(done);
    }

    /// Runs `f` on each inner chunk: unrolled, or as loops (recomputing the row-invariant inner
    /// values first in each iteration).
    fn each_chunk(&mut self, mut f: impl FnMut(&mut Self, Chunk)) {
        if self.unrolled {
            for c in 0..self.chunks.len() {
                let ch = self.chunk(c);
                self.cur.clear();
                f(self, ch);
            }
        } else {
            self.inner_loops(|t, ch| {
                for v in t.steps_at(Level::RowInner) {
                    t.vector_step(v, ch);
                }
                f(t, ch);
            });
        }
    }

    fn inner_level(&mut self) {
        let inner = self.steps_at(Level::Inner);
        let sums = self.sums();
        for &s in &sums {
            let vacc = self.b.declare_var(types::F32X4);
            let sacc = self.b.declare_var(types::F32);
            let zv = math::konst(self.b, types::F32X4, 0.0);
            let zs = self.b.ins().f32const(0.0);
            self.b.def_var(vacc, zv);
            self.b.def_var(sacc, zs);
            self.sum_vars.insert(s, (vacc, sacc));
        }
        let run_chunk = |t: &mut Self, ch: Chunk| {
            for &v in &inner {
                t.vector_step(v, ch);
            }
            for &s in &sums {
                let (vacc, sacc) = t.sum_vars[&s];
                let var = if ch.width == 4 { vacc } else { sacc };
                let acc = t.b.use_var(var);
                let acc = t.add_to_sum(s, Some(acc), ch);
                t.b.def_var(var, acc);
            }
        };
        self.each_chunk(run_chunk);
        // in a seq block of whole vectors, the four steps' sums are reduced together after the
        // block (see `KernelTranslator::seq_block`)
        if self.defer_sums && self.unrolled && self.chunks.iter().all(|&(_, w)| w == 4) {
            for &s in &sums {
                let v = self.b.use_var(self.sum_vars[&s].0);
                self.deferred.entry(s).or_default().push(v);
            }
            return;
        }
        for &s in &sums {
            let (vacc, sacc) = self.sum_vars[&s];
            let v = self.b.use_var(vacc);
            let mut total = self.b.use_var(sacc);
            let mut lanes = Vec::new();
            for lane in 0..4u8 {
                lanes.push(self.b.ins().extractlane(v, lane));
            }
            let a = self.b.ins().fadd(lanes[0], lanes[1]);
            let c = self.b.ins().fadd(lanes[2], lanes[3]);
            let ac = self.b.ins().fadd(a, c);
            total = self.b.ins().fadd(ac, total);
            self.scalars.insert(s, total);
        }
    }

    /// `acc` plus sum `s`'s term at chunk `ch`, or the term on its own (`None`: a chunk's first
    /// term). A product (Mamba's `C * h`) accumulates with one FMA, a contraction that rounds
    /// once where a multiply and an add round twice (the product on its own is then dead). A
    /// term on its own takes the scan state as its first factor: Cranelift places pure values
    /// depth-first from their uses, so the state's chain then comes before the other factor's
    /// load, which holds no register through it.
    fn add_to_sum(&mut self, s: V, acc: Option<Value>, ch: Chunk) -> Value {
        let Step::Sum(x) = self.k.steps[s].1 else { unreachable!("a sum step") };
        match (self.k.steps[x].1.clone(), acc) {
            (Step::Binary(BinaryOp::Mul, p, q), Some(acc)) if self.level(x) == Level::Inner => {
                let (p, q) = (self.operand(p, ch), self.operand(q, ch));
                self.b.ins().fma(p, q, acc)
            }
            (Step::Binary(BinaryOp::Mul, p, q), None) if self.level(x) == Level::Inner => {
                let (p, q) = if matches!(self.k.steps[q].1, Step::Scan { .. }) { (q, p) } else { (p, q) };
                let (p, q) = (self.operand(p, ch), self.operand(q, ch));
                self.b.ins().fmul(p, q)
            }
            (_, Some(acc)) => {
                let val = self.operand(x, ch);
                self.b.ins().fadd(acc, val)
            }
            (_, None) => self.operand(x, ch),
        }
    }

    fn final_level(&mut self) {
        let steps = self.steps_at(Level::Final);
        if steps.is_empty() {
            return;
        }
        let chunked = |t: &Self, v: V| match &t.k.steps[v].1 {
            Step::Final(s) => t.level(*s) == Level::Inner,
            Step::Store(x, _) => matches!(&t.k.steps[*x].1, Step::Final(s) if t.level(*s) == Level::Inner),
            _ => false,
        };
        let (vec_steps, scalar_steps): (Vec<V>, Vec<V>) = steps.into_iter().partition(|&v| chunked(self, v));
        for v in scalar_steps {
            self.scalar_step(v);
        }
        if vec_steps.is_empty() {
            return;
        }
        if self.unrolled {
            for c in 0..self.chunks.len() {
                let ch = self.chunk(c);
                self.cur.clear();
                for &v in &vec_steps {
                    self.vector_step(v, ch);
                }
            }
        } else {
            self.inner_loops(|t, ch| {
                for &v in &vec_steps {
                    t.vector_step(v, ch);
                }
            });
        }
    }

    /// The value of step `v` as seen from chunk `ch` (scalars are splat to the chunk's width).
    fn operand(&mut self, v: V, ch: Chunk) -> Value {
        if let Some(j) = self.in_chunk {
            if let Some(&addr) = self.chunk_group.get(&v) {
                // movable, so that Cranelift places it at its use like the pure values around
                // it (in program order it would hold a register through the step's `exp`). The
                // buffer is written only by the chunk's first pass, a loop before this one, and
                // the address depends on this loop's counter: the load cannot move above the
                // stores or merge with another
                let moves = MemFlagsData::trusted().with_readonly().with_can_move();
                let x = self.b.ins().load(types::F32, moves, addr, 4 * j as i32);
                return if ch.width == 4 { self.b.ins().splat(types::F32X4, x) } else { x };
            }
            if let Some(&val) = ch.unrolled.and_then(|c| self.chunk_row_inner.get(&(v, c))) {
                return val;
            }
        }
        if let Some(val) = self.recall(v, ch) {
            return val;
        }
        if self.along_seq || self.along_rows {
            if let Some(&vec) = self.seq_vecs.get(&v) {
                return vec;
            }
            let s = self.scalars[&v];
            return self.b.ins().splat(types::F32X4, s);
        }
        let val = match self.level(v) {
            Level::Row | Level::SeqPre | Level::SeqPost | Level::Replay => self.scalars[&v],
            Level::RowInner if self.unrolled => match ch.unrolled {
                Some(c) => match self.row_slots.get(&(v, c)) {
                    Some(&slot) => self.b.ins().stack_load(types::I64, types::F32X4, slot, 0),
                    None => self.per_chunk[&(v, c)],
                },
                None => self.cur[&v],
            },
            _ => self.cur[&v],
        };
        if ch.width == 4 && self.b.func.dfg.value_type(val) == types::F32 {
            self.b.ins().splat(types::F32X4, val)
        } else {
            val
        }
    }

    fn scalar_step(&mut self, v: V) {
        let one = Chunk { width: 1, i: self.b.ins().iconst(types::I64, 0), unrolled: None };
        if let Some(val) = self.emit(v, one, true) {
            self.scalars.insert(v, val);
        }
    }

    fn vector_step(&mut self, v: V, ch: Chunk) {
        if let Some(val) = self.emit(v, ch, false) {
            self.cur.insert(v, val);
        }
    }

    /// Emits step `v` at width `ch.width`; `outer` means no inner index applies.
    fn emit(&mut self, v: V, ch: Chunk, outer: bool) -> Option<Value> {
        let ty = self.vty(ch.width);
        let step = self.k.steps[v].1.clone();
        let chunk = if outer { None } else { Some(ch) };
        let op = |t: &mut Self, x: V| if outer { t.scalars[&x] } else { t.operand(x, ch) };
        Some(match step {
            Step::Load(a) => self.load(&a, chunk),
            Step::Const(c) => math::konst(self.b, ty, c),
            Step::Unary(UnaryOp::Exp2, x) if self.unclamped.contains(&v) => {
                let Step::Binary(BinaryOp::Mul, p, q) = self.k.steps[x].1 else { unreachable!("a checked product") };
                let (p, q) = (op(self, p), op(self, q));
                math::exp2_small(self.b, ty, p, q)
            }
            Step::Unary(u, x) => {
                let x = op(self, x);
                unary(self.b, ty, u, x)
            }
            Step::Binary(bop, x, y) => {
                let (x, y) = (op(self, x), op(self, y));
                match bop {
                    BinaryOp::Add => self.b.ins().fadd(x, y),
                    BinaryOp::Sub => self.b.ins().fsub(x, y),
                    BinaryOp::Mul => self.b.ins().fmul(x, y),
                    BinaryOp::Div => self.b.ins().fdiv(x, y),
                    BinaryOp::Max => self.b.ins().fmax(x, y),
                    BinaryOp::Min => self.b.ins().fmin(x, y),
                }
            }
            Step::DiscA(m, dt, a) => {
                let (dt, a) = (op(self, dt), op(self, a));
                let x = self.b.ins().fmul(dt, a);
                let one = math::konst(self.b, ty, 1.0);
                match m {
                    Method::Zoh => math::exp(self.b, ty, x),
                    Method::Euler => self.b.ins().fadd(one, x),
                    Method::Bilinear => {
                        let half = math::konst(self.b, ty, 0.5);
                        let hx = self.b.ins().fmul(x, half);
                        let num = self.b.ins().fadd(one, hx);
                        let den = self.b.ins().fsub(one, hx);
                        self.b.ins().fdiv(num, den)
                    }
                }
            }
            Step::DiscB(m, dt, a, bb) => {
                let (dt, a, bb) = (op(self, dt), op(self, a), op(self, bb));
                let dtb = self.b.ins().fmul(dt, bb);
                match m {
                    Method::Euler => dtb,
                    Method::Zoh => {
                        // dt * b * expm1(x) / x, x = dt * a (-> dt * b as x -> 0)
                        let x = self.b.ins().fmul(dt, a);
                        let e = math::expm1(self.b, ty, x);
                        let phi = self.b.ins().fdiv(e, x);
                        let zero = math::konst(self.b, ty, 0.0);
                        let one = math::konst(self.b, ty, 1.0);
                        let is_zero = self.b.ins().fcmp(FloatCC::Equal, x, zero);
                        let phi = math::select(self.b, ty, is_zero, one, phi);
                        self.b.ins().fmul(dtb, phi)
                    }
                    Method::Bilinear => {
                        let x = self.b.ins().fmul(dt, a);
                        let half = math::konst(self.b, ty, 0.5);
                        let hx = self.b.ins().fmul(x, half);
                        let one = math::konst(self.b, ty, 1.0);
                        let den = self.b.ins().fsub(one, hx);
                        self.b.ins().fdiv(dtb, den)
                    }
                }
            }
            Step::Gate(kind, x, z) => {
                let (x, z) = (op(self, x), op(self, z));
                let s = math::sigmoid(self.b, ty, z);
                let g = match kind {
                    GateKind::Silu => self.b.ins().fmul(z, s),
                    GateKind::Sigmoid => s,
                };
                self.b.ins().fmul(x, g)
            }
            Step::Scan { a, b: bv, .. } => {
                let (a, bv) = (op(self, a), op(self, bv));
                let h = self.state_get(v, ch, outer);
                self.prev_state.insert(v, h);
                // the state first: Cranelift places pure values depth-first from their uses, so
                // this makes earlier steps' chains come before this step's `a` (fewer spills)
                let h = self.b.ins().fma(h, a, bv);
                self.state_set(v, ch, outer, h);
                h
            }
            Step::Sum(_) => return None,
            Step::Final(s) => self.state_get(s, ch, self.level(s) != Level::Inner),
            Step::Conv { x, w, tap_stride, taps, axis, x_axis_stride, bias, reverse, extent } => {
                let lanes = ch.width;
                let mut out = Vec::new();
                for lane in 0..lanes {
                    let i = if outer { None } else { Some(self.b.ins().iadd_imm_s(ch.i, lane as i64)) };
                    let pos = self.axis_index(axis, i);
                    let xo = self.offset(&x, i);
                    let wo = self.offset(&w, i);
                    let mut acc = self.b.ins().f32const(0.0);
                    for j in 0..taps {
                        let back = (taps - 1 - j) as i64;
                        // reversed, tap j reads `back` steps ahead, while inside the axis
                        let (valid, by) = if reverse {
                            (self.b.ins().icmp_imm_s(IntCC::SignedLessThan, pos, extent as i64 - back), back)
                        } else {
                            (self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, pos, back), -back)
                        };
                        let xo_j = self.b.ins().iadd_imm_s(xo, by * x_axis_stride as i64);
                        let zero = self.b.ins().iconst(types::I64, 0);
                        let xo_j = self.b.ins().select(valid, xo_j, zero);
                        let xa = self.address(x.buffer, xo_j);
                        let xv = self.load_scalar(self.k.buffers[x.buffer].dtype, xa, 0);
                        let fz = self.b.ins().f32const(0.0);
                        let xv = self.b.ins().select(valid, xv, fz);
                        let wo_j = self.b.ins().iadd_imm_s(wo, (j * tap_stride) as i64);
                        let wa = self.address(w.buffer, wo_j);
                        let wv = self.load_scalar(self.k.buffers[w.buffer].dtype, wa, 0);
                        acc = self.b.ins().fma(wv, xv, acc);
                    }
                    out.push(acc);
                }
                let mut val = if lanes == 4 {
                    let mut vv = self.b.ins().splat(types::F32X4, out[0]);
                    for (lane, s) in out.iter().enumerate().skip(1) {
                        vv = self.b.ins().insertlane(vv, *s, lane as u8);
                    }
                    vv
                } else {
                    out[0]
                };
                if let Some(bias) = bias {
                    let bv = op(self, bias);
                    val = self.b.ins().fadd(val, bv);
                }
                val
            }
            Step::Gather { x, axis, x_axis_stride, extent, reverse, back, fill } => {
                let lanes = ch.width;
                let fill = fill.map(|f| op(self, f));
                let mut out = Vec::new();
                for lane in 0..lanes {
                    let i = if outer { None } else { Some(self.b.ins().iadd_imm_s(ch.i, lane as i64)) };
                    let pos = self.axis_index(axis, i);
                    let back = match back {
                        Back::Fixed(b) => self.b.ins().iconst(types::I64, b as i64),
                        Back::Taps { axis, taps } => {
                            let j = self.axis_index(axis, i);
                            let last = self.b.ins().iconst(types::I64, taps as i64 - 1);
                            self.b.ins().isub(last, j)
                        }
                    };
                    // inside the axis: pos - back >= 0, or pos + back < extent reversed
                    let (valid, at) = if reverse {
                        let at = self.b.ins().iadd(pos, back);
                        (self.b.ins().icmp_imm_s(IntCC::SignedLessThan, at, extent as i64), at)
                    } else {
                        let at = self.b.ins().isub(pos, back);
                        (self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, at, 0), at)
                    };
                    let moved = self.b.ins().isub(at, pos);
                    let moved = self.b.ins().imul_imm_s(moved, x_axis_stride as i64);
                    let xo = self.offset(&x, i);
                    let xo = self.b.ins().iadd(xo, moved);
                    let zero = self.b.ins().iconst(types::I64, 0);
                    let xo = self.b.ins().select(valid, xo, zero);
                    let xa = self.address(x.buffer, xo);
                    let xv = self.load_scalar(self.k.buffers[x.buffer].dtype, xa, 0);
                    let edge = match fill {
                        Some(f) if self.b.func.dfg.value_type(f) == types::F32X4 => self.b.ins().extractlane(f, lane as u8),
                        Some(f) => f,
                        None => self.b.ins().f32const(0.0),
                    };
                    out.push(self.b.ins().select(valid, xv, edge));
                }
                if lanes == 4 {
                    let mut vv = self.b.ins().splat(types::F32X4, out[0]);
                    for (lane, s) in out.iter().enumerate().skip(1) {
                        vv = self.b.ins().insertlane(vv, *s, lane as u8);
                    }
                    vv
                } else {
                    out[0]
                }
            }
            Step::Store(x, a) => {
                let val = op(self, x);
                self.store(val, &a, chunk);
                return None;
            }
            Step::Prev(s) => self.prev_state[&s],
            Step::AddTo(x, a) => {
                let val = op(self, x);
                self.add_to(val, &a, chunk);
                return None;
            }
        })
    }

    fn state_get(&mut self, scan: V, ch: Chunk, outer: bool) -> Value {
        if outer {
            let var = self.state_vars[&(scan, usize::MAX)];
            return self.b.use_var(var);
        }
        match ch.unrolled {
            Some(c) if self.unrolled => {
                let var = self.state_vars[&(scan, c)];
                self.b.use_var(var)
            }
            _ => {
                let slot = self.state_slots[&scan];
                let addr = self.b.ins().stack_addr(types::I64, slot, 0);
                let off = self.b.ins().imul_imm_s(ch.i, 4);
                let addr = self.b.ins().iadd(addr, off);
                let ty = self.vty(ch.width);
                self.b.ins().load(ty, MemFlagsData::trusted(), addr, 0)
            }
        }
    }

    fn state_set(&mut self, scan: V, ch: Chunk, outer: bool, h: Value) {
        if outer {
            let var = self.state_vars[&(scan, usize::MAX)];
            self.b.def_var(var, h);
            return;
        }
        match ch.unrolled {
            Some(c) if self.unrolled => {
                let var = self.state_vars[&(scan, c)];
                self.b.def_var(var, h);
            }
            _ => {
                let slot = self.state_slots[&scan];
                let addr = self.b.ins().stack_addr(types::I64, slot, 0);
                let off = self.b.ins().imul_imm_s(ch.i, 4);
                let addr = self.b.ins().iadd(addr, off);
                self.b.ins().store(MemFlagsData::trusted(), h, addr, 0);
            }
        }
    }
}

/// A stack slot for one `f32x4`.
fn new_vector_slot(b: &mut FunctionBuilder) -> StackSlot {
    b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4))
}

/// `slots[key]`, a [`new_vector_slot`] made on first use (a kernel makes one per key).
fn vector_slot(b: &mut FunctionBuilder, slots: &mut HashMap<(V, usize), StackSlot>, key: (V, usize)) -> StackSlot {
    *slots.entry(key).or_insert_with(|| new_vector_slot(b))
}

fn unary(b: &mut FunctionBuilder, ty: Type, u: UnaryOp, x: Value) -> Value {
    match u {
        UnaryOp::Neg => b.ins().fneg(x),
        UnaryOp::Abs => b.ins().fabs(x),
        UnaryOp::Sqrt => b.ins().sqrt(x),
        UnaryOp::Rsqrt => {
            let s = b.ins().sqrt(x);
            let one = math::konst(b, ty, 1.0);
            b.ins().fdiv(one, s)
        }
        UnaryOp::Recip => {
            let one = math::konst(b, ty, 1.0);
            b.ins().fdiv(one, x)
        }
        UnaryOp::Exp => math::exp(b, ty, x),
        UnaryOp::Exp2 => math::exp2(b, ty, x),
        UnaryOp::Log => math::log(b, ty, x),
        UnaryOp::Log1p => math::log1p(b, ty, x),
        UnaryOp::Softplus => math::softplus(b, ty, x),
        UnaryOp::Sigmoid => math::sigmoid(b, ty, x),
        UnaryOp::Silu => {
            let s = math::sigmoid(b, ty, x);
            b.ins().fmul(x, s)
        }
        UnaryOp::Tanh => math::tanh(b, ty, x),
        UnaryOp::Sin => math::sin(b, ty, x),
        UnaryOp::Cos => math::cos(b, ty, x),
        UnaryOp::Sign => math::sign(b, ty, x),
    }
}

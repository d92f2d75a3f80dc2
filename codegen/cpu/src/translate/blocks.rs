//! Blocks of four: seq steps (a prefill's seq-level work vectorized along the seq dim) and
//! rows (a decode step's row-level work vectorized across channels).

use super::{Chunk, KernelTranslator};
use cranelift_codegen::ir::{types, ConstantData, Endianness, InstBuilder, MemFlagsData, Value};
use ssmc_kernel::{Level, Step, V};
use std::collections::HashMap;

impl KernelTranslator<'_, '_> {
    /// Whether rows can run four at a time: a one-step (or no) seq loop, as in a decode step,
    /// whose row-level work (loads, softplus, the gate, stores) then runs as vectors across four
    /// channels while each channel's inner work runs in turn. Rows come in blocks of four along
    /// the last row dim, so its extent must be a multiple of four (the launch splits rows on
    /// multiples of four).
    pub(super) fn row_blocks(&self) -> bool {
        let outer = |l: Level| matches!(l, Level::Row | Level::SeqPre | Level::SeqPost);
        self.vw == 4
            && self.unrolled
            && !self.plain_only()
            && self.k.rows.last().is_some_and(|&e| e % 4 == 0)
            && self.k.seq.is_none_or(|s| s.0 == 1)
            && !self.k.steps.iter().any(|(l, st)| outer(*l) && matches!(st, Step::Scan { .. } | Step::Conv { .. } | Step::Gather { .. } | Step::Final(_)))
    }

    /// Rows `r0 .. r0 + 4`.
    pub(super) fn row_block(&mut self, r0: Value) {
        self.scalars.clear();
        self.per_chunk.clear();
        self.row_idx = self.decompose_row(r0);
        let last = self.row_idx.len() - 1;
        let first = self.row_idx[last];
        self.l = self.k.seq.map(|_| self.b.ins().iconst(types::I64, 0));
        let lanes = Chunk { width: 4, i: r0, unrolled: None };
        let outer: Vec<V> = self.steps_at(Level::Row).into_iter().chain(self.steps_at(Level::SeqPre)).collect();
        self.along_rows = true;
        self.lane_values(&outer, lanes);
        self.along_rows = false;
        let sums = self.sums();
        let mut sum_lanes: HashMap<V, Vec<Value>> = HashMap::new();
        self.defer_block_sums();
        for j in 0..4u8 {
            self.row_idx[last] = self.b.ins().iadd_imm_s(first, j as i64);
            self.pick_lane(&outer, j);
            self.row_inner_values();
            self.init_states();
            self.inner_level();
            self.keep_lane_sums(&sums, &mut sum_lanes);
            self.final_level();
        }
        self.row_idx[last] = first;
        self.reduce_block_sums();
        self.along_rows = true;
        self.lane_epilogue(&sums, &sum_lanes, lanes);
        self.along_rows = false;
        self.l = None;
    }

    /// Whether seq steps can run four at a time: the seq-level work (everything outside the
    /// inner loop: `softplus(delta + bias)`, the gate, loads and stores along `len`) is then
    /// vectorized across four consecutive steps, while the scan still walks them one by one.
    pub(super) fn seq_blocks(&self) -> bool {
        let Some((extent, reverse)) = self.k.seq else { return false };
        let seq_level = |l: Level| matches!(l, Level::SeqPre | Level::SeqPost);
        self.vw == 4
            && !reverse
            && !self.plain_only()
            && extent >= 4
            && !self.k.steps.iter().any(|(l, st)| seq_level(*l) && matches!(st, Step::Scan { .. } | Step::Conv { .. } | Step::Gather { .. } | Step::Final(_)))
    }

    /// Four forward seq steps starting at `l0`: seq-level steps as vectors along seq, the inner
    /// level four times in order, then the seq-level epilogue as vectors again.
    pub(super) fn seq_block(&mut self, l0: Value) {
        let saved: HashMap<V, Value> = self.scalars.clone();
        let lanes = Chunk { width: 4, i: l0, unrolled: None };
        self.l = Some(l0);
        let pre = self.steps_at(Level::SeqPre);
        self.along_seq = true;
        self.lane_values(&pre, lanes);
        self.along_seq = false;
        let sums = self.sums();
        let mut sum_lanes: HashMap<V, Vec<Value>> = HashMap::new();
        self.defer_block_sums();
        for j in 0..4u8 {
            let l = self.b.ins().iadd_imm_s(l0, j as i64);
            self.l = Some(l);
            self.pick_lane(&pre, j);
            self.inner_level();
            self.keep_lane_sums(&sums, &mut sum_lanes);
        }
        self.reduce_block_sums();
        self.l = Some(l0);
        self.along_seq = true;
        self.lane_epilogue(&sums, &sum_lanes, lanes);
        self.along_seq = false;
        self.scalars = saved;
    }

    /// Emits `steps` as vectors whose lanes are the block's four steps or rows (the mode flag
    /// is set by the caller), keeping them in `seq_vecs`.
    pub(super) fn lane_values(&mut self, steps: &[V], lanes: Chunk) {
        self.seq_vecs.clear();
        for &v in steps {
            if let Some(val) = self.emit(v, lanes, false) {
                self.seq_vecs.insert(v, val);
            }
        }
    }

    /// Makes lane `j` of each of `steps`' vectors the step's scalar value.
    fn pick_lane(&mut self, steps: &[V], j: u8) {
        for &v in steps {
            if let Some(&vec) = self.seq_vecs.get(&v) {
                let lane = self.b.ins().extractlane(vec, j);
                self.scalars.insert(v, lane);
            }
        }
    }

    /// From here to [`Self::reduce_block_sums`], the inner level leaves sums over whole vectors
    /// unreduced, one vector of partial sums per lane of the block.
    fn defer_block_sums(&mut self) {
        self.defer_sums = true;
        self.deferred.clear();
    }

    /// Keeps this lane's total of each sum the inner level did reduce.
    fn keep_lane_sums(&mut self, sums: &[V], sum_lanes: &mut HashMap<V, Vec<Value>>) {
        for &s in sums {
            if !self.deferred.contains_key(&s) {
                sum_lanes.entry(s).or_default().push(self.scalars[&s]);
            }
        }
    }

    /// The deferred sums of the block's four lanes as one vector each (for the epilogue).
    fn reduce_block_sums(&mut self) {
        self.defer_sums = false;
        let deferred = std::mem::take(&mut self.deferred);
        let mut sums: Vec<V> = deferred.keys().copied().collect();
        sums.sort_unstable();
        for s in sums {
            let total = self.transpose_sum(&deferred[&s]);
            self.seq_vecs.insert(s, total);
        }
    }

    /// The four lanes' sums as one vector, from each lane's vector of partial sums: a 4x4
    /// transpose and add (4 interleaves, 2 adds, 2 half moves, 1 add), where reducing each
    /// vector across its lanes and gathering the four totals took about 34 instructions.
    pub(super) fn transpose_sum(&mut self, parts: &[Value]) -> Value {
        let [a, b, c, d] = parts[..] else { unreachable!("a block has four lanes") };
        let ab_lo = self.shuffle_lanes(a, b, [0, 4, 1, 5]);
        let ab_hi = self.shuffle_lanes(a, b, [2, 6, 3, 7]);
        let cd_lo = self.shuffle_lanes(c, d, [0, 4, 1, 5]);
        let cd_hi = self.shuffle_lanes(c, d, [2, 6, 3, 7]);
        // (a0 + a2, b0 + b2, a1 + a3, b1 + b3), the same for c and d
        let ab = self.b.ins().fadd(ab_lo, ab_hi);
        let cd = self.b.ins().fadd(cd_lo, cd_hi);
        let even = self.shuffle_lanes(ab, cd, [0, 1, 4, 5]);
        let odd = self.shuffle_lanes(ab, cd, [2, 3, 6, 7]);
        self.b.ins().fadd(even, odd)
    }

    /// The `f32x4` whose lanes are `lanes` of `x` (0 to 3) and `y` (4 to 7).
    pub(super) fn shuffle_lanes(&mut self, x: Value, y: Value, lanes: [u8; 4]) -> Value {
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let bytes: Vec<u8> = lanes.iter().flat_map(|&l| (0..4).map(move |k| 4 * l + k)).collect();
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(bytes));
        let (xb, yb) = (self.b.ins().bitcast(types::I8X16, little, x), self.b.ins().bitcast(types::I8X16, little, y));
        let s = self.b.ins().shuffle(xb, yb, mask);
        self.b.ins().bitcast(types::F32X4, little, s)
    }

    /// Gathers each sum's four lanes into a vector (unless the block reduced it already) and
    /// emits the epilogue (the rest of the seq-level steps after the inner loop) as vectors.
    pub(super) fn lane_epilogue(&mut self, sums: &[V], sum_lanes: &HashMap<V, Vec<Value>>, lanes: Chunk) {
        for &s in sums {
            let Some(l) = sum_lanes.get(&s) else { continue };
            let mut vec = self.b.ins().splat(types::F32X4, l[0]);
            for (j, x) in l.iter().enumerate().skip(1) {
                vec = self.b.ins().insertlane(vec, *x, j as u8);
            }
            self.seq_vecs.insert(s, vec);
        }
        for v in self.steps_at(Level::SeqPost) {
            if matches!(self.k.steps[v].1, Step::Sum(_)) {
                continue;
            }
            if let Some(val) = self.emit(v, lanes, false) {
                self.seq_vecs.insert(v, val);
            }
        }
        self.seq_vecs.clear();
    }
}

//! The loop-level kernel IR: one kernel of a plan at concrete sizes, as a row loop with three
//! nested levels and a list of scalar SSA steps, each placed at the level it runs in.
//!
//! ```text
//! for row in rows:                  // Row steps (once per row)
//!     RowInner steps                // per inner index, loop-invariant in seq (hoisted)
//!     for l in seq:                 // once if there is no seq dim
//!         SeqPre steps
//!         for i in inner:           // Inner steps: vectors of `Schedule::vector_width` lanes
//!         SeqPost steps             // after the inner loop: sums are complete
//!     Final steps                   // after the seq loop: final scan states
//! ```
//!
//! A replay kernel ([`Kir::replay`]) walks seq backwards with scans along it forwards: its Replay
//! and ReplayInner steps (the forward scans and what they read) run in a forward pass per chunk
//! of steps, from the last chunk, before the chunk's steps run backwards; a later level reads
//! the value a replay step had at the same step.
//!
//! ```text
//! for row in rows:
//!     Row, RowInner steps
//!     for chunk in chunks:            // forwards: the replayed scans' state at each chunk start
//!         for l in chunk: Replay, ReplayInner steps
//!     for chunk in chunks, last first:
//!         for l in chunk:             // forwards, from the chunk's checkpoint, values kept
//!             Replay, ReplayInner steps
//!         for l in chunk, backwards:
//!             SeqPre, Inner, SeqPost steps
//!     Final steps
//! ```

use ssmc_ir::{BinaryOp, DType, GateKind, Method, UnaryOp};

/// Where a step runs (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Once per row.
    Row,
    /// Once per row and inner index, before the seq loop.
    RowInner,
    /// Once per seq step of a replay (see the module docs), before its inner loop.
    Replay,
    /// Once per seq step of a replay and inner index.
    ReplayInner,
    /// Once per seq step, before the inner loop.
    SeqPre,
    /// Once per seq step and inner index.
    Inner,
    /// Once per seq step, after the inner loop.
    SeqPost,
    /// Once per row, after the seq loop.
    Final,
}

/// Index of a step's value.
pub type V = usize;

/// An element of a buffer: `row offset + l * seq + i * inner` (in elements), where the row
/// offset is `sum(row_index[k] * row[k])`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// Which kernel parameter (index into [`Kir::buffers`]).
    pub buffer: usize,
    /// Stride of each row dim (0 where the buffer lacks it).
    pub row: Vec<usize>,
    /// Stride of the seq dim.
    pub seq: usize,
    /// Stride of the inner dim.
    pub inner: usize,
}

/// Which loop a dim is: for convs, the axis they slide along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Row dim `k`.
    Row(usize),
    /// The seq dim.
    Seq,
    /// The inner dim.
    Inner,
}

/// How far a [`Step::Gather`] reads from its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Back {
    /// A fixed number of steps.
    Fixed(usize),
    /// `taps - 1 - j` steps, `j` the index along `axis` (a conv window's tap).
    Taps {
        /// The loop over the taps.
        axis: Axis,
        /// Their number.
        taps: usize,
    },
}

/// One step. Values are `f32` scalars at Row, SeqPre and SeqPost; vectors (or tail scalars)
/// at RowInner and Inner.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Read (and convert to `f32`).
    Load(Access),
    /// A constant.
    Const(f32),
    /// Elementwise.
    Unary(UnaryOp, V),
    /// Elementwise.
    Binary(BinaryOp, V, V),
    /// `Abar`.
    DiscA(Method, V, V),
    /// `Bbar`.
    DiscB(Method, V, V, V),
    /// `x * act(z)`.
    Gate(GateKind, V, V),
    /// `h = a * h + b`; the value is the new state. The state starts at `init` (or 0) per row.
    Scan {
        /// Multiplier.
        a: V,
        /// Addend.
        b: V,
        /// State before the first step (a Row or RowInner value).
        init: Option<V>,
    },
    /// The sum over the inner loop of `x` (an Inner value); available at SeqPost.
    Sum(V),
    /// The state of a scan step after the seq loop.
    Final(V),
    /// Causal conv: `bias + sum_j w[j] * x[pos - (taps-1) + j]` along `axis`, zero before 0
    /// (`x[pos + (taps-1) - j]`, zero past the end, when `reverse`).
    Conv {
        /// The signal (read at shifted positions).
        x: Access,
        /// The taps at tap 0.
        w: Access,
        /// Stride between taps in the weight buffer.
        tap_stride: usize,
        /// Number of taps.
        taps: usize,
        /// The loop the conv slides along.
        axis: Axis,
        /// Stride of `x` along that axis.
        x_axis_stride: usize,
        /// Optional bias value.
        bias: Option<V>,
        /// Look ahead instead of back.
        reverse: bool,
        /// Extent of the axis (where looking ahead stops).
        extent: usize,
    },
    /// `x` read `back` steps behind `pos` along `axis` (ahead when `reverse`); `fill` (or 0)
    /// where that falls outside the axis: shift (`back` 1) and window (`back` by tap).
    Gather {
        /// The operand (read at shifted positions).
        x: Access,
        /// The loop it shifts along.
        axis: Axis,
        /// Stride of `x` along that axis.
        x_axis_stride: usize,
        /// Extent of the axis.
        extent: usize,
        /// Look ahead instead of back.
        reverse: bool,
        /// How far.
        back: Back,
        /// The value outside the axis (0 if absent).
        fill: Option<V>,
    },
    /// Write a value.
    Store(V, Access),
    /// The state of a scan step before this seq step's update (its initial state at the
    /// first): a shift of the scan along its walk.
    Prev(V),
    /// Add a value into its row block's partial sums (see [`Blocks`]): a sum across rows.
    AddTo(V, Access),
}

impl Step {
    /// The values this step reads.
    pub fn operands(&self) -> Vec<V> {
        match self {
            Step::Load(_) | Step::Const(_) => vec![],
            Step::Unary(_, x) | Step::Sum(x) | Step::Final(x) | Step::Store(x, _) | Step::Prev(x) | Step::AddTo(x, _) => vec![*x],
            Step::Binary(_, x, y) | Step::DiscA(_, x, y) | Step::Gate(_, x, y) => vec![*x, *y],
            Step::DiscB(_, x, y, z) => vec![*x, *y, *z],
            Step::Scan { a, b, init } => [Some(*a), Some(*b), *init].into_iter().flatten().collect(),
            Step::Conv { bias, .. } => bias.iter().copied().collect(),
            Step::Gather { fill, .. } => fill.iter().copied().collect(),
        }
    }

    /// Whether the step reads memory at positions other than the loop's own (conv1d, shift,
    /// window): schedules that split or reorder a loop cannot run it.
    pub fn reads_neighbours(&self) -> bool {
        matches!(self, Step::Conv { .. } | Step::Gather { .. })
    }
}

/// A kernel parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    /// Buffer name (for messages).
    pub name: String,
    /// Storage dtype.
    pub dtype: DType,
    /// Elements.
    pub len: usize,
    /// Whether the kernel writes it.
    pub written: bool,
    /// Set when the runtime must pass a staged copy instead of the buffer itself.
    pub stage: Option<Staging>,
    /// Set when the kernel adds into partial sums per block of rows instead of writing the
    /// buffer (`len` then counts every block's elements).
    pub blocks: Option<Blocks>,
}

/// Partial sums of a sum across rows: rows `r` of a kernel add into block `r / rows`, a buffer of
/// `len / count` elements laid out in the kernel's loop order, starting zeroed. Each block's rows
/// run in order on one thread, and the blocks are added in order afterwards
/// ([`Blocks::total`]), so the sum is the same bits on any number of threads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Blocks {
    /// Number of blocks.
    pub count: usize,
    /// Rows a block spans.
    pub rows: usize,
    /// From one block's layout to the stored buffer's.
    pub order: Staging,
}

impl Blocks {
    /// The sum over blocks of `partials` (`count` blocks one after the other), laid out as the
    /// stored buffer.
    pub fn total(&self, partials: &[f32]) -> Vec<f32> {
        let n = partials.len() / self.count.max(1);
        let mut sum = partials[..n].to_vec();
        for block in partials.chunks_exact(n).skip(1) {
            for (s, p) in sum.iter_mut().zip(block) {
                *s += p;
            }
        }
        self.order.apply(&sum)
    }
}

/// How to stage a buffer: convert it to `f32` and permute its axes, so that the kernel's inner
/// loop reads it contiguously.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Staging {
    /// Extents of the stored buffer, outermost first.
    pub extents: Vec<usize>,
    /// Axis `k` of the staged copy is axis `perm[k]` of the stored buffer.
    pub perm: Vec<usize>,
}

impl Staging {
    /// The staged copy of `values` (the stored buffer, widened to `f32`).
    pub fn apply(&self, values: &[f32]) -> Vec<f32> {
        // the permutation lowering makes, one axis moved last: a transpose of [m, inner] per
        // outer index, done in tiles (the general walk below is several times slower)
        let rank = self.extents.len();
        if let Some(&pos) = self.perm.last() {
            let moves_one_last = self.perm[..rank - 1].iter().copied().eq((0..rank).filter(|&i| i != pos));
            if moves_one_last && values.len() == self.extents.iter().product::<usize>() {
                let outer: usize = self.extents[..pos].iter().product();
                let m = self.extents[pos];
                let inner: usize = self.extents[pos + 1..].iter().product();
                return transpose_batches(values, outer, m, inner);
            }
        }
        self.apply_any(values)
    }

    /// [`Staging::apply`] for any permutation, an element at a time.
    fn apply_any(&self, values: &[f32]) -> Vec<f32> {
        let rank = self.extents.len();
        let mut strides = vec![1; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.extents[i + 1];
        }
        let ext: Vec<usize> = self.perm.iter().map(|&p| self.extents[p]).collect();
        let src: Vec<usize> = self.perm.iter().map(|&p| strides[p]).collect();
        let total: usize = ext.iter().product();
        let mut out = Vec::with_capacity(total);
        let mut idx = vec![0; rank];
        for _ in 0..total {
            out.push(values[idx.iter().zip(&src).map(|(i, s)| i * s).sum::<usize>()]);
            for a in (0..rank).rev() {
                idx[a] += 1;
                if idx[a] < ext[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
        out
    }
}

/// `values` as `outer` matrices of `m` rows and `inner` columns, each transposed.
fn transpose_batches(values: &[f32], outer: usize, m: usize, inner: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut out = vec![0.0f32; values.len()];
    for o in 0..outer {
        let (src, dst) = (&values[o * m * inner..(o + 1) * m * inner], &mut out[o * m * inner..(o + 1) * m * inner]);
        for i0 in (0..m).step_by(TILE) {
            for j0 in (0..inner).step_by(TILE) {
                for i in i0..(i0 + TILE).min(m) {
                    for j in j0..(j0 + TILE).min(inner) {
                        dst[j * m + i] = src[i * inner + j];
                    }
                }
            }
        }
    }
    out
}

/// One kernel, lowered.
#[derive(Clone, Debug, PartialEq)]
pub struct Kir {
    /// Name (from the plan).
    pub name: String,
    /// Parameters, in call order.
    pub buffers: Vec<Param>,
    /// Extent of each row dim (the last varies fastest).
    pub rows: Vec<usize>,
    /// Extent of the seq dim and whether it runs backwards.
    pub seq: Option<(usize, bool)>,
    /// Extent of the inner dim.
    pub inner: Option<usize>,
    /// Steps with their levels, in an order that respects both levels and operands.
    pub steps: Vec<(Level, Step)>,
    /// Whether it replays scans per chunk (see the module docs): the seq dim then runs
    /// backwards and Replay levels have steps.
    pub replay: bool,
}

impl Kir {
    /// Number of rows.
    pub fn row_count(&self) -> usize {
        self.rows.iter().product()
    }
}

#[cfg(test)]
mod staging_tests {
    use super::Staging;

    #[test]
    fn the_tiled_transpose_agrees_with_the_general_walk() {
        for extents in [vec![3, 5, 7, 2], vec![1, 40, 33], vec![70, 1], vec![2, 3], vec![4, 1, 1, 9]] {
            let rank = extents.len();
            let values: Vec<f32> = (0..extents.iter().product::<usize>()).map(|i| i as f32).collect();
            for pos in 0..rank {
                let mut perm: Vec<usize> = (0..rank).filter(|&i| i != pos).collect();
                perm.push(pos);
                let st = Staging { extents: extents.clone(), perm };
                assert_eq!(st.apply(&values), st.apply_any(&values), "{extents:?} moving axis {pos} last");
            }
        }
    }
}

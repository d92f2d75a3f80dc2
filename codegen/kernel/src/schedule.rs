//! Schedules: how a kernel runs on a target, as data. The algorithm (the plan) never changes
//! when the schedule does; every schedule must give the oracle's answer.

/// How kernels are laid onto a target: the CPU's vectors, threads and seq chunks (the GPU
/// lowers with scalar code and no seq chunks, its thread mapping its own: `ssmc_ptx::GpuSchedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Schedule {
    /// Lanes per vector (`f32x4` on Cranelift: 4; 1 = scalar code).
    pub vector_width: usize,
    /// Inner loops up to this many elements are unrolled, their scan states kept in registers;
    /// longer ones loop, with their states in a stack buffer.
    pub unroll_limit: usize,
    /// Threads to split rows over (0 = all cores).
    pub threads: usize,
    /// When a kernel has no inner dim, move its fastest row dim inside (vectorizing over it).
    pub vectorize_rows: bool,
    /// Stage read buffers whose inner dim is not contiguous (a transposed `f32` copy).
    pub stage_strided: bool,
    /// CPU: run a forward seq loop in chunks of this many steps (a multiple of 4; 0 = off),
    /// each chunk in three passes: its seq-level work, kept per step in a stack buffer; then,
    /// two inner vectors at a time, all the chunk's steps with those vectors' scan states in
    /// registers; then the epilogue. Fewer values are live at once than when every step walks
    /// every inner vector, so the states stay in registers. Unless 0, one-step kernels (decode)
    /// run their rows in chunks of up to 64 the same way.
    pub seq_chunk: usize,
    /// CPU: steps per chunk of a replay kernel (see [`crate::Kir::replay`]); 0 = as many as
    /// keep a row's replayed values in one chunk where they fit 640 kB, else in chunks of 96 kB.
    pub replay_chunk: usize,
}

impl Schedule {
    /// The default CPU schedule: `f32x4`, unroll up to 64, all cores, seq chunks of 64 steps.
    pub fn cpu_default() -> Self {
        Schedule { vector_width: 4, unroll_limit: 64, threads: 0, vectorize_rows: true, stage_strided: true, seq_chunk: 64, replay_chunk: 0 }
    }

    /// Plain scalar code on one thread, no unrolling: the simplest lowering, for testing the
    /// others against.
    pub fn cpu_scalar() -> Self {
        Schedule { vector_width: 1, unroll_limit: 0, threads: 1, vectorize_rows: false, stage_strided: false, seq_chunk: 0, replay_chunk: 0 }
    }
}

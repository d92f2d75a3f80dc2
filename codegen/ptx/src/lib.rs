//! ssmc-ptx: the GPU backend. PTX text emitted from the kernel IR ([`emit`]), validated with
//! ptxas ([`ptxas`]), and, with the `cuda` feature, loaded and launched through cudarc.
#![warn(missing_docs)]

pub mod arch;
pub mod emit;
pub mod isa;
pub mod ptxas;

pub use arch::Arch;
pub use emit::module;

use ssmc_kernel::Schedule;

/// The GPU schedule: one thread per row, scalar code, inner dims up to 64 unrolled into
/// registers, strided inputs read in place.
pub fn gpu_schedule() -> Schedule {
    Schedule { vector_width: 1, unroll_limit: 64, threads: 0, vectorize_rows: false, stage_strided: false }
}

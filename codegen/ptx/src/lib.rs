//! ssmc-ptx: the GPU backend. PTX text emitted from the kernel IR ([`emit`]), validated with
//! ptxas ([`ptxas`]), and, with the `cuda` feature, loaded and launched through cudarc.
#![warn(missing_docs)]

pub mod arch;
pub mod chunked;
pub mod emit;
pub mod isa;
pub mod module;
pub mod ptxas;
pub mod regs;

pub use arch::Arch;
pub use module::{module, Launch, Module};

use ssmc_kernel::Schedule;

/// The GPU schedule: one thread per row (or, with `lanes`, one lane per inner index), scalar
/// code, inner dims up to 64 unrolled into registers, strided inputs read in place.
pub fn gpu_schedule(lanes: bool) -> Schedule {
    Schedule { vector_width: 1, unroll_limit: 64, threads: 0, vectorize_rows: false, stage_strided: false, lanes }
}

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "cuda")]
pub use cuda::{DeviceBuffer, Gpu, GpuModule, Mark};
#[cfg(not(feature = "cuda"))]
mod cuda_stub;
#[cfg(not(feature = "cuda"))]
pub use cuda_stub::{DeviceBuffer, Gpu, GpuModule, Mark};

/// What can go wrong on the GPU.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// ssmc was built without the `cuda` feature.
    CudaNotEnabled,
    /// libcuda (the NVIDIA driver) is not installed on this machine.
    NoDriver,
    /// The driver refused the PTX.
    Load(String),
    /// A launch failed.
    Launch(String),
    /// Any other driver error (no device, out of memory, ...).
    Driver(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::CudaNotEnabled => write!(f, "the cuda backend is not built in (rebuild with `--features cuda`)"),
            GpuError::NoDriver => write!(f, "no CUDA driver found (libcuda could not be loaded)"),
            GpuError::Load(m) => write!(f, "the CUDA driver rejected the PTX: {m}"),
            GpuError::Launch(m) => write!(f, "kernel launch failed: {m}"),
            GpuError::Driver(m) => write!(f, "CUDA: {m}"),
        }
    }
}

impl std::error::Error for GpuError {}

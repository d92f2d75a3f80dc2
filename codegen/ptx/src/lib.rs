//! ssmc-ptx: the GPU backend. A plan's kernels become one PTX module under a [`GpuSchedule`]
//! ([`module`]), validated with ptxas ([`ptxas`]), and, with the `cuda` feature, loaded,
//! autotuned over the [`candidates`] and launched through cudarc ([`load`], [`GpuRun`]).
//!
//! ```
//! use ssmc_ptx::{Block, GpuSchedule};
//! let s: GpuSchedule = "rows+tiles16+prefetch".parse().unwrap();
//! assert_eq!(s, GpuSchedule::TILED);
//! assert_eq!(s.with_block(Block::new(256).unwrap()).to_string(), "rows+tiles16+prefetch+block256");
//! ```
#![warn(missing_docs)]

mod arch;
mod emit;
mod isa;
mod module;
pub mod ptxas;
mod regs;
mod schedule;
mod tune;

pub use arch::Arch;
pub use emit::PER_LANE;
pub use module::{candidates, module, Launch, Module};
pub use schedule::{Block, Chunks, GpuSchedule, LaneWidth, ScheduleError, Tiles};
pub use tune::{load, median_device_us, GpuCode, GpuRun};

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "cuda")]
pub use cuda::{DeviceBuffer, Gpu, GpuGraph, GpuModule, Mark};
#[cfg(not(feature = "cuda"))]
mod cuda_stub;
#[cfg(not(feature = "cuda"))]
pub use cuda_stub::{DeviceBuffer, Gpu, GpuGraph, GpuModule, Mark};

/// What can go wrong on the GPU.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuError {
    /// ssmc was built without the `cuda` feature.
    #[error("the cuda backend is not built in (rebuild with `--features cuda`)")]
    CudaNotEnabled,
    /// libcuda (the NVIDIA driver) is not installed on this machine.
    #[error("no CUDA driver found (libcuda could not be loaded)")]
    NoDriver,
    /// The driver refused the PTX.
    #[error("the CUDA driver rejected the PTX: {0}")]
    Load(String),
    /// A launch failed.
    #[error("kernel launch failed: {0}")]
    Launch(String),
    /// Any other driver error (no device, out of memory, ...).
    #[error("CUDA: {0}")]
    Driver(String),
    /// A kernel of the plan could not be lowered for the GPU.
    #[error(transparent)]
    Lower(#[from] ssmc_ir::IrError),
}

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
pub use cuda_stub::{DeviceBuffer, DriverError, Gpu, GpuGraph, GpuModule, Mark};
/// A failed call into the CUDA driver (its `CUresult`).
#[cfg(feature = "cuda")]
pub use cudarc::driver::DriverError;

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
    #[error("the CUDA driver rejected the PTX: {0:?}")]
    Load(DriverError),
    /// A launch failed.
    #[error("kernel launch failed: {0:?}")]
    Launch(DriverError),
    /// Any other driver call failed (no device, out of memory, ...).
    #[error("CUDA: {0:?}")]
    Driver(DriverError),
    /// A launch named a kernel the module does not have.
    #[error("no kernel {0} in the module")]
    NoKernel(usize),
    /// A launch gave another number of buffers than the kernel takes.
    #[error("the kernel takes {takes} buffers, got {got}")]
    BufferCount {
        /// Buffers the kernel takes.
        takes: usize,
        /// Buffers given.
        got: usize,
    },
    /// A buffer smaller than the kernel reads.
    #[error("buffer {index} holds {holds} bytes, the kernel reads {reads}")]
    BufferTooSmall {
        /// Which buffer.
        index: usize,
        /// Its size.
        holds: usize,
        /// What the kernel reads.
        reads: usize,
    },
    /// Bytes asked for as `f32` values, or copied to or from `f32` values.
    #[error("a buffer of raw bytes used as f32 values ({0})")]
    BufferKind(&'static str),
    /// More rows than a grid of blocks can hold.
    #[error("{rows} rows need too many blocks")]
    TooManyBlocks {
        /// The rows.
        rows: u64,
    },
    /// A CUDA graph capture that recorded nothing.
    #[error("the capture recorded no work")]
    EmptyCapture,
    /// A kernel of the plan could not be lowered for the GPU.
    #[error(transparent)]
    Lower(#[from] ssmc_ir::IrError),
}

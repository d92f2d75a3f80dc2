//! ssmc-cpu: kernels JIT-compiled with Cranelift, `f32x4` SIMD, rows split over rayon threads.
#![warn(missing_docs)]

pub mod jit;
pub mod launch;
pub mod math;
pub mod translate;

pub use jit::{compile, CpuModule, JitKernel};
pub use launch::{launch, Arg};

/// What can go wrong compiling or launching on the CPU.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CpuError {
    /// Cranelift rejected a kernel or this CPU.
    #[error("cpu backend: {0}")]
    Jit(String),
    /// A launch was refused (buffer count, size or dtype).
    #[error("cpu launch: {0}")]
    Launch(String),
}

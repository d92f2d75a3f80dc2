//! ssmc-cpu: kernels JIT-compiled with Cranelift, `f32x4` SIMD, rows split over rayon threads.
#![warn(missing_docs)]

pub mod jit;
pub mod launch;
pub mod math;
pub mod translate;

pub use jit::{compile, CpuModule, JitKernel};
pub use launch::{launch, Arg};

/// What can go wrong compiling or launching on the CPU.
#[derive(Debug, Clone, PartialEq)]
pub enum CpuError {
    /// Cranelift rejected a kernel or this CPU.
    Jit(String),
    /// A launch was refused (buffer count, size or dtype).
    Launch(String),
}

impl std::fmt::Display for CpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CpuError::Jit(m) => write!(f, "cpu backend: {m}"),
            CpuError::Launch(m) => write!(f, "cpu launch: {m}"),
        }
    }
}

impl std::error::Error for CpuError {}

//! ssmc-cpu: kernels JIT-compiled with Cranelift, `f32x4` SIMD, rows split over rayon threads.
#![warn(missing_docs)]

pub mod jit;
pub mod launch;
pub mod math;
pub mod translate;

pub use jit::{compile, CpuModule, JitKernel};
pub use launch::{launch, Arg};

/// What can go wrong compiling or launching on the CPU.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// Cranelift does not support this CPU.
    #[error("cpu backend: this CPU is not supported: {0}")]
    Host(&'static str),
    /// Cranelift refused a compiler setting.
    #[error("cpu backend: setting {name}: {source}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// Cranelift's reason.
        source: cranelift_codegen::settings::SetError,
    },
    /// Cranelift could not build the code generator for this CPU.
    #[error("cpu backend: {0}")]
    Isa(#[from] cranelift_codegen::CodegenError),
    /// Cranelift rejected a kernel, or could not finish the module.
    #[error("cpu backend: kernel {kernel}: {source}")]
    Jit {
        /// The kernel (empty when finishing the whole module).
        kernel: String,
        /// Cranelift's reason.
        source: Box<cranelift_module::ModuleError>,
    },
    /// A launch got another number of buffers than the kernel takes.
    #[error("cpu launch: kernel {kernel} takes {takes} buffers, got {got}")]
    BufferCount {
        /// The kernel.
        kernel: String,
        /// Buffers it takes.
        takes: usize,
        /// Buffers given.
        got: usize,
    },
    /// A buffer of the wrong dtype, too small, or read-only where the kernel writes.
    #[error("cpu launch: kernel {kernel}: buffer `{buffer}` needs {len} {dtype} elements{}, got {bytes} bytes of {got}", if *.written { " (written)" } else { "" })]
    Buffer {
        /// The kernel.
        kernel: String,
        /// The buffer's name.
        buffer: String,
        /// Elements it needs.
        len: usize,
        /// Their dtype.
        dtype: ssmc_ir::DType,
        /// Whether the kernel writes it.
        written: bool,
        /// Bytes given.
        bytes: usize,
        /// The dtype given.
        got: ssmc_ir::DType,
    },
}

//! ssmc compiles declarative state-space-model layers (Mamba's selective scan and its variants)
//! into kernels. This crate is the facade: the [`Layer`] API, re-exports, and the `ssmc` CLI.
//!
//! ```
//! use ssmc::{Layer, ir::DType, runtime::{HostTensor, TensorMap}};
//! let layer = Layer::parse(r#"
//!     layer Leaky {
//!         dims len;
//!         input x: [len];
//!         param a: [] in 0.0..1.0;
//!         output h = scan(a, x, len);
//!     }
//! "#).unwrap();
//! let mut inputs = TensorMap::new();
//! inputs.insert("x".into(), HostTensor::from_f64(DType::F32, vec![3], &[1.0, 1.0, 1.0]).unwrap());
//! inputs.insert("a".into(), HostTensor::from_f64(DType::F32, vec![], &[0.5]).unwrap());
//! let out = layer.eval(&inputs).unwrap();
//! assert_eq!(out["h"].to_f64(), vec![1.0, 1.5, 1.75]);
//! ```
#![warn(missing_docs)]

pub mod bench;
pub mod compiled;
pub use ssmc_kernel::dump;
pub mod gpu;
pub mod random;
pub mod train;

pub use compiled::{Backend, CompiledLayer, Target};
pub use train::{Saved, Training};
pub use ssmc_opt::Fusion;
pub use ssmc_kernel::Schedule;
pub use ssmc_ptx::{Block, Chunks, GpuSchedule, LaneWidth, ScheduleError, Tiles};

pub use ssmc_dsl as dsl;
pub use ssmc_ir as ir;
pub use ssmc_macros::ssm;
pub use ssmc_opt as opt;
pub use ssmc_runtime as runtime;

use ssmc_ir::{interp, DType, Graph, IrError};
use ssmc_runtime::{HostTensor, IoError, TensorMap};
use std::path::Path;

/// Everything that can go wrong between a spec and its outputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec does not parse or check.
    #[error("{}", .0.one_line())]
    Spec(ssmc_dsl::Diagnostics),
    /// The graph is invalid, or the inputs do not fit it.
    #[error("{0}")]
    Ir(#[from] IrError),
    /// A tensor file could not be read or written.
    #[error("{0}")]
    Io(#[from] IoError),
    /// An input is stored in a dtype the spec does not allow.
    #[error("input `{name}` is {got}, but the spec requires {want}")]
    Dtype {
        /// The input.
        name: String,
        /// The dtype the spec pins.
        want: DType,
        /// The dtype given.
        got: DType,
    },
    /// A GPU schedule's number out of its range, or an unknown schedule name.
    #[error(transparent)]
    Schedule(#[from] ssmc_ptx::ScheduleError),
    /// The GPU backend failed (not built in, no driver, launch or memory errors).
    #[error(transparent)]
    Gpu(#[from] ssmc_ptx::GpuError),
    /// The CPU backend failed (Cranelift refused a kernel, or a launch its buffers).
    #[error(transparent)]
    Cpu(#[from] ssmc_cpu::CpuError),
    /// A call that needs another backend than the layer was compiled for.
    #[error("{what} needs a layer compiled for {wants:?}; this one is compiled for {compiled:?}")]
    WrongBackend {
        /// What was asked.
        what: &'static str,
        /// The backend it needs.
        wants: Backend,
        /// The backend the layer was compiled for.
        compiled: Backend,
    },
    /// The system would not give a buffer this large.
    #[error("out of memory making a buffer of {bytes} bytes")]
    OutOfMemory {
        /// Its size.
        bytes: usize,
    },
    /// A compiled layer's cache or kept buffers were left poisoned by a panic in another thread.
    #[error("the compiled layer's {0} was poisoned by a panic in another thread")]
    Poisoned(&'static str),
    /// Cotangents that do not fit the layer's outputs: missing, extra or mis-shaped.
    #[error("{0}")]
    Cotangent(String),
    /// A command-line argument that does not fit (the message names the flag).
    #[error("{0}")]
    Usage(String),
    /// A spec file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A declared layer: its graph, ready to evaluate (and, as backends land, to compile).
#[derive(Clone, Debug)]
pub struct Layer {
    graph: Graph,
}

impl Layer {
    /// Parses `.ssm` text.
    pub fn parse(src: &str) -> Result<Layer, Error> {
        Ok(Layer { graph: ssmc_dsl::parse_str(src).map_err(Error::Spec)? })
    }

    /// Reads and parses a `.ssm` file.
    pub fn from_file(path: &Path) -> Result<Layer, Error> {
        let name = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| Error::File { path: name.clone(), source })?;
        Ok(Layer { graph: ssmc_dsl::parse_named(&name, &src).map_err(Error::Spec)? })
    }

    /// The backward layer (see [`ssmc_ir::grad`]): it takes this layer's inputs and one
    /// cotangent `d_<output>` per output, and returns `d_<input>` for every input and param,
    /// each laid out as its input. It compiles and runs like any layer.
    pub fn grad(&self) -> Result<Layer, Error> {
        Ok(Layer { graph: ssmc_ir::grad::grad(&self.graph)? })
    }

    /// Wraps a graph built by other means (the `ssm!` macro, the IR builder).
    pub fn from_graph(graph: Graph) -> Result<Layer, Error> {
        graph.validate()?;
        Ok(Layer { graph })
    }

    /// The layer's IR.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The layer's plan: unfused (one kernel per op) or fused by the optimizer.
    pub fn plan(&self, fusion: ssmc_opt::Fusion, opts: &ssmc_opt::Options) -> Result<ssmc_opt::Optimized, Error> {
        Ok(ssmc_opt::optimize(&self.graph, fusion, opts)?)
    }

    /// Checks that `inputs` are exactly the declared inputs, with the declared rank, consistent
    /// dim sizes and allowed dtypes.
    pub fn check_inputs(&self, inputs: &TensorMap) -> Result<interp::DimSizes, Error> {
        let sizes = interp::bind_dims(&self.graph, inputs.iter().map(|(n, t)| (n.as_str(), t.shape())))?;
        for (_, decl) in self.graph.inputs() {
            let t = &inputs[&decl.name];
            if let Some(want) = decl.dtype {
                if t.dtype() != want {
                    return Err(Error::Dtype { name: decl.name.clone(), want, got: t.dtype() });
                }
            }
        }
        Ok(sizes)
    }

    /// Evaluates the layer with the `f64` oracle; outputs are `f32`.
    pub fn eval(&self, inputs: &TensorMap) -> Result<TensorMap, Error> {
        self.eval_as(inputs, DType::F32)
    }

    /// Evaluates the layer with the `f64` oracle; outputs are rounded to `out_dtype`.
    pub fn eval_as(&self, inputs: &TensorMap, out_dtype: DType) -> Result<TensorMap, Error> {
        self.check_inputs(inputs)?;
        let oracle: Vec<(String, interp::Tensor)> = inputs.iter().map(|(n, t)| (n.clone(), t.to_oracle())).collect();
        let refs: Vec<(&str, &interp::Tensor)> = oracle.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let outs = interp::evaluate(&self.graph, &refs)?;
        Ok(outs
            .into_iter()
            .map(|(n, t)| {
                let ht = HostTensor::from_f64(out_dtype, t.shape, &t.data).expect("the oracle keeps shape and data in step");
                (n, ht)
            })
            .collect())
    }
}

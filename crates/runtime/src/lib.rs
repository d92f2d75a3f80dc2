//! ssmc-runtime: where layers run. Host tensors in any storage dtype, and safetensors I/O.
//!
//! ```
//! use ssmc_runtime::{HostTensor, io};
//! use ssmc_ir::DType;
//! let mut m = io::TensorMap::new();
//! m.insert("u".into(), HostTensor::from_f64(DType::BF16, vec![2], &[1.0, -0.5]).unwrap());
//! let back = io::decode("mem", &io::encode(&m)).unwrap();
//! assert_eq!(back["u"].to_f64(), vec![1.0, -0.5]);
//! ```
#![warn(missing_docs)]

pub mod io;
pub mod tensor;

pub use io::{IoError, TensorMap};
pub use tensor::HostTensor;

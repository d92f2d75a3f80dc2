//! safetensors in and out: the interchange format with numpy and PyTorch users.

use crate::tensor::HostTensor;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use ssmc_ir::DType;
use std::collections::BTreeMap;
use std::path::Path;

/// Named tensors, in name order.
pub type TensorMap = BTreeMap<String, HostTensor>;

/// Reading or writing a tensor file failed.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {message}")]
    Format {
        /// The path.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A tensor has a dtype ssmc does not read.
    #[error("{path}: tensor `{name}` is stored as {dtype}; ssmc reads f32, bf16, f16 and f64")]
    Dtype {
        /// The path.
        path: String,
        /// The tensor.
        name: String,
        /// Its dtype, as safetensors names it.
        dtype: String,
    },
}

fn to_dtype(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::BF16 => Some(DType::BF16),
        Dtype::F16 => Some(DType::F16),
        Dtype::F64 => Some(DType::F64),
        _ => None,
    }
}

fn from_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::F64 => Dtype::F64,
    }
}

/// Parses safetensors bytes; `path` names the source in errors.
pub fn decode(path: &str, bytes: &[u8]) -> Result<TensorMap, IoError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| IoError::Format { path: path.to_string(), message: format!("{e:?}") })?;
    let mut out = TensorMap::new();
    for (name, view) in st.tensors() {
        let dtype = to_dtype(view.dtype()).ok_or_else(|| IoError::Dtype {
            path: path.to_string(),
            name: name.clone(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        let t = HostTensor::from_bytes(dtype, view.shape().to_vec(), view.data().to_vec())
            .map_err(|e| IoError::Format { path: path.to_string(), message: e.to_string() })?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Reads every tensor of a safetensors file.
pub fn load(path: &Path) -> Result<TensorMap, IoError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| IoError::File { path: p.clone(), source })?;
    decode(&p, &bytes)
}

/// Encodes tensors as safetensors bytes.
pub fn encode(tensors: &TensorMap) -> Vec<u8> {
    let views = tensors.iter().map(|(n, t)| {
        let view = TensorView::new(from_dtype(t.dtype()), t.shape().to_vec(), t.bytes())
            .expect("HostTensor keeps its byte length equal to shape times dtype size");
        (n.clone(), view)
    });
    safetensors::serialize(views, &None).expect("valid views always serialize")
}

/// Writes tensors to a safetensors file.
pub fn save(path: &Path, tensors: &TensorMap) -> Result<(), IoError> {
    std::fs::write(path, encode(tensors)).map_err(|source| IoError::File { path: path.display().to_string(), source })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_keeps_names_dtypes_shapes_and_values() {
        let mut m = TensorMap::new();
        m.insert("a".into(), HostTensor::from_f64(DType::BF16, vec![2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap());
        m.insert("b".into(), HostTensor::from_f64(DType::F32, vec![1], &[0.5]).unwrap());
        m.insert("c".into(), HostTensor::from_f64(DType::F16, vec![], &[-2.0]).unwrap());
        let back = decode("mem", &encode(&m)).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn garbage_is_a_format_error() {
        let e = decode("x.safetensors", b"not a tensor file").unwrap_err();
        assert!(matches!(e, IoError::Format { .. }), "{e}");
    }
}

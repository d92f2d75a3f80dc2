//! Host tensors: bytes at rest in one of the [`DType`]s, converted to `f64` for the oracle and to
//! `f32` for kernels.

use half::{bf16, f16};
use ssmc_ir::DType;

/// A dense row-major tensor in host memory, stored little-endian in its dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// A tensor whose byte length does not match its shape and dtype.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("a {dtype} tensor of shape {shape:?} needs {expected} bytes, got {got}")]
pub struct SizeMismatch {
    /// The dtype.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
    /// Bytes the shape needs.
    pub expected: usize,
    /// Bytes given.
    pub got: usize,
}

/// Little-endian `f32` bytes (the layout of `f32` tensors and of CPU kernel buffers) as values.
pub fn f32s_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl HostTensor {
    /// A tensor from raw little-endian bytes.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> Result<Self, SizeMismatch> {
        let expected = shape.iter().product::<usize>() * dtype.size();
        if bytes.len() != expected {
            return Err(SizeMismatch { dtype, shape, expected, got: bytes.len() });
        }
        Ok(HostTensor { dtype, shape, bytes })
    }

    /// Rounds `values` into `dtype` (nearest, ties to even).
    ///
    /// ```
    /// use ssmc_runtime::HostTensor;
    /// use ssmc_ir::DType;
    /// let t = HostTensor::from_f64(DType::BF16, vec![2], &[1.0, 1.0 + 1.0 / 512.0]).unwrap();
    /// assert_eq!(t.to_f64(), vec![1.0, 1.0]); // bf16 keeps 8 significant bits
    /// ```
    pub fn from_f64(dtype: DType, shape: Vec<usize>, values: &[f64]) -> Result<Self, SizeMismatch> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            return Err(SizeMismatch { dtype, shape, expected: n * dtype.size(), got: values.len() * dtype.size() });
        }
        let mut bytes = Vec::with_capacity(n * dtype.size());
        for &v in values {
            match dtype {
                DType::F32 => bytes.extend((v as f32).to_le_bytes()),
                DType::BF16 => bytes.extend(bf16::from_f64(v).to_le_bytes()),
                DType::F16 => bytes.extend(f16::from_f64(v).to_le_bytes()),
                DType::F64 => bytes.extend(v.to_le_bytes()),
            }
        }
        Ok(HostTensor { dtype, shape, bytes })
    }

    /// An `f32` tensor.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Self, SizeMismatch> {
        // chunk by chunk: this compiles to a plain copy, where a flat_map of each value's
        // bytes went element by element
        let mut bytes = vec![0u8; values.len() * 4];
        for (dst, v) in bytes.chunks_exact_mut(4).zip(values) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Self::from_bytes(DType::F32, shape, bytes)
    }

    /// The storage dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The extents, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The raw little-endian bytes, the tensor consumed (no copy).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element, widened exactly to `f64`.
    pub fn to_f64(&self) -> Vec<f64> {
        let w = self.dtype.size();
        self.bytes
            .chunks_exact(w)
            .map(|c| match self.dtype {
                DType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                DType::BF16 => bf16::from_le_bytes([c[0], c[1]]).to_f64(),
                DType::F16 => f16::from_le_bytes([c[0], c[1]]).to_f64(),
                DType::F64 => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            })
            .collect()
    }

    /// Every element as `f32` (exact for `bf16` and `f16`, rounded for `f64`).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => f32s_from_le_bytes(&self.bytes),
            DType::BF16 => self.bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::F16 => self.bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::F64 => self.to_f64().into_iter().map(|v| v as f32).collect(),
        }
    }

    /// The same values in another dtype (rounded to nearest).
    pub fn cast(&self, dtype: DType) -> HostTensor {
        if dtype == self.dtype {
            return self.clone();
        }
        Self::from_f64(dtype, self.shape.clone(), &self.to_f64()).expect("same element count")
    }

    /// [`Self::cast`], consuming the tensor: already in `dtype`, it is returned as it is (no copy
    /// of its bytes).
    pub fn into_dtype(self, dtype: DType) -> HostTensor {
        if dtype == self.dtype {
            self
        } else {
            self.cast(dtype)
        }
    }

    /// The oracle's view of this tensor.
    pub fn to_oracle(&self) -> ssmc_ir::interp::Tensor {
        ssmc_ir::interp::Tensor { shape: self.shape.clone(), data: self.to_f64() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips_exactly_representable_values() {
        let vals = [0.0, -1.5, 2.0, 0.25, -1024.0];
        for d in DType::ALL {
            let t = HostTensor::from_f64(d, vec![5], &vals).unwrap();
            assert_eq!(t.bytes().len(), 5 * d.size());
            assert_eq!(t.to_f64(), vals.to_vec(), "{d}");
        }
    }

    #[test]
    fn into_dtype_keeps_a_tensor_already_in_the_dtype_and_casts_others() {
        let t = HostTensor::from_f32(vec![3], &[1.0, 1.0 + 2f32.powi(-10), -3.5]).unwrap();
        let kept = t.clone().into_dtype(DType::F32);
        assert_eq!(kept.bytes(), t.bytes());
        // bf16 keeps 8 bits of mantissa: 1 + 2^-10 rounds to 1
        let b = t.clone().into_dtype(DType::BF16);
        assert_eq!(b.dtype(), DType::BF16);
        assert_eq!(b.to_f64(), vec![1.0, 1.0, -3.5]);
        assert_eq!(b.bytes(), t.cast(DType::BF16).bytes());
    }

    #[test]
    fn byte_length_must_match_shape() {
        let e = HostTensor::from_bytes(DType::F32, vec![2, 2], vec![0; 15]).unwrap_err();
        assert_eq!(e.expected, 16);
        assert_eq!(e.to_string(), "a f32 tensor of shape [2, 2] needs 16 bytes, got 15");
    }
}

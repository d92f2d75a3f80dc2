//! Random inputs for a quick try (`ssmc run --random`): each input drawn uniformly from the range
//! its declaration gives (`in lo..hi`, default `-1..1`), reproducibly from a seed.

use crate::Error;
use ssmc_ir::{DType, Graph};
use ssmc_runtime::{HostTensor, TensorMap};
use std::collections::BTreeMap;

/// SplitMix64: a small, fast, well-distributed generator; plenty for test inputs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }
}

/// Parses `batch=2,dim=8,len=16` into sizes, checking each name is a dim of `graph`.
pub fn parse_dims(graph: &Graph, text: &str) -> Result<BTreeMap<String, usize>, Error> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--dims: expected `name=size`, found `{part}`")))?;
        let (name, value) = (name.trim(), value.trim());
        if graph.dim(name).is_none() {
            let dims: Vec<&str> = graph.dims().map(|(_, n)| n).collect();
            return Err(Error::Usage(format!("--dims: `{name}` is not a dim of this layer (dims: {})", dims.join(", "))));
        }
        let size: usize = value
            .parse()
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| Error::Usage(format!("--dims: size of `{name}` must be a positive integer, found `{value}`")))?;
        if out.insert(name.to_string(), size).is_some() {
            return Err(Error::Usage(format!("--dims: `{name}` is given twice")));
        }
    }
    Ok(out)
}

/// One random tensor per declared input, shaped by `dims`, stored as `dtype` (or the dtype the
/// spec pins).
pub fn random_inputs(graph: &Graph, dims: &BTreeMap<String, usize>, dtype: DType, seed: u64) -> Result<TensorMap, Error> {
    let mut rng = Rng::new(seed);
    let mut out = TensorMap::new();
    for (_, decl) in graph.inputs() {
        let mut shape = Vec::new();
        for &d in decl.layout.dims() {
            let name = graph.dim_name(d);
            let size = dims.get(name).ok_or_else(|| {
                Error::Usage(format!("--dims does not give `{name}`, which input `{}` needs", decl.name))
            })?;
            shape.push(*size);
        }
        let (lo, hi) = decl.range.unwrap_or((-1.0, 1.0));
        let too_big = || Error::Usage(format!("--dims: input `{}` would have shape {shape:?}, too large to make", decl.name));
        let n = shape.iter().try_fold(1usize, |n, &s| n.checked_mul(s)).ok_or_else(too_big)?;
        let mut values: Vec<f64> = Vec::new();
        values.try_reserve_exact(n).map_err(|_| too_big())?;
        values.extend((0..n).map(|_| rng.uniform(lo, hi)));
        let t = HostTensor::from_f64(decl.dtype.unwrap_or(dtype), shape, &values).expect("shape and values agree");
        out.insert(decl.name.clone(), t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_stays_in_range_and_is_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.uniform(-4.0, -0.5);
            assert!((-4.0..-0.5).contains(&x));
            assert_eq!(x, b.uniform(-4.0, -0.5));
        }
    }
}

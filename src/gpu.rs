//! The layer as PTX: the plan lowered under the GPU schedule at concrete sizes and input dtypes.

use crate::{Error, Layer};
use ssmc_ir::DType;
use ssmc_kernel::Kir;
use ssmc_opt::{BufferKind, Fusion, Options};
use std::collections::BTreeMap;

/// The kernels of `layer`'s plan lowered for the GPU, every input stored as `dtype` (unless the
/// spec pins one), at `dims` (others at their default sizes).
pub fn lower_for_gpu(layer: &Layer, fusion: Fusion, dims: &BTreeMap<String, usize>, dtype: DType) -> Result<Vec<Kir>, Error> {
    let given: Vec<(&str, usize)> = dims.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let opts = Options::at_sizes(layer.graph(), &given);
    let mut plan = layer.plan(fusion, &opts)?.plan;
    for b in plan.buffers.iter_mut().filter(|b| b.kind == BufferKind::Input) {
        let pinned = layer.graph().input_named(&b.name).and_then(|(_, d)| d.dtype);
        b.dtype = pinned.unwrap_or(dtype);
    }
    let schedule = ssmc_ptx::gpu_schedule();
    Ok(plan.kernels.iter().map(|k| ssmc_kernel::lower(&plan, k, &opts.sizes, &schedule)).collect::<Result<_, _>>()?)
}

/// The PTX module of `layer` (one `.entry` per kernel, in launch order).
pub fn ptx(layer: &Layer, fusion: Fusion, dims: &BTreeMap<String, usize>, dtype: DType) -> Result<String, Error> {
    let kirs = lower_for_gpu(layer, fusion, dims, dtype)?;
    Ok(ssmc_ptx::module(&kirs, &ssmc_ptx::gpu_schedule(), ssmc_ptx::Arch::SM90))
}

//! The layer as PTX: the plan lowered under a GPU schedule at concrete sizes and input dtypes.
//! The autotuner and the launch live with the code generator ([`ssmc_ptx::load`],
//! [`ssmc_ptx::GpuRun`]).

use crate::{Error, Layer};
use ssmc_ir::DType;
use ssmc_kernel::Kir;
use ssmc_opt::{BufferKind, Fusion, Options};
use ssmc_ptx::GpuSchedule;
use std::collections::BTreeMap;

pub use ssmc_ptx::{median_device_us, GpuCode, GpuRun};

/// The kernels of `layer`'s plan lowered for the GPU under `schedule`'s kernel schedule, every
/// input stored as `dtype` (unless the spec pins one), at `dims` (others at their default sizes).
pub fn lower_for_gpu(layer: &Layer, fusion: Fusion, dims: &BTreeMap<String, usize>, dtype: DType, schedule: GpuSchedule) -> Result<Vec<Kir>, Error> {
    let given: Vec<(&str, usize)> = dims.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let opts = Options::at_sizes(layer.graph(), &given);
    let mut plan = layer.plan(fusion, &opts)?.plan;
    for b in plan.buffers.iter_mut().filter(|b| b.kind == BufferKind::Input) {
        let pinned = layer.graph().input_named(&b.name).and_then(|(_, d)| d.dtype);
        b.dtype = pinned.unwrap_or(dtype);
    }
    let kernel = schedule.kernel();
    Ok(plan.kernels.iter().map(|k| ssmc_kernel::lower(&plan, k, &opts.sizes, &kernel)).collect::<Result<_, _>>()?)
}

/// The PTX module of `layer` (one `.entry` per kernel in launch order, three for a chunked
/// scan) under GPU schedule `gpu`.
pub fn ptx(layer: &Layer, fusion: Fusion, dims: &BTreeMap<String, usize>, dtype: DType, gpu: GpuSchedule) -> Result<String, Error> {
    let kirs = lower_for_gpu(layer, fusion, dims, dtype, gpu)?;
    Ok(ssmc_ptx::module(&kirs, &gpu, ssmc_ptx::Arch::SM90).text)
}

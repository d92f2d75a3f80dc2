//! The layer as PTX: the plan lowered under the GPU schedule at concrete sizes and input dtypes.

use crate::{Error, Layer};
use ssmc_ir::{DType, IrError};
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
    let schedule = ssmc_ptx::gpu_schedule(false);
    Ok(plan.kernels.iter().map(|k| ssmc_kernel::lower(&plan, k, &opts.sizes, &schedule)).collect::<Result<_, _>>()?)
}

/// The PTX module of `layer` (one `.entry` per kernel, in launch order), with rows or lanes.
pub fn ptx(layer: &Layer, fusion: Fusion, dims: &BTreeMap<String, usize>, dtype: DType, lanes: bool) -> Result<String, Error> {
    let kirs = lower_for_gpu(layer, fusion, dims, dtype)?;
    Ok(ssmc_ptx::module(&kirs, &ssmc_ptx::gpu_schedule(lanes), ssmc_ptx::Arch::SM90))
}

use ssmc_ptx::{DeviceBuffer, Gpu, GpuError, GpuModule};
use ssmc_runtime::{HostTensor, TensorMap};
use std::sync::Arc;

impl From<GpuError> for Error {
    fn from(e: GpuError) -> Self {
        Error::Gpu(e.to_string())
    }
}

/// Threads per block for row kernels.
pub const BLOCK: u32 = 128;

/// A plan's kernels loaded on the GPU for one shape and set of input dtypes.
pub struct GpuCode {
    kirs: Vec<Kir>,
    module: GpuModule,
    schedule: ssmc_kernel::Schedule,
    /// The PTX text that was loaded.
    pub ptx: String,
    /// What the autotuner measured: (schedule, median device microseconds), the chosen first.
    pub tuning: Vec<(String, f64)>,
}

/// Inputs on the device with every buffer of the plan allocated: launch, time, read back.
pub struct GpuRun<'a> {
    gpu: &'a Gpu,
    code: Arc<GpuCode>,
    plan: &'a ssmc_opt::Plan,
    memory: Vec<Option<DeviceBuffer>>,
    extents: Vec<Vec<usize>>,
}

/// Loads `plan`'s kernels under one GPU schedule.
fn load_with(gpu: &Gpu, plan: &ssmc_opt::Plan, sizes: &[usize], lanes: bool) -> Result<GpuCode, Error> {
    let schedule = ssmc_ptx::gpu_schedule(lanes);
    let kirs: Vec<Kir> = plan.kernels.iter().map(|k| ssmc_kernel::lower(plan, k, sizes, &schedule)).collect::<Result<_, _>>()?;
    let ptx = ssmc_ptx::module(&kirs, &schedule, ssmc_ptx::Arch::SM90);
    let names: Vec<String> = kirs.iter().enumerate().map(|(i, k)| ssmc_ptx::emit::entry_name(k, i)).collect();
    let module = gpu.load(&ptx, &names)?;
    Ok(GpuCode { kirs, module, schedule, ptx, tuning: vec![] })
}

/// Loads `plan`'s kernels, lowered at `sizes` with inputs typed as `inputs` are. When a kernel
/// can run with lanes over its inner dim as well as one thread per row, both are timed on these
/// inputs (the autotuner) and the faster is kept; the choice is cached with the code.
pub fn load(gpu: &Gpu, plan: &ssmc_opt::Plan, sizes: &[usize], inputs: &TensorMap, force: Option<bool>) -> Result<GpuCode, Error> {
    let mut plan = plan.clone();
    for b in plan.buffers.iter_mut().filter(|b| b.kind == BufferKind::Input) {
        b.dtype = inputs[&b.name].dtype();
    }
    if let Some(lanes) = force {
        return load_with(gpu, &plan, sizes, lanes);
    }
    let rows = load_with(gpu, &plan, sizes, false)?;
    let lanes_apply = rows.kirs.iter().any(|k| ssmc_ptx::emit::lanes_per_row(k, &ssmc_ptx::gpu_schedule(true)) > 1);
    if !lanes_apply {
        return Ok(rows);
    }
    let lanes = load_with(gpu, &plan, sizes, true)?;
    let mut timed = Vec::new();
    for code in [rows, lanes] {
        let code = Arc::new(code);
        let mut run = GpuRun::new(gpu, code.clone(), &plan, sizes, inputs)?;
        run.launch()?;
        let mut times = Vec::new();
        for _ in 0..3 {
            let a = gpu.mark()?;
            run.launch()?;
            let b = gpu.mark()?;
            times.push(gpu.elapsed_ms(&a, &b)? as f64 * 1e3);
        }
        times.sort_by(f64::total_cmp);
        drop(run);
        timed.push((code, times[1]));
    }
    timed.sort_by(|a, b| a.1.total_cmp(&b.1));
    let tuning: Vec<(String, f64)> =
        timed.iter().map(|(c, t)| (if c.schedule.lanes { "lanes".to_string() } else { "rows".to_string() }, *t)).collect();
    let best = timed.swap_remove(0).0;
    let mut best = Arc::try_unwrap(best).map_err(|_| IrError::new("autotuner: code still shared"))?;
    best.tuning = tuning;
    Ok(best)
}

impl<'a> GpuRun<'a> {
    /// Uploads `inputs` and allocates every other buffer of `plan`.
    pub fn new(gpu: &'a Gpu, code: Arc<GpuCode>, plan: &'a ssmc_opt::Plan, sizes: &[usize], inputs: &TensorMap) -> Result<Self, Error> {
        let extents: Vec<Vec<usize>> = plan.buffers.iter().map(|b| b.shape.dims().iter().map(|d| sizes[d.index()]).collect()).collect();
        let mut memory = Vec::new();
        for (b, ext) in plan.buffers.iter().zip(&extents) {
            memory.push(Some(match b.kind {
                BufferKind::Input => gpu.upload(inputs[&b.name].bytes())?,
                _ => gpu.zeros_f32(ext.iter().product())?,
            }));
        }
        Ok(GpuRun { gpu, code, plan, memory, extents })
    }

    /// Launches every kernel in order (asynchronously).
    pub fn launch(&mut self) -> Result<(), Error> {
        for (k, kir) in self.plan.kernels.iter().zip(&self.code.kirs) {
            let ids: Vec<usize> = k.reads.iter().chain(k.writes.iter()).map(|b| b.0).collect();
            let bufs: Vec<&DeviceBuffer> = ids.iter().map(|&i| self.memory[i].as_ref().expect("allocated")).collect();
            let needs: Vec<usize> = kir.buffers.iter().map(|p| p.len * p.dtype.size()).collect();
            let index = self.plan.kernels.iter().position(|x| std::ptr::eq(x, k)).expect("own kernel");
            self.gpu.launch(&self.code.module, index, &bufs, &needs, kir.row_count() as u64, ssmc_ptx::emit::lanes_per_row(kir, &self.code.schedule), BLOCK)?;
        }
        Ok(())
    }

    /// The outputs, read back as `out_dtype`.
    pub fn outputs(&self, inputs: &TensorMap, out_dtype: DType) -> Result<TensorMap, Error> {
        self.gpu.sync()?;
        let mut out = TensorMap::new();
        for (name, b) in &self.plan.outputs {
            let buf = &self.plan.buffers[b.0];
            let t = match buf.kind {
                BufferKind::Input => inputs[&buf.name].cast(out_dtype),
                _ => {
                    let v = self.gpu.download_f32(self.memory[b.0].as_ref().expect("allocated"))?;
                    HostTensor::from_f32(self.extents[b.0].clone(), &v).expect("sized from the plan").cast(out_dtype)
                }
            };
            out.insert(name.clone(), t);
        }
        Ok(out)
    }
}

//! Compiled layers: a plan, JIT-compiled per concrete shape and input dtypes (cached), run with
//! every input checked before any machine code touches memory.

use rayon::prelude::*;
use crate::{Error, Layer};
use ssmc_cpu::{Arg, CpuModule};
use ssmc_ir::{DType, IrError};
use ssmc_kernel::Schedule;
use ssmc_ptx::{Gpu, GpuCode, GpuRun, GpuSchedule};
use ssmc_opt::{BufferKind, Fusion, Options, Plan};
use ssmc_runtime::{HostTensor, TensorMap};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Cranelift JIT on this CPU.
    Cpu,
    /// PTX on an NVIDIA GPU through the CUDA driver (feature `cuda`).
    Cuda,
}

impl Backend {
    /// The kernel forms beyond the row template its code generator lowers (the optimizer plans
    /// with them): replayed scans and sums across rows on the CPU, none yet on the GPU.
    pub fn forms(self) -> ssmc_opt::Forms {
        match self {
            Backend::Cpu => ssmc_opt::Forms::ALL,
            Backend::Cuda => ssmc_opt::Forms::default(),
        }
    }
}

/// What a compiled kernel set is specialized on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ShapeKey {
    sizes: Vec<usize>,
    dtypes: Vec<DType>,
}

/// A backend and its options: what [`Layer::compile_for`] compiles for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Cranelift JIT on this CPU.
    Cpu {
        /// The kernel schedule (vector width, threads, seq chunks).
        schedule: Schedule,
        /// Keep the plan's intermediate buffers between runs, as a caching allocator does (an
        /// unfused plan then holds them as long as the compiled layer lives). Otherwise every
        /// run allocates them afresh, as PyTorch's and NumPy's CPU allocators do: a large buffer
        /// is new memory from the system, paying a page fault per page at its first write. The
        /// two bracket what an unfused framework implementation pays; `ssmc bench` times both.
        keep_buffers: bool,
    },
    /// PTX on an NVIDIA GPU through the CUDA driver (feature `cuda`).
    Cuda {
        /// One schedule for every shape, or `None` for the autotuner's choice per shape.
        schedule: Option<GpuSchedule>,
    },
}

impl From<Backend> for Target {
    /// The backend with its default options.
    fn from(b: Backend) -> Target {
        match b {
            Backend::Cpu => Target::Cpu { schedule: Schedule::cpu_default(), keep_buffers: false },
            Backend::Cuda => Target::Cuda { schedule: None },
        }
    }
}

/// A layer compiled for a backend under a fusion choice.
pub struct CompiledLayer {
    layer: Layer,
    plan: Plan,
    code: Code,
}

/// A backend's compiled code, cached per shape and input dtypes.
enum Code {
    Cpu(CpuCode),
    Cuda(CudaCode),
}

/// The CPU's: JIT modules, and the intermediate buffers kept between runs, by buffer index
/// (empty where none is kept), when `keep_buffers` (every kernel writes all of a buffer it
/// writes before any kernel reads it, so stale contents are never seen).
struct CpuCode {
    schedule: Schedule,
    keep_buffers: bool,
    cache: Mutex<HashMap<ShapeKey, Arc<CpuModule>>>,
    scratch: Mutex<Vec<Vec<u8>>>,
}

/// The GPU's: the device, and loaded PTX modules.
struct CudaCode {
    gpu: Gpu,
    schedule: Option<GpuSchedule>,
    cache: Mutex<HashMap<ShapeKey, Arc<GpuCode>>>,
}

impl Layer {
    /// Plans the layer (fused or not) for `backend` with its default options; machine code is
    /// generated on first use at each input shape and cached.
    pub fn compile(&self, backend: Backend, fusion: Fusion) -> Result<CompiledLayer, Error> {
        self.compile_for(backend.into(), fusion)
    }

    /// [`Layer::compile`] for a backend with explicit options.
    pub fn compile_for(&self, target: Target, fusion: Fusion) -> Result<CompiledLayer, Error> {
        let code = match target {
            Target::Cpu { schedule, keep_buffers } => {
                Code::Cpu(CpuCode { schedule, keep_buffers, cache: Mutex::new(HashMap::new()), scratch: Mutex::new(Vec::new()) })
            }
            Target::Cuda { schedule } => Code::Cuda(CudaCode { gpu: Gpu::new(0)?, schedule, cache: Mutex::new(HashMap::new()) }),
        };
        crate::dump::dump("ir", self.graph().name(), || ssmc_ir::print::print_annotated(self.graph()));
        let backend = match target {
            Target::Cpu { .. } => Backend::Cpu,
            Target::Cuda { .. } => Backend::Cuda,
        };
        let opts = Options { forms: backend.forms(), ..Options::at_sizes(self.graph(), &[]) };
        let plan = self.plan(fusion, &opts)?.plan;
        crate::dump::dump("plan", &format!("{} {fusion:?}", self.graph().name()), || {
            let mut s = ssmc_ir::print::print_annotated(&plan.graph);
            for k in &plan.kernels {
                let names = |ids: &[ssmc_opt::BufferId]| ids.iter().map(|b| plan.buffers[b.0].name.clone()).collect::<Vec<_>>().join(", ");
                s.push_str(&format!("kernel {}: {} ops, reads {}, writes {}\n", k.name, k.body.len(), names(&k.reads), names(&k.writes)));
            }
            s
        });
        Ok(CompiledLayer { layer: self.clone(), plan, code })
    }
}

impl CompiledLayer {
    /// The plan it runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn key(&self, inputs: &TensorMap) -> Result<ShapeKey, Error> {
        let sizes = self.layer.check_inputs(inputs)?;
        Ok(ShapeKey {
            sizes: sizes.0.iter().map(|s| s.unwrap_or(1)).collect(),
            dtypes: self.layer.graph().inputs().map(|(_, d)| inputs[&d.name].dtype()).collect(),
        })
    }

    /// The backend it was compiled for.
    pub fn backend(&self) -> Backend {
        match self.code {
            Code::Cpu(_) => Backend::Cpu,
            Code::Cuda(_) => Backend::Cuda,
        }
    }

    fn cuda(&self, what: &'static str) -> Result<&CudaCode, Error> {
        match &self.code {
            Code::Cuda(c) => Ok(c),
            Code::Cpu(_) => Err(Error::WrongBackend { what, wants: Backend::Cuda, compiled: Backend::Cpu }),
        }
    }

    fn cpu(&self, what: &'static str) -> Result<&CpuCode, Error> {
        match &self.code {
            Code::Cpu(c) => Ok(c),
            Code::Cuda(_) => Err(Error::WrongBackend { what, wants: Backend::Cpu, compiled: Backend::Cuda }),
        }
    }

    /// The GPU code for these inputs' shapes and dtypes (loaded now, or from the cache).
    pub fn prepare_gpu(&self, inputs: &TensorMap) -> Result<Arc<GpuCode>, Error> {
        let cuda = self.cuda("prepare_gpu")?;
        let key = self.key(inputs)?;
        let mut cache = cuda.cache.lock().map_err(|_| Error::Poisoned("GPU code cache"))?;
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let code = ssmc_ptx::load(&cuda.gpu, &self.plan, &key.sizes, inputs, cuda.schedule)?;
        cache.insert(key, code.clone());
        Ok(code)
    }

    /// Uploads `inputs` for repeated GPU launches (benchmarks time [`GpuRun::launch`]).
    pub fn gpu_run(&self, inputs: &TensorMap) -> Result<GpuRun<'_>, Error> {
        let cuda = self.cuda("gpu_run")?;
        let code = self.prepare_gpu(inputs)?;
        let key = self.key(inputs)?;
        Ok(GpuRun::new(&cuda.gpu, code, &self.plan, &key.sizes, inputs)?)
    }

    /// Fixes the GPU schedule instead of letting the autotuner time the candidates (a layer
    /// compiled for the CPU is an error).
    pub fn with_gpu_schedule(mut self, schedule: GpuSchedule) -> Result<Self, Error> {
        match &mut self.code {
            Code::Cuda(c) => {
                c.schedule = Some(schedule);
                c.cache.get_mut().map_err(|_| Error::Poisoned("GPU code cache"))?.clear();
                Ok(self)
            }
            Code::Cpu(_) => Err(Error::WrongBackend { what: "a GPU schedule", wants: Backend::Cuda, compiled: Backend::Cpu }),
        }
    }

    /// Keeps a CPU plan's intermediate buffers between runs (see [`Target::Cpu`]); a layer
    /// compiled for the GPU is an error.
    pub fn keep_buffers(mut self, keep: bool) -> Result<Self, Error> {
        match &mut self.code {
            Code::Cpu(c) => {
                c.keep_buffers = keep;
                Ok(self)
            }
            Code::Cuda(_) => Err(Error::WrongBackend { what: "keep_buffers", wants: Backend::Cpu, compiled: Backend::Cuda }),
        }
    }

    /// The GPU, when compiled for one.
    pub fn gpu(&self) -> Option<&Gpu> {
        match &self.code {
            Code::Cuda(c) => Some(&c.gpu),
            Code::Cpu(_) => None,
        }
    }

    /// Machine code for these inputs' shapes and dtypes (compiled now, or from the cache).
    pub fn prepare(&self, inputs: &TensorMap) -> Result<Arc<CpuModule>, Error> {
        Ok(self.checked_module(inputs)?.0)
    }

    /// [`Self::prepare`], with the dim sizes its check of the inputs bound.
    fn checked_module(&self, inputs: &TensorMap) -> Result<(Arc<CpuModule>, ssmc_ir::interp::DimSizes), Error> {
        let cpu = self.cpu("CPU machine code")?;
        let sizes = self.layer.check_inputs(inputs)?;
        let key = ShapeKey {
            sizes: sizes.0.iter().map(|s| s.unwrap_or(1)).collect(),
            dtypes: self.layer.graph().inputs().map(|(_, d)| inputs[&d.name].dtype()).collect(),
        };
        let mut cache = cpu.cache.lock().map_err(|_| Error::Poisoned("CPU code cache"))?;
        if let Some(m) = cache.get(&key) {
            return Ok((m.clone(), sizes));
        }
        let mut plan = self.plan.clone();
        for b in plan.buffers.iter_mut().filter(|b| b.kind == BufferKind::Input) {
            b.dtype = inputs[&b.name].dtype();
        }
        let kirs = plan
            .kernels
            .iter()
            .map(|k| ssmc_kernel::lower(&plan, k, &key.sizes, &cpu.schedule))
            .collect::<Result<Vec<_>, _>>()?;
        for k in &kirs {
            crate::dump::dump("kir", &k.name, || format!("{k:#?}"));
        }
        let module = Arc::new(ssmc_cpu::compile(kirs, &cpu.schedule)?);
        cache.insert(key, module.clone());
        Ok((module, sizes))
    }

    /// JIT time of the code these inputs run (compiling it if needed).
    pub fn compile_time(&self, inputs: &TensorMap) -> Result<Duration, Error> {
        Ok(self.prepare(inputs)?.compile_time)
    }

    /// Runs the layer; outputs are `f32`.
    pub fn run(&self, inputs: &TensorMap) -> Result<TensorMap, Error> {
        self.run_as(inputs, DType::F32)
    }

    /// Runs the layer; outputs are rounded to `out_dtype`.
    pub fn run_as(&self, inputs: &TensorMap, out_dtype: DType) -> Result<TensorMap, Error> {
        match &self.code {
            Code::Cuda(_) => {
                let mut run = self.gpu_run(inputs)?;
                run.launch()?;
                Ok(run.outputs(inputs, out_dtype)?)
            }
            Code::Cpu(cpu) => {
                let mut out = TensorMap::new();
                self.run_cpu(cpu, inputs, out_dtype, &mut out)?;
                Ok(out)
            }
        }
    }

    /// Runs the layer, writing its outputs into the `f32` tensors `outputs` holds from an
    /// earlier call (a generation loop's state, say), so no output is allocated again; outputs
    /// it lacks are added. A tensor of the wrong shape or dtype is an error that leaves `outputs`
    /// as it was.
    ///
    /// ```
    /// # fn main() -> Result<(), ssmc::Error> {
    /// use ssmc::{Backend, Fusion, Layer};
    /// let layer = Layer::from_file(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mamba1_step.ssm")))?;
    /// let step = layer.compile(Backend::Cpu, Fusion::On)?;
    /// let dims = [("batch", 1), ("dim", 8), ("len", 1), ("state", 16)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    /// let mut x = ssmc::random::random_inputs(layer.graph(), &dims, ssmc::ir::DType::F32, 0)?;
    /// let mut out = ssmc::runtime::TensorMap::new();
    /// for _ in 0..3 {
    ///     step.run_into(&x, &mut out)?;
    ///     // the state after this step is the next step's initial state
    ///     std::mem::swap(x.get_mut("h0").unwrap(), out.get_mut("h_last").unwrap());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn run_into(&self, inputs: &TensorMap, outputs: &mut TensorMap) -> Result<(), Error> {
        match &self.code {
            Code::Cuda(_) => {
                // the device's outputs are copied back into fresh tensors; the check holds all the same
                self.check_given_outputs(&self.layer.check_inputs(inputs)?, outputs)?;
                outputs.extend(self.run(inputs)?);
                Ok(())
            }
            Code::Cpu(cpu) => self.run_cpu(cpu, inputs, DType::F32, outputs),
        }
    }

    /// Checks that each output tensor given to [`Self::run_into`] is `f32` of the output's shape
    /// at `sizes`; returns, per buffer, the index in `plan.outputs` of the (first) output the
    /// kernels write into it.
    fn check_given_outputs(&self, sizes: &ssmc_ir::interp::DimSizes, given: &TensorMap) -> Result<Vec<Option<usize>>, Error> {
        let plan = &self.plan;
        let mut owner: Vec<Option<usize>> = vec![None; plan.buffers.len()];
        for (o, (name, b)) in plan.outputs.iter().enumerate() {
            let buf = &plan.buffers[b.0];
            if buf.kind == BufferKind::Input || owner[b.0].is_some() {
                continue;
            }
            owner[b.0] = Some(o);
            if let Some(t) = given.get(name) {
                let want: Vec<usize> = buf.shape.dims().iter().map(|d| sizes.get(*d).unwrap_or(1)).collect();
                if t.dtype() != DType::F32 || t.shape() != want.as_slice() {
                    return Err(IrError::new(format!(
                        "output `{name}` is written as f32 {want:?}, but the tensor given for it is {} {:?}",
                        t.dtype(),
                        t.shape()
                    ))
                    .into());
                }
            }
        }
        Ok(owner)
    }

    /// The CPU run into `outputs`: each output is made in the bytes of the tensor of its name
    /// there (checked, then taken out with its key and put back), or in a fresh buffer.
    fn run_cpu(&self, cpu: &CpuCode, inputs: &TensorMap, out_dtype: DType, outputs: &mut TensorMap) -> Result<(), Error> {
        // one check of the inputs serves the cache lookup and the buffer sizes
        let (module, sizes) = self.checked_module(inputs)?;
        let extent = |s: &ssmc_ir::Shape| -> Vec<usize> { s.dims().iter().map(|d| sizes.get(*d).unwrap_or(1)).collect() };
        let plan = &self.plan;
        // the outputs given are checked before any is taken, so an error leaves them all
        let owner = self.check_given_outputs(&sizes, outputs)?;
        let mut keys: Vec<Option<String>> = vec![None; plan.outputs.len()];
        // every buffer the kernels write holds little-endian f32 bytes: outputs become tensors
        // without a copy (a copy of a fresh allocation costs its page faults again)
        let mut scratch = match cpu.keep_buffers {
            true => std::mem::take(&mut *cpu.scratch.lock().map_err(|_| Error::Poisoned("kept buffers"))?),
            false => Vec::new(),
        };
        scratch.resize_with(plan.buffers.len(), Vec::new);
        let mut memory: Vec<Vec<u8>> = Vec::with_capacity(plan.buffers.len());
        for (i, b) in plan.buffers.iter().enumerate() {
            let n = 4 * extent(&b.shape).iter().product::<usize>();
            memory.push(match (b.kind, owner[i]) {
                (BufferKind::Input, _) => Vec::new(),
                (_, Some(o)) => match outputs.remove_entry(&plan.outputs[o].0) {
                    Some((key, t)) => {
                        keys[o] = Some(key);
                        t.into_bytes()
                    }
                    None => zeroed(n)?,
                },
                (_, None) if scratch[i].is_empty() => zeroed(n)?,
                (_, None) => {
                    let mut v = std::mem::take(&mut scratch[i]);
                    v.try_reserve_exact(n.saturating_sub(v.len())).map_err(|_| out_of_memory(n))?;
                    v.resize(n, 0);
                    v
                }
            });
        }
        for (k, jit) in plan.kernels.iter().zip(&module.kernels) {
            let mut written: Vec<Vec<u8>> = k.writes.iter().map(|w| std::mem::take(&mut memory[w.0])).collect();
            // staged copies (see `ssmc_kernel::Staging`), made before the launch, one per thread
            let staged: Vec<Option<Vec<f32>>> = k
                .reads
                .par_iter()
                .zip(&jit.kir.buffers[..k.reads.len()])
                .map(|(r, param)| {
                    param.stage.as_ref().map(|st| {
                        let b = &plan.buffers[r.0];
                        let values = match b.kind {
                            BufferKind::Input => inputs[&b.name].to_f32(),
                            _ => ssmc_runtime::tensor::f32s_from_le_bytes(&memory[r.0]),
                        };
                        st.apply(&values)
                    })
                })
                .collect();
            {
                let mut args: Vec<Arg<'_>> = Vec::new();
                for (r, st) in k.reads.iter().zip(&staged) {
                    let b = &plan.buffers[r.0];
                    args.push(match (st, b.kind) {
                        (Some(v), _) => Arg::ReadF32(v),
                        (None, BufferKind::Input) => {
                            let t = &inputs[&b.name];
                            Arg::Read(t.bytes(), t.dtype())
                        }
                        (None, _) => Arg::Read(&memory[r.0], DType::F32),
                    });
                }
                // sums across rows add into zeroed blocks (see `ssmc_kernel::Blocks`)
                let params = &jit.kir.buffers[k.reads.len()..];
                let mut partials: Vec<Option<Vec<u8>>> = Vec::with_capacity(params.len());
                for p in params {
                    partials.push(if p.blocks.is_some() { Some(zeroed(4 * p.len)?) } else { None });
                }
                for (w, part) in written.iter_mut().zip(partials.iter_mut()) {
                    args.push(Arg::Write(part.as_mut().unwrap_or(w)));
                }
                ssmc_cpu::launch(jit, &mut args, cpu.schedule.threads)?;
                drop(args);
                for ((w, part), p) in written.iter_mut().zip(partials).zip(params) {
                    if let (Some(part), Some(blocks)) = (part, &p.blocks) {
                        let total = blocks.total(&ssmc_runtime::tensor::f32s_from_le_bytes(&part));
                        for (dst, x) in w.chunks_exact_mut(4).zip(total) {
                            dst.copy_from_slice(&x.to_le_bytes());
                        }
                    }
                }
            }
            for (w, data) in k.writes.iter().zip(written) {
                memory[w.0] = data;
            }
        }
        for (i, (name, b)) in plan.outputs.iter().enumerate() {
            // the bytes move into the tensor unless a later output names the same buffer
            let shared = plan.outputs.iter().skip(i + 1).any(|(_, later)| later == b);
            let buf = &plan.buffers[b.0];
            let t = match buf.kind {
                BufferKind::Input => inputs[&buf.name].cast(out_dtype),
                _ => {
                    let bytes = if shared { memory[b.0].clone() } else { std::mem::take(&mut memory[b.0]) };
                    HostTensor::from_bytes(DType::F32, extent(&buf.shape), bytes).expect("sized from the plan").into_dtype(out_dtype)
                }
            };
            match outputs.get_mut(name) {
                Some(slot) => *slot = t,
                None => {
                    outputs.insert(keys[i].take().unwrap_or_else(|| name.clone()), t);
                }
            }
        }
        if cpu.keep_buffers {
            for (i, b) in plan.buffers.iter().enumerate() {
                if b.kind != BufferKind::Input && owner[i].is_none() {
                    scratch[i] = std::mem::take(&mut memory[i]);
                }
            }
            if let Ok(mut kept) = cpu.scratch.lock() {
                *kept = scratch;
            }
        }
        Ok(())
    }
}

/// `n` zeroed bytes, or an `Err` where the system will not give them. `vec!` of zeros is
/// `calloc` (fresh pages come zeroed from the system, not written twice) but aborts the process
/// when the allocation fails; for a buffer of a GiB or more, a fallible reservation of the same
/// size asks first, touching no page. (Smaller ones are not probed: a probe is a second mapping
/// and unmapping, and freeing a mapped block under 32 MiB raises glibc's threshold for mapping
/// fresh ones.)
fn zeroed(n: usize) -> Result<Vec<u8>, Error> {
    if n >= 1 << 30 {
        Vec::<u8>::new().try_reserve_exact(n).map_err(|_| out_of_memory(n))?;
    }
    Ok(vec![0u8; n])
}

fn out_of_memory(n: usize) -> Error {
    Error::OutOfMemory { bytes: n }
}

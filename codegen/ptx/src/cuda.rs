//! The GPU through cudarc: context, module loading, device buffers, launches and timing. The
//! kernel launch is the one unsafe call here, behind checks of every buffer's size.

use crate::GpuError;
use cudarc::driver::{CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use std::sync::Arc;

/// One GPU and the one stream all of ssmc's work on it goes to.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

/// Memory on the device.
pub enum DeviceBuffer {
    /// Raw bytes (an input in its storage dtype).
    Bytes(CudaSlice<u8>),
    /// `f32` values (intermediates and outputs).
    F32(CudaSlice<f32>),
}

impl DeviceBuffer {
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        match self {
            DeviceBuffer::Bytes(b) => b.len(),
            DeviceBuffer::F32(b) => b.len() * 4,
        }
    }
}

/// Kernels loaded from one PTX module.
pub struct GpuModule {
    functions: Vec<CudaFunction>,
}

/// A timing mark on the stream.
pub struct Mark(CudaEvent);

/// Launches recorded once and replayed by the device without the host (a CUDA graph).
pub struct GpuGraph(cudarc::driver::CudaGraph);

fn driver(e: cudarc::driver::DriverError) -> GpuError {
    GpuError::Driver(e)
}

impl Gpu {
    /// Opens GPU `ordinal`. Fails with [`GpuError::NoDriver`] when libcuda cannot be loaded
    /// (checked first: cudarc's dynamic loading would otherwise panic).
    pub fn new(ordinal: usize) -> Result<Gpu, GpuError> {
        // SAFETY: only probes whether the shared library can be opened.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(GpuError::NoDriver);
        }
        let ctx = CudaContext::new(ordinal).map_err(driver)?;
        // SAFETY: every buffer, copy and launch goes to this one stream, in order, so cudarc's
        // events between streams are not needed (and a capture must not wait on them). Its own
        // stream, not the legacy default one, which cannot be captured into a graph.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver)?;
        Ok(Gpu { ctx, stream })
    }

    /// The device's name.
    pub fn name(&self) -> Result<String, GpuError> {
        self.ctx.name().map_err(driver)
    }

    /// Loads a PTX module and the named entries.
    pub fn load(&self, ptx: &str, entries: &[String]) -> Result<GpuModule, GpuError> {
        let module = self.ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(GpuError::Load)?;
        let functions = entries.iter().map(|n| module.load_function(n).map_err(driver)).collect::<Result<_, _>>()?;
        Ok(GpuModule { functions })
    }

    /// Copies bytes to the device.
    pub fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer, GpuError> {
        Ok(DeviceBuffer::Bytes(self.stream.clone_htod(bytes).map_err(driver)?))
    }

    /// Copies `f32`s to the device.
    pub fn upload_f32(&self, v: &[f32]) -> Result<DeviceBuffer, GpuError> {
        Ok(DeviceBuffer::F32(self.stream.clone_htod(v).map_err(driver)?))
    }

    /// A zeroed `f32` buffer.
    pub fn zeros_f32(&self, n: usize) -> Result<DeviceBuffer, GpuError> {
        Ok(DeviceBuffer::F32(self.stream.alloc_zeros::<f32>(n.max(1)).map_err(driver)?))
    }

    /// Copies an `f32` buffer back.
    pub fn download_f32(&self, b: &DeviceBuffer) -> Result<Vec<f32>, GpuError> {
        match b {
            DeviceBuffer::F32(s) => self.stream.clone_dtoh(s).map_err(driver),
            DeviceBuffer::Bytes(_) => Err(GpuError::BufferKind("a download")),
        }
    }

    /// Writes zeros over `b` (used to flush L2 between timed calls).
    pub fn clear(&self, b: &mut DeviceBuffer) -> Result<(), GpuError> {
        match b {
            DeviceBuffer::Bytes(s) => self.stream.memset_zeros(s).map_err(driver),
            DeviceBuffer::F32(s) => self.stream.memset_zeros(s).map_err(driver),
        }
    }

    /// Copies `src` into `dst` on the device (for measuring copy bandwidth).
    pub fn copy(&self, src: &DeviceBuffer, dst: &mut DeviceBuffer) -> Result<(), GpuError> {
        match (src, dst) {
            (DeviceBuffer::F32(s), DeviceBuffer::F32(d)) => self.stream.memcpy_dtod(s, d).map_err(driver),
            _ => Err(GpuError::BufferKind("a copy")),
        }
    }

    /// Runs entry `kernel` of `module` over `rows` rows, `lanes` threads each, with `buffers`
    /// (parameter order), each at least as large as `needs` says (in bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn launch(&self, module: &GpuModule, kernel: usize, buffers: &[&DeviceBuffer], needs: &[usize], rows: u64, lanes: u32, block: u32) -> Result<(), GpuError> {
        let f = module.functions.get(kernel).ok_or(GpuError::NoKernel(kernel))?;
        if buffers.len() != needs.len() {
            return Err(GpuError::BufferCount { takes: needs.len(), got: buffers.len() });
        }
        for (i, (b, &n)) in buffers.iter().zip(needs).enumerate() {
            if b.bytes() < n {
                return Err(GpuError::BufferTooSmall { index: i, holds: b.bytes(), reads: n });
            }
        }
        if rows == 0 {
            return Ok(());
        }
        let blocks = (rows * lanes as u64).div_ceil(block as u64);
        let grid = u32::try_from(blocks).map_err(|_| GpuError::TooManyBlocks { rows })?;
        let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
        let mut args = self.stream.launch_builder(f);
        for b in buffers {
            match b {
                DeviceBuffer::Bytes(s) => args.arg(s),
                DeviceBuffer::F32(s) => args.arg(s),
            };
        }
        args.arg(&rows);
        // SAFETY: the entry takes one u64 device pointer per buffer then the row count, as
        // `emit::entry` writes it; every buffer was checked above to hold what the kernel
        // reads or writes at these sizes (both derived from the same lowered kernel), and each
        // thread touches only its own row's elements of written buffers.
        unsafe { args.launch(cfg) }.map_err(GpuError::Launch)?;
        Ok(())
    }

    /// Starts recording the stream's launches into a graph instead of running them.
    pub fn begin_capture(&self) -> Result<(), GpuError> {
        self.stream.begin_capture(cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).map_err(driver)
    }

    /// Ends a recording: the graph of the launches since [`Self::begin_capture`].
    pub fn end_capture(&self) -> Result<GpuGraph, GpuError> {
        let graph = self.stream.end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0)).map_err(driver)?;
        graph.map(GpuGraph).ok_or(GpuError::EmptyCapture)
    }

    /// Queues one replay of `graph`.
    pub fn replay(&self, graph: &GpuGraph) -> Result<(), GpuError> {
        graph.0.launch().map_err(driver)
    }

    /// Waits for all queued work.
    pub fn sync(&self) -> Result<(), GpuError> {
        self.stream.synchronize().map_err(driver)
    }

    /// Records a timing mark.
    pub fn mark(&self) -> Result<Mark, GpuError> {
        let ev = self.stream.record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT)).map_err(driver)?;
        Ok(Mark(ev))
    }

    /// Milliseconds between two marks (waits for the second).
    pub fn elapsed_ms(&self, a: &Mark, b: &Mark) -> Result<f32, GpuError> {
        b.0.synchronize().map_err(driver)?;
        a.0.elapsed_ms(&b.0).map_err(driver)
    }
}

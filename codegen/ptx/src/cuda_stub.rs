//! The GPU API without the `cuda` feature: the same types, and [`Gpu::new`] returns
//! [`GpuError::CudaNotEnabled`], so callers never need a `cfg`.

use crate::GpuError;

/// One GPU (cannot be created without the `cuda` feature).
pub enum Gpu {}
/// Memory on the device (never made: only a `Gpu` makes one).
pub struct DeviceBuffer(());
/// Kernels loaded from one PTX module (never made: only a `Gpu` makes one).
pub struct GpuModule(());
/// A timing mark (never made: only a `Gpu` makes one).
pub struct Mark(());
/// A recorded graph of launches (never made: only a `Gpu` makes one).
pub struct GpuGraph(());
/// A failed call into the CUDA driver (never made without the `cuda` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverError {}

impl DeviceBuffer {
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        0
    }
}

impl Gpu {
    /// Always [`GpuError::CudaNotEnabled`].
    pub fn new(_ordinal: usize) -> Result<Gpu, GpuError> {
        Err(GpuError::CudaNotEnabled)
    }
    /// Unreachable: no `Gpu` exists.
    pub fn name(&self) -> Result<String, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn load(&self, _ptx: &str, _entries: &[String]) -> Result<GpuModule, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn upload(&self, _bytes: &[u8]) -> Result<DeviceBuffer, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn upload_f32(&self, _v: &[f32]) -> Result<DeviceBuffer, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn zeros_f32(&self, _n: usize) -> Result<DeviceBuffer, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn download_f32(&self, _b: &DeviceBuffer) -> Result<Vec<f32>, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn clear(&self, _b: &mut DeviceBuffer) -> Result<(), GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn copy(&self, _src: &DeviceBuffer, _dst: &mut DeviceBuffer) -> Result<(), GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    #[allow(clippy::too_many_arguments)]
    pub fn launch(&self, _m: &GpuModule, _k: usize, _b: &[&DeviceBuffer], _n: &[usize], _rows: u64, _lanes: u32, _block: u32) -> Result<(), GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn begin_capture(&self) -> Result<(), GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn end_capture(&self) -> Result<GpuGraph, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn replay(&self, _g: &GpuGraph) -> Result<(), GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn sync(&self) -> Result<(), GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn mark(&self) -> Result<Mark, GpuError> {
        match *self {}
    }
    /// Unreachable: no `Gpu` exists.
    pub fn elapsed_ms(&self, _a: &Mark, _b: &Mark) -> Result<f32, GpuError> {
        match *self {}
    }
}

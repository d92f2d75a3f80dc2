//! Declare, define, finalize: kernels into machine code with Cranelift's JIT.

use crate::translate::{signature, KernelTranslator};
use crate::CpuError;
use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use ssmc_kernel::{Kir, Schedule};
use std::time::{Duration, Instant};

/// A kernel in machine code.
pub struct JitKernel {
    /// What it computes.
    pub kir: Kir,
    /// Every call's first row is a multiple of this (see `KernelTranslator::translate`).
    pub row_align: usize,
    pub(crate) code: *const u8,
}

/// Machine code for a list of kernels; the code lives as long as this value.
pub struct CpuModule {
    /// The kernels, in launch order.
    pub kernels: Vec<JitKernel>,
    /// Time spent in Cranelift (translation, verification, code generation).
    pub compile_time: Duration,
    /// Keeps the code mapped.
    _module: Code,
}

/// The JIT module, kept only so its memory stays mapped. After `finalize_definitions` nothing
/// mutates it, and the code it holds is position-independent bytes, so sharing it across threads
/// is sound.
struct Code(#[allow(dead_code)] JITModule);
// SAFETY: see the type's doc: the module is never touched after finalization.
unsafe impl Send for Code {}
// SAFETY: as above.
unsafe impl Sync for Code {}
// SAFETY: `code` points into memory owned by the `CpuModule` that owns this kernel; it is only
// read (executed), never written.
unsafe impl Send for JitKernel {}
// SAFETY: as above.
unsafe impl Sync for JitKernel {}

/// Cranelift's refusal of `kernel`.
fn jit_error(kernel: &str, source: cranelift_module::ModuleError) -> CpuError {
    CpuError::Jit { kernel: kernel.to_string(), source: Box::new(source) }
}

/// Compiles `kirs` for this machine.
pub fn compile(kirs: Vec<Kir>, schedule: &Schedule) -> Result<CpuModule, CpuError> {
    let t0 = Instant::now();
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, name: &'static str, v: &str| f.set(name, v).map_err(|source| CpuError::Setting { name, source });
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa_builder = cranelift_native::builder().map_err(CpuError::Host)?;
    let isa = isa_builder.finish(settings::Flags::new(flags))?;
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut ids = Vec::new();
    let mut aligns = Vec::new();
    for (i, kir) in kirs.iter().enumerate() {
        let mut sig = module.make_signature();
        signature(&mut sig);
        let id = module
            .declare_function(&format!("{}_{i}", kir.name), Linkage::Local, &sig)
            .map_err(|e| jit_error(&kir.name, e))?;
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            aligns.push(KernelTranslator::translate(&mut b, kir, schedule));
            b.finalize(module.target_config());
        }
        ssmc_kernel::dump::dump("clif", &kir.name, || ctx.func.display().to_string());
        let dump_asm = ssmc_kernel::dump::wants("asm");
        ctx.set_disasm(dump_asm);
        module.define_function(id, &mut ctx).map_err(|e| jit_error(&kir.name, e))?;
        if let (true, Some(code)) = (dump_asm, ctx.compiled_code()) {
            ssmc_kernel::dump::dump("asm", &kir.name, || code.vcode.clone().unwrap_or_default());
        }
        module.clear_context(&mut ctx);
        ids.push(id);
    }
    module.finalize_definitions().map_err(|e| jit_error("", e))?;
    let kernels = kirs
        .into_iter()
        .zip(ids.into_iter().zip(aligns))
        .map(|(kir, (id, row_align))| JitKernel { kir, row_align, code: module.get_finalized_function(id) })
        .collect();
    Ok(CpuModule { kernels, compile_time: t0.elapsed(), _module: Code(module) })
}

//! The one unsafe call: a JIT kernel over its buffers, rows split across threads. Everything a
//! kernel may touch is checked here first.

use crate::jit::JitKernel;
use crate::CpuError;
use rayon::prelude::*;
use ssmc_ir::DType;

/// A buffer handed to a kernel.
pub enum Arg<'a> {
    /// Read-only bytes in a dtype.
    Read(&'a [u8], DType),
    /// A read-only `f32` buffer (an intermediate).
    ReadF32(&'a [f32]),
    /// Bytes the kernel writes as little-endian `f32` values (its stores do not assume
    /// alignment): an output is made in the byte buffer a tensor keeps, not copied there.
    Write(&'a mut [u8]),
}

/// Below this many row x seq x inner elements a launch stays on one thread.
pub const SMALL_WORK: usize = 1 << 16;

/// Runs `k` over `args` (in the kernel's parameter order) on up to `threads` threads (0 = all).
pub fn launch(k: &JitKernel, args: &mut [Arg<'_>], threads: usize) -> Result<(), CpuError> {
    let params = &k.kir.buffers;
    if args.len() != params.len() {
        return Err(CpuError::Launch(format!("kernel {} takes {} buffers, got {}", k.kir.name, params.len(), args.len())));
    }
    let mut ptrs: Vec<usize> = Vec::with_capacity(args.len());
    for (p, a) in params.iter().zip(args.iter_mut()) {
        let (ptr, bytes, dtype, writable) = match a {
            Arg::Read(b, d) => (b.as_ptr() as usize, b.len(), *d, false),
            Arg::ReadF32(b) => (b.as_ptr() as usize, b.len() * 4, DType::F32, false),
            Arg::Write(b) => (b.as_mut_ptr() as usize, b.len(), DType::F32, true),
        };
        if dtype != p.dtype || bytes < p.len * p.dtype.size() || (p.written && !writable) {
            return Err(CpuError::Launch(format!(
                "kernel {}: buffer `{}` needs {} {} elements{}, got {bytes} bytes of {dtype}",
                k.kir.name,
                p.name,
                p.len,
                p.dtype,
                if p.written { " (written)" } else { "" }
            )));
        }
        ptrs.push(ptr);
    }
    let rows = k.kir.row_count();
    // small launches (a decode step) run on the calling thread: waking a pool costs more
    let work = rows * k.kir.seq.map_or(1, |s| s.0) * k.kir.inner.unwrap_or(1);
    let threads = match threads {
        _ if work < SMALL_WORK => 1,
        0 => rayon::current_num_threads(),
        t => t,
    };
    let tasks = (threads * 4).min(rows).max(1);
    // tasks start on multiples of four rows, so kernels that run rows four at a time (see
    // `translate::KernelTranslator::row_blocks`) never straddle two tasks
    let per = if rows.is_multiple_of(4) { rows.div_ceil(tasks).next_multiple_of(4) } else { rows.div_ceil(tasks) };
    let base = ptrs.as_ptr() as usize;
    let code = k.code as usize;
    let run = |t: usize| {
        let (start, end) = (t * per, ((t + 1) * per).min(rows));
        if start < end {
            // SAFETY: checked above: every buffer holds at least the elements the kernel's
            // accesses reach at these sizes (lowering derived both from the same plan), written
            // buffers are exclusive `&mut`, and tasks cover disjoint row ranges whose writes are
            // disjoint (every stored value ranges over all row dims).
            unsafe { run_rows(code, base, start as u64, end as u64) }
        }
    };
    if threads == 1 || tasks == 1 {
        (0..tasks).for_each(run);
    } else {
        (0..tasks).into_par_iter().for_each(run);
    }
    Ok(())
}

/// Calls kernel code on rows `start..end`.
///
/// # Safety
/// `code` must be a finalized kernel with the signature of [`crate::translate::signature`], and
/// `buffers` must point to that kernel's buffer pointers, each valid for every access the kernel
/// makes on these rows.
unsafe fn run_rows(code: usize, buffers: usize, start: u64, end: u64) {
    // SAFETY: the caller guarantees `code` is a kernel with this signature.
    let f: extern "C" fn(*const usize, u64, u64) = unsafe { std::mem::transmute(code) };
    f(buffers as *const usize, start, end)
}

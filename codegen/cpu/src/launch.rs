//! The one unsafe call: a JIT kernel over its buffers, rows split across threads. Everything a
//! kernel may touch is checked here first.

use crate::jit::JitKernel;
use crate::CpuError;
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

/// Below this many row x seq x inner elements a launch stays on one thread (a few
/// microseconds of work).
pub const SMALL_WORK: usize = 1 << 12;

/// Runs `k` over `args` (in the kernel's parameter order) on up to `threads` threads (0 = all).
pub fn launch(k: &JitKernel, args: &mut [Arg<'_>], threads: usize) -> Result<(), CpuError> {
    let params = &k.kir.buffers;
    if args.len() != params.len() {
        return Err(CpuError::BufferCount { kernel: k.kir.name.clone(), takes: params.len(), got: args.len() });
    }
    let mut ptrs: Vec<usize> = Vec::with_capacity(args.len());
    for (p, a) in params.iter().zip(args.iter_mut()) {
        let (ptr, bytes, dtype, writable) = match a {
            Arg::Read(b, d) => (b.as_ptr() as usize, b.len(), *d, false),
            Arg::ReadF32(b) => (b.as_ptr() as usize, b.len() * 4, DType::F32, false),
            Arg::Write(b) => (b.as_mut_ptr() as usize, b.len(), DType::F32, true),
        };
        if dtype != p.dtype || bytes < p.len * p.dtype.size() || (p.written && !writable) {
            return Err(CpuError::Buffer {
                kernel: k.kir.name.clone(),
                buffer: p.name.clone(),
                len: p.len,
                dtype: p.dtype,
                written: p.written,
                bytes,
                got: dtype,
            });
        }
        ptrs.push(ptr);
    }
    let rows = k.kir.row_count();
    let work = rows * k.kir.seq.map_or(1, |s| s.0) * k.kir.inner.unwrap_or(1);
    let threads = match threads {
        0 => rayon::current_num_threads(),
        t => t,
    };
    let (code, base) = (k.code as usize, ptrs.as_ptr() as usize);
    if threads <= 1 || work < SMALL_WORK || rows < 8 {
        // SAFETY: checked above: every buffer holds at least the elements the kernel's accesses
        // reach at these sizes (lowering derived both from the same plan), and written buffers
        // are exclusive `&mut`.
        unsafe { run_rows(code, base, 0, rows as u64) };
    } else {
        // four pieces a thread balance the load when a thread is held up
        share_rows(code, base, rows, (4 * threads).min(rows / 4), k.row_align, threads - 1);
    }
    Ok(())
}

/// Runs rows `0..rows` in `pieces` pieces, taken in turn by the calling thread and `helpers`
/// pool threads. The caller never sleeps on the pool: a sleeping worker can take as long to
/// wake as a whole decode step, so the caller works from the start and runs every piece
/// itself if no helper comes. Pieces are taken from both ends (measured against one shared
/// counter in docs/benchmarks.md).
///
/// Pieces start on multiples of `align` rows (four, or a row chunk's rows), so kernels that run
/// rows four at a time (see `translate::KernelTranslator::row_blocks`) or in chunks never
/// straddle two pieces.
fn share_rows(code: usize, base: usize, rows: usize, pieces: usize, align: usize, helpers: usize) {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    struct Pieces {
        /// The next piece from the front (low 32 bits) and one past the last piece left (high).
        ends: AtomicU64,
        done: AtomicUsize,
    }
    let per = rows.div_ceil(pieces.max(1)).next_multiple_of(align.max(1));
    let count = rows.div_ceil(per);
    let state = Arc::new(Pieces { ends: AtomicU64::new((count as u64) << 32), done: AtomicUsize::new(0) });
    // takes pieces until none is left: the caller from the front, helpers from the back, so
    // that each thread writes mostly the same rows from one launch to the next (their cache
    // lines stay in its core's cache). A piece is run only by the thread that took it, and the
    // caller returns only once every piece is done, so a helper that starts late finds none
    // left and touches no buffer.
    let take = move |p: &Pieces, front: bool| loop {
        let claim = p.ends.fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
            let (lo, hi) = (e & 0xffff_ffff, e >> 32);
            (lo < hi).then(|| if front { e + 1 } else { e - (1 << 32) })
        });
        let Ok(e) = claim else { return };
        let c = if front { e & 0xffff_ffff } else { (e >> 32) - 1 } as usize;
        let (start, end) = (c * per, ((c + 1) * per).min(rows));
        // SAFETY: as for the one-thread call in `launch`; pieces are disjoint row ranges whose
        // writes are disjoint (every stored value ranges over all row dims), and the buffers
        // outlive every piece (the caller waits for all of them below).
        unsafe { run_rows(code, base, start as u64, end as u64) }
        p.done.fetch_add(1, Ordering::AcqRel);
    };
    for _ in 0..helpers {
        let state = state.clone();
        rayon::spawn(move || take(&state, false));
    }
    take(&state, true);
    // only pieces a helper is running are left: wait for them
    let mut spins = 0u32;
    while state.done.load(Ordering::Acquire) < count {
        spins += 1;
        if spins < 1 << 12 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
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


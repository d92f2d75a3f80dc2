//! A plan's PTX module: its entries in launch order (three per chunked scan) and how each
//! kernel is launched.

use crate::arch::Arch;
use crate::chunked::{chunkable, combine_entry, entry_chunked, ChunkPass};
use crate::emit::{entry, entry_name, entry_warp};
use crate::GpuSchedule;
use ssmc_kernel::Kir;

/// How one kernel of a module is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// One entry (by index into [`Module::names`]).
    Plain(usize),
    /// One entry run by a warp per row (the warp scan).
    Warp(usize),
    /// A chunked scan: summary, combine and main entries, and the number of chunks.
    Chunked {
        /// The summary pass.
        summary: usize,
        /// The combine pass.
        combine: usize,
        /// The main pass.
        main: usize,
        /// Chunks per row.
        chunks: usize,
    },
}

/// The PTX for a whole plan.
#[derive(Clone, Debug)]
pub struct Module {
    /// The module text.
    pub text: String,
    /// Every entry's name, in the text's order.
    pub names: Vec<String>,
    /// Per kernel, how to launch it.
    pub launches: Vec<Launch>,
}

/// Chunks to cut a scan of `rows` rows into: enough (row, chunk) threads to fill an H200
/// (132 SMs x 512 threads), at least 32 steps a chunk, a power of two, at most 256. (Four
/// times as many chunks were timed slower at every benchmark shape.)
pub fn chunks_for(rows: usize, extent: usize) -> usize {
    let want = (132 * 512usize).div_ceil(rows.max(1)).next_power_of_two();
    chunks_within(want, extent)
}

/// `want` chunks held to at least 32 steps a chunk of `extent` and at most 256 (1: no chunks).
pub fn chunks_within(want: usize, extent: usize) -> usize {
    let most = 1usize << (extent / 32).max(1).ilog2();
    want.min(most).clamp(1, 256)
}

/// The PTX for a whole plan under `gpu`: one `.entry` per kernel, or three for a scan cut into
/// chunks (when `gpu.chunked` and the kernel is [`chunkable`]); with `gpu.warp_scan`, kernels
/// that qualify run a warp per row.
pub fn module(kirs: &[Kir], gpu: &GpuSchedule, arch: Arch) -> Module {
    debug_assert!(gpu.check().is_ok(), "{:?}", gpu.check());
    let schedule = &gpu.kernel();
    let (chunked, tile) = (gpu.chunked, gpu.tiling());
    let mut text = arch.header();
    let mut names = Vec::new();
    let mut launches = Vec::new();
    for (i, k) in kirs.iter().enumerate() {
        let base = entry_name(k, i);
        let chunks = match (chunked, chunkable(k, schedule), k.seq) {
            (true, Some(_), Some((extent, _))) if gpu.chunks > 0 => chunks_within(gpu.chunks, extent),
            (true, Some(_), Some((extent, _))) => chunks_for(k.row_count(), extent),
            _ => 1,
        };
        let warp = if gpu.warp_scan { entry_warp(k, &base, gpu) } else { None };
        if let Some(entry_text) = warp {
            text.push('\n');
            text.push_str(&entry_text);
            names.push(base);
            launches.push(Launch::Warp(names.len() - 1));
        } else if chunks > 1 {
            let n = k.inner.unwrap_or(1);
            for (suffix, entry_text) in [
                ("summary", entry_chunked(k, &format!("{base}_summary"), schedule, chunks, ChunkPass::Summary, tile)),
                ("combine", combine_entry(&format!("{base}_combine"), chunks, n)),
                ("main", entry_chunked(k, &format!("{base}_main"), schedule, chunks, ChunkPass::Main, tile)),
            ] {
                text.push('\n');
                text.push_str(&entry_text);
                names.push(format!("{base}_{suffix}"));
            }
            let at = names.len();
            launches.push(Launch::Chunked { summary: at - 3, combine: at - 2, main: at - 1, chunks });
        } else {
            text.push('\n');
            text.push_str(&entry(k, &base, schedule, tile));
            names.push(base);
            launches.push(Launch::Plain(names.len() - 1));
        }
    }
    Module { text, names, launches }
}


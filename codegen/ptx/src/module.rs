//! A plan's PTX module: its entries in launch order (three per chunked scan), how each kernel is
//! launched, and which schedules apply to a plan's kernels.

use crate::arch::Arch;
use crate::emit::{self, chunkable, combine_entry, entry, entry_name, lanes_per_row, regions_fit, warp_scannable, ChunkPass, Lane, Mapping, Tiling};
use crate::schedule::{Chunks, GpuSchedule};
use ssmc_kernel::Kir;

/// How one kernel of a module is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// One entry (by index into [`Module::names`]), this many threads a row.
    Plain {
        /// The entry.
        entry: usize,
        /// Threads per row (lanes over the inner dim, or 1).
        lanes: u32,
    },
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
    /// The schedule as it runs: the mapping some kernel takes (tiles and chunks where some
    /// kernel uses them, the chunk count it got), the block size asked for.
    pub ran: GpuSchedule,
}

/// Chunks to cut a scan of `rows` rows into: enough (row, chunk) threads to fill an H200
/// (132 SMs x 512 threads), at least 32 steps a chunk, a power of two, at most 256.
fn chunks_for(rows: usize, extent: usize) -> usize {
    let want = (132 * 512usize).div_ceil(rows.max(1)).next_power_of_two();
    chunks_within(want, extent)
}

/// `want` chunks held to at least 32 steps a chunk of `extent` and at most 256 (1: no chunks).
fn chunks_within(want: usize, extent: usize) -> usize {
    let most = 1usize << (extent / 32).max(1).ilog2();
    want.min(most).clamp(1, 256)
}

/// How `gpu` tiles seq loops.
fn tiling(gpu: &GpuSchedule) -> Tiling {
    let tiles = gpu.tiles();
    Tiling { steps: tiles.map_or(0, |t| t.steps()), prefetch: tiles.is_some_and(|t| t.prefetch), warps: gpu.block().warps() }
}

/// The PTX for a whole plan under `gpu`: one `.entry` per kernel, or three for a scan cut into
/// chunks; kernels the schedule's mapping does not apply to run one thread per row (with its
/// tiles, where it has some).
pub fn module(kirs: &[Kir], gpu: &GpuSchedule, arch: Arch) -> Module {
    let schedule = &gpu.kernel();
    let tiles = tiling(gpu);
    let mut text = arch.header();
    let mut names = Vec::new();
    let mut launches = Vec::new();
    let (mut lanes_ran, mut tiles_ran, mut chunks_ran) = (false, false, None);
    for (i, k) in kirs.iter().enumerate() {
        let base = entry_name(k, i);
        let mut push = |name: String, entry_text: String| {
            text.push('\n');
            text.push_str(&entry_text);
            names.push(name);
            names.len() - 1
        };
        let warp = match gpu {
            GpuSchedule::WarpScan { stream_out, .. } => warp_scannable(k, schedule)
                .filter(|_| regions_fit(k.inner.unwrap_or(1), tiles.warps))
                .map(|ws| emit::WarpScan { stream_out: *stream_out, ..ws }),
            _ => None,
        };
        let scan = match gpu {
            GpuSchedule::Chunked { .. } => chunkable(k, schedule),
            _ => None,
        };
        let chunks = match (gpu, scan, k.seq) {
            (GpuSchedule::Chunked { chunks, .. }, Some(_), Some((extent, _))) => match chunks.count() {
                Some(want) => chunks_within(want, extent),
                None => chunks_for(k.row_count(), extent),
            },
            _ => 1,
        };
        tiles_ran |= warp.is_none() && emit::tiled(k, schedule, gpu.lane_width(), tiles, scan.is_some());
        if let Some(ws) = warp {
            let at = push(base.clone(), entry(k, &base, schedule, Mapping::Warp(ws), 0, Tiling { steps: 0, ..tiles }));
            launches.push(Launch::Warp(at));
        } else if let (Some(scan), true) = (scan, chunks > 1) {
            let n = k.inner.unwrap_or(1);
            let summary = push(format!("{base}_summary"), emit::entry_chunked(k, &format!("{base}_summary"), schedule, scan, chunks, ChunkPass::Summary, tiles));
            let combine = push(format!("{base}_combine"), combine_entry(&format!("{base}_combine"), chunks, n));
            let main = push(format!("{base}_main"), emit::entry_chunked(k, &format!("{base}_main"), schedule, scan, chunks, ChunkPass::Main, tiles));
            chunks_ran = chunks_ran.or(Some(chunks));
            launches.push(Launch::Chunked { summary, combine, main, chunks });
        } else {
            let lanes = lanes_per_row(k, gpu.lane_width());
            let mapping = if lanes > 1 { Mapping::Lanes(Lane::of_width(gpu.lane_width())) } else { Mapping::Rows };
            lanes_ran |= lanes > 1;
            let at = push(base.clone(), entry(k, &base, schedule, mapping, 0, tiles));
            launches.push(Launch::Plain { entry: at, lanes });
        }
    }
    let block = gpu.block();
    let ran_tiles = gpu.tiles().filter(|_| tiles_ran);
    let ran = match (gpu, launches.iter().any(|l| matches!(l, Launch::Warp(_)))) {
        (_, true) => *gpu,
        (GpuSchedule::Lanes { width, .. }, false) if lanes_ran => GpuSchedule::Lanes { width: *width, block },
        _ => match chunks_ran.and_then(|k| Chunks::exactly(k).ok()) {
            Some(chunks) => GpuSchedule::Chunked { chunks, tiles: ran_tiles, block },
            None => GpuSchedule::Rows { tiles: ran_tiles, block },
        },
    };
    Module { text, names, launches, ran }
}

/// The schedules that apply to a plan's kernels `kirs` (lowered under [`GpuSchedule::ROWS`]'s
/// kernel schedule), the ones the autotuner times: one thread per row, reading in place; where
/// some kernel stages tiles, tiles; where some scan can be cut into chunks, chunks (with and
/// without prefetching their tiles, at the count that fills an H200 and at half and twice it);
/// where some inner dim fits a warp's lanes, lanes of 1, 2 and 4 inner indices; where some scan
/// qualifies, the warp scan (with and without streaming its outputs past L1).
pub fn candidates(kirs: &[Kir]) -> Vec<GpuSchedule> {
    let kernel = GpuSchedule::ROWS.kernel();
    let tiled = kirs.iter().any(|k| emit::tiled(k, &kernel, 0, tiling(&GpuSchedule::TILED), false));
    let chunkable_any = kirs.iter().any(|k| chunkable(k, &kernel).is_some());
    let chunked_lean = kirs.iter().any(|k| chunkable(k, &kernel).is_some() && emit::tiled(k, &kernel, 0, tiling(&GpuSchedule::CHUNKED_LEAN), true));
    let mut out = vec![GpuSchedule::ROWS];
    let applies = [(GpuSchedule::TILED, tiled), (GpuSchedule::CHUNKED, chunkable_any), (GpuSchedule::CHUNKED_LEAN, chunked_lean)]
    .into_iter()
    .chain([GpuSchedule::LANES, GpuSchedule::LANES2, GpuSchedule::LANES4].map(|s| (s, kirs.iter().any(|k| lanes_per_row(k, s.lane_width()) > 1))))
    .chain([GpuSchedule::WARP_SCAN, GpuSchedule::WARP_SCAN_STREAM].map(|s| (s, kirs.iter().any(|k| warp_scannable(k, &kernel).is_some()))));
    out.extend(applies.filter_map(|(s, applies)| applies.then_some(s)));
    // the chunked schedules also at half and twice the default chunk count (the default fills
    // an H200; another GPU, or another shape, may want more or fewer)
    let default_chunks = kirs.iter().find_map(|k| {
        let (extent, _) = k.seq?;
        chunkable(k, &kernel).map(|_| (chunks_for(k.row_count(), extent), extent))
    });
    if let Some((k, extent)) = default_chunks {
        let counts: Vec<Chunks> =
            [k / 2, 2 * k].into_iter().filter(|&c| c > 1 && chunks_within(c, extent) == c).filter_map(|c| Chunks::exactly(c).ok()).collect();
        let chunked: Vec<GpuSchedule> = out.iter().filter(|s| matches!(s, GpuSchedule::Chunked { .. })).copied().collect();
        for s in chunked {
            if let GpuSchedule::Chunked { tiles, block, .. } = s {
                out.extend(counts.iter().map(|&chunks| GpuSchedule::Chunked { chunks, tiles, block }));
            }
        }
    }
    out
}

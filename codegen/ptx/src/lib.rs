//! ssmc-ptx: the GPU backend. PTX text emitted from the kernel IR ([`emit`]), validated with
//! ptxas ([`ptxas`]), and, with the `cuda` feature, loaded and launched through cudarc.
#![warn(missing_docs)]

pub mod arch;
pub mod chunked;
pub mod emit;
pub mod isa;
pub mod module;
pub mod ptxas;
pub mod regs;

pub use arch::Arch;
pub use module::{module, Launch, Module};
pub use emit::BLOCK;

use ssmc_kernel::Schedule;

/// The kernel schedule for the GPU: one thread per row (or, with `lane_width` > 0, that many
/// inner indices per lane of a row's lanes), scalar code, inner dims up to 64 unrolled into
/// registers, strided inputs read in place.
pub fn gpu_schedule(lane_width: usize) -> Schedule {
    Schedule { vector_width: 1, unroll_limit: 64, threads: 0, vectorize_rows: false, stage_strided: false, lane_width, seq_chunk: 0 }
}

/// Steps per shared-memory tile in the tiled schedules.
pub const TILE: usize = 16;

/// How the GPU runs a plan: the choices the autotuner times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GpuSchedule {
    /// Lanes over the inner dim (reduced with shuffles), this many consecutive inner indices per
    /// lane, instead of one thread per row (0).
    pub lane_width: usize,
    /// Scans cut into chunks along seq (summary, combine and main passes).
    pub chunked: bool,
    /// Chunks per scan where `chunked`: 0 for [`module::chunks_for`]'s count (enough threads
    /// to fill an H200), else this many (a power of two, held to at least 32 steps a chunk and
    /// at most 256 chunks). The autotuner also times half and twice the default.
    pub chunks: usize,
    /// Steps per shared-memory tile (0: every access straight from global memory).
    pub tile: usize,
    /// Tiles: issue each tile's loads before the previous tile's steps.
    pub prefetch: bool,
    /// A warp per row, its lanes over seq: each lane scans a few consecutive steps, the lanes'
    /// pieces combine in one pass over the block (or, with 16-bit inputs, one per half of the
    /// states; see [`emit::warp_scannable`]); kernels that do not qualify run one thread per row.
    pub warp_scan: bool,
    /// With `warp_scan`: the lanes' vectors of outputs are stored past L1.
    pub stream_out: bool,
    /// Threads per block: 0 for [`BLOCK`], else this many (see [`GpuSchedule::block_ok`]).
    /// Each warp of a block has its own region of shared memory (tiles, the warp scan's
    /// combine), so larger blocks stage fewer inputs in tiles, and a warp scan whose regions
    /// would not fit runs a thread per row instead. The autotuner also times the fastest
    /// schedule at half and twice the default.
    pub block: usize,
}

impl GpuSchedule {
    /// One thread per row, reading global memory in place.
    pub const ROWS: GpuSchedule = GpuSchedule { lane_width: 0, chunked: false, chunks: 0, tile: 0, prefetch: false, warp_scan: false, stream_out: false, block: 0 };
    /// One thread per row, seq-indexed accesses staged through shared memory, each tile's
    /// loads issued a tile ahead.
    pub const TILED: GpuSchedule = GpuSchedule { lane_width: 0, chunked: false, chunks: 0, tile: TILE, prefetch: true, warp_scan: false, stream_out: false, block: 0 };
    /// Tiles with the scan cut into chunks.
    pub const CHUNKED: GpuSchedule = GpuSchedule { lane_width: 0, chunked: true, chunks: 0, tile: TILE, prefetch: true, warp_scan: false, stream_out: false, block: 0 };
    /// Chunks and tiles without the prefetch registers: more warps fit an SM, which pays when
    /// chunks give many more warps than rows do.
    pub const CHUNKED_LEAN: GpuSchedule = GpuSchedule { lane_width: 0, chunked: true, chunks: 0, tile: TILE, prefetch: false, warp_scan: false, stream_out: false, block: 0 };
    /// Lanes over the inner dim, one inner index each.
    pub const LANES: GpuSchedule = GpuSchedule { lane_width: 1, chunked: false, chunks: 0, tile: 0, prefetch: false, warp_scan: false, stream_out: false, block: 0 };
    /// Lanes over the inner dim, two consecutive inner indices each (8-byte loads and stores):
    /// the fastest decode step at batch 1 on the H200, in a CUDA graph 1.46 us against 1.61
    /// with one index a lane and 1.57 with four.
    pub const LANES2: GpuSchedule = GpuSchedule { lane_width: 2, chunked: false, chunks: 0, tile: 0, prefetch: false, warp_scan: false, stream_out: false, block: 0 };
    /// Lanes over the inner dim, four consecutive inner indices each: 16-byte loads and stores
    /// that a warp's lanes coalesce (for a state of 16, a warp covers 8 rows).
    pub const LANES4: GpuSchedule = GpuSchedule { lane_width: 4, chunked: false, chunks: 0, tile: 0, prefetch: false, warp_scan: false, stream_out: false, block: 0 };
    /// A warp per row scanning seq in parallel, in one pass.
    pub const WARP_SCAN: GpuSchedule = GpuSchedule { lane_width: 0, chunked: false, chunks: 0, tile: 0, prefetch: false, warp_scan: true, stream_out: false, block: 0 };
    /// The warp scan with its outputs stored past L1 (`st.global.L1::no_allocate`): on the
    /// H200 9% faster at Mamba's (1, 4096, 8192, 16), 3% slower at (1, 1536, 2048, 16), so the
    /// autotuner decides.
    pub const WARP_SCAN_STREAM: GpuSchedule = GpuSchedule { stream_out: true, ..GpuSchedule::WARP_SCAN };

    /// Whether `k` is a chunk count a schedule may ask for ([`GpuSchedule::chunks`]): a power of
    /// two from 2 to 256.
    pub fn chunks_ok(k: usize) -> bool {
        (2..=256).contains(&k) && k.is_power_of_two()
    }

    /// Whether `b` is a block size a schedule may ask for ([`GpuSchedule::block`]): a power of
    /// two from 32 to 256 threads (256 threads fit an SM at the 255 registers ptxas may take).
    pub fn block_ok(b: usize) -> bool {
        (32..=256).contains(&b) && b.is_power_of_two()
    }

    /// Whether `t` is a tile a schedule may ask for ([`GpuSchedule::tile`]): 0 (no tiles) or a
    /// divisor of 32 steps.
    pub fn tile_ok(t: usize) -> bool {
        t == 0 || (t <= 32 && 32 % t == 0)
    }

    /// Whether the schedule's numbers are ones it may ask for: the tile ([`Self::tile_ok`]), the
    /// lane width (0, or a power of two up to 16), the chunk count (0 or [`Self::chunks_ok`])
    /// and the block size (0 or [`Self::block_ok`]); the message says which is not.
    pub fn check(&self) -> Result<(), String> {
        if !GpuSchedule::tile_ok(self.tile) {
            return Err(format!("tile {} must be 0 or a power of two up to 32", self.tile));
        }
        if self.lane_width > 16 || (self.lane_width > 0 && !self.lane_width.is_power_of_two()) {
            return Err(format!("lane width {} must be 0 (no lanes) or 1, 2, 4, 8 or 16", self.lane_width));
        }
        if self.chunks != 0 && !GpuSchedule::chunks_ok(self.chunks) {
            return Err(format!("{} chunks: the count must be 0 (the default) or a power of two from 2 to 256", self.chunks));
        }
        if self.block != 0 && !GpuSchedule::block_ok(self.block) {
            return Err(format!("block of {} threads: it must be 0 (the default, {BLOCK}) or 32, 64, 128 or 256", self.block));
        }
        Ok(())
    }

    /// Threads per block of every launch.
    pub fn threads(&self) -> u32 {
        if self.block == 0 {
            BLOCK
        } else {
            self.block as u32
        }
    }

    /// Every schedule the autotuner chooses among (each where it applies).
    pub const ALL: [GpuSchedule; 9] = [
        GpuSchedule::ROWS,
        GpuSchedule::TILED,
        GpuSchedule::CHUNKED,
        GpuSchedule::CHUNKED_LEAN,
        GpuSchedule::LANES,
        GpuSchedule::LANES2,
        GpuSchedule::LANES4,
        GpuSchedule::WARP_SCAN,
        GpuSchedule::WARP_SCAN_STREAM,
    ];

    /// How seq loops are tiled.
    pub fn tiling(&self) -> emit::Tiling {
        emit::Tiling { steps: self.tile, prefetch: self.prefetch, warps: self.threads() as usize / 32 }
    }

    /// The kernel schedule the plan is lowered under.
    pub fn kernel(&self) -> Schedule {
        gpu_schedule(self.lane_width)
    }
}

impl std::fmt::Display for GpuSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.warp_scan {
            write!(f, "warpscan{}", if self.stream_out { "+streamout" } else { "" })?;
        } else {
            self.fmt_rows(f)?;
        }
        if self.block > 0 {
            write!(f, "+block{}", self.block)?;
        }
        Ok(())
    }
}

impl GpuSchedule {
    /// The name of a schedule that is not the warp scan, up to its block size.
    fn fmt_rows(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lane_width {
            0 => write!(f, "rows")?,
            1 => write!(f, "lanes")?,
            w => write!(f, "lanes{w}")?,
        }
        match (self.chunked, self.chunks) {
            (false, _) => {}
            (true, 0) => write!(f, "+chunks")?,
            (true, k) => write!(f, "+chunks{k}")?,
        }
        if self.tile > 0 {
            write!(f, "+tiles{}", self.tile)?;
            if self.prefetch {
                write!(f, "+prefetch")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for GpuSchedule {
    type Err = String;

    /// The names [`GpuSchedule`]'s `Display` writes: `warpscan` (or `warpscan+streamout`), or
    /// `rows`, `lanes` or `lanesW` followed by `+chunks` (or `+chunksK`: K chunks, see
    /// [`GpuSchedule::chunks_ok`]), `+tilesN` and `+prefetch` (after a tile) as they apply;
    /// then, on any of them, `+blockB` (B threads a block, see [`GpuSchedule::block_ok`]).
    ///
    /// ```
    /// use ssmc_ptx::GpuSchedule;
    /// assert_eq!("rows+chunks+tiles16+prefetch".parse(), Ok(GpuSchedule::CHUNKED));
    /// assert_eq!("lanes4".parse(), Ok(GpuSchedule::LANES4));
    /// assert_eq!("rows+chunks16+tiles16+prefetch".parse(), Ok(GpuSchedule { chunks: 16, ..GpuSchedule::CHUNKED }));
    /// assert_eq!("warpscan+block64".parse(), Ok(GpuSchedule { block: 64, ..GpuSchedule::WARP_SCAN }));
    /// ```
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            let names: Vec<String> = GpuSchedule::ALL.iter().map(|s| s.to_string()).collect();
            format!("unknown GPU schedule `{text}` (the autotuner's: {}; any of them +block64 or another block size)", names.join(", "))
        };
        // the block size comes last, on every kind of schedule
        let (head, block) = match text.rsplit_once("+block") {
            Some((head, b)) => (head, number(b).filter(|&n| GpuSchedule::block_ok(n)).ok_or_else(bad)?),
            None => (text, 0),
        };
        match head {
            "warpscan" => return Ok(GpuSchedule { block, ..GpuSchedule::WARP_SCAN }),
            "warpscan+streamout" => return Ok(GpuSchedule { block, ..GpuSchedule::WARP_SCAN_STREAM }),
            _ => {}
        }
        let mut parts = head.split('+');
        let lane_width = match parts.next() {
            Some("rows") => 0,
            Some("lanes") => 1,
            Some(l) => l.strip_prefix("lanes").and_then(number).filter(|&w| w > 1).ok_or_else(bad)?,
            None => return Err(bad()),
        };
        let mut s = GpuSchedule { lane_width, block, ..GpuSchedule::ROWS };
        for part in parts {
            match part {
                "chunks" if !s.chunked && s.tile == 0 => s.chunked = true,
                c if c.starts_with("chunks") && !s.chunked && s.tile == 0 => {
                    let k = number(&c["chunks".len()..]).filter(|&k| GpuSchedule::chunks_ok(k));
                    s.chunks = k.ok_or_else(bad)?;
                    s.chunked = true;
                }
                "prefetch" if s.tile > 0 && !s.prefetch => s.prefetch = true,
                t if s.tile == 0 => s.tile = t.strip_prefix("tiles").and_then(number).filter(|&n| n > 0 && GpuSchedule::tile_ok(n)).ok_or_else(bad)?,
                _ => return Err(bad()),
            }
        }
        // numbers the launch cannot take (a lane width of 3, ...) are unknown names too
        s.check().map_err(|_| bad())?;
        Ok(s)
    }
}

/// A number as `Display` writes it in a schedule's name (no sign, no leading zeros).
fn number(text: &str) -> Option<usize> {
    text.parse::<usize>().ok().filter(|n| n.to_string() == text)
}

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "cuda")]
pub use cuda::{DeviceBuffer, Gpu, GpuGraph, GpuModule, Mark};
#[cfg(not(feature = "cuda"))]
mod cuda_stub;
#[cfg(not(feature = "cuda"))]
pub use cuda_stub::{DeviceBuffer, Gpu, GpuGraph, GpuModule, Mark};

/// What can go wrong on the GPU.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// ssmc was built without the `cuda` feature.
    CudaNotEnabled,
    /// libcuda (the NVIDIA driver) is not installed on this machine.
    NoDriver,
    /// The driver refused the PTX.
    Load(String),
    /// A launch failed.
    Launch(String),
    /// Any other driver error (no device, out of memory, ...).
    Driver(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::CudaNotEnabled => write!(f, "the cuda backend is not built in (rebuild with `--features cuda`)"),
            GpuError::NoDriver => write!(f, "no CUDA driver found (libcuda could not be loaded)"),
            GpuError::Load(m) => write!(f, "the CUDA driver rejected the PTX: {m}"),
            GpuError::Launch(m) => write!(f, "kernel launch failed: {m}"),
            GpuError::Driver(m) => write!(f, "CUDA: {m}"),
        }
    }
}

impl std::error::Error for GpuError {}

#[cfg(test)]
mod tests {
    use super::GpuSchedule;

    #[test]
    fn schedule_names_parse_back() {
        let more = [8, 16].map(|w| GpuSchedule { lane_width: w, ..GpuSchedule::LANES });
        let chunks = [2, 16, 256].map(|k| GpuSchedule { chunks: k, ..GpuSchedule::CHUNKED_LEAN });
        let tiles = [1, 8, 32].map(|t| GpuSchedule { tile: t, ..GpuSchedule::TILED });
        let blocks = GpuSchedule::ALL.iter().chain(&chunks).flat_map(|s| [32, 64, 256].map(|b| GpuSchedule { block: b, ..*s }));
        let blocks: Vec<GpuSchedule> = blocks.collect();
        for s in GpuSchedule::ALL.iter().chain(&more).chain(&chunks).chain(&tiles).chain(&blocks) {
            assert_eq!(s.to_string().parse::<GpuSchedule>(), Ok(*s), "{s}");
        }
        for bad in ["", "row", "lanes0", "lanesx", "rows+tiles", "rows+tiles0", "rows+prefetch", "rows+chunks+chunks", "warpscan+chunks", "warpscan+streamout+streamout", "rows+streamout", "rows+tiles16+prefetch+prefetch", "rows+chunks1", "rows+chunks12", "rows+chunks512", "rows+chunksx", "rows+chunks+chunks8", "rows+tiles3", "rows+tiles64", "rows+block", "rows+block48", "rows+block512", "rows+block16", "warpscan+block64+block64", "rows+block64+tiles16", "warpscan+block64+streamout", "+block64", "block64", "rows+block+64", "rows+block064", "lanes3", "lanes32", "rows+chunks08", "lanes04", "rows+tiles016", "rows+chunks+8"] {
            let e = bad.parse::<GpuSchedule>().unwrap_err();
            assert!(e.contains("unknown GPU schedule") && e.contains("lanes4"), "{bad}: {e}");
        }
    }
}

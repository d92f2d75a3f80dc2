//! GPU schedules: how a launch's threads map onto a plan's kernels. Every value of
//! [`GpuSchedule`] is a schedule that can run: its numbers are checked where they are made
//! ([`Block::new`], [`Tiles::new`], [`Chunks::exactly`], [`LaneWidth::new`]), and each thread
//! mapping carries only the options it has.
//!
//! A kernel that a mapping does not apply to (lanes over an inner dim it lacks, a scan the warp
//! scan cannot take) runs one thread per row, with the mapping's tiles where it has some.

use ssmc_kernel::Schedule;
use std::fmt;

/// A schedule's number out of its range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Threads per block.
    #[error("block of {0} threads: it must be 32, 64, 128 or 256")]
    Block(usize),
    /// Steps per tile.
    #[error("tile of {0} steps: it must be 1, 2, 4, 8, 16 or 32")]
    Tile(usize),
    /// Chunks per scan.
    #[error("{0} chunks: the count must be a power of two from 2 to 256")]
    Chunks(usize),
    /// Inner indices per lane.
    #[error("lane width {0}: it must be 1, 2, 4, 8 or 16")]
    LaneWidth(usize),
    /// A name that is not a schedule's.
    #[error("unknown GPU schedule `{0}` (the autotuner's: {names}; any of them +block64 or another block size)", names = GpuSchedule::ALL.map(|s| s.to_string()).join(", "))]
    Name(String),
}

/// Threads per block: 32, 64, 128 (the default) or 256. Each warp of a block has its own region
/// of shared memory (tiles, the warp scan's combine), all within 48 KB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block(u16);

impl Block {
    /// 128 threads.
    pub const DEFAULT: Block = Block(128);

    /// `threads` a block: a power of two from 32 to 256 (256 threads fit an SM at the 255
    /// registers ptxas may take).
    pub fn new(threads: usize) -> Result<Block, ScheduleError> {
        if (32..=256).contains(&threads) && threads.is_power_of_two() {
            Ok(Block(threads as u16))
        } else {
            Err(ScheduleError::Block(threads))
        }
    }

    /// Threads a block.
    pub fn threads(self) -> u32 {
        self.0 as u32
    }

    /// Warps a block.
    pub fn warps(self) -> usize {
        self.0 as usize / 32
    }
}

/// The seq loop in tiles of steps staged through shared memory, each warp staging its rows'
/// inputs with coalesced loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tiles {
    steps: u8,
    /// Issue each tile's loads before the previous tile's steps (hides their latency; costs a
    /// register per load, so fewer warps fit an SM).
    pub prefetch: bool,
}

impl Tiles {
    /// Tiles of 16 steps, loaded a tile ahead.
    pub const DEFAULT: Tiles = Tiles { steps: 16, prefetch: true };

    /// Tiles of `steps` steps (a divisor of 32).
    pub fn new(steps: usize, prefetch: bool) -> Result<Tiles, ScheduleError> {
        if (1..=32).contains(&steps) && 32 % steps == 0 {
            Ok(Tiles { steps: steps as u8, prefetch })
        } else {
            Err(ScheduleError::Tile(steps))
        }
    }

    /// Steps a tile.
    pub fn steps(self) -> usize {
        self.steps as usize
    }
}

/// How many chunks a chunked scan is cut into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Chunks(Option<u16>);

impl Chunks {
    /// Enough (row, chunk) threads to fill an H200 (132 SMs x 512 threads), held to at least 32
    /// steps a chunk and at most 256 chunks.
    pub const FILL: Chunks = Chunks(None);

    /// `k` chunks (a power of two from 2 to 256), held to at least 32 steps a chunk.
    pub fn exactly(k: usize) -> Result<Chunks, ScheduleError> {
        if (2..=256).contains(&k) && k.is_power_of_two() {
            Ok(Chunks(Some(k as u16)))
        } else {
            Err(ScheduleError::Chunks(k))
        }
    }

    /// The count asked for, or `None` for [`Chunks::FILL`].
    pub fn count(self) -> Option<usize> {
        self.0.map(usize::from)
    }
}

/// Consecutive inner indices a lane owns: 1, 2, 4, 8 or 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaneWidth(u8);

impl LaneWidth {
    /// `w` inner indices a lane.
    pub fn new(w: usize) -> Result<LaneWidth, ScheduleError> {
        if (1..=16).contains(&w) && w.is_power_of_two() {
            Ok(LaneWidth(w as u8))
        } else {
            Err(ScheduleError::LaneWidth(w))
        }
    }

    /// Inner indices a lane.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// How the GPU runs a plan: a thread mapping with its options, and the threads per block. The
/// autotuner times the ones that apply ([`crate::candidates`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuSchedule {
    /// One thread per row, its states in registers; with `tiles`, the seq loop staged through
    /// shared memory.
    Rows {
        /// Tiles of steps, or reads from global memory in place.
        tiles: Option<Tiles>,
        /// Threads per block.
        block: Block,
    },
    /// One thread per (row, chunk): scans cut into chunks along seq (summary, combine and main
    /// passes); kernels without such a scan run as [`GpuSchedule::Rows`] with the same tiles.
    Chunked {
        /// Chunks per scan.
        chunks: Chunks,
        /// Tiles of steps within a chunk.
        tiles: Option<Tiles>,
        /// Threads per block.
        block: Block,
    },
    /// Lanes over the inner dim, `width` consecutive inner indices each, sums reduced with
    /// shuffles.
    Lanes {
        /// Inner indices a lane.
        width: LaneWidth,
        /// Threads per block.
        block: Block,
    },
    /// A warp per row, its lanes over seq: each lane scans a few consecutive steps, the lanes'
    /// pieces combined in one pass through shared memory.
    WarpScan {
        /// The outputs stored past L1 (`st.global.L1::no_allocate`).
        stream_out: bool,
        /// Threads per block.
        block: Block,
    },
}

impl GpuSchedule {
    /// One thread per row, reading global memory in place.
    pub const ROWS: GpuSchedule = GpuSchedule::Rows { tiles: None, block: Block::DEFAULT };
    /// One thread per row, seq-indexed accesses staged through shared memory, each tile's loads
    /// issued a tile ahead.
    pub const TILED: GpuSchedule = GpuSchedule::Rows { tiles: Some(Tiles::DEFAULT), block: Block::DEFAULT };
    /// Tiles with the scan cut into chunks.
    pub const CHUNKED: GpuSchedule = GpuSchedule::Chunked { chunks: Chunks::FILL, tiles: Some(Tiles::DEFAULT), block: Block::DEFAULT };
    /// Chunks and tiles without the prefetch registers: more warps fit an SM, which pays when
    /// chunks give many more warps than rows do.
    pub const CHUNKED_LEAN: GpuSchedule =
        GpuSchedule::Chunked { chunks: Chunks::FILL, tiles: Some(Tiles { prefetch: false, ..Tiles::DEFAULT }), block: Block::DEFAULT };
    /// Lanes over the inner dim, one inner index each.
    pub const LANES: GpuSchedule = GpuSchedule::Lanes { width: LaneWidth(1), block: Block::DEFAULT };
    /// Lanes over the inner dim, two consecutive inner indices each (8-byte loads and stores).
    pub const LANES2: GpuSchedule = GpuSchedule::Lanes { width: LaneWidth(2), block: Block::DEFAULT };
    /// Lanes over the inner dim, four consecutive inner indices each: 16-byte loads and stores
    /// that a warp's lanes coalesce (for a state of 16, a warp covers 8 rows).
    pub const LANES4: GpuSchedule = GpuSchedule::Lanes { width: LaneWidth(4), block: Block::DEFAULT };
    /// A warp per row scanning seq in parallel, in one pass.
    pub const WARP_SCAN: GpuSchedule = GpuSchedule::WarpScan { stream_out: false, block: Block::DEFAULT };
    /// The warp scan with its outputs stored past L1.
    pub const WARP_SCAN_STREAM: GpuSchedule = GpuSchedule::WarpScan { stream_out: true, block: Block::DEFAULT };

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

    /// Threads per block.
    pub fn block(self) -> Block {
        match self {
            GpuSchedule::Rows { block, .. } | GpuSchedule::Chunked { block, .. } | GpuSchedule::Lanes { block, .. } | GpuSchedule::WarpScan { block, .. } => block,
        }
    }

    /// The same mapping with `block` threads a block.
    pub fn with_block(self, block: Block) -> GpuSchedule {
        match self {
            GpuSchedule::Rows { tiles, .. } => GpuSchedule::Rows { tiles, block },
            GpuSchedule::Chunked { chunks, tiles, .. } => GpuSchedule::Chunked { chunks, tiles, block },
            GpuSchedule::Lanes { width, .. } => GpuSchedule::Lanes { width, block },
            GpuSchedule::WarpScan { stream_out, .. } => GpuSchedule::WarpScan { stream_out, block },
        }
    }

    /// The tiles of a mapping that stages them (rows and chunks).
    pub fn tiles(self) -> Option<Tiles> {
        match self {
            GpuSchedule::Rows { tiles, .. } | GpuSchedule::Chunked { tiles, .. } => tiles,
            GpuSchedule::Lanes { .. } | GpuSchedule::WarpScan { .. } => None,
        }
    }

    /// The same mapping with `tiles` (unchanged where it stages none).
    pub fn with_tiles(self, tiles: Option<Tiles>) -> GpuSchedule {
        match self {
            GpuSchedule::Rows { block, .. } => GpuSchedule::Rows { tiles, block },
            GpuSchedule::Chunked { chunks, block, .. } => GpuSchedule::Chunked { chunks, tiles, block },
            other => other,
        }
    }

    /// The kernel schedule a plan is lowered under for the GPU: scalar code, inner dims up to 64
    /// unrolled into registers, strided inputs read in place.
    pub fn kernel(self) -> Schedule {
        Schedule { vector_width: 1, unroll_limit: 64, threads: 0, vectorize_rows: false, stage_strided: false, seq_chunk: 0, replay_chunk: 0 }
    }

    /// Inner indices a lane owns under lanes, else 0.
    pub(crate) fn lane_width(self) -> usize {
        match self {
            GpuSchedule::Lanes { width, .. } => width.get(),
            _ => 0,
        }
    }
}

impl fmt::Display for GpuSchedule {
    /// `rows`, `rows+tiles16+prefetch`, `rows+chunks+tiles16` (or `+chunksK`), `lanes`,
    /// `lanes4`, `warpscan`, `warpscan+streamout`; then `+blockB` where the block is not the
    /// default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tiles = |f: &mut fmt::Formatter<'_>, tiles: Option<Tiles>| match tiles {
            Some(t) => write!(f, "+tiles{}{}", t.steps, if t.prefetch { "+prefetch" } else { "" }),
            None => Ok(()),
        };
        match *self {
            GpuSchedule::Rows { tiles: t, .. } => {
                write!(f, "rows")?;
                tiles(f, t)?;
            }
            GpuSchedule::Chunked { chunks, tiles: t, .. } => {
                write!(f, "rows+chunks")?;
                if let Some(k) = chunks.count() {
                    write!(f, "{k}")?;
                }
                tiles(f, t)?;
            }
            GpuSchedule::Lanes { width, .. } if width.get() == 1 => write!(f, "lanes")?,
            GpuSchedule::Lanes { width, .. } => write!(f, "lanes{}", width.get())?,
            GpuSchedule::WarpScan { stream_out, .. } => write!(f, "warpscan{}", if stream_out { "+streamout" } else { "" })?,
        }
        if self.block() != Block::DEFAULT {
            write!(f, "+block{}", self.block().threads())?;
        }
        Ok(())
    }
}

impl std::str::FromStr for GpuSchedule {
    type Err = ScheduleError;

    /// The names [`GpuSchedule`]'s `Display` writes, and no others.
    ///
    /// ```
    /// use ssmc_ptx::{Block, Chunks, GpuSchedule};
    /// assert_eq!("rows+chunks+tiles16+prefetch".parse(), Ok(GpuSchedule::CHUNKED));
    /// assert_eq!("lanes4".parse(), Ok(GpuSchedule::LANES4));
    /// let sixteen = GpuSchedule::Chunked { chunks: Chunks::exactly(16).unwrap(), tiles: GpuSchedule::CHUNKED.tiles(), block: Block::DEFAULT };
    /// assert_eq!("rows+chunks16+tiles16+prefetch".parse(), Ok(sixteen));
    /// assert_eq!("warpscan+block64".parse(), Ok(GpuSchedule::WARP_SCAN.with_block(Block::new(64).unwrap())));
    /// ```
    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let bad = || ScheduleError::Name(text.to_string());
        // the block size comes last, on every mapping
        let (head, block) = match text.rsplit_once("+block") {
            Some((head, b)) => (head, number(b).and_then(|n| Block::new(n).ok()).filter(|&b| b != Block::DEFAULT).ok_or_else(bad)?),
            None => (text, Block::DEFAULT),
        };
        let mut parts = head.split('+');
        let first = parts.next().ok_or_else(bad)?;
        let rest: Vec<&str> = parts.collect();
        let schedule = match (first, rest.as_slice()) {
            ("warpscan", []) => GpuSchedule::WarpScan { stream_out: false, block },
            ("warpscan", ["streamout"]) => GpuSchedule::WarpScan { stream_out: true, block },
            ("lanes", []) => GpuSchedule::Lanes { width: LaneWidth(1), block },
            (l, []) if l.starts_with("lanes") => {
                let w = number(&l["lanes".len()..]).filter(|&w| w > 1).and_then(|w| LaneWidth::new(w).ok()).ok_or_else(bad)?;
                GpuSchedule::Lanes { width: w, block }
            }
            ("rows", rest) => {
                let (chunks, rest) = match rest.split_first() {
                    Some((&"chunks", rest)) => (Some(Chunks::FILL), rest),
                    Some((c, rest)) if c.starts_with("chunks") => {
                        (Some(number(&c["chunks".len()..]).and_then(|k| Chunks::exactly(k).ok()).ok_or_else(bad)?), rest)
                    }
                    _ => (None, rest),
                };
                let tiles = match rest {
                    [] => None,
                    [t] | [t, "prefetch"] => {
                        let steps = t.strip_prefix("tiles").and_then(number).ok_or_else(bad)?;
                        Some(Tiles::new(steps, rest.len() == 2).map_err(|_| bad())?)
                    }
                    _ => return Err(bad()),
                };
                match chunks {
                    Some(chunks) => GpuSchedule::Chunked { chunks, tiles, block },
                    None => GpuSchedule::Rows { tiles, block },
                }
            }
            _ => return Err(bad()),
        };
        Ok(schedule)
    }
}

/// A number as `Display` writes it in a schedule's name (no sign, no leading zeros).
fn number(text: &str) -> Option<usize> {
    text.parse::<usize>().ok().filter(|n| n.to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_names_parse_back() {
        let widths = [8, 16].map(|w| GpuSchedule::Lanes { width: LaneWidth::new(w).unwrap(), block: Block::DEFAULT });
        let chunks = [2, 16, 256].map(|k| GpuSchedule::Chunked { chunks: Chunks::exactly(k).unwrap(), tiles: None, block: Block::DEFAULT });
        let tiles = [1, 8, 32].map(|t| GpuSchedule::TILED.with_tiles(Some(Tiles::new(t, true).unwrap())));
        let blocks: Vec<GpuSchedule> =
            GpuSchedule::ALL.iter().chain(&chunks).flat_map(|s| [32, 64, 256].map(|b| s.with_block(Block::new(b).unwrap()))).collect();
        for s in GpuSchedule::ALL.iter().chain(&widths).chain(&chunks).chain(&tiles).chain(&blocks) {
            assert_eq!(s.to_string().parse::<GpuSchedule>(), Ok(*s), "{s}");
        }
        for bad in [
            "", "row", "lanes0", "lanesx", "rows+tiles", "rows+tiles0", "rows+prefetch", "rows+chunks+chunks", "warpscan+chunks",
            "warpscan+streamout+streamout", "rows+streamout", "rows+tiles16+prefetch+prefetch", "rows+chunks1", "rows+chunks12",
            "rows+chunks512", "rows+chunksx", "rows+chunks+chunks8", "rows+tiles3", "rows+tiles64", "rows+block", "rows+block48",
            "rows+block512", "rows+block16", "warpscan+block64+block64", "rows+block64+tiles16", "warpscan+block64+streamout",
            "+block64", "block64", "rows+block+64", "rows+block064", "lanes3", "lanes32", "rows+chunks08", "lanes04", "rows+tiles016",
            "rows+chunks+8", "lanes+tiles16", "lanes+chunks", "rows+tiles16+chunks", "rows+block128",
        ] {
            let e = bad.parse::<GpuSchedule>().unwrap_err();
            assert_eq!(e, ScheduleError::Name(bad.to_string()), "{bad}");
            assert!(e.to_string().contains("lanes4"), "{bad}: {e}");
        }
    }

    #[test]
    fn numbers_out_of_range_are_errors() {
        assert_eq!(Block::new(48), Err(ScheduleError::Block(48)));
        assert_eq!(Block::new(512), Err(ScheduleError::Block(512)));
        assert_eq!(Tiles::new(0, true), Err(ScheduleError::Tile(0)));
        assert_eq!(Tiles::new(64, false), Err(ScheduleError::Tile(64)));
        assert_eq!(Chunks::exactly(1), Err(ScheduleError::Chunks(1)));
        assert_eq!(Chunks::exactly(12), Err(ScheduleError::Chunks(12)));
        assert_eq!(LaneWidth::new(0), Err(ScheduleError::LaneWidth(0)));
        assert_eq!(LaneWidth::new(32), Err(ScheduleError::LaneWidth(32)));
        assert_eq!(Block::new(64).map(Block::warps), Ok(2));
    }
}

//! ssmc-kernel: how to compute it. A [`Plan`](ssmc_opt::Plan)'s kernels, lowered at concrete
//! sizes under a [`Schedule`] into the loop-level [`Kir`] the emitters translate.
#![warn(missing_docs)]

pub mod dump;
pub mod kir;
pub mod lower;
pub mod schedule;

pub use kir::{Access, Axis, Back, Blocks, Kir, Level, Param, Staging, Step, V};
pub use lower::lower;
pub use schedule::Schedule;

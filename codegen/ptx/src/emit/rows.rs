//! One thread per row: the thread's prologue and the seq loop walked step by step, reading
//! global memory in place (or, where the kernel stages tiles, through `tiles`). A chunked scan's
//! threads walk their chunk's steps with the same loop.

use super::{Mapping, Translator};

impl Translator<'_> {
    /// Thread `row`: threads past the last row exit.
    pub(super) fn rows_prologue(&mut self, thread: &str, rows: &str, done: &str) -> String {
        self.w.exit_if_ge(thread, rows, done);
        thread.to_string()
    }

    /// The seq loop over the steps this thread walks: all, or its chunk's; in tiles where the
    /// kernel stages them, straight-line where it has one step.
    pub(super) fn seq_loop_rows(&mut self) {
        let (extent, reverse) = self.k.seq.unwrap_or((1, false));
        let chunk = match &self.mapping {
            Mapping::Chunked(ch) => Some((ch.c.clone(), ch.len)),
            _ => None,
        };
        let (start, end) = match &chunk {
            Some((c, len)) => {
                let (lo, hi) = (self.w.rd(), self.w.rd());
                self.w.ins(format!("mul.lo.u64 {lo}, {c}, {len}"));
                self.w.ins(format!("add.u64 {hi}, {lo}, {len}"));
                self.w.ins(format!("min.u64 {hi}, {hi}, {extent}"));
                (lo, hi)
            }
            None => ("0".to_string(), extent.to_string()),
        };
        if let Some(tile) = self.tile.clone() {
            return self.seq_loop_tiles(&tile, start, end);
        }
        if extent == 1 && chunk.is_none() {
            // one step, straight-line: ptxas can issue every load of the kernel up front
            let l = self.w.rd();
            self.w.ins(format!("mov.u64 {l}, 0"));
            self.set_l(Some(l));
            self.one_step();
            self.set_l(None);
            return;
        }
        let t = self.w.rd();
        self.w.ins(format!("mov.u64 {t}, {start}"));
        let (head, done) = self.w.loop_head("seq", &t, &end);
        let l = if reverse {
            let l = self.w.rd();
            self.w.ins(format!("sub.u64 {l}, {}, {t}", extent - 1));
            l
        } else {
            t.clone()
        };
        self.set_l(Some(l));
        self.one_step();
        self.w.ins(format!("add.u64 {t}, {t}, 1"));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
        self.set_l(None);
    }
}

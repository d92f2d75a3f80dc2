//! The seq loop in blocks of one step per lane (the lanes-over-inner schedule): seq-level work
//! spread over a row's lanes, its values broadcast with `shfl.sync.idx`.

use super::Translator;
use crate::isa::fimm;
use ssmc_kernel::{Level, Step, V};
use std::collections::HashMap;

impl Translator<'_> {
    /// Whether the seq loop can run in blocks of one step per lane: the seq-level work (loads
    /// and transcendentals outside the scan, the epilogue and its stores) is then spread over the
    /// row's lanes instead of repeated by each, and its memory accesses are coalesced.
    pub(super) fn lane_blocks(&self) -> bool {
        let Some((extent, reverse)) = self.k.seq else { return false };
        let seq_level = |l: Level| matches!(l, Level::SeqPre | Level::SeqPost);
        self.lane.is_some()
            && !reverse
            && extent > 1
            && !self.k.steps.iter().any(|(l, st)| seq_level(*l) && matches!(st, Step::Scan { .. } | Step::Conv { .. } | Step::Final(_)))
    }

    /// The seq loop in blocks of `lanes` steps: lane `j` computes the seq-level values of step
    /// `t + j`; the scan then walks the block's steps in order, each broadcasting its values with
    /// `shfl.sync.idx`; lane `j` keeps step `t + j`'s sums and runs its epilogue.
    pub(super) fn seq_loop_lane_blocks(&mut self) {
        let (extent, _) = self.k.seq.expect("checked by lane_blocks");
        let g = self.lanes as u64;
        // the lane's own number (not clamped to the inner extent)
        let own = self.w.rd();
        let (tid,) = (self.w.r(),);
        self.w.ins(format!("mov.u32 {tid}, %tid.x"));
        self.w.ins(format!("cvt.u64.u32 {own}, {tid}"));
        self.w.ins(format!("and.b64 {own}, {own}, {}", g - 1));
        let t = self.w.rd();
        self.w.ins(format!("mov.u64 {t}, 0"));
        let (head, done) = self.w.loop_head("seqb", &t, &extent.to_string());
        // this lane's step in the block, clamped for addressing
        let (lj, lc, valid_l) = (self.w.rd(), self.w.rd(), self.w.p());
        self.w.ins(format!("add.u64 {lj}, {t}, {own}"));
        self.w.ins(format!("setp.lt.u64 {valid_l}, {lj}, {extent}"));
        self.w.ins(format!("min.u64 {lc}, {lj}, {}", extent - 1));
        self.set_l(Some(lc.clone()));
        let saved = self.scalars.clone();
        let pre = self.steps_at(Level::SeqPre);
        for &v in &pre {
            self.scalar_step(v);
        }
        let mine: std::collections::BTreeMap<V, String> = pre.iter().filter_map(|v| self.scalars.get(v).map(|r| (*v, r.clone()))).collect();
        let sums: Vec<V> = self.steps_at(Level::SeqPost).into_iter().filter(|&v| matches!(self.k.steps[v].1, Step::Sum(_))).collect();
        let mut kept: HashMap<V, String> = HashMap::new();
        for &s in &sums {
            let r = self.w.f();
            self.w.ins(format!("mov.f32 {r}, {}", fimm(0.0)));
            kept.insert(s, r);
        }
        let seg = ((32 - g) << 8) | 0x1f;
        for j in 0..g {
            let skip = self.w.label("step_skip");
            let (tj, pj) = (self.w.rd(), self.w.p());
            self.w.ins(format!("add.u64 {tj}, {t}, {j}"));
            self.w.ins(format!("setp.ge.u64 {pj}, {tj}, {extent}"));
            self.w.ins(format!("@{pj} bra {skip}"));
            self.set_l(Some(tj));
            for (&v, r) in &mine {
                let b = self.w.f();
                self.w.ins(format!("shfl.sync.idx.b32 {b}, {r}, {j}, {seg}, -1"));
                self.scalars.insert(v, b);
            }
            self.inner_and_sums();
            let is_me = self.w.p();
            self.w.ins(format!("setp.eq.u64 {is_me}, {own}, {j}"));
            for &s in &sums {
                let k = kept[&s].clone();
                let total = self.scalars[&s].clone();
                self.w.ins(format!("selp.f32 {k}, {total}, {k}, {is_me}"));
            }
            self.w.put_label(&skip);
        }
        // the epilogue of step t + lane, on this lane
        self.set_l(Some(lc));
        for (&v, r) in &mine {
            self.scalars.insert(v, r.clone());
        }
        for &s in &sums {
            self.scalars.insert(s, kept[&s].clone());
        }
        // row-level stores: by every lane of a real row whose step exists (not only lane 0)
        let valid_row = self.w.p();
        let lane = self.lane.as_mut().expect("lane mode");
        let saved_store_row = lane.store_row.clone();
        self.w.ins(format!("and.pred {valid_row}, {}, {valid_l}", lane.valid.clone()));
        lane.store_row = valid_row;
        for v in self.steps_at(Level::SeqPost) {
            self.scalar_step(v);
        }
        self.lane.as_mut().expect("lane mode").store_row = saved_store_row;
        self.scalars = saved;
        self.w.ins(format!("add.u64 {t}, {t}, {g}"));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
        self.set_l(None);
    }
}

//! The seq loop in blocks of steps spread over a row's lanes (the lanes-over-inner schedule):
//! each lane computes the seq-level work of its steps, broadcast with `shfl.sync.idx`; where
//! blocks are whole, inner-level inputs move as vectors of steps loaded a block ahead and the
//! sums over the inner dim are reduce-scattered once per block.

use super::warpscan::{SeqVec, PER_LANE};
use super::{Inner, Mapping, Translator};
use crate::isa::fimm;
use ssmc_ir::DType;
use ssmc_kernel::{Access, Kir, Level, Step, V};
use std::collections::HashMap;

/// One group of four steps' inner-level vectors: (access, inner index, key, raw registers).
type VectorLoads = Vec<(Access, Inner, (Access, Option<usize>), Vec<String>)>;

/// A step a lane owns in a block: its seq index (clamped for addressing), whether it exists,
/// and its seq-level values.
struct OwnStep {
    l: String,
    valid: String,
    values: std::collections::BTreeMap<V, String>,
}

/// A thread's place in its row's lane group.
#[derive(Clone, Default)]
pub(crate) struct Lane {
    /// Consecutive inner indices a lane owns, as the schedule asks (0 or 1: one).
    pub(crate) width: usize,
    /// The inner index this lane owns (clamped into range for addressing), or the first of its
    /// run.
    pub(super) i: String,
    /// Whether the lane owns a real inner index.
    pub(super) active: String,
    /// Whether the row exists.
    pub(super) valid: String,
    /// Whether the row exists (threads past the end stay alive for the shuffles).
    pub(super) store_inner: String,
    /// Whether this lane writes row-level values (lane 0 of a real row).
    pub(super) store_row: String,
}

impl Lane {
    /// A lane of `width` inner indices, its registers set by the prologue.
    pub(crate) fn of_width(width: usize) -> Lane {
        Lane { width, ..Lane::default() }
    }
}

/// Threads per row for kernel `k`, its sums reduced with `shfl.sync`: with a lane width of 1,
/// an inner dim of at most 32 spreads over that many lanes (rounded up to a power of two); with
/// a width `w` > 1, an inner dim of `w` times a power of two from 2 to 32 spreads over that many
/// lanes, `w` consecutive inner indices each; otherwise one thread per row.
pub(crate) fn lanes_per_row(k: &Kir, width: usize) -> u32 {
    match (k.inner, width) {
        (Some(n), 1) if (2..=32).contains(&n) => (n as u32).next_power_of_two(),
        (Some(n), w) if w > 1 && n % w == 0 && (n / w).is_power_of_two() && (2..=32).contains(&(n / w)) => (n / w) as u32,
        _ => 1,
    }
}

impl Translator<'_> {
    /// Thread `row * lanes + lane`: every thread stays alive for the shuffles, its row clamped
    /// into range; sets the lane's registers.
    pub(super) fn lanes_prologue(&mut self, thread: &str, rows: &str) -> String {
        let g = self.lanes as u64;
        let n = self.k.inner.unwrap_or(1) as u64;
        let w = &mut self.w;
        let (r, lane, last, rc) = (w.rd(), w.rd(), w.rd(), w.rd());
        w.ins(format!("shr.u64 {r}, {thread}, {}", g.trailing_zeros()));
        w.ins(format!("and.b64 {lane}, {thread}, {}", g - 1));
        w.ins(format!("sub.u64 {last}, {rows}, 1"));
        w.ins(format!("min.u64 {rc}, {r}, {last}"));
        let (valid, active, si, sr, zero) = (w.p(), w.p(), w.p(), w.p(), w.p());
        w.ins(format!("setp.lt.u64 {valid}, {r}, {rows}"));
        w.ins(format!("setp.lt.u64 {active}, {lane}, {n}"));
        w.ins(format!("and.pred {si}, {valid}, {active}"));
        w.ins(format!("setp.eq.u64 {zero}, {lane}, 0"));
        w.ins(format!("and.pred {sr}, {valid}, {zero}"));
        let i = w.rd();
        if self.lane_width > 1 {
            // every lane owns a full run: lanes x width is the inner extent
            w.ins(format!("mul.lo.u64 {i}, {lane}, {}", self.lane_width));
        } else {
            w.ins(format!("min.u64 {i}, {lane}, {}", n - 1));
        }
        let width = match &self.mapping {
            Mapping::Lanes(l) => l.width,
            _ => self.lane_width,
        };
        self.mapping = Mapping::Lanes(Lane { width, i, active, valid, store_inner: si, store_row: sr });
        rc
    }

    /// The seq extent where the seq loop can run in blocks of one step per lane: the seq-level
    /// work (loads and transcendentals outside the scan, the epilogue and its stores) is then
    /// spread over the row's lanes instead of repeated by each, and its memory accesses are
    /// coalesced.
    pub(super) fn lane_blocks(&self) -> Option<usize> {
        let (extent, reverse) = self.k.seq?;
        let seq_level = |l: Level| matches!(l, Level::SeqPre | Level::SeqPost);
        let ok = matches!(self.mapping, Mapping::Lanes(_))
            && !reverse
            && extent > 1
            && !self.k.steps.iter().any(|(l, st)| seq_level(*l) && matches!(st, Step::Scan { .. } | Step::Conv { .. } | Step::Gather { .. } | Step::Final(_)));
        ok.then_some(extent)
    }

    /// The seq loop in blocks of `lanes` steps: lane `j` computes the seq-level values of step
    /// `t + j`; the scan then walks the block's steps in order, each broadcasting the values the
    /// inner steps use with `shfl.sync.idx`; lane `j` gets step `t + j`'s sums and runs its
    /// epilogue. Where every block is whole, blocks hold at least 8 steps (a lane then owns
    /// `8 / lanes` of them, one every `lanes` steps), each lane's seq-contiguous inner-level
    /// inputs (`B[b, n, l]`) move as vectors of four steps per inner index, everything a block
    /// loads is loaded during the block before, and each sum is kept per step as the lane's
    /// partial sum until the walk's end, where one reduce-scatter per `lanes` steps (each level
    /// halves the steps a lane holds) hands each lane its steps' totals: `lanes - 1` shuffles
    /// per `lanes` steps instead of `log2(lanes)` per step.
    pub(super) fn seq_loop_lane_blocks(&mut self, lane: &Lane, extent: usize) {
        let g = self.lanes as usize;
        let vectors = extent.is_multiple_of(g.max(8));
        // steps a block, and steps a lane owns in it
        let (block, per_lane) = if vectors { (g.max(8), g.max(8) / g) } else { (g, 1) };
        // the lane's own number (not clamped to the inner extent)
        let own = self.w.rd();
        let (tid,) = (self.w.r(),);
        self.w.ins(format!("mov.u32 {tid}, %tid.x"));
        self.w.ins(format!("cvt.u64.u32 {own}, {tid}"));
        self.w.ins(format!("and.b64 {own}, {own}, {}", g - 1));
        // per level of the reduce-scatter: whether this lane keeps the upper half
        let mut upper = vec![];
        let mut o = g / 2;
        while vectors && o >= 1 {
            let (x, p) = (self.w.rd(), self.w.p());
            self.w.ins(format!("and.b64 {x}, {own}, {o}"));
            self.w.ins(format!("setp.ne.u64 {p}, {x}, 0"));
            upper.push((o, p));
            o /= 2;
        }
        let (mut scalar_ahead, mut vector_ahead) = (vec![], vec![]);
        if vectors {
            (scalar_ahead, vector_ahead) = self.lane_block_loads(lane, extent, &own, per_lane, block);
        }
        let t = self.w.rd();
        self.w.ins(format!("mov.u64 {t}, 0"));
        let (head, done) = self.w.loop_head("seqb", &t, &extent.to_string());
        let saved = self.scalars.clone();
        let mine: Vec<OwnStep> = (0..per_lane).map(|r| self.own_step(extent, &t, &own, r, &saved, scalar_ahead.get(r))).collect();
        self.scalars = saved.clone();
        let sums: Vec<V> = self.steps_at(Level::SeqPost).into_iter().filter(|&v| matches!(self.k.steps[v].1, Step::Sum(_))).collect();
        // the seq-level values the walk uses: operands of the inner steps and of the sums
        let walked: std::collections::HashSet<V> =
            self.steps_at(Level::Inner).into_iter().chain(sums.iter().copied()).flat_map(|v| self.k.steps[v].1.operands()).collect();
        let mut kept: Vec<HashMap<V, String>> = vec![HashMap::new(); per_lane];
        let mut parts: HashMap<V, Vec<String>> = HashMap::new();
        if !vectors {
            for &s in &sums {
                let r = self.w.f();
                self.w.ins(format!("mov.f32 {r}, {}", fimm(0.0)));
                kept[0].insert(s, r);
            }
        }
        let seg = ((32 - g) << 8) | 0x1f;
        for j in 0..block {
            let skip = self.w.label("step_skip");
            let tj = self.w.rd();
            self.w.ins(format!("add.u64 {tj}, {t}, {j}"));
            if !vectors {
                let pj = self.w.p();
                self.w.ins(format!("setp.ge.u64 {pj}, {tj}, {extent}"));
                self.w.ins(format!("@{pj} bra {skip}"));
            } else {
                if j % PER_LANE == 0 {
                    let prefetched = vector_ahead[j / PER_LANE].iter().map(|(_, _, key, regs)| (key.clone(), regs.clone())).collect();
                    self.seqvec = Some(SeqVec { prefetched, ..SeqVec::new(tj.clone(), true) });
                }
                self.vec_step = j % PER_LANE;
            }
            self.set_l(Some(tj));
            for (&v, x) in mine[j / g].values.iter().filter(|(v, _)| walked.contains(v)) {
                let b = self.w.f();
                self.w.ins(format!("shfl.sync.idx.b32 {b}, {x}, {}, {seg}, -1", j % g));
                self.scalars.insert(v, b);
            }
            if vectors {
                self.inner_and_sums(true);
                for &s in &sums {
                    parts.entry(s).or_default().push(self.scalars[&s].clone());
                }
            } else {
                self.inner_and_sums(false);
                let is_me = self.w.p();
                self.w.ins(format!("setp.eq.u64 {is_me}, {own}, {j}"));
                for &s in &sums {
                    let k = kept[0][&s].clone();
                    let total = self.scalars[&s].clone();
                    self.w.ins(format!("selp.f32 {k}, {total}, {k}, {is_me}"));
                }
            }
            self.w.put_label(&skip);
        }
        self.seqvec = None;
        if vectors {
            self.lane_block_loads_next(extent, &own, &t, block, &scalar_ahead, &vector_ahead);
        }
        for s in &sums {
            let Some(part) = parts.remove(s) else { continue };
            for (r, steps) in part.chunks(g).enumerate() {
                let total = self.reduce_scatter(lane, steps.to_vec(), &upper);
                kept[r].insert(*s, total);
            }
        }
        for (step, kept) in mine.into_iter().zip(kept) {
            self.own_epilogue(lane, step, kept, &saved);
        }
        self.scalars = saved;
        self.w.ins(format!("add.u64 {t}, {t}, {block}"));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
        self.set_l(None);
    }

    /// The `r`-th step this lane owns in the block from `t` (`t + r lanes + own`): its seq-level
    /// values, from the registers loaded a block ahead (`ahead`) where there are some.
    fn own_step(&mut self, extent: usize, t: &str, own: &str, r: usize, saved: &HashMap<V, String>, ahead: Option<&Vec<(Access, String)>>) -> OwnStep {
        let (lj, l, valid) = (self.w.rd(), self.w.rd(), self.w.p());
        self.w.ins(format!("add.u64 {lj}, {t}, {}", r * self.lanes as usize));
        self.w.ins(format!("add.u64 {lj}, {lj}, {own}"));
        self.w.ins(format!("setp.lt.u64 {valid}, {lj}, {extent}"));
        self.w.ins(format!("min.u64 {l}, {lj}, {}", extent - 1));
        self.set_l(Some(l.clone()));
        self.scalars = saved.clone();
        self.ahead = ahead.cloned().unwrap_or_default().into_iter().collect();
        let pre = self.steps_at(Level::SeqPre);
        for &v in &pre {
            self.scalar_step(v);
        }
        self.ahead.clear();
        let values = pre.iter().filter_map(|v| self.scalars.get(v).map(|x| (*v, x.clone()))).collect();
        OwnStep { l, valid, values }
    }

    /// The epilogue of a step this lane owns, with its sums' totals (`sums`): row-level stores by
    /// every lane of a real row whose step exists (not only lane 0).
    fn own_epilogue(&mut self, lane: &Lane, step: OwnStep, sums: HashMap<V, String>, saved: &HashMap<V, String>) {
        self.set_l(Some(step.l));
        self.scalars = saved.clone();
        self.scalars.extend(step.values);
        self.scalars.extend(sums);
        let valid_row = self.w.p();
        self.w.ins(format!("and.pred {valid_row}, {}, {}", lane.valid, step.valid));
        self.row_guard = Some(valid_row);
        for v in self.steps_at(Level::SeqPost) {
            self.scalar_step(v);
        }
        self.row_guard = None;
    }

    /// Each lane's partial sums of a block's steps (`parts[j]`: step `j`) reduced over the
    /// row's lanes, lane `j` ending with step `j`'s total: per level (`upper`: the xor offset
    /// and whether this lane keeps the upper half of the steps it holds), each lane sends the
    /// half it gives up to its partner and adds the half it receives.
    fn reduce_scatter(&mut self, lane: &Lane, mut parts: Vec<String>, upper: &[(usize, String)]) -> String {
        let active = lane.active.clone();
        if (self.lanes as usize) * self.lane_width != self.k.inner.unwrap_or(1) {
            // lanes past the inner extent add nothing
            for p in parts.iter_mut() {
                let m = self.w.f();
                self.w.ins(format!("selp.f32 {m}, {p}, {}, {active}", fimm(0.0)));
                *p = m;
            }
        }
        for (o, up) in upper {
            let half = parts.len() / 2;
            parts = (0..half)
                .map(|k| {
                    let (lo, hi) = (&parts[k], &parts[k + half]);
                    let (send, keep, got, sum) = (self.w.f(), self.w.f(), self.w.f(), self.w.f());
                    self.w.ins(format!("selp.f32 {send}, {lo}, {hi}, {up}"));
                    self.w.ins(format!("selp.f32 {keep}, {hi}, {lo}, {up}"));
                    self.w.ins(format!("shfl.sync.bfly.b32 {got}, {send}, {o}, 31, -1"));
                    self.w.ins(format!("add.f32 {sum}, {keep}, {got}"));
                    sum
                })
                .collect();
        }
        parts.pop().expect("one step left")
    }

    /// The first block's loads of whole lane blocks, issued before the loop: per step this lane
    /// owns, its seq-level inputs (raw registers by access; not `f64`, which is narrowed on
    /// load), and per group of four steps each seq-contiguous inner-level input's vectors at the
    /// lane's inner indices (access, index, its key in [`SeqVec::prefetched`], raw registers).
    fn lane_block_loads(&mut self, lane: &Lane, extent: usize, own: &str, per_lane: usize, block: usize) -> (Vec<Vec<(Access, String)>>, Vec<VectorLoads>) {
        let mut accesses: Vec<Access> = vec![];
        for v in self.steps_at(Level::SeqPre) {
            let Step::Load(a) = &self.k.steps[v].1 else { continue };
            if a.seq != 0 && self.k.buffers[a.buffer].dtype != DType::F64 && !accesses.contains(a) {
                accesses.push(a.clone());
            }
        }
        let scalars = (0..per_lane)
            .map(|r| {
                let step = self.w.rd();
                self.w.ins(format!("add.u64 {step}, {own}, {}", r * self.lanes as usize));
                self.w.ins(format!("min.u64 {step}, {step}, {}", extent - 1));
                self.set_l(Some(step));
                accesses
                    .iter()
                    .map(|a| {
                        let dtype = self.k.buffers[a.buffer].dtype;
                        let raw = self.raw_reg(dtype);
                        let addr = self.addr(a, &Inner::None);
                        self.load_raw(dtype, &raw, &addr, "");
                        (a.clone(), raw)
                    })
                    .collect()
            })
            .collect();
        self.set_l(None);
        let lane_i = lane.i.clone();
        let ats: Vec<(Inner, usize)> =
            if self.lane_width > 1 { (0..self.lane_width).map(|c| (Inner::Static(c), c)).collect() } else { vec![(Inner::Lane(lane_i), 0)] };
        let mut vectors: Vec<(Access, Inner, (Access, Option<usize>))> = vec![];
        for v in self.steps_at(Level::Inner) {
            let Step::Load(a) = &self.k.steps[v].1 else { continue };
            if !self.seq_vector_ok(a) {
                continue;
            }
            for (at, c) in &ats {
                let key = (a.clone(), Some(*c).filter(|_| a.inner != 0));
                if !vectors.iter().any(|x| x.2 == key) {
                    vectors.push((a.clone(), at.clone(), key));
                }
            }
        }
        let groups = (0..block / PER_LANE)
            .map(|q| {
                let base = self.w.rd();
                self.w.ins(format!("mov.u64 {base}, {}", q * PER_LANE));
                vectors.iter().map(|(a, at, key)| (a.clone(), at.clone(), key.clone(), self.vector_raw(a, at, &base, None))).collect()
            })
            .collect();
        (scalars, groups)
    }

    /// The next block's loads (that from `t + block`) into the registers of
    /// [`Self::lane_block_loads`], clamped into range after the last block.
    #[allow(clippy::too_many_arguments)]
    fn lane_block_loads_next(&mut self, extent: usize, own: &str, t: &str, block: usize, scalars: &[Vec<(Access, String)>], vectors: &[VectorLoads]) {
        let next = self.w.rd();
        self.w.ins(format!("add.u64 {next}, {t}, {block}"));
        for (r, regs) in scalars.iter().enumerate() {
            let step = self.w.rd();
            self.w.ins(format!("add.u64 {step}, {next}, {}", r * self.lanes as usize));
            self.w.ins(format!("add.u64 {step}, {step}, {own}"));
            self.w.ins(format!("min.u64 {step}, {step}, {}", extent - 1));
            self.set_l(Some(step));
            for (a, raw) in regs {
                let addr = self.addr(a, &Inner::None);
                self.load_raw(self.k.buffers[a.buffer].dtype, raw, &addr, "");
            }
        }
        for (q, group) in vectors.iter().enumerate() {
            let base = self.w.rd();
            self.w.ins(format!("add.u64 {base}, {next}, {}", q * PER_LANE));
            self.w.ins(format!("min.u64 {base}, {base}, {}", extent - PER_LANE));
            for (a, at, _, regs) in group {
                self.vector_raw(a, at, &base, Some(regs));
            }
        }
    }
}

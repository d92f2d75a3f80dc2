//! The warp scan: one warp per row, its lanes over seq. Each block of `32 * PER_LANE` steps gives
//! lane `j` the `PER_LANE` consecutive steps from `t + j * PER_LANE`. A lane walks its steps from
//! a zero state, keeping the decay product `P` and state `h` of its piece for every inner index;
//! the lanes then combine their pieces with the associative operator `(a1,b1) o (a2,b2) =
//! (a1 a2, a2 b1 + b2)` in five `shfl.sync.up` levels (Kogge-Stone), the block's carried state
//! folded into lane 0 first. Every `exp` of the discretization runs once: the chunked schedule's
//! second scan is not needed, because the scan's consumers are linear in the state. A step's
//! `sum(x * h)` with the true state `h = h_local + P h_in` is `sum(x h_local) + sum((x P) h_in)`:
//! the lane keeps `x P` per step and inner index until `h_in`, the state entering its piece, is
//! known. Seq-level work (loads, softplus, the epilogue) runs once per step, on the lane that
//! owns it, and seq-contiguous accesses move as one vector per lane (`PER_LANE` steps).

use super::{Inner, Translator};
use crate::isa::fimm;
use ssmc_ir::{BinaryOp, DType};
use ssmc_kernel::{Access, Kir, Level, Schedule, Step, V};
use std::collections::{HashMap, HashSet};

/// Consecutive steps per lane.
pub const PER_LANE: usize = 4;

/// Registers per thread the warp scan's entries are held to (`.maxnreg`): 12 warps fit an SM,
/// so the 1536 rows of a batch of Mamba's smaller layers run in one wave on an H200 (132 SMs).
/// Left alone, ptxas hoists every vector load of a block and takes 254.
pub const MAX_REGS: usize = 168;

/// What the warp scan needs to know about a kernel (from [`warp_scannable`]).
#[derive(Clone, Debug)]
pub struct WarpScan {
    /// The scan step.
    pub scan: V,
    /// The products `x * h` the sums consume: (product step, `x`, its sum step).
    pub products: Vec<(V, V, V)>,
}

/// Whether `k` runs under the warp scan: a forward scan along seq (at least 64 steps) at the
/// inner level, the inner dim unrolled, no conv, no second scan, and every use of the state
/// either its final value or a product `x * h` (with `x` independent of the state) summed over
/// the inner dim: the consumers are then linear in the state, which the combine relies on.
pub fn warp_scannable(k: &Kir, schedule: &Schedule) -> Option<WarpScan> {
    let (extent, reverse) = k.seq?;
    let n = k.inner?;
    if reverse || extent < 64 || n > schedule.unroll_limit.max(1) || schedule.lanes {
        return None;
    }
    if k.steps.iter().any(|(_, st)| matches!(st, Step::Conv { .. })) {
        return None;
    }
    let scans: Vec<V> = (0..k.steps.len()).filter(|&v| matches!(k.steps[v].1, Step::Scan { .. })).collect();
    let [scan] = scans[..] else { return None };
    if k.steps[scan].0 != Level::Inner {
        return None;
    }
    let users = |v: V| -> Vec<V> { (0..k.steps.len()).filter(|&u| k.steps[u].1.operands().contains(&v)).collect() };
    let mut products = vec![];
    for u in users(scan) {
        match k.steps[u].1 {
            Step::Final(_) => {}
            Step::Binary(BinaryOp::Mul, x, y) if k.steps[u].0 == Level::Inner && (x == scan) != (y == scan) => {
                let x = if x == scan { y } else { x };
                let sums = users(u);
                let [sum] = sums[..] else { return None };
                if !matches!(k.steps[sum].1, Step::Sum(_)) {
                    return None;
                }
                products.push((u, x, sum));
            }
            _ => return None,
        }
    }
    Some(WarpScan { scan, products })
}

/// Seq-contiguous accesses of the current block, one vector per lane.
pub(super) struct SeqVec {
    /// Which of the lane's steps is being emitted.
    pub(super) i: usize,
    /// The first step of the lane's piece, clamped so that the vector stays in range.
    pub(super) base: String,
    /// Loaded values per (access, inner index), one per step.
    pub(super) loads: HashMap<(Access, Option<usize>), Vec<String>>,
    /// Values waiting to be stored per access, one per step so far.
    pub(super) stores: HashMap<Access, Vec<String>>,
}

impl Translator<'_> {
    /// Whether `a` moves as one vector of `PER_LANE` steps: contiguous in seq, every other
    /// stride a multiple of `PER_LANE` elements (with device buffers at least 256-byte aligned,
    /// each vector is then aligned to its size), 32- or 16-bit.
    fn seq_vector(&self, a: &Access) -> bool {
        let extent = self.k.seq.map_or(1, |s| s.0);
        let strides_ok = a.row.iter().all(|s| s % PER_LANE == 0) && a.inner.is_multiple_of(PER_LANE);
        let dtype_ok = matches!(self.k.buffers[a.buffer].dtype, DType::F32 | DType::BF16 | DType::F16);
        self.seqvec.is_some() && a.seq == 1 && extent.is_multiple_of(PER_LANE) && strides_ok && dtype_ok
    }

    /// `a` at the current step from the lane's vector (loaded at its first step).
    pub(super) fn seq_vec_load(&mut self, a: &Access, at: &Inner) -> Option<String> {
        if !self.seq_vector(a) {
            return None;
        }
        let c = match at {
            Inner::Static(c) => Some(*c),
            Inner::None => None,
            _ => return None,
        };
        let key = (a.clone(), c.filter(|_| a.inner != 0));
        let sv = self.seqvec.as_ref().expect("checked");
        let i = sv.i;
        if let Some(vals) = sv.loads.get(&key) {
            return Some(vals[i].clone());
        }
        let (base, l) = (sv.base.clone(), self.l.clone());
        self.set_l(Some(base));
        let addr = self.addr(a, at);
        self.set_l(l);
        let dtype = self.k.buffers[a.buffer].dtype;
        let vals: Vec<String> = match dtype {
            DType::F32 => {
                let r: Vec<String> = (0..PER_LANE).map(|_| self.w.f()).collect();
                self.w.ins(format!("ld.global.nc.v{PER_LANE}.f32 {{{}}}, [{addr}]", r.join(", ")));
                r
            }
            _ => {
                let r: Vec<String> = (0..PER_LANE).map(|_| self.w.h()).collect();
                self.w.ins(format!("ld.global.nc.v{PER_LANE}.b16 {{{}}}, [{addr}]", r.join(", ")));
                r.iter().map(|h| self.widen(dtype, h)).collect()
            }
        };
        let v = vals[i].clone();
        self.seqvec.as_mut().expect("checked").loads.insert(key, vals);
        Some(v)
    }

    /// Stores `val` to `a` as part of the lane's vector (written at its last step, under
    /// `guard`); false where `a` does not vectorize.
    pub(super) fn seq_vec_store(&mut self, a: &Access, at: &Inner, val: &str, guard: &str) -> bool {
        if !matches!(at, Inner::None) || !self.seq_vector(a) || a.inner != 0 || self.k.buffers[a.buffer].dtype != DType::F32 {
            return false;
        }
        let sv = self.seqvec.as_mut().expect("checked");
        let vals = sv.stores.entry(a.clone()).or_default();
        vals.push(val.to_string());
        if vals.len() == PER_LANE {
            let vals = sv.stores.remove(a).expect("present");
            let (base, l) = (sv.base.clone(), self.l.clone());
            self.set_l(Some(base));
            let addr = self.addr(a, &Inner::None);
            self.set_l(l);
            self.w.ins(format!("{guard}st.global.v{PER_LANE}.f32 [{addr}], {{{}}}", vals.join(", ")));
        }
        true
    }

    /// The seq loop of the warp scan (see the module docs). The carried state lives in the scan's
    /// state registers (the same value in every lane), so the final steps read it as usual.
    pub(super) fn seq_loop_warp_scan(&mut self) {
        let ws = self.warp.clone().expect("warp scan");
        let (extent, _) = self.k.seq.expect("warp_scannable");
        let n = self.k.inner.unwrap_or(1);
        let block = 32 * PER_LANE;
        // with whole vectors a lane's steps all exist or none do
        let vector = extent.is_multiple_of(PER_LANE);
        // this thread's lane
        let (tid, lane, lane32) = (self.w.r(), self.w.rd(), self.w.r());
        self.w.ins(format!("mov.u32 {tid}, %tid.x"));
        self.w.ins(format!("and.b32 {lane32}, {tid}, 31"));
        self.w.ins(format!("cvt.u64.u32 {lane}, {lane32}"));
        let (lane0, prev) = (self.w.p(), self.w.r());
        self.w.ins(format!("setp.eq.u32 {lane0}, {lane32}, 0"));
        self.w.ins(format!("add.u32 {prev}, {lane32}, 31"));
        self.w.ins(format!("and.b32 {prev}, {prev}, 31"));
        // each state after the last block, per lane (the inclusive scan's registers)
        let mut last_h: Vec<String> = vec![];
        let dep: HashSet<V> = ws.products.iter().flat_map(|&(m, _, s)| [m, s]).chain([ws.scan]).collect();
        let inner_steps: Vec<V> = self.steps_at(Level::Inner).into_iter().filter(|v| !dep.contains(v)).collect();
        // sums over the inner dim of values that do not involve the state
        let plain_sums: Vec<V> = self
            .steps_at(Level::SeqPost)
            .into_iter()
            .filter(|&v| matches!(self.k.steps[v].1, Step::Sum(_)) && !dep.contains(&v))
            .collect();
        let Step::Scan { a: sa, b: sb, .. } = self.k.steps[ws.scan].1 else { unreachable!() };

        let t = self.w.rd();
        self.w.ins(format!("mov.u64 {t}, 0"));
        let (head, done) = self.w.loop_head("wscan", &t, &extent.to_string());
        let first = self.w.rd();
        self.w.ins(format!("mad.lo.u64 {first}, {lane}, {PER_LANE}, {t}"));
        let vbase = self.w.rd();
        self.w.ins(format!("min.u64 {vbase}, {first}, {}", extent.saturating_sub(PER_LANE)));
        self.seqvec = Some(SeqVec { i: 0, base: vbase, loads: HashMap::new(), stores: HashMap::new() });

        // the lane's steps from a zero state: P and h per inner index, and per step the parts
        // of each sum
        let saved = self.scalars.clone();
        let (mut prod, mut hl): (Vec<String>, Vec<String>) = (vec![], vec![]);
        struct StepVals {
            l: String,
            valid: String,
            scalars: HashMap<V, String>,
            /// per product: sum of x * h_local, and x * P per inner index
            local: Vec<String>,
            xp: Vec<Vec<String>>,
            plain: Vec<String>,
        }
        let mut steps: Vec<StepVals> = vec![];
        for i in 0..PER_LANE {
            let (lj, lc, valid) = (self.w.rd(), self.w.rd(), self.w.p());
            self.w.ins(format!("add.u64 {lj}, {first}, {i}"));
            self.w.ins(format!("setp.lt.u64 {valid}, {lj}, {extent}"));
            self.w.ins(format!("min.u64 {lc}, {lj}, {}", extent - 1));
            self.seqvec.as_mut().expect("set").i = i;
            self.set_l(Some(lc.clone()));
            self.scalars = saved.clone();
            for v in self.steps_at(Level::SeqPre) {
                self.scalar_step(v);
            }
            let mut local: Vec<String> = vec![];
            let mut xp: Vec<Vec<String>> = vec![vec![]; ws.products.len()];
            let mut plain: Vec<String> = vec![];
            for c in 0..n {
                self.cur.clear();
                for &v in &inner_steps {
                    self.inner_step(v, Inner::Static(c));
                }
                let at = Inner::Static(c);
                let (mut a, mut b) = (self.operand(sa, &at), self.operand(sb, &at));
                if !vector {
                    // a lane's steps past the end leave its piece unchanged
                    let (a2, b2) = (self.w.f(), self.w.f());
                    self.w.ins(format!("selp.f32 {a2}, {a}, {}, {valid}", fimm(1.0)));
                    self.w.ins(format!("selp.f32 {b2}, {b}, {}, {valid}", fimm(0.0)));
                    (a, b) = (a2, b2);
                }
                if i == 0 {
                    prod.push(a);
                    hl.push(b);
                } else {
                    let (p, h) = (self.w.f(), self.w.f());
                    self.w.ins(format!("mul.f32 {p}, {}, {a}", prod[c]));
                    self.w.ins(format!("fma.rn.f32 {h}, {a}, {}, {b}", hl[c]));
                    prod[c] = p;
                    hl[c] = h;
                }
                for (j, &(_, x, _)) in ws.products.iter().enumerate() {
                    let xv = self.operand(x, &at);
                    let q = self.w.f();
                    self.w.ins(format!("mul.f32 {q}, {xv}, {}", prod[c]));
                    xp[j].push(q);
                    if c == 0 {
                        let s = self.w.f();
                        self.w.ins(format!("mul.f32 {s}, {xv}, {}", hl[c]));
                        local.push(s);
                    } else {
                        let s = self.w.f();
                        self.w.ins(format!("fma.rn.f32 {s}, {xv}, {}, {}", hl[c], local[j]));
                        local[j] = s;
                    }
                }
                for (j, &s) in plain_sums.iter().enumerate() {
                    let Step::Sum(x) = self.k.steps[s].1 else { unreachable!() };
                    let xv = self.operand(x, &at);
                    if c == 0 {
                        plain.push(xv);
                    } else {
                        let d = self.w.f();
                        self.w.ins(format!("add.f32 {d}, {}, {xv}", plain[j]));
                        plain[j] = d;
                    }
                }
            }
            let scalars = std::mem::replace(&mut self.scalars, saved.clone());
            steps.push(StepVals { l: lc, valid, scalars, local, xp, plain });
        }

        // combine the lanes' pieces: fold the carried state into lane 0, then an inclusive scan
        let mut h_in = vec![];
        for c in 0..n {
            let carry = self.states[&(ws.scan, c)].clone();
            let (p, h) = (self.w.f(), self.w.f());
            self.w.ins(format!("mov.f32 {p}, {}", prod[c]));
            self.w.ins(format!("mov.f32 {h}, {}", hl[c]));
            self.w.ins(format!("@{lane0} fma.rn.f32 {h}, {p}, {carry}, {h}"));
            let mut off = 1;
            while off < 32 {
                let (hp, pp, has) = (self.w.f(), self.w.f(), self.w.p());
                self.w.ins(format!("shfl.sync.up.b32 {hp}|{has}, {h}, {off}, 0, -1"));
                if off < 16 {
                    self.w.ins(format!("shfl.sync.up.b32 {pp}, {p}, {off}, 0, -1"));
                }
                self.w.ins(format!("@{has} fma.rn.f32 {h}, {p}, {hp}, {h}"));
                if off < 16 {
                    self.w.ins(format!("@{has} mul.f32 {p}, {p}, {pp}"));
                }
                off *= 2;
            }
            // one rotation gives each lane the state entering its piece (lane 0: the carry) and
            // lane 0 the block's last state, the next block's carry
            let (rot, hin) = (self.w.f(), self.w.f());
            self.w.ins(format!("shfl.sync.idx.b32 {rot}, {h}, {prev}, 31, -1"));
            self.w.ins(format!("selp.f32 {hin}, {carry}, {rot}, {lane0}"));
            self.w.ins(format!("@{lane0} mov.f32 {carry}, {rot}"));
            h_in.push(hin);
            last_h.push(h);
        }

        // each step's sums with the true state, then its epilogue
        let saved_valid = self.valid.clone();
        for (i, st) in steps.into_iter().enumerate() {
            self.seqvec.as_mut().expect("set").i = i;
            self.set_l(Some(st.l.clone()));
            self.scalars = st.scalars;
            for (j, &(_, _, sum)) in ws.products.iter().enumerate() {
                let mut acc = st.local[j].clone();
                for (xp, hin) in st.xp[j].iter().zip(&h_in) {
                    let d = self.w.f();
                    self.w.ins(format!("fma.rn.f32 {d}, {xp}, {hin}, {acc}"));
                    acc = d;
                }
                self.scalars.insert(sum, acc);
            }
            for (j, &s) in plain_sums.iter().enumerate() {
                self.scalars.insert(s, st.plain[j].clone());
            }
            self.valid = Some(st.valid.clone());
            for v in self.steps_at(Level::SeqPost) {
                if !matches!(self.k.steps[v].1, Step::Sum(_)) {
                    self.scalar_step(v);
                }
            }
        }
        self.valid = saved_valid;
        self.scalars = saved;
        self.seqvec = None;
        self.w.ins(format!("add.u64 {t}, {t}, {block}"));
        self.w.ins(format!("bra {head}"));
        self.w.put_label(&done);
        self.set_l(None);
        // the final state is lane 0's carry, unless the last block ends before its last lane
        // (whose piece then holds clamped steps): then it is the inclusive state of the lane
        // holding the last step. Lane 0 stores it.
        let last_lane = ((extent - 1) % block) / PER_LANE;
        if last_lane != 31 {
            for (c, h) in last_h.iter().enumerate() {
                let carry = self.states[&(ws.scan, c)].clone();
                self.w.ins(format!("shfl.sync.idx.b32 {carry}, {h}, {last_lane}, 31, -1"));
            }
        }
        self.valid = Some(lane0);
    }
}

//! Addresses (row part once per thread, seq part once per step, static offsets as immediates),
//! loads that widen bf16, f16 and f64 to f32, and local-memory states.

use super::{Inner, Translator};
use ssmc_ir::DType;
use ssmc_kernel::{Access, Step, V};
use std::collections::HashMap;

/// Vector accesses of the current step: loaded values and stores waiting for their group, by
/// (access, seq step register, inner index).
pub(super) type VecKey = (Access, Option<String>, usize);

/// Byte addresses at a seq step, per (buffer, row strides, seq stride).
pub(super) type SeqBases = HashMap<(usize, Vec<usize>, usize), String>;

impl Translator<'_> {
    pub(super) fn set_l(&mut self, l: Option<String>) {
        self.l = l;
        self.seq_bases.clear();
    }

    /// The address of `a`'s element at the current row, seq step and inner index, as PTX
    /// `[reg+imm]` operand text: the row part precomputed, the seq part once per step, a static
    /// inner index folded into the immediate.
    pub(super) fn addr(&mut self, a: &Access, at: &Inner) -> String {
        let size = self.k.buffers[a.buffer].dtype.size();
        let (buffer, row) = self.base_key(a);
        let mut base = self.row_bases[&(buffer, row.clone())].clone();
        if let (Some(l), true) = (self.l.clone(), a.seq != 0) {
            let key = (buffer, row, a.seq);
            base = match self.seq_bases.get(&key) {
                Some(b) => b.clone(),
                None if self.row_offsets.contains_key(&a.row) => {
                    // from the buffer's parameter, which ptxas reads from the constant bank
                    // where it is used: no register holds the row's address
                    let (l32, e, p, g, n) = (self.w.r(), self.w.r(), self.w.rd(), self.w.rd(), self.w.rd());
                    self.w.ins(format!("cvt.u32.u64 {l32}, {l}"));
                    self.w.ins(format!("mad.lo.u32 {e}, {l32}, {}, {}", a.seq, self.row_offsets[&a.row]));
                    self.w.ins(format!("ld.param.u64 {p}, [buf{buffer}]"));
                    self.w.ins(format!("cvta.to.global.u64 {g}, {p}"));
                    self.w.ins(format!("mad.wide.u32 {n}, {e}, {size}, {g}"));
                    self.seq_bases.insert(key, n.clone());
                    n
                }
                None => {
                    let n = self.w.rd();
                    self.w.ins(format!("mad.lo.u64 {n}, {l}, {}, {base}", a.seq * size));
                    self.seq_bases.insert(key, n.clone());
                    n
                }
            };
        }
        match at {
            Inner::Static(c) if a.inner != 0 => format!("{base}+{}", c * a.inner * size),
            Inner::Reg(i) | Inner::Lane(i) if a.inner != 0 => {
                let n = self.w.rd();
                self.w.ins(format!("mad.lo.u64 {n}, {i}, {}, {base}", a.inner * size));
                n
            }
            _ => base,
        }
    }

    /// Element offsets of the rows of every seq-indexed access, in 32 bits (by row strides; in
    /// [`Self::row_offsets`]), where every buffer has fewer than 2^31 elements: [`Self::addr`]
    /// then forms a step's address from the buffer's parameter and one 32-bit offset shared by
    /// the buffers laid out alike. For the warp scan this frees the 64-bit row addresses of
    /// the loop, so ptxas need not spill them (measured in docs/benchmarks.md).
    pub(super) fn set_row_offsets(&mut self) {
        if self.k.buffers.iter().any(|b| b.len >= 1 << 31) {
            return;
        }
        let rows: Vec<Vec<usize>> = self
            .k
            .steps
            .iter()
            .filter_map(|(_, st)| match st {
                Step::Load(a) | Step::Store(_, a) if a.seq != 0 => Some(a.row.clone()),
                _ => None,
            })
            .collect();
        for row in rows {
            if self.row_offsets.contains_key(&row) {
                continue;
            }
            let off = self.w.r();
            self.w.ins(format!("mov.u32 {off}, 0"));
            for (k, &stride) in row.iter().enumerate().filter(|(_, s)| **s != 0) {
                let x = self.w.r();
                self.w.ins(format!("cvt.u32.u64 {x}, {}", self.row_idx[k]));
                self.w.ins(format!("mad.lo.u32 {off}, {x}, {stride}, {off}"));
            }
            self.row_offsets.insert(row, off);
        }
    }

    pub(super) fn local_addr(&mut self, scan: V, i: &str) -> String {
        let name = self.states[&(scan, usize::MAX)].clone();
        let (base, a) = (self.w.rd(), self.w.rd());
        self.w.ins(format!("mov.u64 {base}, {name}"));
        self.w.ins(format!("mad.lo.u64 {a}, {i}, 4, {base}"));
        a
    }

    /// Element offset of `a` at the current row, seq step and inner index.
    pub(super) fn offset(&mut self, a: &Access, at: &Inner) -> String {
        let off = self.w.rd();
        self.w.ins(format!("mov.u64 {off}, 0"));
        let mut terms: Vec<(String, usize)> = vec![];
        for (k, &stride) in a.row.iter().enumerate() {
            if stride != 0 {
                terms.push((self.row_idx[k].clone(), stride));
            }
        }
        if let (Some(l), true) = (&self.l, a.seq != 0) {
            terms.push((l.clone(), a.seq));
        }
        let mut off = off;
        for (x, s) in terms {
            let n = self.w.rd();
            self.w.ins(format!("mad.lo.u64 {n}, {x}, {s}, {off}"));
            off = n;
        }
        let off = match (self.lane_run(), at) {
            (Some(first), Inner::Static(_)) if a.inner != 0 => {
                let n = self.w.rd();
                self.w.ins(format!("mad.lo.u64 {n}, {first}, {}, {off}", a.inner));
                n
            }
            _ => off,
        };
        match at {
            Inner::Static(c) if a.inner != 0 => {
                let n = self.w.rd();
                self.w.ins(format!("add.u64 {n}, {off}, {}", c * a.inner));
                n
            }
            Inner::Reg(i) | Inner::Lane(i) if a.inner != 0 => {
                let n = self.w.rd();
                self.w.ins(format!("mad.lo.u64 {n}, {i}, {}, {off}", a.inner));
                n
            }
            _ => off,
        }
    }

    pub(super) fn address(&mut self, buffer: usize, off: &str) -> String {
        let size = self.k.buffers[buffer].dtype.size();
        let a = self.w.rd();
        self.w.ins(format!("mad.lo.u64 {a}, {off}, {size}, {}", self.bases[buffer]));
        a
    }

    pub(super) fn load_at(&mut self, dtype: DType, addr: &str) -> String {
        let r = self.raw_reg(dtype);
        self.load_raw(dtype, &r, addr, "");
        self.widen(dtype, &r)
    }

    /// A register for a value of `dtype` as stored (`b16` for the 16-bit types; `f64` values
    /// are narrowed on load).
    pub(super) fn raw_reg(&mut self, dtype: DType) -> String {
        match dtype {
            DType::BF16 | DType::F16 => self.w.h(),
            DType::F32 | DType::F64 => self.w.f(),
        }
    }

    /// `dst = [addr]` as stored, under `guard` (a `@p ` prefix or nothing): nothing waits for the
    /// load until the value is widened.
    pub(super) fn load_raw(&mut self, dtype: DType, dst: &str, addr: &str, guard: &str) {
        match dtype {
            DType::F32 => self.w.ins(format!("{guard}ld.global.nc.f32 {dst}, [{addr}]")),
            DType::BF16 | DType::F16 => self.w.ins(format!("{guard}ld.global.nc.b16 {dst}, [{addr}]")),
            DType::F64 => {
                // an f64 register is only needed here
                let dd = format!("%fd_{}", dst.trim_start_matches("%f"));
                self.w.scoped(&[format!(".reg .f64 {dd}"), format!("{guard}ld.global.nc.f64 {dd}, [{addr}]"), format!("cvt.rn.f32.f64 {dst}, {dd}")]);
            }
        }
    }

    /// [`Self::widen`] into a fresh register (`raw` is loaded again while the value is in use).
    pub(super) fn widen_copy(&mut self, dtype: DType, raw: &str) -> String {
        let d = self.widen(dtype, raw);
        if d != raw {
            return d;
        }
        let c = self.w.f();
        self.w.ins(format!("mov.f32 {c}, {d}"));
        c
    }

    /// The `f32` value of a register from [`Self::load_raw`].
    pub(super) fn widen(&mut self, dtype: DType, raw: &str) -> String {
        match dtype {
            DType::F32 | DType::F64 => raw.to_string(),
            DType::BF16 => {
                let (r, s, d) = (self.w.r(), self.w.r(), self.w.f());
                self.w.ins(format!("cvt.u32.u16 {r}, {raw}"));
                self.w.ins(format!("shl.b32 {s}, {r}, 16"));
                self.w.ins(format!("mov.b32 {d}, {s}"));
                d
            }
            DType::F16 => {
                let d = self.w.f();
                self.w.ins(format!("cvt.f32.f16 {d}, {raw}"));
                d
            }
        }
    }

    /// Whether `a` at inner index `at` moves as part of a 16-byte vector: `f32`, contiguous in
    /// the unrolled inner dim (a multiple of 4 long), every other stride a multiple of 4 elements
    /// (device buffers are at least 256-byte aligned).
    fn vec4(&self, a: &Access, at: &Inner) -> Option<usize> {
        let Inner::Static(c) = at else { return None };
        // a lane's run, or the whole inner dim
        let n = if self.lane_run().is_some() { self.lane_width } else { self.k.inner? };
        let seq_ok = a.seq.is_multiple_of(4) || self.k.seq.is_none_or(|(extent, _)| extent == 1);
        let ok = self.k.buffers[a.buffer].dtype == DType::F32 && a.inner == 1 && n % 4 == 0 && seq_ok && a.row.iter().all(|s| s % 4 == 0);
        ok.then_some(*c)
    }

    /// `a` at `at` through one `ld.global.nc.v4` per four inner indices, or `None` where `a`
    /// does not vectorize.
    pub(super) fn vec_load(&mut self, a: &Access, at: &Inner) -> Option<String> {
        let c = self.vec4(a, at)?;
        Some(self.load4(a, c, |t, c0| (t.addr(a, &Inner::Static(c0)), "global.nc")))
    }

    /// `a` at inner index `c` from one `.v4` load of the four indices from `c - c % 4`, made at
    /// the first of them and remembered for the rest of the step; `source(c0)` gives the
    /// load's address and state space.
    pub(super) fn load4(&mut self, a: &Access, c: usize, source: impl FnOnce(&mut Self, usize) -> (String, &'static str)) -> String {
        if let Some(d) = self.vec_values.get(&(a.clone(), self.l.clone(), c)) {
            return d.clone();
        }
        let c0 = c - c % 4;
        let (addr, space) = source(self, c0);
        let r: Vec<String> = (0..4).map(|_| self.w.f()).collect();
        self.w.ins(format!("ld.{space}.v4.f32 {{{}}}, [{addr}]", r.join(", ")));
        for (i, x) in r.iter().enumerate() {
            self.vec_values.insert((a.clone(), self.l.clone(), c0 + i), x.clone());
        }
        r[c % 4].clone()
    }

    /// Stores `val` to `a` at `at` as part of a `st.global.v4` (written with the fourth value);
    /// false where `a` does not vectorize.
    pub(super) fn vec_store(&mut self, a: &Access, at: &Inner, val: &str, guard: &str) -> bool {
        let Some(c) = self.vec4(a, at) else { return false };
        self.vec_values.insert((a.clone(), self.l.clone(), c), val.to_string());
        if c % 4 == 3 {
            let c0 = c - 3;
            let vals: Vec<String> = (c0..=c).map(|i| self.vec_values[&(a.clone(), self.l.clone(), i)].clone()).collect();
            let addr = self.addr(a, &Inner::Static(c0));
            self.w.ins(format!("{guard}st.global.v4.f32 [{addr}], {{{}}}", vals.join(", ")));
        }
        true
    }
}

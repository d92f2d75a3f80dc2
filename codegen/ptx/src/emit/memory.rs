//! Addresses (row part once per thread, seq part once per step, static offsets as immediates),
//! loads that widen bf16, f16 and f64 to f32, and local-memory states.

use super::{Inner, Translator};
use ssmc_ir::DType;
use ssmc_kernel::{Access, V};

impl Translator<'_> {
    pub(super) fn set_l(&mut self, l: Option<String>) {
        self.l = l;
        self.seq_bases.clear();
        self.tile_new_step();
    }

    /// The address of `a`'s element at the current row, seq step and inner index, as PTX
    /// `[reg+imm]` operand text: the row part precomputed, the seq part once per step, a static
    /// inner index folded into the immediate.
    pub(super) fn addr(&mut self, a: &Access, at: &Inner) -> String {
        let size = self.k.buffers[a.buffer].dtype.size();
        let mut base = self.row_bases[&(a.buffer, a.row.clone())].clone();
        if let (Some(l), true) = (self.l.clone(), a.seq != 0) {
            let key = (a.buffer, a.row.clone(), a.seq);
            base = match self.seq_bases.get(&key) {
                Some(b) => b.clone(),
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
        let d = self.w.f();
        match dtype {
            DType::F32 => self.w.ins(format!("ld.global.nc.f32 {d}, [{addr}]")),
            DType::F64 => {
                // an f64 register is only needed here
                let dd = format!("%fd_{}", d.trim_start_matches("%f"));
                self.w.ins(format!("{{\n\t.reg .f64 {dd};\n\tld.global.nc.f64 {dd}, [{addr}];\n\tcvt.rn.f32.f64 {d}, {dd};\n\t}}"));
            }
            DType::BF16 => {
                let (h, r, s) = (self.w.h(), self.w.r(), self.w.r());
                self.w.ins(format!("ld.global.nc.b16 {h}, [{addr}]"));
                self.w.ins(format!("cvt.u32.u16 {r}, {h}"));
                self.w.ins(format!("shl.b32 {s}, {r}, 16"));
                self.w.ins(format!("mov.b32 {d}, {s}"));
            }
            DType::F16 => {
                let h = self.w.h();
                self.w.ins(format!("ld.global.nc.b16 {h}, [{addr}]"));
                self.w.ins(format!("cvt.f32.f16 {d}, {h}"));
            }
        }
        d
    }
}

//! Addresses, loads (converting bf16, f16 and f64 to f32; contiguous, broadcast or gathered
//! lanes) and stores.

use super::{flags, load_flags, Chunk, KernelTranslator};
use crate::math;
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, MemFlagsData, Type, Value};
use ssmc_ir::DType;
use ssmc_kernel::Access;

impl KernelTranslator<'_, '_> {
    /// The element offset (in elements, i64) of `a` at the current row, seq step and inner index.
    pub(super) fn offset(&mut self, a: &Access, i: Option<Value>) -> Value {
        let mut off = self.b.ins().iconst(types::I64, 0);
        for (k, &stride) in a.row.iter().enumerate() {
            if stride != 0 {
                let t = self.b.ins().imul_imm_s(self.row_idx[k], stride as i64);
                off = self.b.ins().iadd(off, t);
            }
        }
        if let (Some(l), true) = (self.l, a.seq != 0) {
            let t = self.b.ins().imul_imm_s(l, a.seq as i64);
            off = self.b.ins().iadd(off, t);
        }
        if let (Some(i), true) = (i, a.inner != 0) {
            let t = self.b.ins().imul_imm_s(i, a.inner as i64);
            off = self.b.ins().iadd(off, t);
        }
        off
    }

    pub(super) fn address(&mut self, buffer: usize, elem_off: Value) -> Value {
        let size = self.k.buffers[buffer].dtype.size() as i64;
        let bytes = self.b.ins().imul_imm_s(elem_off, size);
        self.b.ins().iadd(self.bases[buffer], bytes)
    }

    /// One element of `buffer` at `addr`, as `f32`.
    pub(super) fn load_scalar(&mut self, dtype: DType, addr: Value, imm: i32) -> Value {
        match dtype {
            DType::F32 => self.b.ins().load(types::F32, load_flags(), addr, imm),
            DType::F64 => {
                let d = self.b.ins().load(types::F64, load_flags(), addr, imm);
                self.b.ins().fdemote(types::F32, d)
            }
            DType::BF16 => {
                let h = self.b.ins().uload16(types::I32, load_flags(), addr, imm);
                let w = self.b.ins().ishl_imm_u(h, 16);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), w)
            }
            DType::F16 => {
                let h = self.b.ins().uload16(types::I32, load_flags(), addr, imm);
                self.f16_bits_to_f32(types::F32, h)
            }
        }
    }

    /// IEEE half bits (in the low 16 bits of each i32 lane) to `f32`, subnormals included.
    pub(super) fn f16_bits_to_f32(&mut self, ty: Type, h: Value) -> Value {
        let ity = if ty == types::F32 { types::I32 } else { types::I32X4 };
        let c = |t: &mut Self, v: i64| {
            let s = t.b.ins().iconst(types::I32, v);
            if ity == types::I32 {
                s
            } else {
                t.b.ins().splat(ity, s)
            }
        };
        let sign_mask = c(self, 0x8000);
        let sign = self.b.ins().band(h, sign_mask);
        let sign = self.b.ins().ishl_imm_u(sign, 16);
        let mag_mask = c(self, 0x7fff);
        let mag = self.b.ins().band(h, mag_mask);
        let shifted = self.b.ins().ishl_imm_u(mag, 13);
        let f = self.b.ins().bitcast(ty, MemFlagsData::new(), shifted);
        let scale = math::konst(self.b, ty, 2f32.powi(112));
        let f = self.b.ins().fmul(f, scale);
        // exponent all ones: infinity or NaN
        let exp_mask = c(self, 0x7c00);
        let e = self.b.ins().band(h, exp_mask);
        let is_special = self.b.ins().icmp(IntCC::Equal, e, exp_mask);
        let top = c(self, 0x7f80_0000);
        let special = self.b.ins().bor(shifted, top);
        let special = self.b.ins().bitcast(ty, MemFlagsData::new(), special);
        let f = if ty == types::F32 {
            self.b.ins().select(is_special, special, f)
        } else {
            let m = self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), is_special);
            self.b.ins().bitselect(m, special, f)
        };
        let fb = self.b.ins().bitcast(ity, MemFlagsData::new(), f);
        let out = self.b.ins().bor(fb, sign);
        self.b.ins().bitcast(ty, MemFlagsData::new(), out)
    }

    /// The stride between lanes and the inner index for an access from chunk `ch`.
    pub(super) fn lanes(&self, a: &Access, ch: Chunk) -> (usize, Option<Value>) {
        if self.along_rows {
            (a.row.last().copied().unwrap_or(0), None)
        } else if self.along_seq {
            (a.seq, None)
        } else {
            (a.inner, Some(ch.i))
        }
    }

    /// The byte offset of step `l + l_step` and row `r + row_step` from step `l` and row `r` in
    /// `a` (an immediate of the access).
    fn step_bytes(&self, a: &Access) -> i32 {
        let elems = self.l_step * a.seq + self.row_step * a.row.last().copied().unwrap_or(0);
        (elems * self.k.buffers[a.buffer].dtype.size()) as i32
    }

    pub(super) fn load(&mut self, a: &Access, ch: Option<Chunk>) -> Value {
        let dtype = self.k.buffers[a.buffer].dtype;
        let imm = self.step_bytes(a);
        match ch {
            Some(ch) if ch.width == 4 => {
                let (lane_stride, i) = self.lanes(a, ch);
                let off = self.offset(a, i);
                let addr = self.address(a.buffer, off);
                match (lane_stride, dtype) {
                    (0, _) => {
                        let s = self.load_scalar(dtype, addr, imm);
                        self.b.ins().splat(types::F32X4, s)
                    }
                    (1, DType::F32) => self.b.ins().load(types::F32X4, load_flags(), addr, imm),
                    (1, DType::BF16) => {
                        let h = self.b.ins().uload16x4(load_flags(), addr, imm);
                        let w = self.b.ins().ishl_imm_u(h, 16);
                        self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), w)
                    }
                    (1, DType::F16) => {
                        let h = self.b.ins().uload16x4(load_flags(), addr, imm);
                        self.f16_bits_to_f32(types::F32X4, h)
                    }
                    (stride, _) => {
                        // a gather: four scalar loads
                        let step = (stride * dtype.size()) as i64;
                        let s0 = self.load_scalar(dtype, addr, imm);
                        let mut v = self.b.ins().splat(types::F32X4, s0);
                        for lane in 1..4u8 {
                            let at = self.b.ins().iadd_imm_s(addr, step * lane as i64);
                            let s = self.load_scalar(dtype, at, imm);
                            v = self.b.ins().insertlane(v, s, lane);
                        }
                        v
                    }
                }
            }
            _ => {
                let off = self.offset(a, ch.map(|c| c.i));
                let addr = self.address(a.buffer, off);
                self.load_scalar(dtype, addr, imm)
            }
        }
    }

    pub(super) fn store(&mut self, val: Value, a: &Access, ch: Option<Chunk>) {
        let (lane_stride, i) = match ch {
            Some(c) => self.lanes(a, c),
            None => (0, None),
        };
        let off = self.offset(a, i);
        let addr = self.address(a.buffer, off);
        let imm = self.step_bytes(a);
        match ch {
            Some(ch) if ch.width == 4 && lane_stride == 1 => {
                self.b.ins().store(flags(), val, addr, imm);
            }
            Some(ch) if ch.width == 4 => {
                let step = (lane_stride * 4) as i32;
                for lane in 0..4u8 {
                    let s = self.b.ins().extractlane(val, lane);
                    self.b.ins().store(flags(), s, addr, imm + step * lane as i32);
                }
            }
            _ => {
                let v = if self.b.func.dfg.value_type(val) == types::F32X4 { self.b.ins().extractlane(val, 0) } else { val };
                self.b.ins().store(flags(), v, addr, imm);
            }
        }
    }
}

//! Instruction selection: one kernel-IR step into PTX instructions at the current row, seq
//! step and inner index (values, loads and stores, the discretizations, the scan update, convs).

use super::{ChunkPass, Inner, Mapping, Translator};
use crate::isa::{self, fimm};
use ssmc_ir::{GateKind, Method};
use ssmc_kernel::{Axis, Back, Level, Step, V};

impl Translator<'_> {
    pub(super) fn state_get(&mut self, scan: V, at: &Inner) -> String {
        match at {
            Inner::None => self.states[&(scan, usize::MAX)].clone(),
            Inner::Static(c) => self.states[&(scan, *c)].clone(),
            Inner::Lane(_) => self.states[&(scan, 0)].clone(),
            Inner::Reg(i) => {
                let addr = self.local_addr(scan, i);
                let d = self.w.f();
                self.w.ins(format!("ld.local.f32 {d}, [{addr}]"));
                d
            }
        }
    }

    /// The index of the loop `axis` at inner position `here`.
    fn axis_index(&mut self, axis: Axis, here: &Inner) -> String {
        match (axis, here) {
            (Axis::Row(k), _) => self.row_idx[k].clone(),
            (Axis::Seq, _) => self.l.clone().expect("a step along seq runs in the seq loop"),
            (Axis::Inner, Inner::Static(c)) => {
                let r = self.w.rd();
                match self.lane_run() {
                    Some(first) => self.w.ins(format!("add.u64 {r}, {first}, {c}")),
                    None => self.w.ins(format!("mov.u64 {r}, {c}")),
                }
                r
            }
            (Axis::Inner, Inner::Reg(i) | Inner::Lane(i)) => i.clone(),
            (Axis::Inner, Inner::None) => unreachable!("a step along the inner dim has an inner index"),
        }
    }

    pub(super) fn emit(&mut self, v: V, at: Inner, outer: bool) -> Option<String> {
        let step = self.k.steps[v].1.clone();
        if let Mapping::Chunked(ch) = &self.mapping {
            if ch.pass == ChunkPass::Summary && !ch.needed.contains(&v) {
                return None;
            }
        }
        let op = |t: &mut Self, x: V| if outer { t.scalars[&x].clone() } else { t.operand(x, &at) };
        let here = if outer { Inner::None } else { at.clone() };
        Some(match step {
            Step::Load(a) => {
                if let Some(raw) = self.ahead.get(&a).filter(|_| matches!(here, Inner::None)).cloned() {
                    return Some(self.widen_copy(self.k.buffers[a.buffer].dtype, &raw));
                }
                if let Some(d) = self.seq_vec_load(&a, &here).or_else(|| self.tile_read(&a, &here)).or_else(|| self.vec_load(&a, &here)) {
                    return Some(d);
                }
                let addr = self.addr(&a, &here);
                self.load_at(self.k.buffers[a.buffer].dtype, &addr)
            }
            Step::Const(c) => {
                let d = self.w.f();
                self.w.ins(format!("mov.f32 {d}, {}", fimm(c)));
                d
            }
            Step::Unary(u, x) => {
                let x = op(self, x);
                // the f32 warp scan keeps softplus's ratio form: with the compensated one,
                // ptxas spilled more there, and the kernel ran slower
                let ratio = matches!(&self.mapping, Mapping::Warp(ws) if !ws.narrow);
                isa::unary(&mut self.w, u, &x, ratio)
            }
            Step::Binary(b, x, y) => {
                let (x, y) = (op(self, x), op(self, y));
                let d = self.w.f();
                self.w.ins(format!("{} {d}, {x}, {y}", isa::binary(b)));
                d
            }
            Step::DiscA(m, dt, a) => {
                let (dt, a) = (op(self, dt), op(self, a));
                let x = self.w.f();
                self.w.ins(format!("mul.f32 {x}, {dt}, {a}"));
                match m {
                    Method::Zoh => isa::exp(&mut self.w, &x),
                    Method::Euler => {
                        let d = self.w.f();
                        self.w.ins(format!("add.f32 {d}, {x}, {}", fimm(1.0)));
                        d
                    }
                    Method::Bilinear => {
                        let (num, den, d) = (self.w.f(), self.w.f(), self.w.f());
                        self.w.ins(format!("fma.rn.f32 {num}, {x}, {}, {}", fimm(0.5), fimm(1.0)));
                        self.w.ins(format!("fma.rn.f32 {den}, {x}, {}, {}", fimm(-0.5), fimm(1.0)));
                        self.w.ins(format!("div.full.f32 {d}, {num}, {den}"));
                        d
                    }
                }
            }
            Step::DiscB(m, dt, a, b) => {
                let (dt, a, b) = (op(self, dt), op(self, a), op(self, b));
                let dtb = self.w.f();
                self.w.ins(format!("mul.f32 {dtb}, {dt}, {b}"));
                match m {
                    Method::Euler => dtb,
                    Method::Zoh => {
                        let x = self.w.f();
                        self.w.ins(format!("mul.f32 {x}, {dt}, {a}"));
                        let e = isa::expm1(&mut self.w, &x);
                        let phi = self.w.f();
                        self.w.ins(format!("div.full.f32 {phi}, {e}, {x}"));
                        let p = self.w.p();
                        self.w.ins(format!("setp.eq.f32 {p}, {x}, {}", fimm(0.0)));
                        let phi2 = self.w.f();
                        self.w.ins(format!("selp.f32 {phi2}, {}, {phi}, {p}", fimm(1.0)));
                        let d = self.w.f();
                        self.w.ins(format!("mul.f32 {d}, {dtb}, {phi2}"));
                        d
                    }
                    Method::Bilinear => {
                        let (x, den, d) = (self.w.f(), self.w.f(), self.w.f());
                        self.w.ins(format!("mul.f32 {x}, {dt}, {a}"));
                        self.w.ins(format!("fma.rn.f32 {den}, {x}, {}, {}", fimm(-0.5), fimm(1.0)));
                        self.w.ins(format!("div.full.f32 {d}, {dtb}, {den}"));
                        d
                    }
                }
            }
            Step::Gate(kind, x, z) => {
                let (x, z) = (op(self, x), op(self, z));
                let s = isa::sigmoid(&mut self.w, &z);
                let g = match kind {
                    GateKind::Silu => {
                        let g = self.w.f();
                        self.w.ins(format!("mul.f32 {g}, {z}, {s}"));
                        g
                    }
                    GateKind::Sigmoid => s,
                };
                let d = self.w.f();
                self.w.ins(format!("mul.f32 {d}, {x}, {g}"));
                d
            }
            Step::Scan { a, b, .. } => {
                let (a, b) = (op(self, a), op(self, b));
                match &here {
                    Inner::Reg(i) => {
                        let h = self.state_get(v, &here);
                        let d = self.w.f();
                        self.w.ins(format!("fma.rn.f32 {d}, {h}, {a}, {b}"));
                        let addr = self.local_addr(v, &i.clone());
                        self.w.ins(format!("st.local.f32 [{addr}], {d}"));
                        d
                    }
                    _ => {
                        if let (Mapping::Chunked(ch), Inner::Static(c)) = (&self.mapping, &here) {
                            if ch.pass == ChunkPass::Summary && ch.scan == v {
                                let p = ch.prods[c].clone();
                                self.w.ins(format!("mul.f32 {p}, {p}, {a}"));
                            }
                        }
                        // the state register is updated in place (it is carried around the loop)
                        let h = self.state_get(v, &here);
                        self.w.ins(format!("fma.rn.f32 {h}, {h}, {a}, {b}"));
                        let d = self.w.f();
                        self.w.ins(format!("mov.f32 {d}, {h}"));
                        d
                    }
                }
            }
            Step::Sum(_) => return None,
            Step::Final(s) => {
                let from = if self.level(s) == Level::Inner { here.clone() } else { Inner::None };
                let h = self.state_get(s, &from);
                let d = self.w.f();
                self.w.ins(format!("mov.f32 {d}, {h}"));
                d
            }
            Step::Conv { x, w, tap_stride, taps, axis, x_axis_stride, bias, reverse, extent } => {
                let pos = self.axis_index(axis, &here);
                let xo = self.offset(&x, &here);
                let wo = self.offset(&w, &here);
                let acc0 = self.w.f();
                self.w.ins(format!("mov.f32 {acc0}, {}", fimm(0.0)));
                let mut acc = acc0;
                for j in 0..taps {
                    let back = taps - 1 - j;
                    let p = self.w.p();
                    let (shifted, safe) = (self.w.rd(), self.w.rd());
                    if reverse {
                        // tap j reads `back` steps ahead, while inside the axis
                        self.w.ins(format!("setp.lt.s64 {p}, {pos}, {}", extent as i64 - back as i64));
                        self.w.ins(format!("add.u64 {shifted}, {xo}, {}", back * x_axis_stride));
                    } else {
                        self.w.ins(format!("setp.ge.u64 {p}, {pos}, {back}"));
                        self.w.ins(format!("sub.u64 {shifted}, {xo}, {}", back * x_axis_stride));
                    }
                    self.w.ins(format!("selp.u64 {safe}, {shifted}, 0, {p}"));
                    let xa = self.address(x.buffer, &safe);
                    let xv = self.load_at(self.k.buffers[x.buffer].dtype, &xa);
                    let xz = self.w.f();
                    self.w.ins(format!("selp.f32 {xz}, {xv}, {}, {p}", fimm(0.0)));
                    let wj = self.w.rd();
                    self.w.ins(format!("add.u64 {wj}, {wo}, {}", j * tap_stride));
                    let wa = self.address(w.buffer, &wj);
                    let wv = self.load_at(self.k.buffers[w.buffer].dtype, &wa);
                    let n = self.w.f();
                    self.w.ins(format!("fma.rn.f32 {n}, {wv}, {xz}, {acc}"));
                    acc = n;
                }
                if let Some(bias) = bias {
                    let bv = op(self, bias);
                    let n = self.w.f();
                    self.w.ins(format!("add.f32 {n}, {acc}, {bv}"));
                    acc = n;
                }
                acc
            }
            Step::Gather { x, axis, x_axis_stride, extent, reverse, back, fill } => {
                let pos = self.axis_index(axis, &here);
                // `back` and the element offset it moves by: immediates, or registers by tap
                let (back, moved) = match back {
                    Back::Fixed(b) => (format!("{b}"), format!("{}", b * x_axis_stride)),
                    Back::Taps { axis, taps } => {
                        let j = self.axis_index(axis, &here);
                        let (last, r, m) = (self.w.rd(), self.w.rd(), self.w.rd());
                        self.w.ins(format!("mov.u64 {last}, {}", taps - 1));
                        self.w.ins(format!("sub.u64 {r}, {last}, {j}"));
                        self.w.ins(format!("mul.lo.u64 {m}, {r}, {x_axis_stride}"));
                        (r, m)
                    }
                };
                // inside the axis: pos >= back, or pos + back < extent reversed
                let (p, shifted, safe) = (self.w.p(), self.w.rd(), self.w.rd());
                let xo = self.offset(&x, &here);
                if reverse {
                    let at = self.w.rd();
                    self.w.ins(format!("add.u64 {at}, {pos}, {back}"));
                    self.w.ins(format!("setp.lt.u64 {p}, {at}, {extent}"));
                    self.w.ins(format!("add.u64 {shifted}, {xo}, {moved}"));
                } else {
                    self.w.ins(format!("setp.ge.u64 {p}, {pos}, {back}"));
                    self.w.ins(format!("sub.u64 {shifted}, {xo}, {moved}"));
                }
                self.w.ins(format!("selp.u64 {safe}, {shifted}, 0, {p}"));
                let xa = self.address(x.buffer, &safe);
                let xv = self.load_at(self.k.buffers[x.buffer].dtype, &xa);
                let edge = match fill {
                    Some(f) => op(self, f),
                    None => fimm(0.0),
                };
                let d = self.w.f();
                self.w.ins(format!("selp.f32 {d}, {xv}, {edge}, {p}"));
                d
            }
            Step::Store(x, a) => {
                let val = op(self, x);
                if self.tile_write(&a, &val) {
                    return None;
                }
                let guard = match (&self.mapping, &here, &self.valid) {
                    (Mapping::Lanes(l), Inner::Lane(_) | Inner::Static(_), _) => format!("@{} ", l.store_inner),
                    (Mapping::Lanes(l), _, _) => format!("@{} ", self.row_guard.as_ref().unwrap_or(&l.store_row)),
                    (_, _, Some(valid)) => format!("@{valid} "),
                    (_, _, None) => String::new(),
                };
                if self.seq_vec_store(&a, &here, &val, &guard) || self.vec_store(&a, &here, &val, &guard) {
                    return None;
                }
                let addr = self.addr(&a, &here);
                self.w.ins(format!("{guard}st.global.f32 [{addr}], {val}"));
                return None;
            }
            // plans for the GPU are built without these forms (`ssmc::Backend::Cuda.forms()`)
            Step::Prev(_) | Step::AddTo(..) => unreachable!("a replay or row-sum step in a GPU kernel"),
        })
    }
}

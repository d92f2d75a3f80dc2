//! One table from kernel-IR operations to PTX instructions, and the composite functions
//! (softplus, sigmoid, ...) built from them. Every emitter call goes through here. A user's `/`
//! and `recip` are IEEE (`div.rn`, `rcp.rn`); divisions inside composite functions use
//! `div.full` / `rcp.approx` (at most 2 ulp), which avoid the IEEE division subroutine.

use crate::regs::Regs;

/// A PTX `f32` immediate (exact bits).
pub fn fimm(v: f32) -> String {
    format!("0f{:08X}", v.to_bits())
}

/// `2^x`: the hardware approximation (max relative error about 2^-22), `.ftz`: results below
/// 2^-126 flush to zero (an absolute error under 1.2e-38), which saves the three instructions
/// per call that ptxas adds to keep subnormal results.
pub fn exp2(w: &mut Regs, x: &str) -> String {
    let d = w.f();
    w.ins(format!("ex2.approx.ftz.f32 {d}, {x}"));
    d
}

/// `e^x = 2^(x log2 e)`.
pub fn exp(w: &mut Regs, x: &str) -> String {
    let t = w.f();
    w.ins(format!("mul.f32 {t}, {x}, {}", fimm(std::f32::consts::LOG2_E)));
    exp2(w, &t)
}

/// `ln x = log2(x) ln 2` (the hardware `lg2`; 0 gives -inf, negative gives NaN).
pub fn log(w: &mut Regs, x: &str) -> String {
    log_ftz(w, x, "")
}

/// [`log`]; `ftz` is `".ftz"` where `x` cannot be subnormal (it then saves ptxas's rescaling
/// of subnormal arguments, a few instructions) or `""`.
fn log_ftz(w: &mut Regs, x: &str, ftz: &str) -> String {
    let t = w.f();
    w.ins(format!("lg2.approx{ftz}.f32 {t}, {x}"));
    let d = w.f();
    w.ins(format!("mul.f32 {d}, {t}, {}", fimm(std::f32::consts::LN_2)));
    d
}

/// `ln(1 + x)` as `ln(u) * x / (u - 1)`, `u = 1 + x` (exact as `x -> 0`).
pub fn log1p(w: &mut Regs, x: &str) -> String {
    log1p_ratio(w, x, false)
}

/// [`log1p`]; with `unit`, for `x` in [0, 1] (or NaN) only: `u` is then neither infinite nor
/// zero, and `u - 1` (0, or at least 2^-24) takes `rcp.approx` (1 ulp) and a multiply instead
/// of `div.full`, about ten SASS instructions fewer (and five more than [`log1p_unit`], one of
/// them a `MUFU`).
fn log1p_ratio(w: &mut Regs, x: &str, unit: bool) -> String {
    let u = w.f();
    w.ins(format!("add.f32 {u}, {x}, {}", fimm(1.0)));
    // in [1, 2] for a unit argument: never subnormal
    let lu = log_ftz(w, &u, if unit { ".ftz" } else { "" });
    let um1 = w.f();
    w.ins(format!("sub.f32 {um1}, {u}, {}", fimm(1.0)));
    let q = w.f();
    if unit {
        let inv = w.f();
        w.ins(format!("rcp.approx.ftz.f32 {inv}, {um1}"));
        w.ins(format!("mul.f32 {q}, {x}, {inv}"));
    } else {
        w.ins(format!("div.full.f32 {q}, {x}, {um1}"));
    }
    let r = w.f();
    w.ins(format!("mul.f32 {r}, {lu}, {q}"));
    // u = 1: x is below half an ulp of 1 and log1p(x) = x
    let p = w.p();
    w.ins(format!("setp.eq.f32 {p}, {u}, {}", fimm(1.0)));
    let d = w.f();
    w.ins(format!("selp.f32 {d}, {x}, {r}, {p}"));
    if unit {
        return d;
    }
    // u = inf: the ratio is NaN, the answer inf; u = 0: -inf
    let pi = w.p();
    w.ins(format!("setp.eq.f32 {pi}, {u}, {}", fimm(f32::INFINITY)));
    let d2 = w.f();
    w.ins(format!("selp.f32 {d2}, {}, {d}, {pi}", fimm(f32::INFINITY)));
    let pz = w.p();
    w.ins(format!("setp.eq.f32 {pz}, {u}, {}", fimm(0.0)));
    let d3 = w.f();
    w.ins(format!("selp.f32 {d3}, {}, {d2}, {pz}", fimm(f32::NEG_INFINITY)));
    d3
}

/// `ln(1 + x)` for `x` in [0, 1] (or NaN) only: `u = 1 + x` rounds, and `r = x - (u - 1)` is
/// exactly what it lost (`1 >= x`, so both subtractions are exact), so `1 + x = u + r` and
/// `ln(1 + x) = ln(u) + ln(1 + r/u)`; taking `r` for the second term errs by
/// `|r| (u - 1) / u <= 2^-24 x`, a relative error under 2^-23 (`ln(1 + x) >= x ln 2`). Exact as
/// `x -> 0` (`u = 1`: the answer is `r = x`), no division and no guard: one `lg2.approx`
/// (its argument in [1, 2], so `.ftz` changes nothing), two adds, a subtract and an FMA.
fn log1p_unit(w: &mut Regs, x: &str) -> String {
    let u = w.f();
    w.ins(format!("add.f32 {u}, {x}, {}", fimm(1.0)));
    let t = w.f();
    w.ins(format!("lg2.approx.ftz.f32 {t}, {u}"));
    let um1 = w.f();
    w.ins(format!("sub.f32 {um1}, {u}, {}", fimm(1.0)));
    let r = w.f();
    w.ins(format!("sub.f32 {r}, {x}, {um1}"));
    let d = w.f();
    w.ins(format!("fma.rn.f32 {d}, {t}, {}, {r}", fimm(std::f32::consts::LN_2)));
    d
}

/// `e^x - 1`, a degree-6 Taylor polynomial below `|x| < 0.35`.
pub fn expm1(w: &mut Regs, x: &str) -> String {
    let e = exp(w, x);
    let big = w.f();
    w.ins(format!("sub.f32 {big}, {e}, {}", fimm(1.0)));
    series_below(w, x, x, &[1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0], 0.35, &big)
}

/// `x * p(t)` (the coefficients lowest first) where `|x| < cut`, else `big`: the series that
/// replaces a formula which would cancel near 0.
fn series_below(w: &mut Regs, x: &str, t: &str, coeffs: &[f32], cut: f32, big: &str) -> String {
    let mut acc = fimm(coeffs[coeffs.len() - 1]);
    for &c in coeffs[..coeffs.len() - 1].iter().rev() {
        let n = w.f();
        w.ins(format!("fma.rn.f32 {n}, {acc}, {t}, {}", fimm(c)));
        acc = n;
    }
    let small = w.f();
    w.ins(format!("mul.f32 {small}, {acc}, {x}"));
    let ax = w.f();
    w.ins(format!("abs.f32 {ax}, {x}"));
    let p = w.p();
    w.ins(format!("setp.lt.f32 {p}, {ax}, {}", fimm(cut)));
    let d = w.f();
    w.ins(format!("selp.f32 {d}, {small}, {big}, {p}"));
    d
}

/// `1 / (1 + e^-x)`. The denominator is at least 1, so `rcp.approx.ftz` differs from
/// `rcp.approx` only where the result would be subnormal (x < -87.3): it is 0 there.
pub fn sigmoid(w: &mut Regs, x: &str) -> String {
    let nx = w.f();
    w.ins(format!("neg.f32 {nx}, {x}"));
    let e = exp(w, &nx);
    let den = w.f();
    w.ins(format!("add.f32 {den}, {e}, {}", fimm(1.0)));
    let d = w.f();
    w.ins(format!("rcp.approx.ftz.f32 {d}, {den}"));
    d
}

/// `max(x, 0) + log1p(e^-|x|)` (the log1p of an argument in [0, 1]): [`log1p_unit`], or with
/// `ratio` [`log1p_ratio`] (more instructions, but ptxas's allocation of the f32 warp scan
/// spills less with it).
pub fn softplus(w: &mut Regs, x: &str, ratio: bool) -> String {
    let pos = w.f();
    w.ins(format!("max.NaN.f32 {pos}, {x}, {}", fimm(0.0)));
    let ax = w.f();
    w.ins(format!("abs.f32 {ax}, {x}"));
    let nax = w.f();
    w.ins(format!("neg.f32 {nax}, {ax}"));
    let e = exp(w, &nax);
    let l = if ratio { log1p_ratio(w, &e, true) } else { log1p_unit(w, &e) };
    let d = w.f();
    w.ins(format!("add.f32 {d}, {pos}, {l}"));
    d
}

/// `1 - 2 / (e^{2x} + 1)`, its Taylor series below `|x| < 0.25`.
pub fn tanh(w: &mut Regs, x: &str) -> String {
    let x2 = w.f();
    w.ins(format!("add.f32 {x2}, {x}, {x}"));
    let e = exp(w, &x2);
    let den = w.f();
    w.ins(format!("add.f32 {den}, {e}, {}", fimm(1.0)));
    let q = w.f();
    w.ins(format!("div.full.f32 {q}, {}, {den}", fimm(2.0)));
    let big = w.f();
    w.ins(format!("sub.f32 {big}, {}, {q}", fimm(1.0)));
    let xx = w.f();
    w.ins(format!("mul.f32 {xx}, {x}, {x}"));
    series_below(w, x, &xx, &[1.0, -1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0, 62.0 / 2835.0], 0.25, &big)
}

/// `sin x` or `cos x` (`op` is `"sin"` or `"cos"`): the hardware's `sin.approx` / `cos.approx`
/// (absolute error about 2^-20.9 on [-pi, pi], growing outside it) of `x` reduced to [-pi, pi]
/// first: `r = x - k 2pi`, `k = rint(x / 2pi)`, with `2pi` in two parts (`C1 = 2pi` rounded to
/// f32, `C2` the rest rounded) so that `x - k C1` is exact (both multiples of 2^-21 from
/// `|x| >= 4`, the difference below 8) and `r` errs by rounding once plus `k 6.9e-15`.
pub fn sin_cos(w: &mut Regs, op: &str, x: &str) -> String {
    let t = w.f();
    w.ins(format!("mul.f32 {t}, {x}, {}", fimm(f32::from_bits(0x3E22_F983)))); // 1 / 2pi
    let k = w.f();
    w.ins(format!("cvt.rni.f32.f32 {k}, {t}"));
    let r1 = w.f();
    w.ins(format!("fma.rn.f32 {r1}, {k}, {}, {x}", fimm(-f32::from_bits(0x40C9_0FDB))));
    let r = w.f();
    w.ins(format!("fma.rn.f32 {r}, {k}, {}, {r1}", fimm(-f32::from_bits(0xB43B_BD2E))));
    let d = w.f();
    w.ins(format!("{op}.approx.f32 {d}, {r}"));
    d
}

/// A binary instruction's text.
pub fn binary(op: ssmc_ir::BinaryOp) -> &'static str {
    use ssmc_ir::BinaryOp::*;
    match op {
        Add => "add.f32",
        Sub => "sub.f32",
        Mul => "mul.f32",
        Div => "div.rn.f32",
        Max => "max.NaN.f32",
        Min => "min.NaN.f32",
    }
}

/// A unary function (`ratio`: softplus's log1p in its ratio form, see [`softplus`]).
pub fn unary(w: &mut Regs, op: ssmc_ir::UnaryOp, x: &str, ratio: bool) -> String {
    use ssmc_ir::UnaryOp::*;
    let simple = |w: &mut Regs, i: &str| {
        let d = w.f();
        w.ins(format!("{i} {d}, {x}"));
        d
    };
    match op {
        Neg => simple(w, "neg.f32"),
        Abs => simple(w, "abs.f32"),
        Sqrt => simple(w, "sqrt.rn.f32"),
        Recip => simple(w, "rcp.rn.f32"),
        Rsqrt => {
            let s = simple(w, "sqrt.rn.f32");
            let d = w.f();
            w.ins(format!("rcp.rn.f32 {d}, {s}"));
            d
        }
        Exp => exp(w, x),
        Exp2 => exp2(w, x),
        Log => log(w, x),
        Log1p => log1p(w, x),
        Softplus => softplus(w, x, ratio),
        Sigmoid => sigmoid(w, x),
        Silu => {
            let s = sigmoid(w, x);
            let d = w.f();
            w.ins(format!("mul.f32 {d}, {x}, {s}"));
            d
        }
        Tanh => tanh(w, x),
        Sin => sin_cos(w, "sin", x),
        Cos => sin_cos(w, "cos", x),
        Sign => {
            // +-1 with x's sign; x itself where it is 0 or NaN
            let (one, p, d) = (w.f(), w.p(), w.f());
            w.ins(format!("copysign.f32 {one}, {x}, 0f3F800000"));
            w.ins(format!("setp.equ.f32 {p}, {x}, 0f00000000"));
            w.ins(format!("selp.f32 {d}, {x}, {one}, {p}"));
            d
        }
    }
}


#[cfg(test)]
mod tests {
    /// [`super::log1p_unit`]'s arithmetic in f32 on the host (with `ln` exact, where the GPU's
    /// `lg2.approx` adds its own error): `u + r` is `1 + x` exactly, and `ln(u) + r` is within
    /// 2^-23 of `ln(1 + x)`, relatively, across [0, 1] and near 0.
    #[test]
    fn the_compensated_log1p_keeps_what_1_plus_x_rounds_away() {
        let mut xs: Vec<f32> = (0..=20_000).map(|i| i as f32 / 20_000.0).collect();
        xs.extend((1..150).map(|k| 2f32.powi(-k)));
        xs.extend([1e-30, 3e-8, 5.960_464_5e-8, 1.192_092_9e-7, 0.999_999_9]);
        for x in xs {
            let u = 1.0f32 + x;
            let r = x - (u - 1.0);
            assert_eq!(f64::from(u) + f64::from(r), 1.0 + f64::from(x), "x = {x}");
            let want = f64::from(x).ln_1p();
            let got = f64::from(u).ln() + f64::from(r);
            assert!((got - want).abs() <= 2f64.powi(-23) * want, "x = {x}: {got} against {want}");
        }
    }
}

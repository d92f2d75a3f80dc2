//! Transcendental functions in CLIF, for `f32` and `f32x4` alike: Cranelift has no `exp`,
//! `log` or `sin` instruction, so each is range reduction, a polynomial, and exponent-bit arithmetic.
//!
//! Accuracy, measured against `f64` over a sweep (`tests/math.rs` asserts these bounds):
//! - [`exp2`]: relative error below 3e-7 (1.8e-7 measured over 100,003 points of [-125, 127])
//!   for results in the normal range; `x < -127` gives 0,
//!   `x >= 128` gives infinity, NaN stays NaN.
//! - [`exp2_small`] of a product: the same error (1.8e-7 measured over [-125, 125]) where its
//!   caller checked that the product's magnitude is at most 125.
//! - [`exp`]: Cody-Waite reduction, relative error below 5e-7 (1.9e-7 measured over 100,003
//!   points of [-87, 87]); below -87.3 (results under the smallest normal f32) it gives 0, from
//!   88.38 infinity.
//! - [`log`]: error below `3e-7 * max(1, |ln x|)` for `x` in `[1e-30, 1e30]`; `log 0 = -inf`,
//!   negative or NaN gives NaN, `log inf = inf`. Subnormal inputs are not handled exactly.
//! - [`log1p`]: `log(1 + x) * x / ((1 + x) - 1)`, relative error below 3e-7 for `|x| < 1`.
//! - [`sin`], [`cos`]: absolute error below 1e-7 (6.8e-8 measured over 400,003 points of
//!   [-1e4, 1e4] and the f32 values next to every multiple of pi/2 there; 9.0e-8 over
//!   [1e4, 6.5e6]), and [`sin`]'s relative error below 2e-7 for `|x| < 0.7`; beyond
//!   [`SIN_LIMIT`], at infinity and at NaN, NaN.

use cranelift_codegen::ir::{condcodes::FloatCC, types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// An `f32` constant of type `ty` (`f32` or `f32x4`).
pub fn konst(b: &mut FunctionBuilder, ty: Type, v: f32) -> Value {
    let s = b.ins().f32const(v);
    if ty == types::F32 {
        s
    } else {
        b.ins().splat(ty, s)
    }
}

fn int_ty(ty: Type) -> Type {
    if ty == types::F32 {
        types::I32
    } else {
        types::I32X4
    }
}

fn iconst(b: &mut FunctionBuilder, ty: Type, v: i64) -> Value {
    let it = int_ty(ty);
    if it == types::I32 {
        b.ins().iconst(types::I32, v)
    } else {
        let s = b.ins().iconst(types::I32, v);
        b.ins().splat(it, s)
    }
}

fn to_bits(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    b.ins().bitcast(int_ty(ty), MemFlagsData::new(), x)
}

fn from_bits(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    b.ins().bitcast(ty, MemFlagsData::new(), x)
}

/// `c[0] + x * (c[1] + x * (...))` with fused multiply-adds.
fn horner(b: &mut FunctionBuilder, ty: Type, x: Value, c: &[f32]) -> Value {
    let mut acc = konst(b, ty, c[c.len() - 1]);
    for &ck in c[..c.len() - 1].iter().rev() {
        let k = konst(b, ty, ck);
        acc = b.ins().fma(acc, x, k);
    }
    acc
}

/// `2^x`.
pub fn exp2(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    // clamp with compares: NaN fails both and stays NaN (the polynomial keeps it), and this is
    // two instructions where fmin/fmax's exact NaN and signed-zero rules take several. Both
    // are written `select(a < b, ..)`, the form Cranelift's x86 backend turns into one
    // `maxps` / `minps` (`x > hi` took a compare and a blend)
    let lo = konst(b, ty, -127.0);
    let hi = konst(b, ty, 128.0);
    let below = b.ins().fcmp(FloatCC::LessThan, x, lo);
    let x = select(b, ty, below, lo, x);
    let above = b.ins().fcmp(FloatCC::LessThan, hi, x);
    let x = select(b, ty, above, hi, x);
    // n = round(x) by adding 1.5 * 2^23 + 127: the sum's low mantissa bits hold n + 127 (an
    // integer, rounded to nearest even), and subtracting the constant again gives n as a float.
    // Three instructions where `nearest` and a saturating conversion take eight.
    let magic = konst(b, ty, 12_583_039.0);
    let t = b.ins().fadd(x, magic);
    let n = b.ins().fsub(t, magic);
    let f = b.ins().fsub(x, n);
    let p = exp2_poly(b, ty, f);
    // 2^n by writing n + 127 into the exponent field (n = -127 gives 0, n = 128 gives inf):
    // t's bits are 0x4B40_0000 + n + 127, and shifted left by 23 only the low 9 bits of n + 127
    // (0 to 255) remain, the exponent's bias already added
    let tb = to_bits(b, ty, t);
    let e = b.ins().ishl_imm_u(tb, 23);
    let scale = from_bits(b, ty, e);
    b.ins().fmul(p, scale)
}

/// `2^(p q)` for `|p q| <=` [`EXP2_SMALL`] or NaN, where the caller has checked the range:
/// outside it the result is wrong, not merely inexact. As [`exp2`] of the product, without the
/// clamp, with the product folded into the reduction (`t = p q + magic` and `f = p q - n` are
/// one FMA each: the product is never rounded on its own), and with `2^n` applied by adding `n`
/// to the polynomial's exponent field (an integer add, where [`exp2`] multiplies). `2^f` lies in
/// [0.70, 1.42], its exponent is -1 or 0, so with `|n| <= 125` the sum stays a normal number
/// and is exact. Ten instructions where [`exp2`] and its product take thirteen.
pub fn exp2_small(b: &mut FunctionBuilder, ty: Type, p: Value, q: Value) -> Value {
    // n = round(p q) by adding 1.5 * 2^23 (no bias this time): the sum's bits are
    // 0x4B40_0000 + n, and shifted left by 23 they are n << 23, the high bits shifted out
    let magic = konst(b, ty, 12_582_912.0);
    let t = b.ins().fma(p, q, magic);
    let minus_n = b.ins().fsub(magic, t);
    let f = b.ins().fma(p, q, minus_n);
    let y = exp2_poly(b, ty, f);
    let tb = to_bits(b, ty, t);
    let e = b.ins().ishl_imm_u(tb, 23);
    let yb = to_bits(b, ty, y);
    let sum = b.ins().iadd(yb, e);
    from_bits(b, ty, sum)
}

/// The largest `|p q|` [`exp2_small`] takes.
pub const EXP2_SMALL: f32 = 125.0;

/// `2^f` for `f` in [-0.5, 0.5]: the degree-5 minimax polynomial for relative error (Remez,
/// 7.5e-8 in exact arithmetic, 1.2e-7 with its coefficients in f32, each searched one ulp either
/// way, where rounding them alone gave 1.5e-7; one FMA fewer than the degree-6 Taylor series it
/// replaced).
// the linear coefficient is one f32 ulp under ln 2, not an approximation of it
#[allow(clippy::approx_constant)]
fn exp2_poly(b: &mut FunctionBuilder, ty: Type, f: Value) -> Value {
    horner(b, ty, f, &[1.000_000_1, 0.693_147, 0.240_221_19, 0.055_507_135, 0.009_675_54, 0.001_327_647_1])
}

/// `e^x`, with Cody-Waite range reduction: `x = n ln 2 + r`, `ln 2` split in two so that `r`
/// is exact to f32 rounding, then `e^r` by a polynomial and `2^n` by exponent bits. `n` comes
/// from one FMA: `x log2 e + (1.5 * 2^23 + 127)` rounds `x log2 e` to the nearest integer in its
/// low mantissa bits, with the exponent bias already added, so the sum's bits shifted left by
/// 23 are `2^n` (`n` from -126 to 128, where 128 is infinity: from `x = 88.38`, a little before
/// the f32 overflow at 88.72, the result is infinite). About 14 instructions, where `nearest`,
/// a saturating conversion and `2^n` in two halves took 35.
pub fn exp(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let (y, below) = exp_unflushed(b, ty, x);
    // 0 below the range; NaN stays NaN through the polynomial
    let zero = konst(b, ty, 0.0);
    select(b, ty, below, zero, y)
}

/// [`exp`], where results under the smallest normal f32 may come out as a tiny normal number
/// instead of 0 (for callers that add it to 1 or subtract 1 from it: sigmoid, tanh, expm1; two
/// instructions fewer), and whether `x` was below that range.
fn exp_unflushed(b: &mut FunctionBuilder, ty: Type, x: Value) -> (Value, Value) {
    // below -87.3 the result is under the smallest normal f32 (it flushes to 0); above 89, inf
    let lo = konst(b, ty, -87.3);
    let hi = konst(b, ty, 89.0);
    let below = b.ins().fcmp(FloatCC::LessThan, x, lo);
    let xc = select(b, ty, below, lo, x);
    let above = b.ins().fcmp(FloatCC::LessThan, hi, xc);
    let xc = select(b, ty, above, hi, xc);
    let l2e = konst(b, ty, std::f32::consts::LOG2_E);
    let magic = konst(b, ty, 12_583_039.0);
    let t = b.ins().fma(xc, l2e, magic);
    let n = b.ins().fsub(t, magic);
    let nln2_hi = konst(b, ty, -0.693_145_75);
    let nln2_lo = konst(b, ty, -1.428_606_8e-6);
    let r = b.ins().fma(n, nln2_hi, xc);
    let r = b.ins().fma(n, nln2_lo, r);
    // e^r on [-ln 2 / 2, ln 2 / 2]: the degree-5 minimax polynomial for relative error (Remez,
    // 7.5e-8 in exact arithmetic; with its coefficients rounded to f32 and then searched one
    // ulp either way, 1.2e-7). Two FMAs fewer than the degree-7 Taylor series it replaced, in
    // the softplus and the gate of a seq chunk's first and third passes: 41.1 to 39.4 ms at
    // (1, 1536, 2048, 16) on one thread, for a sweep's error of 1.9e-7 where the series had
    // 7.3e-8 (2.2e-7 with `exp2`'s polynomial rescaled, before this fit)
    let p = horner(b, ty, r, &[1.000_000_1, 0.999_999_76, 0.499_988_9, 0.166_675_73, 0.041_915_38, 0.008_297_654]);
    let tb = to_bits(b, ty, t);
    let e = b.ins().ishl_imm_u(tb, 23);
    let scale = from_bits(b, ty, e);
    (b.ins().fmul(p, scale), below)
}

/// `e^x - 1`, accurate near 0 (Taylor to degree 6 below `|x| < 0.35`, where `e^x - 1` would
/// cancel).
pub fn expm1(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let (e, _) = exp_unflushed(b, ty, x);
    let one = konst(b, ty, 1.0);
    let big = b.ins().fsub(e, one);
    series_below(b, ty, x, x, &[1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0], 0.35, big)
}

/// `x * p(t)` (the coefficients lowest first) where `|x| < cut`, else `big`: the series that
/// replaces a formula which would cancel near 0.
#[allow(clippy::too_many_arguments)]
fn series_below(b: &mut FunctionBuilder, ty: Type, x: Value, t: Value, coeffs: &[f32], cut: f32, big: Value) -> Value {
    let p = horner(b, ty, t, coeffs);
    let small = b.ins().fmul(p, x);
    let ax = b.ins().fabs(x);
    let th = konst(b, ty, cut);
    let is_small = b.ins().fcmp(FloatCC::LessThan, ax, th);
    select(b, ty, is_small, small, big)
}

/// `cond ? x : y` for a comparison result of `fcmp` on `ty`.
pub fn select(b: &mut FunctionBuilder, ty: Type, cond: Value, x: Value, y: Value) -> Value {
    if ty == types::F32 {
        b.ins().select(cond, x, y)
    } else {
        let mask = b.ins().bitcast(types::F32X4, MemFlagsData::new(), cond);
        b.ins().bitselect(mask, x, y)
    }
}

/// Natural logarithm.
pub fn log(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let bits = to_bits(b, ty, x);
    // exponent and mantissa in [1, 2)
    let e = b.ins().ushr_imm_u(bits, 23);
    let ff = iconst(b, ty, 0xff);
    let e = b.ins().band(e, ff);
    let bias = iconst(b, ty, 127);
    let e = b.ins().isub(e, bias);
    let mant_mask = iconst(b, ty, 0x007f_ffff);
    let one_bits = iconst(b, ty, 0x3f80_0000);
    let m = b.ins().band(bits, mant_mask);
    let m = b.ins().bor(m, one_bits);
    let m = from_bits(b, ty, m);
    let mut ef = b.ins().fcvt_from_sint(ty, e);
    // fold m into [sqrt(1/2), sqrt(2)): m > sqrt 2 -> m / 2, e + 1
    let sqrt2 = konst(b, ty, std::f32::consts::SQRT_2);
    let big = b.ins().fcmp(FloatCC::GreaterThan, m, sqrt2);
    let half = konst(b, ty, 0.5);
    let m_half = b.ins().fmul(m, half);
    let m = select(b, ty, big, m_half, m);
    let one = konst(b, ty, 1.0);
    let ef1 = b.ins().fadd(ef, one);
    ef = select(b, ty, big, ef1, ef);
    // log m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172
    let num = b.ins().fsub(m, one);
    let den = b.ins().fadd(m, one);
    let t = b.ins().fdiv(num, den);
    let t2 = b.ins().fmul(t, t);
    let p = horner(b, ty, t2, &[2.0, 2.0 / 3.0, 2.0 / 5.0, 2.0 / 7.0, 2.0 / 9.0]);
    let lm = b.ins().fmul(p, t);
    // e ln 2 + log m, with ln 2 split in two (e ln 2 is exact in the high part)
    let ln2_hi = konst(b, ty, 0.693_145_75);
    let ln2_lo = konst(b, ty, 1.428_606_8e-6);
    let lo_part = b.ins().fma(ef, ln2_lo, lm);
    let r = b.ins().fma(ef, ln2_hi, lo_part);
    // special values
    let zero = konst(b, ty, 0.0);
    let inf = konst(b, ty, f32::INFINITY);
    let ninf = konst(b, ty, f32::NEG_INFINITY);
    let nan = konst(b, ty, f32::NAN);
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let r = select(b, ty, is_zero, ninf, r);
    let is_inf = b.ins().fcmp(FloatCC::Equal, x, inf);
    let r = select(b, ty, is_inf, inf, r);
    let bad = b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero);
    select(b, ty, bad, nan, r)
}

/// `ln(1 + x)`, accurate for small `x`.
pub fn log1p(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let one = konst(b, ty, 1.0);
    let u = b.ins().fadd(one, x);
    let lu = log(b, ty, u);
    let d = b.ins().fsub(u, one);
    let ratio = b.ins().fdiv(x, d);
    let r = b.ins().fmul(lu, ratio);
    let exact = b.ins().fcmp(FloatCC::Equal, u, one);
    let r = select(b, ty, exact, x, r);
    let inf = konst(b, ty, f32::INFINITY);
    let ninf = konst(b, ty, f32::NEG_INFINITY);
    let zero = konst(b, ty, 0.0);
    let is_inf = b.ins().fcmp(FloatCC::Equal, u, inf);
    let r = select(b, ty, is_inf, inf, r);
    let is_zero = b.ins().fcmp(FloatCC::Equal, u, zero);
    select(b, ty, is_zero, ninf, r)
}

/// `max(x, 0) + log1p(exp(-|x|))`: never overflows. The `max` is written
/// `select(x < 0, 0, x)`, one `maxps` (NaN stays NaN, and the sum is NaN anyway), and the log1p
/// of an argument in [0, 1] is [`log1p_unit`].
pub fn softplus(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let zero = konst(b, ty, 0.0);
    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let pos = select(b, ty, neg, zero, x);
    // -|x|: the sign bit set, one `or` with a constant (`fabs` then `fneg` each build their
    // mask in two instructions on x86 and apply it in a third)
    let sign = konst(b, ty, -0.0);
    let nax = b.ins().bor(x, sign);
    let e = exp(b, ty, nax);
    let l = log1p_unit(b, ty, e);
    b.ins().fadd(pos, l)
}

/// `ln(1 + x)` for `x` in [0, 1] (or NaN): `2 atanh(t)`, `t = x / (2 + x)` in [0, 1/3], by its
/// odd series to `t^13` (the next term is below 1.5e-8 relative). One division and no special
/// cases, where [`log1p`] takes two divisions and the general `log`.
fn log1p_unit(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let two = konst(b, ty, 2.0);
    let d = b.ins().fadd(two, x);
    let t = b.ins().fdiv(x, d);
    let t2 = b.ins().fmul(t, t);
    let p = horner(b, ty, t2, &[2.0, 2.0 / 3.0, 2.0 / 5.0, 2.0 / 7.0, 2.0 / 9.0, 2.0 / 11.0, 2.0 / 13.0]);
    b.ins().fmul(p, t)
}

/// `1 / (1 + e^-x)`.
pub fn sigmoid(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    // the sign bit flipped by an `xor` with a constant, as in `softplus`
    let sign = konst(b, ty, -0.0);
    let nx = b.ins().bxor(x, sign);
    let (e, _) = exp_unflushed(b, ty, nx);
    let one = konst(b, ty, 1.0);
    let d = b.ins().fadd(one, e);
    b.ins().fdiv(one, d)
}

/// `1 - 2 / (e^{2x} + 1)`, or its odd Taylor series below `|x| < 0.25` (where the formula
/// cancels).
pub fn tanh(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let two = konst(b, ty, 2.0);
    let x2 = b.ins().fmul(x, two);
    let (e, _) = exp_unflushed(b, ty, x2);
    let one = konst(b, ty, 1.0);
    let d = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, d);
    let big = b.ins().fsub(one, q);
    let xx = b.ins().fmul(x, x);
    series_below(b, ty, x, xx, &[1.0, -1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0, 62.0 / 2835.0], 0.25, big)
}

/// `sin x`: `sin_quadrant(x, 0)`.
pub fn sin(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    sin_quadrant(b, ty, x, 0)
}

/// `cos x = sin(x + pi/2)`: `sin_quadrant(x, 1)`.
pub fn cos(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    sin_quadrant(b, ty, x, 1)
}

/// The largest `|x|` [`sin`] and [`cos`] reduce exactly (`j = round(x 2/pi)` below 2^22, so
/// that the rounding trick below holds it); beyond it they give NaN rather than a wrong number.
pub const SIN_LIMIT: f32 = 6.5e6;

/// `pi/2` in three parts, `PIO2[0] + PIO2[1] + PIO2[2]` within 1.1e-23 of it: the first is
/// `pi/2` rounded to f32, each next one what the parts before leave, rounded to f32.
const PIO2: [u32; 3] = [0x3FC9_0FDB, 0xB33B_BD2E, 0xA6F7_2CED];

/// `sin(x + k pi/2)` (`k` 0 or 1), by Cody-Waite reduction: `x = j pi/2 + r` with `j` the
/// nearest integer to `x 2/pi` and `|r| <= pi/4` (a little more: `2/pi` in f32 is off by 4e-9
/// relatively, so `j` may be off by one for `x` within `|x| 4e-9` of a half-integer multiple of
/// `pi/2`, and `|r|` stays below 0.82 under [`SIN_LIMIT`]). `r` is exact to rounding: the first
/// FMA `x - j PIO2[0]` is exact (for `j != 0` both terms are multiples of 2^-24, of 2^-23 from
/// `|x| >= 1`, and the difference is below 1, below 2 from `|x| >= 1`), the next two subtract
/// the rest of `j pi/2`, rounding once each. Then `sin(x + k pi/2)` is `+-sin r` or
/// `+-cos r` by the quadrant `n = j + k`: odd `n` takes `cos r`, `n mod 4` of 2 or 3 flips the
/// sign, done on the bits. `sin r` and `cos r` are their Taylor series to degree 9 and 10, whose
/// first omitted terms are below 3e-9 and 2e-10 on `|r| <= 0.82`. About 25 instructions.
fn sin_quadrant(b: &mut FunctionBuilder, ty: Type, x: Value, k: i64) -> Value {
    // j = round(x 2/pi) by adding 1.5 * 2^23 (as in `exp2_small`): the sum's bits are
    // 0x4B40_0000 + j, whose low two bits are j mod 4 (0x4B40_0000 is a multiple of 4)
    let magic = konst(b, ty, 12_582_912.0);
    let two_over_pi = konst(b, ty, std::f32::consts::FRAC_2_PI);
    let t = b.ins().fma(x, two_over_pi, magic);
    let j = b.ins().fsub(t, magic);
    let nj = b.ins().fneg(j);
    let mut r = x;
    for part in PIO2 {
        let c = konst(b, ty, f32::from_bits(part));
        r = b.ins().fma(nj, c, r);
    }
    let z = b.ins().fmul(r, r);
    // sin r = r + r^3 P(z), cos r = 1 + z Q(z): the small terms added last
    let p = horner(b, ty, z, &[-1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362_880.0]);
    let r3 = b.ins().fmul(r, z);
    let sin_r = b.ins().fma(r3, p, r);
    let q = horner(b, ty, z, &[-0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40_320.0, -1.0 / 3_628_800.0]);
    let one = konst(b, ty, 1.0);
    let cos_r = b.ins().fma(z, q, one);
    // the quadrant n = j + k: bit 0 picks cos r, bit 1 is the sign
    let mut n = to_bits(b, ty, t);
    if k != 0 {
        let kk = iconst(b, ty, k);
        n = b.ins().iadd(n, kk);
    }
    let odd = b.ins().ishl_imm_u(n, 31);
    let odd = b.ins().sshr_imm_u(odd, 31);
    let sb = to_bits(b, ty, sin_r);
    let cb = to_bits(b, ty, cos_r);
    let v = b.ins().bitselect(odd, cb, sb);
    let sign = b.ins().ishl_imm_u(n, 30);
    let sign_bit = iconst(b, ty, i64::from(i32::MIN));
    let sign = b.ins().band(sign, sign_bit);
    let v = b.ins().bxor(v, sign);
    let y = from_bits(b, ty, v);
    // NaN and infinities are NaN already (r is); beyond the exact reduction, NaN
    let ax = b.ins().fabs(x);
    let limit = konst(b, ty, SIN_LIMIT);
    let far = b.ins().fcmp(FloatCC::GreaterThan, ax, limit);
    let nan = konst(b, ty, f32::NAN);
    select(b, ty, far, nan, y)
}

/// `-1`, `0` or `1` by the sign of `x`; `x` itself where it is 0 or NaN. (Cranelift has no
/// `fcopysign` of vectors on x86-64: the sign bit is moved by integer ops.)
pub fn sign(b: &mut FunctionBuilder, ty: Type, x: Value) -> Value {
    let sign_bit = iconst(b, ty, i64::from(i32::MIN));
    let bits = to_bits(b, ty, x);
    let s = b.ins().band(bits, sign_bit);
    let one = konst(b, ty, 1.0);
    let one = to_bits(b, ty, one);
    let signed_one = b.ins().bor(s, one);
    let signed_one = from_bits(b, ty, signed_one);
    let zero = konst(b, ty, 0.0);
    // (x86-64 compares vectors for `eq` and `unord`, not for their union)
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let is_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
    let keep = b.ins().bor(is_zero, is_nan);
    select(b, ty, keep, x, signed_one)
}

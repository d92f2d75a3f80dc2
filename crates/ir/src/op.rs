//! The operations of the IR and their scalar semantics in `f64`.
//!
//! The scalar functions here are the definitions every backend must agree with; the oracle in
//! [`crate::interp`] applies them over tensors.
//!
//! Unary and binary ops are each declared once, in a table (the `unary_ops!` and `binary_ops!`
//! invocations below): a row gives the variant, its DSL name and the facts later stages read
//! from it (the random generator's [`Domain`], the optimizer's rough arithmetic cost). Everything
//! that lists ops (the optimizer's e-graph language and fusion laws, the DSL's names, the
//! printer) derives from [`UnaryOp::ALL`] and [`BinaryOp::ALL`]; a new op then needs its row, its
//! `eval` arm here (the oracle) and its lowering in each backend.

use crate::dim::{DimId, Shape};
use crate::dtype::DType;
use crate::graph::NodeId;
use std::fmt;
use std::str::FromStr;

/// Which arguments a unary op is fit to be tested on: what [`crate::gen`] draws ops by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// Every real number (the result may overflow).
    All,
    /// Part of the line: `log` of a negative number or `recip` of 0 leaves the reals.
    Partial,
    /// Every real number, but well conditioned in `f32` only for small arguments: `sin` of an
    /// argument `x` rounded to `f32` is off by up to `|x| 2^-24`, which chains of random ops
    /// (exponentials, scans) make arbitrarily large.
    Small,
    /// Every real number, but the function jumps (at 0): an `f32` argument that rounds across
    /// the jump gives a different value from the oracle's.
    Jump,
}

/// Declares [`UnaryOp`] from one table: `Variant = "dsl name", domain, arithmetic cost;` per op,
/// each after its doc comment. The order of the rows is [`UnaryOp::ALL`]'s and the derived
/// `Ord`'s (which the optimizer's e-graph orders nodes by): new ops go at the end.
macro_rules! unary_ops {
    ($($(#[doc = $doc:literal])+ $op:ident = $name:literal, $domain:ident, $flops:literal;)+) => {
        /// Elementwise functions of one argument.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum UnaryOp {
            $($(#[doc = $doc])+ $op,)+
        }

        impl UnaryOp {
            /// Every unary op, in a stable order (the table's).
            pub const ALL: [UnaryOp; [$($name),+].len()] = [$(UnaryOp::$op),+];

            /// The function's name in the DSL.
            pub fn name(self) -> &'static str {
                match self {
                    $(UnaryOp::$op => $name,)+
                }
            }

            /// Where the op is fit to be tested (see [`Domain`]).
            pub fn domain(self) -> Domain {
                match self {
                    $(UnaryOp::$op => Domain::$domain,)+
                }
            }

            /// Arithmetic per element, roughly (the optimizer's tie-breaker between terms that
            /// move the same bytes).
            pub fn flops(self) -> f64 {
                match self {
                    $(UnaryOp::$op => $flops,)+
                }
            }
        }
    };
}

unary_ops! {
    /// `-x`
    Neg = "neg", All, 1.0;
    /// `e^x`
    Exp = "exp", All, 8.0;
    /// `2^x`
    Exp2 = "exp2", All, 6.0;
    /// natural logarithm
    Log = "log", Partial, 8.0;
    /// `ln(1 + x)`
    Log1p = "log1p", Partial, 8.0;
    /// `ln(1 + e^x)`, computed stably for large `|x|`
    Softplus = "softplus", All, 12.0;
    /// `1 / (1 + e^-x)`
    Sigmoid = "sigmoid", All, 10.0;
    /// `x * sigmoid(x)`
    Silu = "silu", All, 11.0;
    /// hyperbolic tangent
    Tanh = "tanh", All, 10.0;
    /// square root
    Sqrt = "sqrt", Partial, 4.0;
    /// `1 / sqrt(x)`
    Rsqrt = "rsqrt", Partial, 4.0;
    /// `1 / x`
    Recip = "recip", Partial, 4.0;
    /// `|x|`
    Abs = "abs", All, 1.0;
    /// sine (radians)
    Sin = "sin", Small, 12.0;
    /// cosine (radians)
    Cos = "cos", Small, 12.0;
    /// `-1`, `0` or `1` by the sign of `x` (the derivative of `abs`)
    Sign = "sign", Jump, 2.0;
}

impl UnaryOp {
    /// Looks a function up by its DSL name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == s)
    }

    /// The exact value in `f64`.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Exp2 => x.exp2(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Log1p => x.ln_1p(),
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Silu => x * sigmoid(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            // NaN stays NaN, and 0 stays 0
            UnaryOp::Sign if x == 0.0 || x.is_nan() => x,
            UnaryOp::Sign => x.signum(),
        }
    }
}

/// The DSL name (`exp`).
impl fmt::Display for UnaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A DSL name; any other word is an error.
impl FromStr for UnaryOp {
    type Err = UnknownOp;
    fn from_str(s: &str) -> Result<Self, UnknownOp> {
        Self::from_name(s).ok_or(UnknownOp)
    }
}

/// `ln(1 + e^x)` as `max(x, 0) + ln(1 + e^-|x|)`: never overflows, exact to rounding.
pub fn softplus(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1 / (1 + e^-x)`, evaluated on the side that does not overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `Some(x)` for a table's optional column, `None` where the row leaves it out.
macro_rules! optional {
    () => {
        None
    };
    ($x:expr) => {
        Some($x)
    };
}

/// Declares [`BinaryOp`] from one table: `Variant = "dsl name" (infix symbol, precedence)?,
/// arithmetic cost;` per op, each after its doc comment; as for unary ops, new rows go last.
macro_rules! binary_ops {
    ($($(#[doc = $doc:literal])+ $op:ident = $name:literal $(infix $sym:literal at $prec:literal)?, $flops:literal;)+) => {
        /// Elementwise functions of two arguments (broadcast by dimension name).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum BinaryOp {
            $($(#[doc = $doc])+ $op,)+
        }

        impl BinaryOp {
            /// Every binary op, in a stable order (the table's).
            pub const ALL: [BinaryOp; [$($name),+].len()] = [$(BinaryOp::$op),+];

            /// The function's name in the DSL (`+ - * /` are also written infix).
            pub fn name(self) -> &'static str {
                match self {
                    $(BinaryOp::$op => $name,)+
                }
            }

            /// The infix symbol, for the ops that have one.
            pub fn symbol(self) -> Option<&'static str> {
                match self {
                    $(BinaryOp::$op => optional!($($sym)?),)+
                }
            }

            /// How tightly the infix form binds (`*` 2 over `+` 1), for the ops that have one.
            pub fn precedence(self) -> Option<u8> {
                match self {
                    $(BinaryOp::$op => optional!($($prec)?),)+
                }
            }

            /// Arithmetic per element, roughly (as [`UnaryOp::flops`]).
            pub fn flops(self) -> f64 {
                match self {
                    $(BinaryOp::$op => $flops,)+
                }
            }
        }
    };
}

binary_ops! {
    /// `a + b`
    Add = "add" infix "+" at 1, 1.0;
    /// `a - b`
    Sub = "sub" infix "-" at 1, 1.0;
    /// `a * b`
    Mul = "mul" infix "*" at 2, 1.0;
    /// `a / b`
    Div = "div" infix "/" at 2, 4.0;
    /// larger of the two (NaN if either is NaN)
    Max = "max", 1.0;
    /// smaller of the two (NaN if either is NaN)
    Min = "min", 1.0;
}

impl BinaryOp {
    /// Looks a function up by its DSL name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == s)
    }

    /// The exact value in `f64`.
    pub fn eval(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max if a.is_nan() || b.is_nan() => f64::NAN,
            BinaryOp::Min if a.is_nan() || b.is_nan() => f64::NAN,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
        }
    }
}

/// As the DSL writes the op: its infix symbol where it has one (`+`), else its name (`max`).
impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol().unwrap_or(self.name()))
    }
}

/// What [`BinaryOp`]'s `Display` writes (`+`, `max`); anything else, `add` included, is an error.
impl FromStr for BinaryOp {
    type Err = UnknownOp;
    fn from_str(s: &str) -> Result<Self, UnknownOp> {
        Self::ALL.into_iter().find(|op| op.symbol().unwrap_or(op.name()) == s).ok_or(UnknownOp)
    }
}

/// A word that names no op of the kind asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownOp;

impl fmt::Display for UnknownOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown op")
    }
}

impl std::error::Error for UnknownOp {}

/// How a continuous system `h' = A h + B x` becomes the recurrence `h = Abar h + Bbar x` for a
/// step `dt`. Mamba uses [`Method::Zoh`] for `A` and [`Method::Euler`] for `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Zero-order hold: `Abar = exp(dt A)`, `Bbar = (exp(dt A) - 1) / A * B` (`dt B` when `A = 0`).
    Zoh,
    /// Forward Euler: `Abar = 1 + dt A`, `Bbar = dt B`.
    Euler,
    /// Bilinear (Tustin): `Abar = (1 + dt A / 2) / (1 - dt A / 2)`, `Bbar = dt B / (1 - dt A / 2)`.
    Bilinear,
}

impl Method {
    /// Every method, in a stable order.
    pub const ALL: [Method; 3] = [Method::Zoh, Method::Euler, Method::Bilinear];

    /// The method's name in the DSL.
    pub fn name(self) -> &'static str {
        match self {
            Method::Zoh => "zoh",
            Method::Euler => "euler",
            Method::Bilinear => "bilinear",
        }
    }

    /// Looks a method up by its DSL name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// `Abar` for step `dt` and diagonal entry `a`.
    pub fn abar(self, dt: f64, a: f64) -> f64 {
        match self {
            Method::Zoh => (dt * a).exp(),
            Method::Euler => 1.0 + dt * a,
            Method::Bilinear => (1.0 + 0.5 * dt * a) / (1.0 - 0.5 * dt * a),
        }
    }

    /// `Bbar` for step `dt`, diagonal entry `a` and input matrix entry `b`.
    pub fn bbar(self, dt: f64, a: f64, b: f64) -> f64 {
        match self {
            Method::Zoh => {
                let x = dt * a;
                // (e^x - 1) / a = dt * expm1(x) / x, which tends to dt as x -> 0.
                let phi = if x == 0.0 { 1.0 } else { x.exp_m1() / x };
                dt * phi * b
            }
            Method::Euler => dt * b,
            Method::Bilinear => dt * b / (1.0 - 0.5 * dt * a),
        }
    }
}

/// The activation a [`Op::Gate`] applies to its gate operand: `out = x * act(z)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateKind {
    /// `x * silu(z)`, as in Mamba.
    Silu,
    /// `x * sigmoid(z)`.
    Sigmoid,
}

impl GateKind {
    /// Every gate kind, in a stable order.
    pub const ALL: [GateKind; 2] = [GateKind::Silu, GateKind::Sigmoid];

    /// The kind's name in the DSL.
    pub fn name(self) -> &'static str {
        match self {
            GateKind::Silu => "silu",
            GateKind::Sigmoid => "sigmoid",
        }
    }

    /// Looks a kind up by its DSL name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }

    /// `x * act(z)` in `f64`.
    pub fn eval(self, x: f64, z: f64) -> f64 {
        match self {
            GateKind::Silu => x * z * sigmoid(z),
            GateKind::Sigmoid => x * sigmoid(z),
        }
    }
}

/// Whether a declared tensor is an activation (`input`) or a weight (`param`). Both are supplied
/// at run time; the distinction is for readers and for later stages (gradients, weight loading).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// An activation, different for every call.
    Input,
    /// A weight of the layer.
    Param,
}

impl InputKind {
    /// The DSL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            InputKind::Input => "input",
            InputKind::Param => "param",
        }
    }
}

/// A tensor the caller supplies.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    /// Name, unique within the graph.
    pub name: String,
    /// Activation or weight.
    pub kind: InputKind,
    /// The layout the caller stores it in (outermost dim first).
    pub layout: Shape,
    /// A required storage dtype, if the spec pins one; otherwise any dtype is accepted.
    pub dtype: Option<DType>,
    /// The range `--random` draws this tensor from (default `-1..1`).
    pub range: Option<(f64, f64)>,
}

/// One operation. Operands are earlier nodes of the same graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A tensor supplied by the caller.
    Input(InputDecl),
    /// A scalar constant.
    Const(f64),
    /// An elementwise function.
    Unary(UnaryOp, NodeId),
    /// An elementwise function of two operands, broadcast by dim name.
    Binary(BinaryOp, NodeId, NodeId),
    /// Sum over one dim.
    Sum {
        /// The summand.
        x: NodeId,
        /// The dim summed away.
        dim: DimId,
    },
    /// `Abar` of a discretization (see [`Method`]).
    DiscretizeA {
        /// The rule.
        method: Method,
        /// The step.
        dt: NodeId,
        /// The continuous `A`.
        a: NodeId,
    },
    /// `Bbar` of a discretization (see [`Method`]); `a` is read by `zoh` and `bilinear`.
    DiscretizeB {
        /// The rule.
        method: Method,
        /// The step.
        dt: NodeId,
        /// The continuous `A`.
        a: NodeId,
        /// The continuous `B`.
        b: NodeId,
    },
    /// The linear recurrence `h[i] = a[i] * h[i-1] + b[i]` along `dim` (from the end when
    /// `reverse`), starting from `init` (zero if absent). The result holds every `h[i]`.
    Scan {
        /// The multiplier.
        a: NodeId,
        /// The addend.
        b: NodeId,
        /// The dim scanned along.
        dim: DimId,
        /// Scan from the last index to the first.
        reverse: bool,
        /// The state before the first step.
        init: Option<NodeId>,
    },
    /// The state after the last step of a [`Op::Scan`] node: its shape without the scanned dim.
    ScanFinal(NodeId),
    /// `x * act(z)`.
    Gate {
        /// The activation applied to `z`.
        kind: GateKind,
        /// The gated value.
        x: NodeId,
        /// The gate.
        z: NodeId,
    },
    /// Causal depthwise convolution along `dim`:
    /// `out[.., i] = bias + sum_j weight[.., j] * x[.., i - (k-1) + j]`, with `x` zero before 0.
    /// The tap dim (width `k`) is the one dim of `weight` that `x` lacks. `reverse` mirrors it
    /// (`x[.., i + (k-1) - j]`, zero past the end): the transpose a causal conv's gradient needs.
    Conv1d {
        /// The signal.
        x: NodeId,
        /// Per-channel taps.
        weight: NodeId,
        /// Optional per-channel bias.
        bias: Option<NodeId>,
        /// The dim convolved along.
        dim: DimId,
        /// Look ahead instead of back.
        reverse: bool,
    },
    /// The value one step earlier along `dim`: `out[i] = x[i-1]`, and `fill` (or 0) at `i = 0`;
    /// with `reverse`, one step later (`x[i+1]`, `fill` at the last step), as a reverse scan
    /// sees it. `fill` ranges over `x`'s dims except `dim`.
    Shift {
        /// The shifted value.
        x: NodeId,
        /// The dim shifted along.
        dim: DimId,
        /// The value at the first step (0 if absent).
        fill: Option<NodeId>,
        /// Shift towards the start.
        reverse: bool,
    },
    /// The windows a conv1d reads: `out[.., i, j] = x[.., i - (k-1) + j]` (0 before the
    /// start) for `j` along `taps` (width `k`); `reverse` mirrors it (`x[.., i + (k-1) - j]`,
    /// 0 past the end). Where `x` ranges over `taps` too, tap `j` reads its own lane,
    /// `x[.., i - (k-1) + j, j]` (the window's adjoint). `sum(window(x, dim, taps) * w, taps)`
    /// is `conv1d(x, w, dim)`, and the gradient of a conv's weights sums a window times the
    /// output's gradient.
    Window {
        /// The signal.
        x: NodeId,
        /// The dim the window slides along.
        dim: DimId,
        /// The dim of the window's taps.
        taps: DimId,
        /// Look ahead instead of back.
        reverse: bool,
    },
    /// `x` repeated along `dims` (which it lacks): a gradient that must range over every dim
    /// of its input.
    Broadcast {
        /// The value.
        x: NodeId,
        /// The dims added.
        dims: Shape,
    },
}

impl Op {
    /// The operand nodes, in the order the DSL writes (and lowers) them.
    pub fn operands(&self) -> Vec<NodeId> {
        match self {
            Op::Input(_) | Op::Const(_) => vec![],
            Op::Unary(_, x) | Op::Sum { x, .. } | Op::ScanFinal(x) | Op::Window { x, .. } | Op::Broadcast { x, .. } => {
                vec![*x]
            }
            Op::Shift { x, fill, .. } => {
                let mut v = vec![*x];
                v.extend(fill);
                v
            }
            Op::Binary(_, a, b) => vec![*a, *b],
            Op::DiscretizeA { dt, a, .. } => vec![*dt, *a],
            Op::DiscretizeB { dt, a, b, .. } => vec![*dt, *a, *b],
            Op::Scan { a, b, init, .. } => {
                let mut v = vec![*a, *b];
                v.extend(init);
                v
            }
            Op::Gate { x, z, .. } => vec![*x, *z],
            Op::Conv1d { x, weight, bias, .. } => {
                let mut v = vec![*x, *weight];
                v.extend(bias);
                v
            }
        }
    }

    /// Whether the op is pointwise: each output element depends only on the operand elements at
    /// the same (broadcast) index.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Const(_)
                | Op::Unary(..)
                | Op::Binary(..)
                | Op::DiscretizeA { .. }
                | Op::DiscretizeB { .. }
                | Op::Gate { .. }
                | Op::Broadcast { .. }
        )
    }

    /// A short name for messages (`add`, `scan`, `input`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input(d) => d.kind.keyword(),
            Op::Const(_) => "const",
            Op::Unary(u, _) => u.name(),
            Op::Binary(b, ..) => b.name(),
            Op::Sum { .. } => "sum",
            Op::DiscretizeA { .. } => "discretize_a",
            Op::DiscretizeB { .. } => "discretize_b",
            Op::Scan { .. } => "scan",
            Op::ScanFinal(_) => "final_state",
            Op::Gate { .. } => "gate",
            Op::Conv1d { .. } => "conv1d",
            Op::Shift { .. } => "shift",
            Op::Window { .. } => "window",
            Op::Broadcast { .. } => "broadcast",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_is_stable_at_both_ends() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-300);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn sigmoid_is_stable_at_both_ends() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(0.0), 0.5);
    }

    #[test]
    fn zoh_b_tends_to_euler_as_a_vanishes() {
        let (dt, b) = (0.3, 2.0);
        assert_eq!(Method::Zoh.bbar(dt, 0.0, b), dt * b);
        assert!((Method::Zoh.bbar(dt, 1e-12, b) - dt * b).abs() < 1e-12);
        // (e^{dt a} - 1)/a * b at a = -1
        let exact = ((-dt).exp() - 1.0) / -1.0 * b;
        assert!((Method::Zoh.bbar(dt, -1.0, b) - exact).abs() < 1e-15);
    }

    #[test]
    fn names_round_trip() {
        for u in UnaryOp::ALL {
            assert_eq!(UnaryOp::from_name(u.name()), Some(u));
        }
        for b in BinaryOp::ALL {
            assert_eq!(BinaryOp::from_name(b.name()), Some(b));
        }
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        for g in GateKind::ALL {
            assert_eq!(GateKind::from_name(g.name()), Some(g));
        }
    }

    #[test]
    fn display_and_from_str_round_trip_and_accept_nothing_else() {
        for u in UnaryOp::ALL {
            assert_eq!(u.to_string().parse(), Ok(u));
        }
        for b in BinaryOp::ALL {
            assert_eq!(b.to_string().parse(), Ok(b));
        }
        assert_eq!(BinaryOp::Add.to_string(), "+");
        assert_eq!(BinaryOp::Max.to_string(), "max");
        for word in ["add", "mat", "sum", "1.0", "-1", "silu2", ""] {
            assert_eq!(word.parse::<BinaryOp>(), Err(UnknownOp), "{word}");
        }
        for word in ["+", "max", "mat", "final", "1.0", ""] {
            assert_eq!(word.parse::<UnaryOp>(), Err(UnknownOp), "{word}");
        }
    }

    #[test]
    fn max_and_min_propagate_nan() {
        assert!(BinaryOp::Max.eval(f64::NAN, 1.0).is_nan());
        assert!(BinaryOp::Min.eval(1.0, f64::NAN).is_nan());
    }
}

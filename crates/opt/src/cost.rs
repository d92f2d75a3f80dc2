//! The cost model: bytes moved through memory plus a launch cost per kernel, with arithmetic as a
//! tie-breaker. [`TermCost`] guides extraction term by term; [`crate::plan::Plan::bytes`] is the
//! exact count of the chosen plan.
//!
//! Extraction's cost is an estimate, in three ways: it is a tree cost ([`crate::extract`]), so a
//! value used twice counts twice (an input read by two ops counts its bytes twice, though the
//! plan reads it once); an op's arithmetic counts at the op's own shape, not at the kernel's
//! iteration space it lands in; and whether a kernel fits the row template the backends lower is
//! checked only after extraction, when [`crate::plan::Plan::build`] splits one that does not
//! (with a note). What `explain` reports as bytes and cost is the plan's exact count.

use crate::analysis::{Facts, SsmAnalysis};
use crate::lang::{tag_input, Ssm};
use egg::{CostFunction, EGraph, Id, Language};
use ssmc_ir::{DType, Graph, Shape};

/// The sizes and weights costs are computed with.
#[derive(Clone, Debug)]
pub struct CostModel {
    /// The extent of every dim.
    pub sizes: Vec<usize>,
    /// The storage dtype of every input (by input order); intermediates and outputs are `f32`.
    pub input_dtypes: Vec<(String, DType)>,
    /// What one kernel launch costs, in bytes-equivalent.
    pub launch_bytes: f64,
    /// What one arithmetic operation costs, in bytes-equivalent (a tie-breaker).
    pub flop_bytes: f64,
}

/// A kernel launch is worth this many bytes of traffic (a few microseconds of bandwidth).
pub const LAUNCH_BYTES: f64 = 65536.0;

impl CostModel {
    /// Costs for `graph` at `sizes`, every input stored as `dtype`.
    pub fn new(graph: &Graph, sizes: Vec<usize>, dtype: DType) -> Self {
        let input_dtypes = graph.inputs().map(|(_, d)| (d.name.clone(), d.dtype.unwrap_or(dtype))).collect();
        CostModel { sizes, input_dtypes, launch_bytes: LAUNCH_BYTES, flop_bytes: 0.25 }
    }

    /// Elements of a tensor of `shape`.
    pub fn elements(&self, shape: &Shape) -> f64 {
        shape.dims().iter().map(|d| self.sizes.get(d.index()).copied().unwrap_or(1) as f64).product()
    }

    /// The storage dtype of input `name`.
    pub fn input_dtype(&self, name: &str) -> DType {
        self.input_dtypes.iter().find(|(n, _)| n == name).map_or(DType::F32, |(_, d)| *d)
    }
}

/// Arithmetic per element of each op (rough; only breaks ties between equal-traffic terms).
/// Unary and binary ops state theirs in the IR's op tables ([`ssmc_ir::UnaryOp::flops`]).
pub fn flops(n: &Ssm) -> f64 {
    match n {
        Ssm::Mat(_) | Ssm::Outs(_) | Ssm::Num(_) | Ssm::Tag(_) | Ssm::Final(_) => 0.0,
        Ssm::Unary(u, _) => u.flops(),
        Ssm::Binary(b, _) => b.flops(),
        Ssm::Sum(_) => 1.0,
        Ssm::Scan(_) => 2.0,
        Ssm::DiscA(_) => 9.0,
        Ssm::DiscB(_) => 10.0,
        Ssm::Gate(_) => 12.0,
        Ssm::Conv(_) => 8.0,
        Ssm::Shift(_) | Ssm::Window(_) => 1.0,
        Ssm::Bcast(_) => 0.0,
    }
}

/// Extraction cost of a term: inputs cost their bytes where read, `mat` costs a write, a read
/// and a launch, ops cost their arithmetic.
pub struct TermCost<'a> {
    /// The saturated e-graph (for shapes).
    pub egraph: &'a EGraph<Ssm, SsmAnalysis>,
    /// Sizes and weights.
    pub model: &'a CostModel,
}

impl TermCost<'_> {
    fn facts(&self, id: Id) -> &Facts {
        &self.egraph[id].data
    }
}

impl CostFunction<Ssm> for TermCost<'_> {
    type Cost = f64;

    fn cost<C: FnMut(Id) -> f64>(&mut self, enode: &Ssm, mut costs: C) -> f64 {
        let children: f64 = enode.children().iter().map(|&c| costs(c)).sum();
        let m = self.model;
        match enode {
            Ssm::Tag(s) => match tag_input(*s) {
                Some(name) => {
                    let shape = &self.egraph.analysis.graph.input_named(name).map(|(_, d)| d.layout.clone()).unwrap_or_default();
                    m.elements(shape) * m.input_dtype(name).size() as f64
                }
                None => 0.0,
            },
            Ssm::Mat(x) => children + 2.0 * 4.0 * m.elements(&self.facts(*x).shape) + m.launch_bytes,
            _ => {
                let shape = crate::analysis::node_shape(&self.egraph.analysis.graph, enode, |i| self.facts(i).clone());
                children + flops(enode) * m.elements(&shape) * m.flop_bytes
            }
        }
    }
}

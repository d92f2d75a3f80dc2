//! ssmc-opt: which kernels. From one layer, the unfused plan (one kernel per op, every
//! intermediate in memory) and the fused plan equality saturation finds under a bytes-moved cost
//! model, with a record of why.
//!
//! ```
//! use ssmc_opt::{optimize, Fusion, Options};
//! let g = ssmc_dsl::parse_str(r#"
//!     layer L {
//!         dims n, m;
//!         input x: [n, m];
//!         input y: [m];
//!         output z = sum(exp(x) * y, m);
//!     }
//! "#).unwrap();
//! let opts = Options::at_sizes(&g, &[("n", 1000), ("m", 1000)]);
//! let unfused = optimize(&g, Fusion::Off, &opts).unwrap();
//! let fused = optimize(&g, Fusion::On, &opts).unwrap();
//! assert_eq!(unfused.plan.kernels.len(), 3);
//! assert_eq!(fused.plan.kernels.len(), 1);
//! assert!(fused.plan.bytes(&opts.sizes) < unfused.plan.bytes(&opts.sizes));
//! assert!(fused.report.rules_fired.contains_key("exp-to-exp2"));
//! ```
#![warn(missing_docs)]

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod explain;
pub mod extract;
pub mod lang;
pub mod plan;
pub mod rules;

pub use explain::{Explanation, Report};
pub use plan::{Buffer, BufferId, BufferKind, Forms, Fusion, Kernel, Plan, Space};

use analysis::SsmAnalysis;
use cost::{CostModel, TermCost};
use egg::{Runner, StopReason};
use ssmc_ir::{DType, Graph, IrError};
use std::time::Duration;

/// Sizes and limits for optimization.
#[derive(Clone, Debug)]
pub struct Options {
    /// Extent of every dim (bytes are counted at these sizes).
    pub sizes: Vec<usize>,
    /// Storage dtype of inputs the spec does not pin.
    pub input_dtype: DType,
    /// Stop saturating past this many e-nodes.
    pub node_limit: usize,
    /// Stop saturating after this many iterations.
    pub iter_limit: usize,
    /// Stop saturating after this long.
    pub time_limit: Duration,
    /// The kernel forms the backend lowers beyond the row template (none by default).
    pub forms: Forms,
}

/// Sizes used for dims the caller does not give: Mamba's reference shape.
pub fn default_size(dim: &str) -> usize {
    match dim {
        "batch" => 1,
        "dim" => 1536,
        "len" => 2048,
        "state" => 16,
        "width" => 4,
        _ => 64,
    }
}

impl Options {
    /// Options at the given sizes; other dims take [`default_size`].
    pub fn at_sizes(g: &Graph, given: &[(&str, usize)]) -> Self {
        let sizes = g
            .dims()
            .map(|(_, n)| given.iter().find(|(k, _)| *k == n).map_or_else(|| default_size(n), |(_, v)| *v))
            .collect();
        Options { sizes, input_dtype: DType::F32, node_limit: 20_000, iter_limit: 30, time_limit: Duration::from_secs(5), forms: Forms::default() }
    }
}

/// A plan and how it was found.
#[derive(Clone, Debug)]
pub struct Optimized {
    /// The plan.
    pub plan: Plan,
    /// The saturation record (empty for [`Fusion::Off`]).
    pub report: Report,
}

/// Plans `g`: unfused as written, or fused by equality saturation and extraction.
pub fn optimize(g: &Graph, fusion: Fusion, opts: &Options) -> Result<Optimized, IrError> {
    g.validate()?;
    if fusion == Fusion::Off {
        return Ok(Optimized { plan: Plan::unfused(g, opts.input_dtype)?, report: Report::default() });
    }
    let term = convert::to_term(g);
    let runner: Runner<lang::Ssm, SsmAnalysis, ()> = Runner::new(SsmAnalysis::new(g))
        .with_node_limit(opts.node_limit)
        .with_iter_limit(opts.iter_limit)
        .with_time_limit(opts.time_limit)
        .with_expr(&term)
        .run(&rules::all(opts.forms));
    let mut report = Report::default();
    for it in &runner.iterations {
        let mut applied: Vec<(String, usize)> = Vec::new();
        for (name, count) in &it.applied {
            let law = rules::law_of(name.as_str()).to_string();
            *report.rules_fired.entry(law.clone()).or_default() += count;
            match applied.iter_mut().find(|(l, _)| *l == law) {
                Some(e) => e.1 += count,
                None => applied.push((law, *count)),
            }
        }
        report.iterations.push(explain::IterationRecord { nodes: it.egraph_nodes, classes: it.egraph_classes, applied });
    }
    let stop = runner.stop_reason.clone().unwrap_or(StopReason::Saturated);
    report.hit_limit = !matches!(stop, StopReason::Saturated);
    report.stop_reason = match stop {
        StopReason::Saturated => "saturated".to_string(),
        StopReason::IterationLimit(n) => format!("iteration limit ({n})"),
        StopReason::NodeLimit(n) => format!("e-node limit ({n})"),
        StopReason::TimeLimit(s) => format!("time limit ({s} s)"),
        StopReason::Other(s) => s,
    };
    report.folded = runner.egraph.analysis.folded;
    let model = CostModel::new(g, opts.sizes.clone(), opts.input_dtype);
    let (cost, best) = extract::cheapest(&runner.egraph, runner.roots[0], TermCost { egraph: &runner.egraph, model: &model });
    report.term_cost = cost;
    let rebuilt = convert::from_term(g, &best)?;
    let plan = Plan::build(rebuilt.graph, rebuilt.stored, Fusion::On, opts.input_dtype, opts.forms)?;
    Ok(Optimized { plan, report })
}

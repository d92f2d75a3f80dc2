//! Why a plan is what it is: the e-graph's record (rules fired per iteration, size, stop reason),
//! both plans with their bytes and launches, as text, JSON and Graphviz.

use crate::plan::{BufferKind, Plan};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One e-graph iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct IterationRecord {
    /// E-nodes at the start of the iteration.
    pub nodes: usize,
    /// E-classes at the start of the iteration.
    pub classes: usize,
    /// Laws applied in this iteration, with counts.
    pub applied: Vec<(String, usize)>,
}

/// What equality saturation did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Per iteration.
    pub iterations: Vec<IterationRecord>,
    /// Why it stopped (`saturated`, or the limit it hit).
    pub stop_reason: String,
    /// Whether a limit stopped it (the plan is then the best found so far).
    pub hit_limit: bool,
    /// Laws applied over the whole run, with counts.
    pub rules_fired: BTreeMap<String, usize>,
    /// Classes that constant folding resolved.
    pub folded: usize,
    /// The extracted term's cost (bytes-equivalent, counted term by term).
    pub term_cost: f64,
}

/// Both plans and the record, ready to print.
pub struct Explanation<'a> {
    /// The unfused plan.
    pub unfused: &'a Plan,
    /// The fused plan.
    pub fused: &'a Plan,
    /// The saturation record.
    pub report: &'a Report,
    /// Dim sizes the bytes are counted at.
    pub sizes: &'a [usize],
    /// The per-launch cost, in bytes-equivalent.
    pub launch_bytes: f64,
}

/// `1.23 GB`, `456.7 MB`, `12.0 kB`, `100 B` (powers of 1000).
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    for (unit, scale) in [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] {
        if b >= scale {
            return format!("{:.2} {unit}", b / scale);
        }
    }
    format!("{b} B")
}

impl Explanation<'_> {
    fn plan_cost(&self, p: &Plan) -> f64 {
        p.bytes(self.sizes) as f64 + p.kernels.len() as f64 * self.launch_bytes
    }

    fn dims_line(&self, p: &Plan) -> String {
        p.graph.dims().map(|(d, n)| format!("{n}={}", self.sizes[d.index()])).collect::<Vec<_>>().join(", ")
    }

    fn plan_text(&self, out: &mut String, title: &str, p: &Plan) {
        let g = &p.graph;
        let bytes = p.bytes(self.sizes);
        let n = p.kernels.len();
        let _ = writeln!(out, "{title}: {n} kernel{}, {} moved", if n == 1 { "" } else { "s" }, human_bytes(bytes));
        for k in &p.kernels {
            let names = |ids: &[crate::plan::BufferId]| ids.iter().map(|b| p.buffers[b.0].name.clone()).collect::<Vec<_>>().join(", ");
            let (r, w) = p.kernel_bytes(k, self.sizes);
            let mut space = g.fmt_shape(&ssmc_ir::Shape(k.space.parallel.clone()));
            if let Some((d, rev)) = k.space.seq {
                let _ = write!(space, " x {}{}", g.dim_name(d), if rev { " (reverse)" } else { " (in order)" });
            }
            if !k.space.inner.is_empty() {
                let _ = write!(space, " x inner {}", g.fmt_shape(&ssmc_ir::Shape(k.space.inner.clone())));
            }
            let scans: Vec<String> = k
                .space
                .replayed
                .iter()
                .filter(|n| matches!(g.node(**n).op, ssmc_ir::Op::Scan { .. }))
                .map(|n| match &g.node(*n).name {
                    Some(name) => format!("{name} {}", g.fmt_shape(&g.node(*n).shape)),
                    None => format!("the scan {}", g.fmt_shape(&g.node(*n).shape)),
                })
                .collect();
            if !scans.is_empty() {
                let _ = write!(space, "; replays {} forwards per chunk", scans.join(", "));
            }
            if !k.space.row_sums.is_empty() {
                let sums: Vec<String> = k.space.row_sums.iter().map(|n| names(&k.writes.iter().copied().filter(|b| p.buffers[b.0].node == *n).collect::<Vec<_>>())).collect();
                let _ = write!(space, "; sums {} across rows", sums.join(", "));
            }
            let _ = writeln!(
                out,
                "  {:<16} {} ops  rows {space}\n                   reads {}  writes {}  ({} read, {} written)",
                k.name,
                k.body.len(),
                names(&k.reads),
                names(&k.writes),
                human_bytes(r),
                human_bytes(w)
            );
        }
        for note in &p.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }

    /// The human-readable explanation.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let r = self.report;
        let _ = writeln!(out, "layer {} at {}\n", self.fused.graph.name(), self.dims_line(self.fused));
        self.plan_text(&mut out, "unfused", self.unfused);
        out.push('\n');
        self.plan_text(&mut out, "fused", self.fused);
        let _ = writeln!(out, "\nfused program:");
        for line in ssmc_ir::print::print_annotated(&self.fused.graph).lines() {
            let _ = writeln!(out, "  {line}");
        }
        let (ub, fb) = (self.unfused.bytes(self.sizes), self.fused.bytes(self.sizes));
        let _ = writeln!(
            out,
            "\nbytes moved: {} -> {} ({:.1}x less); launches: {} -> {}",
            human_bytes(ub),
            human_bytes(fb),
            ub as f64 / fb.max(1) as f64,
            self.unfused.kernels.len(),
            self.fused.kernels.len()
        );
        let _ = writeln!(
            out,
            "cost (bytes + {} per launch): {:.4e} -> {:.4e}",
            human_bytes(self.launch_bytes as u64),
            self.plan_cost(self.unfused),
            self.plan_cost(self.fused)
        );
        let _ = writeln!(out, "\ne-graph: {} iterations, stopped: {}", r.iterations.len(), r.stop_reason);
        if r.hit_limit {
            let _ = writeln!(out, "  (a limit stopped saturation; the plan is the best found so far)");
        }
        let _ = writeln!(out, "  iter  e-nodes  e-classes  applied");
        for (i, it) in r.iterations.iter().enumerate() {
            let applied: Vec<String> = it.applied.iter().map(|(n, c)| format!("{n} x{c}")).collect();
            let _ = writeln!(out, "  {i:<4}  {:<7}  {:<9}  {}", it.nodes, it.classes, applied.join(", "));
        }
        let _ = writeln!(out, "rules fired:");
        for (law, count) in &r.rules_fired {
            let _ = writeln!(out, "  {law:<30} {count}");
        }
        let _ = writeln!(out, "constants folded: {}", r.folded);
        out
    }

    fn plan_json(&self, p: &Plan) -> String {
        let g = &p.graph;
        let kernels: Vec<String> = p
            .kernels
            .iter()
            .map(|k| {
                let names = |ids: &[crate::plan::BufferId]| {
                    ids.iter().map(|b| json_str(&p.buffers[b.0].name)).collect::<Vec<_>>().join(", ")
                };
                let (r, w) = p.kernel_bytes(k, self.sizes);
                let dims = |ds: &[ssmc_ir::DimId]| ds.iter().map(|d| json_str(g.dim_name(*d))).collect::<Vec<_>>().join(", ");
                let seq = match k.space.seq {
                    Some((d, rev)) => format!("{{\"dim\": {}, \"reverse\": {rev}}}", json_str(g.dim_name(d))),
                    None => "null".into(),
                };
                format!(
                    "{{\"name\": {}, \"ops\": {}, \"reads\": [{}], \"writes\": [{}], \"bytes_read\": {r}, \"bytes_written\": {w}, \"parallel\": [{}], \"seq\": {seq}, \"inner\": [{}], \"replays\": {}, \"row_sums\": {}}}",
                    json_str(&k.name),
                    k.body.len(),
                    names(&k.reads),
                    names(&k.writes),
                    dims(&k.space.parallel),
                    dims(&k.space.inner),
                    !k.space.replayed.is_empty(),
                    k.space.row_sums.len()
                )
            })
            .collect();
        let intermediates = p.buffers.iter().filter(|b| b.kind == BufferKind::Intermediate).count();
        let notes: Vec<String> = p.notes.iter().map(|n| json_str(n)).collect();
        format!(
            "{{\"kernels\": {}, \"launches\": {}, \"bytes\": {}, \"intermediate_buffers\": {intermediates}, \"kernel_list\": [{}], \"notes\": [{}]}}",
            p.kernels.len(),
            p.kernels.len(),
            p.bytes(self.sizes),
            kernels.join(", "),
            notes.join(", ")
        )
    }

    /// The same as [`Explanation::text`], as one JSON object.
    pub fn json(&self) -> String {
        let r = self.report;
        let fired: Vec<String> = r.rules_fired.iter().map(|(k, v)| format!("{}: {v}", json_str(k))).collect();
        let iters: Vec<String> = r
            .iterations
            .iter()
            .map(|it| {
                let applied: Vec<String> = it.applied.iter().map(|(k, v)| format!("{}: {v}", json_str(k))).collect();
                format!("{{\"nodes\": {}, \"classes\": {}, \"applied\": {{{}}}}}", it.nodes, it.classes, applied.join(", "))
            })
            .collect();
        let dims: Vec<String> =
            self.fused.graph.dims().map(|(d, n)| format!("{}: {}", json_str(n), self.sizes[d.index()])).collect();
        format!(
            "{{\"layer\": {}, \"dims\": {{{}}}, \"unfused\": {}, \"fused\": {}, \"rules_fired\": {{{}}}, \"iterations\": [{}], \"stop_reason\": {}, \"hit_limit\": {}, \"constants_folded\": {}, \"cost_before\": {}, \"cost_after\": {}}}\n",
            json_str(self.fused.graph.name()),
            dims.join(", "),
            self.plan_json(self.unfused),
            self.plan_json(self.fused),
            fired.join(", "),
            iters.join(", "),
            json_str(&r.stop_reason),
            r.hit_limit,
            r.folded,
            self.plan_cost(self.unfused),
            self.plan_cost(self.fused)
        )
    }
}

/// A plan as a Graphviz digraph: one cluster per kernel, buffers as boxes.
pub fn dot(p: &Plan) -> String {
    let g = &p.graph;
    let mut out = format!("digraph {} {{\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n", json_str(g.name()));
    for (i, b) in p.buffers.iter().enumerate() {
        let _ = writeln!(out, "  b{i} [shape=box, label={}];", json_str(&format!("{} {}", b.name, g.fmt_shape(&b.shape))));
    }
    for (k, kernel) in p.kernels.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{k} {{\n    label={};", json_str(&kernel.name));
        for &n in &kernel.body {
            let _ = writeln!(out, "    k{k}n{} [label={}];", n.0, json_str(g.node(n).op.name()));
        }
        out.push_str("  }\n");
        for &n in &kernel.body {
            for o in g.node(n).op.operands() {
                if kernel.body.contains(&o) {
                    let _ = writeln!(out, "  k{k}n{} -> k{k}n{};", o.0, n.0);
                } else if let Some(b) = p.buffers.iter().position(|b| b.node == o) {
                    let _ = writeln!(out, "  b{b} -> k{k}n{};", n.0);
                }
            }
        }
        for &w in &kernel.writes {
            let _ = writeln!(out, "  k{k}n{} -> b{};", p.buffers[w.0].node.0, w.0);
        }
    }
    out.push_str("}\n");
    out
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

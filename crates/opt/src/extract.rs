//! Extraction: the cheapest term of a class under a cost function.
//!
//! egg's `Extractor` finds every class's cost by sweeping all classes until none improves, which
//! takes about as many sweeps as the e-graph is deep: a chain of 10,000 ops took a minute and a
//! half. Here a worklist revisits a class only when one of its children got cheaper. The costs
//! are the same least fixpoint (every cost is positive, so a class's cost is the minimum over its
//! nodes of the node's cost at its children's costs); of a class's nodes at that minimum, the
//! first in the class is taken, so the term does not depend on the order of the work.

use crate::analysis::SsmAnalysis;
use crate::lang::Ssm;
use egg::{CostFunction, EGraph, Id, Language, RecExpr};
use std::collections::{HashMap, HashSet, VecDeque};

/// The cheapest term of class `root` under `cost`, and its cost.
pub fn cheapest<CF: CostFunction<Ssm, Cost = f64>>(egraph: &EGraph<Ssm, SsmAnalysis>, root: Id, mut cost: CF) -> (f64, RecExpr<Ssm>) {
    let mut costs: HashMap<Id, f64> = HashMap::new();
    let mut queue: VecDeque<Id> = egraph.classes().map(|c| c.id).collect();
    let mut queued: HashSet<Id> = queue.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        queued.remove(&id);
        let Some((best, _)) = best_node(egraph, &costs, &mut cost, id) else { continue };
        if costs.get(&id).is_none_or(|&old| best < old) {
            costs.insert(id, best);
            for parent in egraph[id].parents() {
                let p = egraph.find(parent);
                if queued.insert(p) {
                    queue.push_back(p);
                }
            }
        }
    }
    let root = egraph.find(root);
    let mut node = |id: Id| best_node(egraph, &costs, &mut cost, egraph.find(id)).expect("every class reached from the root has a cost").1.clone();
    let term = node(root).build_recexpr(node);
    (costs[&root], term)
}

/// The first of class `id`'s nodes whose children all have costs, at the least cost.
fn best_node<'a, CF: CostFunction<Ssm, Cost = f64>>(
    egraph: &'a EGraph<Ssm, SsmAnalysis>,
    costs: &HashMap<Id, f64>,
    cost: &mut CF,
    id: Id,
) -> Option<(f64, &'a Ssm)> {
    let mut best: Option<(f64, &Ssm)> = None;
    for n in egraph[id].iter() {
        if !n.all(|c| costs.contains_key(&egraph.find(c))) {
            continue;
        }
        let c = cost.cost(n, |c| costs[&egraph.find(c)]);
        if best.is_none_or(|(b, _)| c < b) {
            best = Some((c, n));
        }
    }
    best
}

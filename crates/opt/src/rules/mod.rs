//! The rewrites: fusion (removing `mat`) and algebra that pays on hardware.
//!
//! Every rewrite has a kebab-case law name; fusion laws are instantiated once per consumer
//! operand, as `law/consumer#position`, and reported by law.

pub mod algebra;
pub mod fusion;

use crate::analysis::SsmAnalysis;
use crate::lang::Ssm;

/// A rewrite over ssmc terms.
pub type Rewrite = egg::Rewrite<Ssm, SsmAnalysis>;

/// Every rewrite the optimizer runs for a backend that lowers `forms`.
pub fn all(forms: crate::Forms) -> Vec<Rewrite> {
    let mut v = fusion::rules(forms);
    v.extend(algebra::rules());
    v
}

/// The law a rewrite instance belongs to (`fuse-elementwise-chain/mul#0` -> `fuse-elementwise-chain`).
pub fn law_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

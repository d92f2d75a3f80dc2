//! What the differential tests share: the example specs and their sizes.
#![allow(dead_code)]

use ssmc::Layer;
use std::collections::BTreeMap;
use std::path::Path;

/// Every example spec.
pub const EXAMPLES: [&str; 7] =
    ["mamba1.ssm", "mamba1_zoh.ssm", "mamba1_step.ssm", "mamba1_conv.ssm", "s4d.ssm", "sigmoid_noskip.ssm", "reverse.ssm"];

/// An example, from `$SSMC_ROOT` when the test binary runs away from its checkout (the GPU
/// machine), else from this checkout.
pub fn example(name: &str) -> Layer {
    let root = std::env::var("SSMC_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    Layer::from_file(&Path::new(&root).join("examples").join(name)).unwrap()
}

/// Sizes for the dims `layer` has, from Mamba's names (conv width 4).
pub fn dims(layer: &Layer, b: usize, d: usize, l: usize, n: usize) -> BTreeMap<String, usize> {
    [("batch", b), ("dim", d), ("len", l), ("state", n), ("width", 4)]
        .into_iter()
        .filter(|(k, _)| layer.graph().dim(k).is_some())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

//! Training: a layer's compiled forward beside its compiled backward.
//!
//! ```
//! use ssmc::{Backend, Fusion, Layer};
//! let layer = Layer::parse("layer L { dims n; input x: [n]; param a: [] in 0.1..0.9; output y = scan(a, x, n); }")?;
//! let step = layer.compile_training(Backend::Cpu, Fusion::On)?;
//! let dims = [("n".to_string(), 8)].into();
//! let x = ssmc::random::random_inputs(layer.graph(), &dims, ssmc::ir::DType::F32, 0)?;
//! let (y, saved) = step.forward(x)?;
//! let dy = ssmc::runtime::TensorMap::from([("d_y".to_string(), y["y"].clone())]);
//! let x_shape = saved.tensors()["x"].shape().to_vec();
//! let grads = step.backward(saved, dy)?;
//! assert_eq!(grads["d_x"].shape(), x_shape);
//! assert_eq!(grads["d_a"].shape(), &[] as &[usize]);
//! # Ok::<(), ssmc::Error>(())
//! ```

use crate::{Backend, CompiledLayer, Error, Fusion, Layer, Target};
use ssmc_ir::grad::cotangent_name;
use ssmc_runtime::TensorMap;

/// A layer compiled for training: [`Training::forward`] then [`Training::backward`].
pub struct Training {
    forward: CompiledLayer,
    backward: CompiledLayer,
    grad: Layer,
}

/// What a training-mode forward keeps for its backward. The backward recomputes every forward
/// value it reads from the inputs, so this is the inputs (moved in, not copied) and the outputs'
/// shapes, to check the cotangents against.
#[derive(Clone, Debug)]
pub struct Saved {
    inputs: TensorMap,
    output_shapes: Vec<(String, Vec<usize>)>,
}

impl Saved {
    /// The tensors kept.
    pub fn tensors(&self) -> &TensorMap {
        &self.inputs
    }
}

impl Layer {
    /// The layer and its backward ([`Layer::grad`]), both compiled for `backend`.
    pub fn compile_training(&self, backend: Backend, fusion: Fusion) -> Result<Training, Error> {
        self.compile_training_for(backend.into(), fusion)
    }

    /// [`Layer::compile_training`] with a backend's options (both passes get them).
    pub fn compile_training_for(&self, target: Target, fusion: Fusion) -> Result<Training, Error> {
        let grad = self.grad()?;
        Ok(Training { forward: self.compile_for(target, fusion)?, backward: grad.compile_for(target, fusion)?, grad })
    }
}

impl Training {
    /// The compiled forward.
    pub fn forward_layer(&self) -> &CompiledLayer {
        &self.forward
    }

    /// The compiled backward.
    pub fn backward_layer(&self) -> &CompiledLayer {
        &self.backward
    }

    /// The backward as a layer (what `ssmc grad` prints).
    pub fn grad(&self) -> &Layer {
        &self.grad
    }

    /// The outputs, and what the backward needs: the inputs themselves, moved (the
    /// training-mode forward is the plain one, with no copy).
    pub fn forward(&self, inputs: TensorMap) -> Result<(TensorMap, Saved), Error> {
        let outputs = self.forward.run(&inputs)?;
        let output_shapes = outputs.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect();
        Ok((outputs, Saved { inputs, output_shapes }))
    }

    /// `d_<input>` for every input and param, from one cotangent `d_<output>` per output
    /// (shaped as that output). A missing, extra or mis-shaped cotangent is an error. It takes
    /// what it reads by value, so nothing is copied (clone `saved` first to run it twice).
    pub fn backward(&self, saved: Saved, cotangents: TensorMap) -> Result<TensorMap, Error> {
        check_cotangents(&saved.output_shapes, &cotangents)?;
        let mut all = saved.inputs;
        all.extend(cotangents);
        self.backward.run(&all)
    }
}

/// Cotangents named `d_<output>`, one per output, each shaped as its output.
pub fn check_cotangents(outputs: &[(String, Vec<usize>)], cotangents: &TensorMap) -> Result<(), Error> {
    let wanted: Vec<String> = outputs.iter().map(|(n, _)| cotangent_name(n)).collect();
    if let Some(extra) = cotangents.keys().find(|k| !wanted.contains(k)) {
        let list = wanted.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ");
        return Err(Error::Cotangent(format!("unexpected cotangent `{extra}`; the backward takes {list}")));
    }
    for (name, shape) in outputs {
        let d = cotangent_name(name);
        match cotangents.get(&d) {
            None => return Err(Error::Cotangent(format!("missing cotangent `{d}` for output `{name}` of shape {shape:?}"))),
            Some(t) if t.shape() != shape.as_slice() => {
                return Err(Error::Cotangent(format!(
                    "cotangent `{d}` has shape {:?}, but output `{name}` has shape {shape:?}",
                    t.shape()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Which forward values a backward plan keeps in memory and which it recomputes.
pub struct Recomputation {
    /// Intermediates holding forward values (they depend on no cotangent): name and op, dims,
    /// bytes at the sizes asked for.
    pub kept: Vec<(String, String, u64)>,
    /// Per kernel: the ops of the forward values it computes in registers.
    pub recomputed: Vec<(String, Vec<&'static str>)>,
}

/// What the backward plan `plan` keeps and recomputes of the forward (`cotangents`: the
/// backward's cotangent inputs; `sizes`: every dim's extent).
pub fn recomputation(plan: &ssmc_opt::Plan, cotangents: &[String], sizes: &[usize]) -> Recomputation {
    let g = &plan.graph;
    let mut backward = vec![false; g.nodes().len()];
    for (i, n) in g.nodes().iter().enumerate() {
        backward[i] = match &n.op {
            ssmc_ir::Op::Input(d) => cotangents.contains(&d.name),
            op => op.operands().iter().any(|o| backward[o.index()]),
        };
    }
    let forward = |n: ssmc_ir::NodeId| !backward[n.index()] && !matches!(g.node(n).op, ssmc_ir::Op::Input(_) | ssmc_ir::Op::Const(_));
    let kept = plan
        .buffers
        .iter()
        .enumerate()
        .filter(|(_, b)| b.kind == ssmc_opt::BufferKind::Intermediate && forward(b.node))
        .map(|(i, b)| {
            let what = format!("{} = {}", b.name, g.node(b.node).op.name());
            (what, g.fmt_shape(&b.shape), plan.buffer_bytes(ssmc_opt::BufferId(i), sizes))
        })
        .collect();
    let recomputed = plan
        .kernels
        .iter()
        .map(|k| (k.name.clone(), k.body.iter().filter(|&&n| forward(n)).map(|&n| g.node(n).op.name()).collect()))
        .collect();
    Recomputation { kept, recomputed }
}

//! The graph: an arena of nodes in definition order, the dims they range over, and named outputs.
//!
//! Every node's operands come before it, so the arena order is a topological order. Nodes are
//! only added through [`Graph::push`], which infers and checks the node's shape; a graph that
//! exists is valid.

use crate::dim::{DimId, Shape};
use crate::dtype::DType;
use crate::error::{IrError, Result};
use crate::infer;
use crate::op::{BinaryOp, GateKind, InputDecl, InputKind, Method, Op, UnaryOp};
use crate::span::Span;

/// Index of a node in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// Position in the arena.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One node: an op, its inferred shape, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// The inferred shape; inputs keep their declared layout, computed values are canonical.
    pub shape: Shape,
    /// The name the source bound it to (`let dt = ...`), if any.
    pub name: Option<String>,
    /// Where it was written.
    pub span: Option<Span>,
}

/// A named result of the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Name, unique among outputs and inputs.
    pub name: String,
    /// The node it reads.
    pub node: NodeId,
    /// The order its dims are stored in (outermost first): the node's dims, as the node lays
    /// them out unless the layer says otherwise (`output d_B: [batch, state, len] = ...`).
    pub layout: Shape,
}

/// A layer: dims, nodes and outputs.
///
/// ```
/// use ssmc_ir::{Graph, InputKind, UnaryOp};
/// let mut g = Graph::new("double_silu");
/// let n = g.add_dim("n").unwrap();
/// let x = g.input("x", InputKind::Input, &[n], None).unwrap();
/// let s = g.unary(UnaryOp::Silu, x).unwrap();
/// let two = g.constant(2.0).unwrap();
/// let y = g.binary(ssmc_ir::BinaryOp::Mul, s, two).unwrap();
/// g.add_output("y", y).unwrap();
/// assert_eq!(g.nodes().len(), 4);
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    name: String,
    dims: Vec<String>,
    nodes: Vec<Node>,
    outputs: Vec<Output>,
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Graph { name: name.into(), ..Default::default() }
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declares a dim. Declaration order is the canonical order of computed shapes.
    pub fn add_dim(&mut self, name: &str) -> Result<DimId> {
        if self.dim(name).is_some() {
            return Err(IrError::new(format!("dim `{name}` is declared twice")));
        }
        self.dims.push(name.to_string());
        Ok(DimId(self.dims.len() as u32 - 1))
    }

    /// Looks a dim up by name.
    pub fn dim(&self, name: &str) -> Option<DimId> {
        self.dims.iter().position(|d| d == name).map(|i| DimId(i as u32))
    }

    /// The name of a dim.
    pub fn dim_name(&self, d: DimId) -> &str {
        &self.dims[d.index()]
    }

    /// All declared dims, in order.
    pub fn dims(&self) -> impl Iterator<Item = (DimId, &str)> {
        self.dims.iter().enumerate().map(|(i, s)| (DimId(i as u32), s.as_str()))
    }

    /// Number of declared dims.
    pub fn dim_count(&self) -> usize {
        self.dims.len()
    }

    /// `[batch, dim, len]`.
    pub fn fmt_shape(&self, s: &Shape) -> String {
        let names: Vec<&str> = s.dims().iter().map(|&d| self.dim_name(d)).collect();
        format!("[{}]", names.join(", "))
    }

    /// All nodes, in definition (topological) order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The outputs, in declaration order.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// The declared inputs and params, in declaration order.
    pub fn inputs(&self) -> impl Iterator<Item = (NodeId, &InputDecl)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| match &n.op {
            Op::Input(d) => Some((NodeId(i as u32), d)),
            _ => None,
        })
    }

    /// Looks an input up by name.
    pub fn input_named(&self, name: &str) -> Option<(NodeId, &InputDecl)> {
        self.inputs().find(|(_, d)| d.name == name)
    }

    /// Adds a node after checking its operands and inferring its shape.
    pub fn push(&mut self, op: Op) -> Result<NodeId> {
        self.push_spanned(op, None, None)
    }

    /// [`Graph::push`] with the source name and position of the node.
    pub fn push_spanned(&mut self, op: Op, name: Option<String>, span: Option<Span>) -> Result<NodeId> {
        let id = NodeId(self.nodes.len() as u32);
        let shape = infer::infer(self, &op).map_err(|e| e.at(Some(id), span))?;
        if let Op::Input(d) = &op {
            if self.is_name_taken(&d.name) {
                return Err(IrError::new(format!("`{}` is declared twice", d.name)).at(Some(id), span));
            }
        }
        self.nodes.push(Node { op, shape, name, span });
        Ok(id)
    }

    fn is_name_taken(&self, name: &str) -> bool {
        self.input_named(name).is_some() || self.outputs.iter().any(|o| o.name == name)
    }

    /// Declares an input or param with its layout and an optional required dtype.
    pub fn input(&mut self, name: &str, kind: InputKind, layout: &[DimId], dtype: Option<DType>) -> Result<NodeId> {
        let decl =
            InputDecl { name: name.to_string(), kind, layout: Shape(layout.to_vec()), dtype, range: None };
        self.push(Op::Input(decl))
    }

    /// A scalar constant.
    pub fn constant(&mut self, v: f64) -> Result<NodeId> {
        self.push(Op::Const(v))
    }

    /// An elementwise function.
    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        self.push(Op::Unary(op, x))
    }

    /// An elementwise function of two operands.
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.push(Op::Binary(op, a, b))
    }

    /// Sum over `dim`.
    pub fn sum(&mut self, x: NodeId, dim: DimId) -> Result<NodeId> {
        self.push(Op::Sum { x, dim })
    }

    /// `Abar` by `method`.
    pub fn discretize_a(&mut self, method: Method, dt: NodeId, a: NodeId) -> Result<NodeId> {
        self.push(Op::DiscretizeA { method, dt, a })
    }

    /// `Bbar` by `method`.
    pub fn discretize_b(&mut self, method: Method, dt: NodeId, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.push(Op::DiscretizeB { method, dt, a, b })
    }

    /// `h = a * h + b` along `dim`.
    pub fn scan(&mut self, a: NodeId, b: NodeId, dim: DimId, reverse: bool, init: Option<NodeId>) -> Result<NodeId> {
        self.push(Op::Scan { a, b, dim, reverse, init })
    }

    /// The final state of a scan.
    pub fn scan_final(&mut self, scan: NodeId) -> Result<NodeId> {
        self.push(Op::ScanFinal(scan))
    }

    /// `x * act(z)`.
    pub fn gate(&mut self, kind: GateKind, x: NodeId, z: NodeId) -> Result<NodeId> {
        self.push(Op::Gate { kind, x, z })
    }

    /// Causal depthwise convolution along `dim`.
    pub fn conv1d(&mut self, x: NodeId, weight: NodeId, bias: Option<NodeId>, dim: DimId) -> Result<NodeId> {
        self.push(Op::Conv1d { x, weight, bias, dim, reverse: false })
    }

    /// The value one step earlier along `dim` (later if `reverse`), `fill` or 0 at the edge.
    pub fn shift(&mut self, x: NodeId, dim: DimId, fill: Option<NodeId>, reverse: bool) -> Result<NodeId> {
        self.push(Op::Shift { x, dim, fill, reverse })
    }

    /// `x` repeated along `dims`.
    pub fn broadcast(&mut self, x: NodeId, dims: &[DimId]) -> Result<NodeId> {
        self.push(Op::Broadcast { x, dims: Shape(dims.to_vec()).canonical() })
    }

    /// Names the binding of a node (`let name = ...`), for printing.
    pub fn set_name(&mut self, id: NodeId, name: &str) {
        self.nodes[id.index()].name = Some(name.to_string());
    }

    /// Sets where a node was written.
    pub fn set_span(&mut self, id: NodeId, span: Span) {
        self.nodes[id.index()].span = Some(span);
    }

    /// Sets the range `--random` draws an input from.
    pub fn set_input_range(&mut self, id: NodeId, lo: f64, hi: f64) -> Result<()> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(IrError::new(format!("random range {lo}..{hi} must be finite and increasing")));
        }
        match &mut self.nodes[id.index()].op {
            Op::Input(d) => {
                d.range = Some((lo, hi));
                Ok(())
            }
            op => Err(IrError::new(format!("only inputs have a random range, not `{}`", op.name()))),
        }
    }

    /// Exposes `node` as output `name`, laid out as its value is (computed values in the
    /// canonical order of their dims, an input in its own layout).
    pub fn add_output(&mut self, name: &str, node: NodeId) -> Result<()> {
        if node.index() >= self.nodes.len() {
            return Err(IrError::new(format!("output `{name}` reads node {} that does not exist", node.0)));
        }
        let layout = self.nodes[node.index()].shape.clone();
        self.add_output_as(name, node, layout.dims())
    }

    /// Exposes `node` as output `name`, stored with its dims in the order `layout` lists them.
    pub fn add_output_as(&mut self, name: &str, node: NodeId, layout: &[DimId]) -> Result<()> {
        if node.index() >= self.nodes.len() {
            return Err(IrError::new(format!("output `{name}` reads node {} that does not exist", node.0)));
        }
        if self.is_name_taken(name) {
            return Err(IrError::new(format!("`{name}` is declared twice")));
        }
        let layout = Shape(layout.to_vec());
        let shape = &self.nodes[node.index()].shape;
        if layout.canonical() != shape.canonical() || layout.rank() != shape.rank() {
            return Err(IrError::new(format!(
                "output `{name}` is laid out as {}, but its value has dims {}",
                self.fmt_shape(&layout),
                self.fmt_shape(shape)
            )));
        }
        self.outputs.push(Output { name: name.to_string(), node, layout });
        Ok(())
    }

    /// Points output `name` at `node`, which must have the same dims.
    pub fn retarget_output(&mut self, name: &str, node: NodeId) -> Result<()> {
        let shape = self.nodes.get(node.index()).map(|n| n.shape.canonical());
        let o = self.outputs.iter_mut().find(|o| o.name == name);
        match (o, shape) {
            (Some(o), Some(s)) if s == o.layout.canonical() => {
                o.node = node;
                Ok(())
            }
            _ => Err(IrError::new(format!("cannot point output `{name}` at node {}", node.0))),
        }
    }

    /// How many nodes read each node (outputs count as readers).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for o in n.op.operands() {
                uses[o.index()] += 1;
            }
        }
        for o in &self.outputs {
            uses[o.node.index()] += 1;
        }
        uses
    }

    /// Checks the whole graph again: operand order, every shape, outputs. Graphs built through
    /// [`Graph::push`] always pass; this guards graphs assembled or edited by other passes.
    pub fn validate(&self) -> Result<()> {
        let mut prefix = Graph { name: self.name.clone(), dims: self.dims.clone(), ..Default::default() };
        for (i, n) in self.nodes.iter().enumerate() {
            let id = NodeId(i as u32);
            let shape = infer::infer(&prefix, &n.op).map_err(|e| e.at(Some(id), n.span))?;
            if shape != n.shape {
                return Err(IrError::new(format!(
                    "node {i} claims shape {} but its op gives {}",
                    self.fmt_shape(&n.shape),
                    self.fmt_shape(&shape)
                ))
                .at(Some(id), n.span));
            }
            prefix.nodes.push(n.clone());
        }
        if self.outputs.is_empty() {
            return Err(IrError::new(format!("layer `{}` has no output", self.name)));
        }
        for o in &self.outputs {
            if o.node.index() >= self.nodes.len() {
                return Err(IrError::new(format!("output `{}` reads a node that does not exist", o.name)));
            }
            let shape = &self.nodes[o.node.index()].shape;
            if o.layout.canonical() != shape.canonical() || o.layout.rank() != shape.rank() {
                return Err(IrError::new(format!("output `{}` is laid out over dims its value does not have", o.name)));
            }
        }
        Ok(())
    }

    /// Structural equality: same dims, ops, shapes, inputs and outputs, ignoring the names of
    /// intermediate bindings and source spans. This is what a print/parse round trip preserves.
    pub fn same_as(&self, other: &Graph) -> bool {
        self.name == other.name
            && self.dims == other.dims
            && self.outputs == other.outputs
            && self.nodes.len() == other.nodes.len()
            && self.nodes.iter().zip(&other.nodes).all(|(a, b)| a.op == b.op && a.shape == b.shape)
    }
}

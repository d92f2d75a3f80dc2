//! Named dimensions and shapes. Shapes of computed values list their dims in declaration order,
//! so broadcasting is by name and never by position.

/// Index of a dimension in its graph's declaration list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DimId(pub u32);

impl DimId {
    /// Position in the graph's dim table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An ordered list of distinct dims: the layout of a tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Shape(pub Vec<DimId>);

impl Shape {
    /// The scalar shape.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    /// The dims, outermost first.
    pub fn dims(&self) -> &[DimId] {
        &self.0
    }

    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Whether `d` is one of the dims.
    pub fn contains(&self, d: DimId) -> bool {
        self.0.contains(&d)
    }

    /// Position of `d`, if present.
    pub fn position(&self, d: DimId) -> Option<usize> {
        self.0.iter().position(|&x| x == d)
    }

    /// Whether every dim of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Shape) -> bool {
        self.0.iter().all(|d| other.contains(*d))
    }

    /// The canonical form: the same dims in declaration order.
    pub fn canonical(&self) -> Shape {
        let mut v = self.0.clone();
        v.sort();
        Shape(v)
    }

    /// The union of several shapes, in declaration order (broadcasting by name).
    pub fn union<'a>(shapes: impl IntoIterator<Item = &'a Shape>) -> Shape {
        let mut v: Vec<DimId> = shapes.into_iter().flat_map(|s| s.0.iter().copied()).collect();
        v.sort();
        v.dedup();
        Shape(v)
    }

    /// The canonical shape without `d`.
    pub fn without(&self, d: DimId) -> Shape {
        Shape(self.canonical().0.into_iter().filter(|&x| x != d).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_is_sorted_and_deduplicated() {
        let a = Shape(vec![DimId(2), DimId(0)]);
        let b = Shape(vec![DimId(1), DimId(2)]);
        assert_eq!(Shape::union([&a, &b]), Shape(vec![DimId(0), DimId(1), DimId(2)]));
    }

    #[test]
    fn without_drops_one_dim_canonically() {
        let a = Shape(vec![DimId(2), DimId(0), DimId(1)]);
        assert_eq!(a.without(DimId(0)), Shape(vec![DimId(1), DimId(2)]));
    }
}

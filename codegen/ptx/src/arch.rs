//! The GPU target: which PTX version and SM the emitter writes for.

/// A PTX target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arch {
    /// `sm_XX`.
    pub sm: u32,
    /// PTX ISA version as (major, minor).
    pub ptx: (u32, u32),
}

impl Arch {
    /// Hopper (H100, H200): `sm_90`, PTX 8.0 (ptxas 12.x and the CUDA 13 driver both take it).
    pub const SM90: Arch = Arch { sm: 90, ptx: (8, 0) };

    /// The module header.
    pub fn header(&self) -> String {
        format!(".version {}.{}\n.target sm_{}\n.address_size 64\n", self.ptx.0, self.ptx.1, self.sm)
    }
}

//! [`Limits`]: what the decoder accepts before it allocates.

/// Bounds the decoder checks before reserving memory (DESIGN.md, "Limits before
/// allocation"). A size or count within them may still be refused for exceeding
/// the bytes present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest declared size of one variable-width or compound value (binary,
    /// string, symbol, list, map, array), bytes. The frame layer sets it to its
    /// frame or message size limit.
    pub max_size: usize,
    /// Most containers (lists, maps, arrays, described values) nested inside one
    /// another. It also bounds the decoder's recursion.
    pub max_depth: usize,
}

impl Limits {
    /// 1 MiB: the largest message the spec file reports an IoT Hub events link
    /// tolerating (spec file §5.4).
    pub const DEFAULT_MAX_SIZE: usize = 1024 * 1024;
    /// 32 nested containers: far more than any performative or message section
    /// needs (the deepest, a transfer's delivery state, nests three).
    pub const DEFAULT_MAX_DEPTH: usize = 32;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_size: Limits::DEFAULT_MAX_SIZE, max_depth: Limits::DEFAULT_MAX_DEPTH }
    }
}

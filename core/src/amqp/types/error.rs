//! What can be wrong with bytes read ([`DecodeError`]) and values written
//! ([`EncodeError`]).

use super::encoding::Encoding;
use super::value::PrimitiveType;

/// Why bytes are not a valid AMQP 1.0 encoded value (part 1, §1.2 and §1.6), or
/// exceed the decoder's [`Limits`](super::Limits).
///
/// The AMQP answer to every kind is the connection error `amqp:decode-error` (part 2,
/// §2.8.15), except where a layer above decides that one delivery alone is bad.
/// Each variant names the rule's section; those about one encoding carry it, and
/// display as e.g. `§1.6.22 list32 size: …`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends where a constructor should be (§1.2).
    #[error("the input ends before a constructor (§1.2)")]
    MissingConstructor,
    /// A format code that §1.6 does not define (§1.2); the reserved extension codes
    /// `0x?f` among them.
    #[error("unknown format code {code:#04x} (§1.2)")]
    UnknownConstructor {
        /// The format code.
        code: u8,
    },
    /// A fixed-width value, a size field or a count field runs past the end of the
    /// input, or of the compound value that holds it.
    #[error("{encoding}: {needed} bytes needed, {present} present")]
    Truncated {
        /// The encoding being read.
        encoding: Encoding,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left, in the input or in the enclosing value.
        present: usize,
    },
    /// A declared size exceeds [`Limits::max_size`](super::Limits::max_size).
    /// Checked first, before the bytes present.
    #[error("{encoding} size: {declared} bytes exceed the limit of {max}")]
    SizeOverLimit {
        /// The encoding whose size field this is.
        encoding: Encoding,
        /// The declared size, bytes.
        declared: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// A declared size runs past the end of the input, or of the compound value
    /// that holds it (§1.2.2–§1.2.4).
    #[error("{encoding} size: {declared} bytes declared, {present} present")]
    SizeBeyondInput {
        /// The encoding whose size field this is.
        encoding: Encoding,
        /// The declared size, bytes.
        declared: usize,
        /// Bytes left, in the input or in the enclosing value.
        present: usize,
    },
    /// A compound or array announces more elements than its size can hold: every
    /// compound element has a constructor of at least one byte (§1.2.3), every array
    /// element at least its encoding's fixed width or size field (§1.2.4).
    #[error("{encoding} count: {count} elements cannot fit in {size} bytes")]
    CountBeyondSize {
        /// The compound or array encoding.
        encoding: Encoding,
        /// The declared count.
        count: usize,
        /// The bytes the elements have.
        size: usize,
    },
    /// Arrays of zero-width elements (`null`, `true`, `uint0`, `list0`, …: §1.2.4
    /// lets one constructor stand for elements of no bytes) announce more elements
    /// than the decoder allocates for them. They count against
    /// [`Limits::max_size`](super::Limits::max_size) as one byte each, across one
    /// decoded value, so they cost no more memory than the largest value of real
    /// one-byte elements.
    #[error("{encoding} count: {count} zero-width elements, {left} left under the size limit")]
    ZeroWidthOverLimit {
        /// The array encoding.
        encoding: Encoding,
        /// The declared count.
        count: usize,
        /// Zero-width elements the decode could still allocate.
        left: usize,
    },
    /// The elements of a compound or array end before its declared size (§1.2.3,
    /// §1.2.4: the size is the bytes of the count and the elements).
    #[error("{encoding} size: {declared} bytes declared, the elements use {used}")]
    SizeMismatch {
        /// The compound or array encoding.
        encoding: Encoding,
        /// The declared size, bytes.
        declared: usize,
        /// The bytes the count field and elements used.
        used: usize,
    },
    /// A map's count is odd: it counts keys and values, which come in pairs
    /// (§1.6.23).
    #[error("{encoding} count: {count} is odd, yet a map holds key-value pairs")]
    OddMapCount {
        /// Map8 or map32.
        encoding: Encoding,
        /// The declared count.
        count: usize,
    },
    /// Containers are nested deeper than
    /// [`Limits::max_depth`](super::Limits::max_depth).
    #[error("values nested deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A boolean (`0x56`) byte other than 0x00 (false) or 0x01 (true) (§1.6.2).
    #[error("§1.6.2 boolean: byte {byte:#04x} is neither 0x00 nor 0x01")]
    InvalidBoolean {
        /// The byte.
        byte: u8,
    },
    /// A char is not a Unicode scalar value: a surrogate, or above U+10FFFF
    /// (§1.6.16).
    #[error("§1.6.16 char: {code:#x} is not a Unicode scalar value")]
    InvalidChar {
        /// The UTF-32 code unit.
        code: u32,
    },
    /// A string is not UTF-8 (§1.6.20).
    #[error("{encoding}: not UTF-8")]
    InvalidUtf8 {
        /// Str8 or str32.
        encoding: Encoding,
    },
    /// A symbol is not ASCII (§1.6.21).
    #[error("{encoding}: not ASCII")]
    NonAsciiSymbol {
        /// Sym8 or sym32.
        encoding: Encoding,
    },
    /// A descriptor is neither a `ulong` nor a `symbol`: §1.5 reserves the others.
    /// A described descriptor (`0x00 0x00 …`) is one of them.
    #[error("descriptor with format code {code:#04x}: only ulong and symbol (§1.5)")]
    InvalidDescriptor {
        /// The descriptor's format code.
        code: u8,
    },
    /// An array's element constructor has more than one descriptor (§1.2.4 allows
    /// one constructor; hubwire reads a descriptor and a format code, not a chain).
    #[error("§1.6.24 array element constructor with nested descriptors")]
    NestedArrayDescriptor,
    /// A value expected to be a composite (§1.4: a described list) is something
    /// else.
    #[error("§1.4 a composite is a described list, found {found}")]
    NotComposite {
        /// What was found instead: a type name or `described <type>`.
        found: &'static str,
    },
}

/// Why a value cannot be written. Nothing is written when encoding fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An array holds an item of another type than its element type (§1.6.24: one
    /// constructor for every element).
    #[error("§1.6.24 array of {element:?}: item {index} is {found}")]
    ArrayElementMismatch {
        /// The array's element type.
        element: PrimitiveType,
        /// The first item that differs.
        index: usize,
        /// Its type: a type name or `described`.
        found: &'static str,
    },
    /// The encoding is longer than 4 GiB − 1 bytes: no size field, and no AMQP frame
    /// (part 2, §2.3.1: a 32-bit size), can hold it.
    #[error("encoding of {len} bytes exceeds 4294967295")]
    TooLarge {
        /// Its length, bytes (saturated at `usize::MAX`).
        len: usize,
    },
}

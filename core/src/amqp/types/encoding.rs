//! The encodings (format codes) of AMQP 1.0 part 1, §1.2 and §1.6: one table that the
//! decoder reads by code and the encoder picks from by value.

use core::fmt;

use super::value::PrimitiveType;

/// How the bytes after a format code are laid out (§1.2.1–§1.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// §1.2.1: exactly this many data bytes (0, 1, 2, 4, 8 or 16).
    Fixed(usize),
    /// §1.2.2: a size of this many bytes (1 or 4), then that many data bytes.
    Variable(usize),
    /// §1.2.3: a size and a count, each this many bytes (1 or 4), then `count`
    /// values each with its own constructor; the size counts the count field too.
    Compound(usize),
    /// §1.2.4: a size and a count, each this many bytes (1 or 4), one element
    /// constructor, then `count` elements without constructors.
    Array(usize),
}

macro_rules! encodings {
    ($($variant:ident = $code:literal, $name:literal, $section:literal, $ty:ident, $category:expr;)*) => {
        /// One encoding of a primitive type: a format code of §1.6 (§1.2: a
        /// constructor is a format code, or `0x00` and a descriptor before one).
        ///
        /// Displays as its section and name, e.g. `§1.6.22 list32`, the form errors
        /// cite.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Encoding {
            $(
                #[doc = concat!("`", stringify!($code), "` ", $name, " (", $section, ").")]
                $variant,
            )*
        }

        impl Encoding {
            /// The encoding a format code names; `None` for codes §1.6 does not
            /// define (the descriptor constructor `0x00` among them).
            pub const fn from_code(code: u8) -> Option<Encoding> {
                match code {
                    $($code => Some(Encoding::$variant),)*
                    _ => None,
                }
            }

            /// The format code.
            pub const fn code(self) -> u8 {
                match self {
                    $(Encoding::$variant => $code,)*
                }
            }

            /// The encoding's name in §1.6, e.g. `smalluint`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Encoding::$variant => $name,)*
                }
            }

            /// The section of part 1 that defines it, e.g. `§1.6.5`.
            pub const fn section(self) -> &'static str {
                match self {
                    $(Encoding::$variant => $section,)*
                }
            }

            /// The primitive type it encodes.
            pub const fn primitive_type(self) -> PrimitiveType {
                match self {
                    $(Encoding::$variant => PrimitiveType::$ty,)*
                }
            }

            /// The layout of its bytes.
            pub const fn category(self) -> Category {
                use Category::*;
                match self {
                    $(Encoding::$variant => $category,)*
                }
            }
        }
    };
}

encodings! {
    Null = 0x40, "null", "§1.6.1", Null, Fixed(0);
    Boolean = 0x56, "boolean", "§1.6.2", Boolean, Fixed(1);
    True = 0x41, "boolean.true", "§1.6.2", Boolean, Fixed(0);
    False = 0x42, "boolean.false", "§1.6.2", Boolean, Fixed(0);
    Ubyte = 0x50, "ubyte", "§1.6.3", Ubyte, Fixed(1);
    Ushort = 0x60, "ushort", "§1.6.4", Ushort, Fixed(2);
    Uint = 0x70, "uint", "§1.6.5", Uint, Fixed(4);
    SmallUint = 0x52, "smalluint", "§1.6.5", Uint, Fixed(1);
    Uint0 = 0x43, "uint0", "§1.6.5", Uint, Fixed(0);
    Ulong = 0x80, "ulong", "§1.6.6", Ulong, Fixed(8);
    SmallUlong = 0x53, "smallulong", "§1.6.6", Ulong, Fixed(1);
    Ulong0 = 0x44, "ulong0", "§1.6.6", Ulong, Fixed(0);
    Byte = 0x51, "byte", "§1.6.7", Byte, Fixed(1);
    Short = 0x61, "short", "§1.6.8", Short, Fixed(2);
    Int = 0x71, "int", "§1.6.9", Int, Fixed(4);
    SmallInt = 0x54, "smallint", "§1.6.9", Int, Fixed(1);
    Long = 0x81, "long", "§1.6.10", Long, Fixed(8);
    SmallLong = 0x55, "smalllong", "§1.6.10", Long, Fixed(1);
    Float = 0x72, "float.ieee-754", "§1.6.11", Float, Fixed(4);
    Double = 0x82, "double.ieee-754", "§1.6.12", Double, Fixed(8);
    Decimal32 = 0x74, "decimal32.ieee-754", "§1.6.13", Decimal32, Fixed(4);
    Decimal64 = 0x84, "decimal64.ieee-754", "§1.6.14", Decimal64, Fixed(8);
    Decimal128 = 0x94, "decimal128.ieee-754", "§1.6.15", Decimal128, Fixed(16);
    Char = 0x73, "char.utf32", "§1.6.16", Char, Fixed(4);
    Timestamp = 0x83, "timestamp.ms64", "§1.6.17", Timestamp, Fixed(8);
    Uuid = 0x98, "uuid", "§1.6.18", Uuid, Fixed(16);
    Vbin8 = 0xa0, "vbin8", "§1.6.19", Binary, Variable(1);
    Vbin32 = 0xb0, "vbin32", "§1.6.19", Binary, Variable(4);
    Str8 = 0xa1, "str8-utf8", "§1.6.20", String, Variable(1);
    Str32 = 0xb1, "str32-utf8", "§1.6.20", String, Variable(4);
    Sym8 = 0xa3, "sym8", "§1.6.21", Symbol, Variable(1);
    Sym32 = 0xb3, "sym32", "§1.6.21", Symbol, Variable(4);
    List0 = 0x45, "list0", "§1.6.22", List, Fixed(0);
    List8 = 0xc0, "list8", "§1.6.22", List, Compound(1);
    List32 = 0xd0, "list32", "§1.6.22", List, Compound(4);
    Map8 = 0xc1, "map8", "§1.6.23", Map, Compound(1);
    Map32 = 0xd1, "map32", "§1.6.23", Map, Compound(4);
    Array8 = 0xe0, "array8", "§1.6.24", Array, Array(1);
    Array32 = 0xf0, "array32", "§1.6.24", Array, Array(4);
}

impl Encoding {
    /// The fewest bytes one array element in this encoding takes (§1.2.4: elements
    /// carry no constructor): the data width of a fixed encoding, else the width of
    /// the size field. Zero for the zero-width encodings (`null`, `true`, `uint0`, …).
    pub const fn min_element_len(self) -> usize {
        match self.category() {
            Category::Fixed(width) => width,
            Category::Variable(size) | Category::Compound(size) | Category::Array(size) => size,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.section(), self.name())
    }
}

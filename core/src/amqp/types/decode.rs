//! The decoder: one value from whole bytes, checked against [`Limits`] before any
//! allocation.
//!
//! Input that ends inside a value is an error ([`DecodeError::Truncated`],
//! [`DecodeError::SizeBeyondInput`]), not a request for more bytes: AMQP values are
//! read from frame bodies, and the frame layer waits for a whole frame (its size is
//! in its first four bytes, part 2 §2.3.1) before it decodes one. A value cut short
//! there is a malformed frame, `amqp:decode-error`.
//!
//! Plain byte reading, not nom: each step is a bounds check that names its rule's
//! section, and the zero-copy slices need offsets into the input's [`Bytes`]; nom's
//! combinators would add an error-conversion layer without removing a line of that.

use alloc::vec::Vec;
use bytes::Bytes;
use core::cell::Cell;

use super::described::{Described, Descriptor};
use super::encoding::{Category, Encoding};
use super::error::DecodeError;
use super::limits::Limits;
use super::value::{Array, Symbol, Value};
use crate::utf8::Utf8Bytes;

/// Decodes the value at the start of `input`; returns it and the bytes it took.
/// Bytes after it are left alone (a transfer's payload follows its performative).
/// Binary, string and symbol values are slices of `input`.
///
/// # Errors
///
/// [`DecodeError`]: the bytes break a rule of part 1 or exceed `limits`. Never
/// panics, whatever the input.
pub fn decode(input: &Bytes, limits: &Limits) -> Result<(Value, usize), DecodeError> {
    let zero_width_budget = Cell::new(limits.max_size);
    let mut reader =
        Reader { input, pos: 0, end: input.len(), limits, zero_width_budget: &zero_width_budget };
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

/// A cursor over `input[pos..end]`: `end` is the input's end, or the end of the
/// compound value whose elements are being read. Invariant: `pos <= end <= len`.
struct Reader<'a> {
    input: &'a Bytes,
    pos: usize,
    end: usize,
    limits: &'a Limits,
    /// Zero-width array elements this decode may still allocate: they take no
    /// bytes, so they are counted against [`Limits::max_size`] as one byte each,
    /// across the whole value.
    zero_width_budget: &'a Cell<usize>,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn truncated(&self, encoding: Encoding, needed: usize) -> DecodeError {
        DecodeError::Truncated { encoding, needed, present: self.remaining() }
    }

    fn code(&mut self) -> Result<u8, DecodeError> {
        let [code] = self.array::<1>().ok_or(DecodeError::MissingConstructor)?;
        Ok(code)
    }

    /// The next `N` bytes, if they are within `end`.
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.remaining() < N {
            return None;
        }
        let bytes = self.input.get(self.pos..)?.first_chunk::<N>()?;
        self.pos += N;
        Some(*bytes)
    }

    fn fixed<const N: usize>(&mut self, encoding: Encoding) -> Result<[u8; N], DecodeError> {
        self.array::<N>().ok_or_else(|| self.truncated(encoding, N))
    }

    /// A size or count field of `width` bytes (1 or 4).
    fn length(&mut self, encoding: Encoding, width: usize) -> Result<usize, DecodeError> {
        if width == 1 {
            let [n] = self.fixed::<1>(encoding)?;
            Ok(usize::from(n))
        } else {
            let n = u32::from_be_bytes(self.fixed::<4>(encoding)?);
            // On targets where usize is narrower than 32 bits, the size cannot be
            // present anyway.
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        }
    }

    /// A size field, checked against the limit and then against the bytes present.
    fn size(&mut self, encoding: Encoding, width: usize) -> Result<usize, DecodeError> {
        let declared = self.length(encoding, width)?;
        let max = self.limits.max_size;
        if declared > max {
            return Err(DecodeError::SizeOverLimit { encoding, declared, max });
        }
        let present = self.remaining();
        if declared > present {
            return Err(DecodeError::SizeBeyondInput { encoding, declared, present });
        }
        Ok(declared)
    }

    /// The next `len` bytes as a slice of the input; `len` is within `end`.
    fn slice(&mut self, len: usize) -> Bytes {
        let start = self.pos;
        self.pos = start.saturating_add(len).min(self.end);
        self.input.slice(start..self.pos)
    }

    fn enter(&self, depth: usize) -> Result<usize, DecodeError> {
        let max = self.limits.max_depth;
        if depth >= max { Err(DecodeError::TooDeep { max }) } else { Ok(depth + 1) }
    }

    /// A whole value: its constructor, then its data. `depth` counts the containers
    /// around it.
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let code = self.code()?;
        if code == 0x00 {
            let inner = self.enter(depth)?;
            let descriptor = self.descriptor()?;
            let value = self.value(inner)?;
            return Ok(Value::from(Described { descriptor, value }));
        }
        let encoding = Encoding::from_code(code).ok_or(DecodeError::UnknownConstructor { code })?;
        self.data(encoding, depth)
    }

    /// A descriptor (§1.5): a ulong or a symbol, read without recursion.
    fn descriptor(&mut self) -> Result<Descriptor, DecodeError> {
        let code = self.code()?;
        match Encoding::from_code(code) {
            Some(e @ (Encoding::Ulong | Encoding::SmallUlong | Encoding::Ulong0)) => {
                match self.data(e, 0)? {
                    Value::Ulong(n) => Ok(Descriptor::Code(n)),
                    _ => Err(DecodeError::InvalidDescriptor { code }),
                }
            }
            Some(e @ (Encoding::Sym8 | Encoding::Sym32)) => match self.data(e, 0)? {
                Value::Symbol(s) => Ok(Descriptor::Symbol(s)),
                _ => Err(DecodeError::InvalidDescriptor { code }),
            },
            _ => Err(DecodeError::InvalidDescriptor { code }),
        }
    }

    /// The data after a constructor: a value's body, or an array element.
    fn data(&mut self, encoding: Encoding, depth: usize) -> Result<Value, DecodeError> {
        use Encoding as E;
        Ok(match encoding {
            E::Null => Value::Null,
            E::True => Value::Boolean(true),
            E::False => Value::Boolean(false),
            E::Boolean => match self.fixed::<1>(encoding)? {
                [0x00] => Value::Boolean(false),
                [0x01] => Value::Boolean(true),
                [byte] => return Err(DecodeError::InvalidBoolean { byte }),
            },
            E::Ubyte => Value::Ubyte(u8::from_be_bytes(self.fixed(encoding)?)),
            E::Ushort => Value::Ushort(u16::from_be_bytes(self.fixed(encoding)?)),
            E::Uint => Value::Uint(u32::from_be_bytes(self.fixed(encoding)?)),
            E::SmallUint => Value::Uint(u32::from(u8::from_be_bytes(self.fixed(encoding)?))),
            E::Uint0 => Value::Uint(0),
            E::Ulong => Value::Ulong(u64::from_be_bytes(self.fixed(encoding)?)),
            E::SmallUlong => Value::Ulong(u64::from(u8::from_be_bytes(self.fixed(encoding)?))),
            E::Ulong0 => Value::Ulong(0),
            E::Byte => Value::Byte(i8::from_be_bytes(self.fixed(encoding)?)),
            E::Short => Value::Short(i16::from_be_bytes(self.fixed(encoding)?)),
            E::Int => Value::Int(i32::from_be_bytes(self.fixed(encoding)?)),
            E::SmallInt => Value::Int(i32::from(i8::from_be_bytes(self.fixed(encoding)?))),
            E::Long => Value::Long(i64::from_be_bytes(self.fixed(encoding)?)),
            E::SmallLong => Value::Long(i64::from(i8::from_be_bytes(self.fixed(encoding)?))),
            E::Float => Value::Float(f32::from_be_bytes(self.fixed(encoding)?)),
            E::Double => Value::Double(f64::from_be_bytes(self.fixed(encoding)?)),
            E::Decimal32 => Value::Decimal32(self.fixed(encoding)?),
            E::Decimal64 => Value::Decimal64(self.fixed(encoding)?),
            E::Decimal128 => Value::Decimal128(self.fixed(encoding)?),
            E::Char => {
                let code = u32::from_be_bytes(self.fixed(encoding)?);
                Value::Char(char::from_u32(code).ok_or(DecodeError::InvalidChar { code })?)
            }
            E::Timestamp => Value::Timestamp(i64::from_be_bytes(self.fixed(encoding)?)),
            E::Uuid => Value::Uuid(self.fixed(encoding)?),
            E::Vbin8 | E::Vbin32 => Value::Binary(self.variable(encoding)?),
            E::Str8 | E::Str32 => Value::String(
                Utf8Bytes::try_from_bytes(self.variable(encoding)?)
                    .map_err(|_| DecodeError::InvalidUtf8 { encoding })?,
            ),
            E::Sym8 | E::Sym32 => Value::Symbol(
                Symbol::try_from_bytes(self.variable(encoding)?)
                    .map_err(|_| DecodeError::NonAsciiSymbol { encoding })?,
            ),
            E::List0 => Value::List(Vec::new()),
            E::List8 | E::List32 | E::Map8 | E::Map32 => self.compound(encoding, depth)?,
            E::Array8 | E::Array32 => Value::Array(self.array_value(encoding, depth)?),
        })
    }

    fn variable(&mut self, encoding: Encoding) -> Result<Bytes, DecodeError> {
        let width = match encoding.category() {
            Category::Variable(width) => width,
            _ => 4,
        };
        let len = self.size(encoding, width)?;
        Ok(self.slice(len))
    }

    /// The width of `encoding`'s size and count fields, 1 or 4.
    fn field_width(encoding: Encoding) -> usize {
        match encoding.category() {
            Category::Compound(width) | Category::Array(width) => width,
            _ => 4,
        }
    }

    /// Reads a size field and returns a reader over the bytes it covers, with its
    /// count field read.
    fn sized(&mut self, encoding: Encoding) -> Result<(Reader<'a>, usize, usize), DecodeError> {
        let width = Self::field_width(encoding);
        let size = self.size(encoding, width)?;
        let mut body = Reader { end: self.pos + size, ..*self };
        let count = body.length(encoding, width)?;
        Ok((body, size, count))
    }

    /// After the elements of a compound or array: they must end at its size.
    fn close(
        &mut self,
        body: &Reader<'_>,
        encoding: Encoding,
        size: usize,
    ) -> Result<(), DecodeError> {
        if body.pos != body.end {
            let used = size - body.remaining();
            return Err(DecodeError::SizeMismatch { encoding, declared: size, used });
        }
        self.pos = body.end;
        Ok(())
    }

    /// A list or map (§1.2.3, §1.6.22, §1.6.23).
    fn compound(&mut self, encoding: Encoding, depth: usize) -> Result<Value, DecodeError> {
        let (mut body, size, count) = self.sized(encoding)?;
        let is_map = matches!(encoding, Encoding::Map8 | Encoding::Map32);
        if is_map && count % 2 != 0 {
            return Err(DecodeError::OddMapCount { encoding, count });
        }
        if count > body.remaining() {
            return Err(DecodeError::CountBeyondSize { encoding, count, size: body.remaining() });
        }
        let inner = self.enter(depth)?;
        let value = if is_map {
            let mut pairs = Vec::with_capacity(count / 2);
            for _ in 0..count / 2 {
                let key = body.value(inner)?;
                pairs.push((key, body.value(inner)?));
            }
            Value::Map(pairs)
        } else {
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(body.value(inner)?);
            }
            Value::List(items)
        };
        self.close(&body, encoding, size)?;
        Ok(value)
    }

    /// An array (§1.2.4, §1.6.24): one element constructor, optionally with a
    /// descriptor, then the elements' data.
    fn array_value(&mut self, encoding: Encoding, depth: usize) -> Result<Array, DecodeError> {
        let (mut body, size, count) = self.sized(encoding)?;
        let inner = self.enter(depth)?;
        let mut code = body.code()?;
        let mut descriptor = None;
        if code == 0x00 {
            descriptor = Some(body.descriptor()?);
            code = body.code()?;
            if code == 0x00 {
                return Err(DecodeError::NestedArrayDescriptor);
            }
        }
        let element = Encoding::from_code(code).ok_or(DecodeError::UnknownConstructor { code })?;
        match element.min_element_len() {
            0 => {
                let left = self.zero_width_budget.get();
                if count > left {
                    return Err(DecodeError::ZeroWidthOverLimit { encoding, count, left });
                }
                self.zero_width_budget.set(left - count);
            }
            min => {
                if count > body.remaining() / min {
                    let size = body.remaining();
                    return Err(DecodeError::CountBeyondSize { encoding, count, size });
                }
            }
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(body.data(element, inner)?);
        }
        self.close(&body, encoding, size)?;
        Ok(Array { descriptor, element: element.primitive_type(), items })
    }
}

//! The encoder: a [`Value`] into a `BytesMut`, in the smallest encodings §1.6 offers
//! (what the standard recommends), or in the widest ones, for tests and peers that
//! want them.
//!
//! One pass: a list, map or array is written with four-byte size and count fields,
//! which are filled in once its elements are written; if they fit one byte each
//! (and the form is [`Form::Smallest`]), the elements move back six bytes, at most
//! 254 bytes moved per container. On an error the output is cut back, so nothing
//! is written.

use bytes::{BufMut, BytesMut};

use super::described::{Described, Descriptor};
use super::encoding::{Category, Encoding};
use super::error::EncodeError;
use super::value::{Array, PrimitiveType, Symbol, Value};

/// Which of a type's encodings the encoder picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Form {
    /// The smallest that holds the value: `uint0` and `smalluint`, `true`/`false`,
    /// `list0`, and the one-byte size forms (`vbin8`, `str8`, `sym8`, `list8`,
    /// `map8`, `array8`) when size and count fit in a byte.
    #[default]
    Smallest,
    /// The widest: `boolean` with a data byte, four- and eight-byte integers,
    /// four-byte sizes and counts (`list32` even for an empty list).
    Wide,
}

/// Writes `value` in its smallest encodings.
///
/// # Errors
///
/// [`EncodeError`]: an array holds an item of another type, or the encoding would
/// exceed 4 GiB − 1 bytes. Nothing is written then.
pub fn encode(value: &Value, out: &mut BytesMut) -> Result<(), EncodeError> {
    encode_as(value, Form::Smallest, out)
}

/// Writes `value` in the encodings `form` picks.
///
/// # Errors
///
/// As [`encode`].
pub fn encode_as(value: &Value, form: Form, out: &mut BytesMut) -> Result<(), EncodeError> {
    written(out, |out| Encoder { form }.write(value, out))
}

/// The bytes [`encode_as`] writes for `value`, saturated at `usize::MAX`.
pub fn encoded_len(value: &Value, form: Form) -> usize {
    Encoder { form }.len(value)
}

/// Writes a composite (§1.4): `0x00`, the descriptor, and `fields` as a list.
pub(super) fn encode_described_list(
    descriptor: &Descriptor,
    fields: &[Value],
    form: Form,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    written(out, |out| {
        let encoder = Encoder { form };
        out.put_u8(0x00);
        encoder.write_descriptor(descriptor, out);
        encoder.write_list(fields, out)
    })
}

/// Writes a composite (§1.4) field by field, straight into the output: the bytes
/// [`encode_described_list`] writes for the same fields collected into a list,
/// without building the list. What performatives and message sections encode
/// through.
///
/// The descriptor goes in three bytes reserved up front (`0x00`, smallulong, the
/// code: every descriptor code of the standard fits a byte) and is filled in by
/// [`finish`](Self::finish), which also drops trailing nulls, as a composite never
/// carries them, and picks the list's width. On an error the output is cut back.
#[derive(Debug)]
pub(crate) struct CompositeEncoder<'a> {
    out: &'a mut BytesMut,
    /// Where the composite starts.
    start: usize,
    /// Where the list's constructor is.
    list: usize,
    /// Fields written so far, and how many up to the last non-null one.
    fields: usize,
    count: usize,
    /// The end of the last non-null field.
    end: usize,
    error: Option<EncodeError>,
}

impl<'a> CompositeEncoder<'a> {
    /// Reserves the descriptor and a list32 header after whatever `out` holds.
    pub(crate) fn new(out: &'a mut BytesMut) -> CompositeEncoder<'a> {
        let start = out.len();
        let list = start + 3;
        out.put_bytes(0, 3 + LIST_HEADER);
        let end = out.len();
        CompositeEncoder { out, start, list, fields: 0, count: 0, end, error: None }
    }

    /// The next field.
    pub(crate) fn field(&mut self, value: &Value) {
        self.field_with(value.is_null(), |out| Encoder { form: Form::Smallest }.write(value, out));
    }

    /// The next field, a composite `write` puts into the output it is given.
    pub(crate) fn field_with(
        &mut self,
        null: bool,
        write: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) {
        if self.error.is_some() {
            return;
        }
        self.fields += 1;
        if null {
            self.out.put_u8(Encoding::Null.code());
            return;
        }
        match write(self.out) {
            Ok(()) => {
                self.count = self.fields;
                self.end = self.out.len();
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Completes the composite with descriptor `code`.
    ///
    /// # Errors
    ///
    /// As [`encode`]; nothing of the composite stays written then.
    pub(crate) fn finish(self, code: u64) -> Result<(), EncodeError> {
        let CompositeEncoder { out, start, list, count, end, error, .. } = self;
        let result = match error {
            Some(e) => Err(e),
            None => {
                out.truncate(end);
                let content = end - (list + LIST_HEADER);
                Self::write_list_header(out, list, count, content);
                Self::write_descriptor(out, start, code);
                checked_len(out.len() - start).map(drop)
            }
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Fills the list32 header at `list`, or shrinks it to list8 or list0 as
    /// `write_list` would choose.
    fn write_list_header(out: &mut BytesMut, list: usize, count: usize, content: usize) {
        let encoder = Encoder { form: Form::Smallest };
        if count == 0 {
            patch(out, list, &[Encoding::List0.code()]);
            out.truncate(list + 1);
        } else if encoder.fits8(count, content.saturating_add(1)) {
            patch(out, list, &[Encoding::List8.code(), content as u8 + 1, count as u8]);
            out.copy_within(list + LIST_HEADER.., list + 3);
            out.truncate(out.len() - 6);
        } else {
            patch(out, list, &[Encoding::List32.code()]);
            // Cut back by `finish` if over u32::MAX.
            patch(out, list + 1, &(content.saturating_add(4) as u32).to_be_bytes());
            patch(out, list + 5, &(count as u32).to_be_bytes());
        }
    }

    /// Fills the three reserved bytes with `0x00 0x53 code`; a code beyond a byte
    /// (none of the standard's) widens them to ulong.
    fn write_descriptor(out: &mut BytesMut, start: usize, code: u64) {
        match u8::try_from(code) {
            Ok(small) => patch(out, start, &[0x00, Encoding::SmallUlong.code(), small]),
            Err(_) => {
                let after = start + 3;
                let len = out.len();
                out.put_bytes(0, 7);
                out.copy_within(after..len, after + 7);
                patch(out, start, &[0x00, Encoding::Ulong.code()]);
                patch(out, start + 2, &code.to_be_bytes());
            }
        }
    }
}

/// Writes a described map (`0x00`, the descriptor `code`, the map) of `count`
/// pairs from `pairs`, without collecting them into a [`Value::Map`]: how the
/// message sections of annotations and application properties are encoded.
///
/// # Errors
///
/// As [`encode`]; nothing is written then.
pub(crate) fn encode_described_map<'v>(
    code: u64,
    count: usize,
    pairs: impl Iterator<Item = (Value, &'v Value)>,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    written(out, |out| {
        let encoder = Encoder { form: Form::Smallest };
        out.put_u8(0x00);
        encoder.write_descriptor(&Descriptor::Code(code), out);
        let sized = [Encoding::Map8, Encoding::Map32];
        encoder.write_sized(sized, None, count.saturating_mul(2), out, |out| {
            for (key, value) in pairs {
                encoder.write(&key, out)?;
                encoder.write(value, out)?;
            }
            Ok(())
        })
    })
}

/// A list32 constructor, size and count: what [`CompositeEncoder`] reserves.
const LIST_HEADER: usize = 9;

/// Runs `write`, then checks the length; on an error cuts `out` back to where it
/// was.
fn written(
    out: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = write(out).and_then(|()| checked_len(out.len() - start).map(drop));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Refuses a length no size field or frame can carry.
fn checked_len(len: usize) -> Result<usize, EncodeError> {
    if u32::try_from(len).is_ok() { Ok(len) } else { Err(EncodeError::TooLarge { len }) }
}

/// The width of a size or count field for `encoding`: 1 or 4.
fn field_width(encoding: Encoding) -> usize {
    match encoding.category() {
        Category::Fixed(_) => 0,
        Category::Variable(w) | Category::Compound(w) | Category::Array(w) => w,
    }
}

fn put_length(width: usize, n: usize, out: &mut BytesMut) {
    // The encoding was chosen for the length, and the whole encoding is checked
    // against u32::MAX afterwards (cut back if longer), so no bits that matter are
    // lost.
    if width == 1 {
        out.put_u8(n as u8);
    } else {
        out.put_u32(n as u32);
    }
}

/// Overwrites `out[at..at + bytes.len()]`, which the caller wrote before.
fn patch(out: &mut BytesMut, at: usize, bytes: &[u8]) {
    if let Some(dst) = out.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

#[derive(Clone, Copy)]
struct Encoder {
    form: Form,
}

impl Encoder {
    fn smallest(self) -> bool {
        self.form == Form::Smallest
    }

    /// Whether a size and count fit the one-byte forms. `count` is 0 for
    /// variable-width data.
    fn fits8(self, count: usize, size: usize) -> bool {
        self.smallest() && count <= 255 && size <= 255
    }

    /// The encoding of a value written with its own constructor; `None` for a
    /// described value, which has no single one.
    fn encoding(self, value: &Value) -> Option<Encoding> {
        use Encoding as E;
        let small = self.smallest();
        Some(match value {
            Value::Null => E::Null,
            Value::Boolean(b) if small => {
                if *b {
                    E::True
                } else {
                    E::False
                }
            }
            Value::Boolean(_) => E::Boolean,
            Value::Ubyte(_) => E::Ubyte,
            Value::Ushort(_) => E::Ushort,
            Value::Uint(0) if small => E::Uint0,
            Value::Uint(n) if small && *n <= 255 => E::SmallUint,
            Value::Uint(_) => E::Uint,
            Value::Ulong(0) if small => E::Ulong0,
            Value::Ulong(n) if small && *n <= 255 => E::SmallUlong,
            Value::Ulong(_) => E::Ulong,
            Value::Byte(_) => E::Byte,
            Value::Short(_) => E::Short,
            Value::Int(n) if small && i8::try_from(*n).is_ok() => E::SmallInt,
            Value::Int(_) => E::Int,
            Value::Long(n) if small && i8::try_from(*n).is_ok() => E::SmallLong,
            Value::Long(_) => E::Long,
            Value::Float(_) => E::Float,
            Value::Double(_) => E::Double,
            Value::Decimal32(_) => E::Decimal32,
            Value::Decimal64(_) => E::Decimal64,
            Value::Decimal128(_) => E::Decimal128,
            Value::Char(_) => E::Char,
            Value::Timestamp(_) => E::Timestamp,
            Value::Uuid(_) => E::Uuid,
            Value::Binary(_) | Value::String(_) | Value::Symbol(_) => self.element_encoding(value),
            Value::List(items) => self.list_encoding(items),
            Value::Map(_) | Value::Array(_) => self.element_encoding(value),
            Value::Described(_) => return None,
        })
    }

    /// The encoding of a variable-width or compound value, without the zero-width
    /// forms: what an array element of this value needs.
    fn element_encoding(self, value: &Value) -> Encoding {
        use Encoding as E;
        let pick = |fits: bool, small: E, wide: E| if fits { small } else { wide };
        match value {
            Value::Binary(b) => pick(self.fits8(0, b.len()), E::Vbin8, E::Vbin32),
            Value::String(s) => pick(self.fits8(0, s.len()), E::Str8, E::Str32),
            Value::Symbol(s) => self.symbol_encoding(s),
            Value::List(items) => {
                let size = 1usize.saturating_add(self.items_len(items));
                pick(self.fits8(items.len(), size), E::List8, E::List32)
            }
            Value::Map(pairs) => {
                let size = 1usize.saturating_add(self.pairs_len(pairs));
                let count = pairs.len().saturating_mul(2);
                pick(self.fits8(count, size), E::Map8, E::Map32)
            }
            Value::Array(array) => {
                let element = self.array_element(array);
                let size = 1usize.saturating_add(self.array_content_len(array, element));
                pick(self.fits8(array.items.len(), size), E::Array8, E::Array32)
            }
            // Fixed-width types have one encoding in arrays too.
            other => match other.primitive_type() {
                Some(ty) => widest(ty),
                None => E::Null,
            },
        }
    }

    fn symbol_encoding(self, symbol: &Symbol) -> Encoding {
        if self.fits8(0, symbol.len()) { Encoding::Sym8 } else { Encoding::Sym32 }
    }

    fn list_encoding(self, items: &[Value]) -> Encoding {
        if items.is_empty() && self.smallest() {
            return Encoding::List0;
        }
        let size = 1usize.saturating_add(self.items_len(items));
        if self.fits8(items.len(), size) { Encoding::List8 } else { Encoding::List32 }
    }

    /// One constructor for every item of `array` (§1.2.4): the widest any item
    /// needs.
    fn array_element(self, array: &Array) -> Encoding {
        use Encoding as E;
        use PrimitiveType as T;
        let small = self.smallest();
        let all = |f: &dyn Fn(&Value) -> bool| small && array.items.iter().all(f);
        let pick = |fits: bool, small: E, wide: E| if fits { small } else { wide };
        match array.element {
            T::Boolean => E::Boolean,
            T::Uint => {
                pick(all(&|v| matches!(v, Value::Uint(n) if *n <= 255)), E::SmallUint, E::Uint)
            }
            T::Ulong => {
                pick(all(&|v| matches!(v, Value::Ulong(n) if *n <= 255)), E::SmallUlong, E::Ulong)
            }
            T::Int => pick(
                all(&|v| matches!(v, Value::Int(n) if i8::try_from(*n).is_ok())),
                E::SmallInt,
                E::Int,
            ),
            T::Long => pick(
                all(&|v| matches!(v, Value::Long(n) if i8::try_from(*n).is_ok())),
                E::SmallLong,
                E::Long,
            ),
            T::Binary | T::String | T::Symbol | T::List | T::Map | T::Array => {
                let (small_form, wide) = match array.element {
                    T::Binary => (E::Vbin8, E::Vbin32),
                    T::String => (E::Str8, E::Str32),
                    T::Symbol => (E::Sym8, E::Sym32),
                    T::List => (E::List8, E::List32),
                    T::Map => (E::Map8, E::Map32),
                    _ => (E::Array8, E::Array32),
                };
                pick(all(&|v| self.element_encoding(v) == small_form), small_form, wide)
            }
            ty => widest(ty),
        }
    }

    /// Bytes of a whole value: constructor and data.
    fn len(self, value: &Value) -> usize {
        match value {
            Value::Described(described) => self.described_len(described),
            _ => match self.encoding(value) {
                Some(encoding) => 1usize.saturating_add(self.data_len(encoding, value)),
                None => 0,
            },
        }
    }

    fn described_len(self, described: &Described) -> usize {
        (1 + self.descriptor_len(&described.descriptor)).saturating_add(self.len(&described.value))
    }

    fn descriptor_len(self, descriptor: &Descriptor) -> usize {
        match descriptor {
            Descriptor::Code(code) => self.len(&Value::Ulong(*code)),
            Descriptor::Symbol(symbol) => {
                let width = field_width(self.symbol_encoding(symbol));
                (1 + width).saturating_add(symbol.len())
            }
        }
    }

    /// Bytes after the constructor.
    fn data_len(self, encoding: Encoding, value: &Value) -> usize {
        let width = field_width(encoding);
        match (encoding.category(), value) {
            (Category::Fixed(w), _) => w,
            (Category::Variable(_), Value::Binary(b)) => width.saturating_add(b.len()),
            (Category::Variable(_), Value::String(s)) => width.saturating_add(s.len()),
            (Category::Variable(_), Value::Symbol(s)) => width.saturating_add(s.len()),
            (Category::Compound(_), Value::List(items)) => self.list_data_len(encoding, items),
            (Category::Compound(_), Value::Map(pairs)) => {
                (2 * width).saturating_add(self.pairs_len(pairs))
            }
            (Category::Array(_), Value::Array(array)) => {
                let element = self.array_element(array);
                (2 * width).saturating_add(self.array_content_len(array, element))
            }
            _ => 0,
        }
    }

    fn list_data_len(self, encoding: Encoding, items: &[Value]) -> usize {
        match encoding {
            Encoding::List0 => 0,
            _ => (2 * field_width(encoding)).saturating_add(self.items_len(items)),
        }
    }

    fn items_len(self, items: &[Value]) -> usize {
        items.iter().fold(0usize, |n, item| n.saturating_add(self.len(item)))
    }

    fn pairs_len(self, pairs: &[(Value, Value)]) -> usize {
        pairs
            .iter()
            .fold(0usize, |n, (k, v)| n.saturating_add(self.len(k)).saturating_add(self.len(v)))
    }

    /// The element constructor and the elements' data, without size and count.
    fn array_content_len(self, array: &Array, element: Encoding) -> usize {
        let constructor = match &array.descriptor {
            Some(descriptor) => 2 + self.descriptor_len(descriptor),
            None => 1,
        };
        array
            .items
            .iter()
            .fold(constructor, |n, item| n.saturating_add(self.data_len(element, item)))
    }

    fn write(self, value: &Value, out: &mut BytesMut) -> Result<(), EncodeError> {
        match value {
            Value::Described(described) => {
                out.put_u8(0x00);
                self.write_descriptor(&described.descriptor, out);
                self.write(&described.value, out)
            }
            Value::List(items) => self.write_list(items, out),
            Value::Map(pairs) => self.write_map(None, pairs, out),
            Value::Array(array) => self.write_array(None, array, out),
            _ => match self.encoding(value) {
                Some(encoding) => {
                    out.put_u8(encoding.code());
                    self.write_data(encoding, value, out)
                }
                None => Ok(()),
            },
        }
    }

    fn write_descriptor(self, descriptor: &Descriptor, out: &mut BytesMut) {
        match descriptor {
            Descriptor::Code(code) => match *code {
                0 if self.smallest() => out.put_u8(Encoding::Ulong0.code()),
                n if self.smallest() && n <= 255 => {
                    out.put_slice(&[Encoding::SmallUlong.code(), n as u8]);
                }
                n => {
                    out.put_u8(Encoding::Ulong.code());
                    out.put_u64(n);
                }
            },
            Descriptor::Symbol(symbol) => {
                let encoding = self.symbol_encoding(symbol);
                out.put_u8(encoding.code());
                put_length(field_width(encoding), symbol.len(), out);
                out.put_slice(symbol.as_bytes());
            }
        }
    }

    /// A whole list, constructor included.
    fn write_list(self, items: &[Value], out: &mut BytesMut) -> Result<(), EncodeError> {
        if items.is_empty() && self.smallest() {
            out.put_u8(Encoding::List0.code());
            return Ok(());
        }
        self.write_sized([Encoding::List8, Encoding::List32], None, items.len(), out, |out| {
            items.iter().try_for_each(|item| self.write(item, out))
        })
    }

    /// A map: with its constructor when `element` is `None`, else as an array
    /// element in that encoding.
    fn write_map(
        self,
        element: Option<Encoding>,
        pairs: &[(Value, Value)],
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let count = pairs.len().saturating_mul(2);
        self.write_sized([Encoding::Map8, Encoding::Map32], element, count, out, |out| {
            pairs.iter().try_for_each(|(key, value)| {
                self.write(key, out)?;
                self.write(value, out)
            })
        })
    }

    /// An array: with its constructor when `element` is `None`, else as an array
    /// element in that encoding.
    fn write_array(
        self,
        element: Option<Encoding>,
        array: &Array,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let item_encoding = self.array_element(array);
        let count = array.items.len();
        self.write_sized([Encoding::Array8, Encoding::Array32], element, count, out, |out| {
            if let Some(descriptor) = &array.descriptor {
                out.put_u8(0x00);
                self.write_descriptor(descriptor, out);
            }
            out.put_u8(item_encoding.code());
            for (index, item) in array.items.iter().enumerate() {
                if item.primitive_type() != Some(array.element) {
                    let found = item.type_name();
                    let element = array.element;
                    return Err(EncodeError::ArrayElementMismatch { element, index, found });
                }
                self.write_data(item_encoding, item, out)?;
            }
            Ok(())
        })
    }

    /// Writes a size, a count of `count` and what `body` writes (§1.2.3, §1.2.4).
    /// With `element` set, as an array element in that encoding: no constructor.
    /// Otherwise the constructor first, and the one-byte form `small` when the form
    /// is the smallest and size and count fit, else `wide`.
    fn write_sized(
        self,
        [small, wide]: [Encoding; 2],
        element: Option<Encoding>,
        count: usize,
        out: &mut BytesMut,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        let at = start + usize::from(element.is_none());
        out.put_bytes(0, at - start + 8);
        body(out)?;
        let content = out.len() - at - 8;
        let encoding = match element {
            Some(encoding) => encoding,
            None if self.fits8(count, content.saturating_add(1)) => small,
            None => wide,
        };
        if element.is_none() {
            patch(out, start, &[encoding.code()]);
        }
        if encoding == small {
            patch(out, at, &[content.saturating_add(1) as u8, count as u8]);
            out.copy_within(at + 8.., at + 2);
            out.truncate(out.len() - 6);
        } else {
            // Cut back by the caller if over u32::MAX.
            patch(out, at, &(content.saturating_add(4) as u32).to_be_bytes());
            patch(out, at + 4, &(count as u32).to_be_bytes());
        }
        Ok(())
    }

    /// The data after a constructor, for a value whose encoding is `encoding`.
    fn write_data(
        self,
        encoding: Encoding,
        value: &Value,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        use Encoding as E;
        let width = field_width(encoding);
        match value {
            Value::Null | Value::Described(_) => {}
            Value::Boolean(b) => {
                if encoding == E::Boolean {
                    out.put_u8(u8::from(*b));
                }
            }
            Value::Ubyte(n) => out.put_u8(*n),
            Value::Ushort(n) => out.put_u16(*n),
            Value::Uint(n) => match encoding {
                E::Uint0 => {}
                E::SmallUint => out.put_u8(*n as u8),
                _ => out.put_u32(*n),
            },
            Value::Ulong(n) => match encoding {
                E::Ulong0 => {}
                E::SmallUlong => out.put_u8(*n as u8),
                _ => out.put_u64(*n),
            },
            Value::Byte(n) => out.put_i8(*n),
            Value::Short(n) => out.put_i16(*n),
            Value::Int(n) => match encoding {
                E::SmallInt => out.put_i8(*n as i8),
                _ => out.put_i32(*n),
            },
            Value::Long(n) => match encoding {
                E::SmallLong => out.put_i8(*n as i8),
                _ => out.put_i64(*n),
            },
            Value::Float(x) => out.put_f32(*x),
            Value::Double(x) => out.put_f64(*x),
            Value::Decimal32(d) => out.put_slice(d),
            Value::Decimal64(d) => out.put_slice(d),
            Value::Decimal128(d) => out.put_slice(d),
            Value::Char(c) => out.put_u32(u32::from(*c)),
            Value::Timestamp(ms) => out.put_i64(*ms),
            Value::Uuid(u) => out.put_slice(u),
            Value::Binary(b) => {
                put_length(width, b.len(), out);
                out.put_slice(b);
            }
            Value::String(s) => {
                put_length(width, s.len(), out);
                out.put_slice(s.as_bytes());
            }
            Value::Symbol(s) => {
                put_length(width, s.len(), out);
                out.put_slice(s.as_bytes());
            }
            Value::List(items) => {
                let sized = [E::List8, E::List32];
                return self.write_sized(sized, Some(encoding), items.len(), out, |out| {
                    items.iter().try_for_each(|item| self.write(item, out))
                });
            }
            Value::Map(pairs) => return self.write_map(Some(encoding), pairs, out),
            Value::Array(array) => return self.write_array(Some(encoding), array, out),
        }
        Ok(())
    }
}

/// The widest encoding of `ty`: the only one of a type with a single width, and
/// one that holds every value of the type.
fn widest(ty: PrimitiveType) -> Encoding {
    use Encoding as E;
    use PrimitiveType as T;
    match ty {
        T::Ubyte => E::Ubyte,
        T::Ushort => E::Ushort,
        T::Byte => E::Byte,
        T::Short => E::Short,
        T::Float => E::Float,
        T::Double => E::Double,
        T::Decimal32 => E::Decimal32,
        T::Decimal64 => E::Decimal64,
        T::Decimal128 => E::Decimal128,
        T::Char => E::Char,
        T::Timestamp => E::Timestamp,
        T::Uuid => E::Uuid,
        T::Boolean => E::Boolean,
        T::Uint => E::Uint,
        T::Ulong => E::Ulong,
        T::Int => E::Int,
        T::Long => E::Long,
        T::Binary => E::Vbin32,
        T::String => E::Str32,
        T::Symbol => E::Sym32,
        T::List => E::List32,
        T::Map => E::Map32,
        T::Array => E::Array32,
        T::Null => E::Null,
    }
}

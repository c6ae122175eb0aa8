//! EMV tag–length–value (TLV) data objects: a writer and a zero-copy reader.
//!
//! This module knows nothing of KHQR. It implements the data-object syntax of
//! EMVCo's *QR Code Specification for Payment Systems: Merchant-Presented Mode*
//! (EMV QRCPS-MPM, section 4.7): every data object is
//!
//! * an **ID** of exactly two ASCII digits (`"00"`–`"99"`),
//! * a **length** of exactly two ASCII digits (`"00"`–`"99"`),
//! * a **value** of that length.
//!
//! # Length unit
//!
//! EMVCo counts the length in characters. KHQR writers (the official JavaScript
//! SDK) count **UTF-16 code units** (`String.prototype.length`), which equals the
//! number of characters for all text in the Basic Multilingual Plane (Latin,
//! Khmer, Thai, CJK …) and counts 2 for a character outside it (an emoji such as
//! `😀`). Other writers count Unicode scalar values. [`Writer`] always writes
//! UTF-16 units; [`Reader`] accepts both: where the two counts differ (a value
//! with text outside the BMP) it takes the one that ends on a character boundary
//! and is followed by the end of the input or by another data object, UTF-16
//! first. The length digits as written are kept in [`DataObject::length`] so that
//! re-encoding is byte-for-byte lossless.
//!
//! # Examples
//!
//! ```
//! use bakong_khqr::tlv::{Reader, Writer};
//!
//! let mut s = String::new();
//! let mut w = Writer::new(&mut s);
//! w.write(0, "01").unwrap();
//! w.write(59, "ហាងកាហ្វេ").unwrap();
//! assert_eq!(s, "0002015909ហាងកាហ្វេ");
//!
//! let objects: Vec<_> = Reader::new(&s).collect::<Result<_, _>>().unwrap();
//! assert_eq!(objects[1].id(), 59);
//! assert_eq!(objects[1].value(), "ហាងកាហ្វេ");
//! ```

use alloc::string::String;
use core::fmt;

/// The largest value length two length digits can state: 99 units.
pub const MAX_LENGTH: usize = 99;

/// One data object read from a TLV string; borrows its value from the input.
///
/// `id` and `length` are the numbers the two-digit fields stated; `value` is a
/// sub-slice of the input string (no copy).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataObject<'a> {
    value: &'a str,
    /// The ID (bits 0–7), the stated length (8–15) and the byte offset (16–63)
    /// in one word, written at once: a copy of the object then reads what one
    /// store wrote (the reader's hot loop stalled on three narrow stores).
    head: u64,
}

impl fmt::Debug for DataObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataObject")
            .field("id", &self.id())
            .field("length", &self.length())
            .field("value", &self.value)
            .field("offset", &self.offset())
            .finish()
    }
}

impl<'a> DataObject<'a> {
    /// A placeholder for unused inline storage slots (ID 0, empty value).
    pub(crate) const EMPTY: Self = Self::new(0, 0, "", 0);

    /// An object with ID `id` and stated length `length` whose ID starts at
    /// byte `offset` (its value at `offset` + 4; offsets are kept to 48 bits:
    /// 256 TiB).
    #[inline]
    const fn new(id: u8, length: u8, value: &'a str, offset: usize) -> Self {
        DataObject {
            value,
            head: id as u64 | (length as u64) << 8 | (offset as u64) << 16,
        }
    }

    /// The ID, 0–99 (written as two digits).
    #[must_use]
    pub const fn id(&self) -> u8 {
        self.head as u8
    }

    /// The length as written in the two length digits, 0–99.
    ///
    /// For BMP text this is the value's length in UTF-16 code units (= characters);
    /// see the module docs for text outside the BMP.
    #[must_use]
    pub const fn length(&self) -> u8 {
        (self.head >> 8) as u8
    }

    /// The value, borrowed from the input.
    #[must_use]
    pub const fn value(&self) -> &'a str {
        self.value
    }

    /// Byte offset of the ID's first digit in the string the reader was given.
    #[must_use]
    pub const fn offset(&self) -> usize {
        (self.head >> 16) as usize
    }

    /// Reads the value itself as a sequence of data objects (a template, EMV
    /// QRCPS-MPM 4.7.1), with offsets relative to the whole input.
    #[must_use]
    pub fn children(&self) -> Reader<'a> {
        Reader::with_base(self.value, self.offset() + 4)
    }
}

/// What is wrong with a TLV string; see [`TlvError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlvErrorKind {
    /// Fewer than four characters are left where an ID and a length should start.
    Truncated,
    /// The ID is not two ASCII digits.
    InvalidId,
    /// The length is not two ASCII digits (a sign, a space, a letter …).
    InvalidLength,
    /// The length points past the end of the input.
    LengthPastEnd,
}

/// A TLV string could not be read: what was wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlvError {
    /// What was wrong.
    pub kind: TlvErrorKind,
    /// Byte offset in the input of the data object that could not be read.
    pub offset: usize,
    /// The ID of that data object, when its two ID digits could be read.
    pub id: Option<u8>,
}

impl fmt::Display for TlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TlvErrorKind::Truncated => "input ends inside an ID or length",
            TlvErrorKind::InvalidId => "ID is not two ASCII digits",
            TlvErrorKind::InvalidLength => "length is not two ASCII digits",
            TlvErrorKind::LengthPastEnd => "length points past the end of the input",
        };
        match self.id {
            Some(id) => write!(f, "data object {id:02} at byte {}: {what}", self.offset),
            None => write!(f, "data object at byte {}: {what}", self.offset),
        }
    }
}

impl core::error::Error for TlvError {}

#[inline]
fn two_digits(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

/// Number of UTF-16 code units of `s` (the length unit of KHQR writers).
#[must_use]
pub fn utf16_len(s: &str) -> usize {
    utf16_len_of_utf8(s.as_bytes())
}

/// Whether `bytes` are all ASCII, eight at a time. (`<[u8]>::is_ascii` takes
/// the bytes after its last 64-byte block one by one: a quarter of a KHQR.)
pub(crate) const fn all_ascii(bytes: &[u8]) -> bool {
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let mut words = 0u64;
    let mut rest = bytes;
    while let [a, b, c, d, e, f, g, h, tail @ ..] = rest {
        words |= u64::from_ne_bytes([*a, *b, *c, *d, *e, *f, *g, *h]);
        rest = tail;
    }
    // The last 0 to 7 bytes: within the last eight when there are eight.
    let mut last = 0u8;
    if let [.., a, b, c, d, e, f, g, h] = bytes {
        words |= u64::from_ne_bytes([*a, *b, *c, *d, *e, *f, *g, *h]);
    } else {
        while let [x, tail @ ..] = rest {
            last |= *x;
            rest = tail;
        }
    }
    words & TOPS == 0 && last < 0x80
}

/// [`utf16_len`] of the UTF-8 bytes of a string.
fn utf16_len_of_utf8(bytes: &[u8]) -> usize {
    if all_ascii(bytes) {
        return bytes.len();
    }
    // Every UTF-8 lead byte starts one scalar value; 4-byte sequences need a
    // surrogate pair. Counting bytes is faster than decoding chars (and the
    // loop has no branches, so it vectorises).
    bytes
        .iter()
        .map(|&b| usize::from(!(0x80..0xC0).contains(&b)) + usize::from(b >= 0xF0))
        .sum()
}

/// Byte length of the first `n` length units of `rest` (see the module docs),
/// or `None` if `rest` is too short.
///
/// Text outside the BMP makes the two conventions differ: `n` UTF-16 code units
/// and `n` characters end at different places. Where only one of them ends on a
/// character boundary within `rest`, that one is taken; where both do, the one
/// after which the rest is empty or starts like a data object (four ASCII
/// digits) is taken, UTF-16 first.
fn split_units(rest: &str, n: usize) -> Option<usize> {
    let bytes = rest.as_bytes();
    if bytes.len() >= n && bytes[..n].is_ascii() {
        return Some(n);
    }
    let mut by_utf16 = None;
    let mut by_chars = None;
    let (mut units, mut chars) = (0, 0);
    for (i, c) in rest.char_indices() {
        if units == n && by_utf16.is_none() {
            by_utf16 = Some(i);
        }
        if chars == n {
            by_chars = Some(i);
            break;
        }
        units += c.len_utf16();
        chars += 1;
    }
    if by_utf16.is_none() && units == n {
        by_utf16 = Some(rest.len());
    }
    if by_chars.is_none() && chars == n {
        by_chars = Some(rest.len());
    }
    let plausible = |end: usize| {
        let next = &bytes[end..];
        next.is_empty()
            || next
                .get(..4)
                .is_some_and(|h| h.iter().all(u8::is_ascii_digit))
    };
    match (by_utf16, by_chars) {
        (Some(u), Some(c)) if u != c && !plausible(u) && plausible(c) => Some(c),
        (Some(u), _) => Some(u),
        (None, c) => c,
    }
}

/// A zero-copy iterator over the data objects of a TLV string.
///
/// Yields `Ok(DataObject)` for each well-formed data object and stops after the
/// first `Err`; it never panics and always ends (each step consumes at least
/// four bytes or stops).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a str,
    offset: usize,
    failed: bool,
    /// The whole input is ASCII: a length of n units is n bytes.
    ascii: bool,
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    #[must_use]
    pub const fn new(input: &'a str) -> Self {
        Self::with_base(input, 0)
    }

    /// A reader over `input` whose offsets start at `base` (for templates).
    #[must_use]
    pub const fn with_base(input: &'a str, base: usize) -> Self {
        Reader {
            rest: input,
            offset: base,
            failed: false,
            ascii: all_ascii(input.as_bytes()),
        }
    }

    /// A reader over `input` that is known to be all ASCII, as [`all_ascii`]
    /// would find (the caller looked already: printable ASCII, say); the
    /// reader does not look again. Only for input the caller has checked: the
    /// reader takes a length of n units as n bytes.
    pub(crate) const fn known_ascii(input: &'a str) -> Self {
        Reader {
            rest: input,
            offset: 0,
            failed: false,
            ascii: true,
        }
    }

    /// A reader over the value of `object` (read by this reader) as a template,
    /// with offsets relative to the whole input; knows the value is ASCII when
    /// the whole input is, without looking again.
    #[must_use]
    pub(crate) fn template(&self, object: &DataObject<'a>) -> Reader<'a> {
        Reader {
            rest: object.value,
            offset: object.offset() + 4,
            failed: false,
            ascii: self.ascii || all_ascii(object.value.as_bytes()),
        }
    }

    /// The part of the input not read yet.
    #[must_use]
    pub const fn remainder(&self) -> &'a str {
        self.rest
    }

    /// Reads the next data object. The fast path (the usual KHQR: ASCII input,
    /// four digits, a value within the input) is a few comparisons; anything
    /// else goes to [`Reader::read_slow`], which also says what is wrong.
    #[inline]
    fn read(&mut self) -> Result<DataObject<'a>, TlvError> {
        if let [a, b, c, d, ..] = *self.rest.as_bytes() {
            let digit = |x: u8| x.wrapping_sub(b'0');
            let (a, b, c, d) = (digit(a), digit(b), digit(c), digit(d));
            let end = 4 + usize::from(c) * 10 + usize::from(d);
            let digits =
                u8::from(a < 10) & u8::from(b < 10) & u8::from(c < 10) & u8::from(d < 10) == 1;
            if self.ascii && digits && end <= self.rest.len() {
                // ASCII input: every index is a character boundary.
                let (object, rest) = self.rest.split_at(end);
                let offset = self.offset;
                self.rest = rest;
                self.offset += end;
                return Ok(DataObject::new(
                    a * 10 + b,
                    (end - 4) as u8,
                    &object[4..],
                    offset,
                ));
            }
        }
        self.read_slow()
    }

    #[cold]
    fn read_slow(&mut self) -> Result<DataObject<'a>, TlvError> {
        let offset = self.offset;
        let err = |kind, id| TlvError { kind, offset, id };
        let (id, length) = match *self.rest.as_bytes() {
            [a, b, c, d, ..] => {
                let id = two_digits(&[a, b]).ok_or(err(TlvErrorKind::InvalidId, None))?;
                let length =
                    two_digits(&[c, d]).ok_or(err(TlvErrorKind::InvalidLength, Some(id)))?;
                (id, length)
            }
            [a, b, ..] => {
                let id = two_digits(&[a, b]).ok_or(err(TlvErrorKind::InvalidId, None))?;
                return Err(err(TlvErrorKind::Truncated, Some(id)));
            }
            _ => return Err(err(TlvErrorKind::Truncated, None)),
        };
        // bytes 0..4 are ASCII digits, so 4 is a char boundary.
        let body = &self.rest[4..];
        let n = usize::from(length);
        let end = if self.ascii {
            (n <= body.len()).then_some(n)
        } else {
            split_units(body, n)
        }
        .ok_or(err(TlvErrorKind::LengthPastEnd, Some(id)))?;
        let (value, rest) = body.split_at(end);
        self.rest = rest;
        self.offset += 4 + end;
        Ok(DataObject::new(id, length, value, offset))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<DataObject<'a>, TlvError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.read();
        self.failed = r.is_err();
        Some(r)
    }
}

/// A value could not be written: it is longer than two length digits can state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TooLong {
    /// The ID of the data object.
    pub id: u8,
    /// The value's length in UTF-16 code units (over [`MAX_LENGTH`]).
    pub length: usize,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data object {:02} is {} UTF-16 code units long; two length digits allow at most {MAX_LENGTH}",
            self.id, self.length
        )
    }
}

impl core::error::Error for TooLong {}

/// Appends data objects to a caller's `String`.
///
/// Lengths are counted in UTF-16 code units, the unit of the KHQR SDK. The writer
/// never writes a length over 99: it returns [`TooLong`] instead (the official
/// SDK writes three digits, which no reader accepts). It allocates only when the
/// `String` must grow: give it one with enough capacity and it allocates nothing,
/// templates included (their length is patched in place).
#[derive(Debug)]
pub struct Writer<'b> {
    out: &'b mut String,
}

impl<'b> Writer<'b> {
    /// A writer appending to `out`.
    pub fn new(out: &'b mut String) -> Self {
        Writer { out }
    }

    /// Appends ID, length and value.
    ///
    /// # Errors
    /// [`TooLong`] if `value` is over 99 UTF-16 code units; nothing is written then.
    pub fn write(&mut self, id: u8, value: &str) -> Result<(), TooLong> {
        self.write_with_length(id, utf16_len(value), value)
    }

    /// Appends ID, the given length and value, exactly as given (used to
    /// re-encode a decoded payload without changing a byte).
    ///
    /// # Errors
    /// [`TooLong`] if `length` is over 99; nothing is written then.
    pub fn write_with_length(&mut self, id: u8, length: usize, value: &str) -> Result<(), TooLong> {
        if length > MAX_LENGTH {
            return Err(TooLong { id, length });
        }
        self.out.reserve(4 + value.len());
        push2(self.out, id);
        push2(self.out, length as u8);
        self.out.push_str(value);
        Ok(())
    }

    /// Appends a template (EMV QRCPS-MPM 4.7.1: a value that is itself data
    /// objects) whose content `f` writes; its length is patched in afterwards.
    ///
    /// # Errors
    /// [`TooLong`] from `f`, or for the template itself when its value is over 99
    /// units; the buffer is left as it was then.
    pub fn write_template(
        &mut self,
        id: u8,
        f: impl FnOnce(&mut Writer<'_>) -> Result<(), TooLong>,
    ) -> Result<(), TooLong> {
        let start = self.out.len();
        push2(self.out, id);
        self.out.push_str("00");
        let r = f(&mut Writer { out: self.out });
        let length = utf16_len(&self.out[start + 4..]);
        match r {
            Ok(()) if length <= MAX_LENGTH => {
                // Two ASCII digits replace two ASCII digits: no reallocation.
                self.out
                    .replace_range(start + 2..start + 4, two_digits_text(length as u8));
                Ok(())
            }
            Ok(()) => {
                self.out.truncate(start);
                Err(TooLong { id, length })
            }
            Err(e) => {
                self.out.truncate(start);
                Err(e)
            }
        }
    }

    /// The text written so far (the whole buffer).
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.out
    }
}

/// Appends data objects to a buffer of `N` bytes on the stack, in one pass:
/// no allocation and no capacity check of a `String` per object. For output
/// whose largest size is known beforehand; a write that does not fit is not
/// made and marks the writer (see [`ArrayWriter::as_str`]).
///
/// Lengths are UTF-16 code units, as [`Writer`]'s, when `UTF16` is true; bytes
/// otherwise, the same count for ASCII without a scan of each value. A caller
/// counting bytes must check that what was written is ASCII, and write it again
/// counting UTF-16 units when it is not.
pub(crate) struct ArrayWriter<const N: usize, const UTF16: bool> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize, const UTF16: bool> ArrayWriter<N, UTF16> {
    /// An empty writer.
    pub(crate) const fn new() -> Self {
        ArrayWriter {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// A value's length in this writer's unit.
    #[inline]
    fn units(value: &[u8]) -> usize {
        if UTF16 {
            utf16_len_of_utf8(value)
        } else {
            value.len()
        }
    }

    /// Appends `bytes` (UTF-8 text, or ASCII), or marks the overflow.
    #[inline]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(slot) = self.buf.get_mut(self.len..end) {
            slot.copy_from_slice(bytes);
            self.len = end;
        } else {
            self.overflow = true;
        }
    }

    /// Appends an ID and a length of `units`.
    #[inline]
    fn head(&mut self, id: u8, units: usize) -> Result<(), TooLong> {
        debug_assert!(id <= 99, "TLV IDs are two digits");
        if units > MAX_LENGTH {
            return Err(TooLong { id, length: units });
        }
        // One write of four bytes: a head is written whole or not at all.
        let (i, n) = (
            two_digits_text(id).as_bytes(),
            two_digits_text(units as u8).as_bytes(),
        );
        self.put(&[i[0], i[1], n[0], n[1]]);
        Ok(())
    }

    /// Appends ID, length and value (UTF-8 text).
    ///
    /// # Errors
    /// [`TooLong`] if `value` is over 99 of the writer's units; nothing is written then.
    #[inline]
    pub(crate) fn write(&mut self, id: u8, value: impl AsRef<[u8]>) -> Result<(), TooLong> {
        let value = value.as_ref();
        self.head(id, Self::units(value))?;
        self.put(value);
        Ok(())
    }

    /// Appends a data object when `value` is given.
    ///
    /// # Errors
    /// As [`ArrayWriter::write`].
    #[inline]
    pub(crate) fn write_given(&mut self, id: u8, value: Option<&[u8]>) -> Result<(), TooLong> {
        match value {
            Some(v) => self.write(id, v),
            None => Ok(()),
        }
    }

    /// Starts a template (EMV QRCPS-MPM 4.7.1: a value that is itself data
    /// objects): writes its ID and a placeholder length, and returns where it
    /// starts, for [`ArrayWriter::close`] once its sub-objects are written.
    #[inline]
    pub(crate) fn open(&mut self, id: u8) -> Template {
        let start = self.len;
        // A length of 0 is within the limit.
        let head = self.head(id, 0);
        debug_assert!(head.is_ok(), "a length of 0 is within the limit");
        Template { id, start }
    }

    /// Ends `template` as [`ArrayWriter::close`] does, or removes it when
    /// nothing was written in it.
    ///
    /// # Errors
    /// As [`ArrayWriter::close`].
    pub(crate) fn close_unless_empty(&mut self, template: Template) -> Result<(), TooLong> {
        if !self.overflow && self.len == template.start + 4 {
            self.len = template.start;
            return Ok(());
        }
        self.close(template)
    }

    /// Ends `template`: writes its length in place of the placeholder.
    ///
    /// # Errors
    /// [`TooLong`] when its value is over 99 units.
    // Taken by value so that a template is closed once.
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn close(&mut self, template: Template) -> Result<(), TooLong> {
        let Template { id, start } = template;
        if self.overflow {
            // What was written is thrown away (see `as_str`); the head may be
            // missing.
            return Ok(());
        }
        debug_assert!(
            start + 4 <= self.len,
            "a template is closed after it is opened"
        );
        let value = self.buf.get(start + 4..self.len).unwrap_or_default();
        let units = Self::units(value);
        if units > MAX_LENGTH {
            return Err(TooLong { id, length: units });
        }
        if let Some(digits) = self.buf.get_mut(start + 2..start + 4) {
            digits.copy_from_slice(two_digits_text(units as u8).as_bytes());
        }
        Ok(())
    }

    /// The bytes written so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        debug_assert!(self.len <= N, "writes that do not fit are not made");
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// The text written, or `None` when a write did not fit in `N` bytes.
    pub(crate) fn as_str(&self) -> Option<&str> {
        if self.overflow {
            return None;
        }
        // Only UTF-8 text and ASCII were put, whole: this cannot fail.
        core::str::from_utf8(self.bytes()).ok()
    }
}

/// A template an [`ArrayWriter`] has opened: its ID and where it starts.
#[must_use = "a template's length is written when it is closed"]
pub(crate) struct Template {
    id: u8,
    start: usize,
}

/// "00" to "99", two characters each.
const TWO_DIGITS: &str = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// `n` (0–99) as two ASCII digits.
fn two_digits_text(n: u8) -> &'static str {
    debug_assert!(n <= 99, "TLV IDs and lengths are two digits");
    let i = usize::from(n.min(99)) * 2;
    // i + 2 <= 200 = TWO_DIGITS.len(), at ASCII boundaries: in bounds.
    &TWO_DIGITS[i..i + 2]
}

fn push2(out: &mut String, n: u8) {
    out.push_str(two_digits_text(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(s: &str) -> Result<Vec<(u8, u8, &str)>, TlvError> {
        Reader::new(s)
            .map(|r| r.map(|o| (o.id(), o.length(), o.value())))
            .collect()
    }

    #[test]
    fn reads_ascii_and_khmer() {
        assert_eq!(read_all("000201").unwrap(), vec![(0, 2, "01")],);
        assert_eq!(
            read_all("5909ហាងកាហ្វេ6002PP").unwrap(),
            vec![(59, 9, "ហាងកាហ្វេ"), (60, 2, "PP")],
        );
    }

    #[test]
    fn astral_text_both_conventions() {
        // UTF-16: the emoji counts 2.
        assert_eq!(read_all("5907Shop 😀").unwrap(), vec![(59, 7, "Shop 😀")]);
        // Characters: the emoji counts 1; 6 UTF-16 units would split it.
        assert_eq!(read_all("5906Shop 😀").unwrap(), vec![(59, 6, "Shop 😀")]);
        assert_eq!(read_all("5902😀").unwrap(), vec![(59, 2, "😀")]);
        // "x" cannot start a data object; as 2 characters the value is "😀x".
        assert_eq!(read_all("5902😀x").unwrap(), vec![(59, 2, "😀x")]);
        assert_eq!(
            read_all("5902😀xy").unwrap_err().kind,
            TlvErrorKind::InvalidId
        );
        assert_eq!(read_all("5901😀").unwrap(), vec![(59, 1, "😀")]);
        // Both counts end on a boundary: the one followed by a data object wins.
        assert_eq!(
            read_all("5904😀abc6002PP").unwrap(),
            vec![(59, 4, "😀abc"), (60, 2, "PP")]
        );
        assert_eq!(
            read_all("5904😀ab6002PP").unwrap(),
            vec![(59, 4, "😀ab"), (60, 2, "PP")]
        );
    }

    #[test]
    fn errors_carry_kind_offset_and_id() {
        let e = read_all("000201591AJonh").unwrap_err();
        assert_eq!(e.kind, TlvErrorKind::InvalidLength);
        assert_eq!((e.offset, e.id), (6, Some(59)));
        assert_eq!(
            e.to_string(),
            "data object 59 at byte 6: length is not two ASCII digits"
        );
        assert_eq!(read_all("00").unwrap_err().kind, TlvErrorKind::Truncated);
        assert_eq!(
            read_all("0005abc").unwrap_err().kind,
            TlvErrorKind::LengthPastEnd
        );
        assert_eq!(read_all("AB01x").unwrap_err().kind, TlvErrorKind::InvalidId);
        assert_eq!(
            read_all("59-1abc").unwrap_err().kind,
            TlvErrorKind::InvalidLength
        );
        assert_eq!(
            read_all("59 9abc").unwrap_err().kind,
            TlvErrorKind::InvalidLength
        );
        assert_eq!(
            read_all("5902é").unwrap_err().kind,
            TlvErrorKind::LengthPastEnd
        );
        assert!(read_all("").unwrap().is_empty());
    }

    #[test]
    fn writer_counts_utf16_and_refuses_over_99() {
        let mut s = String::new();
        let mut w = Writer::new(&mut s);
        w.write(59, "Shop 😀").unwrap();
        w.write(1, "").unwrap();
        assert_eq!(w.as_str(), "5907Shop 😀0100");
        let long = "x".repeat(100);
        assert_eq!(
            w.write(62, &long),
            Err(TooLong {
                id: 62,
                length: 100
            })
        );
        assert_eq!(w.as_str(), "5907Shop 😀0100");
        w.write(62, &long[..99]).unwrap();
        assert!(s.ends_with(&format!("6299{}", &long[..99])));
    }

    #[test]
    fn template_round_trip() {
        let mut s = String::from("000201");
        let mut w = Writer::new(&mut s);
        w.write_template(29, |t| {
            t.write(0, "a@b")?;
            t.write(2, "Bank")
        })
        .unwrap();
        // A template over 99 units leaves the buffer untouched.
        let long = "x".repeat(60);
        let e = w.write_template(62, |t| {
            t.write(1, &long)?;
            t.write(2, &long)
        });
        assert_eq!(
            e,
            Err(TooLong {
                id: 62,
                length: 128
            })
        );
        assert_eq!(s, "00020129150003a@b0204Bank");
        let s = &s[6..];
        let top: Vec<_> = Reader::new(s).collect::<Result<_, _>>().unwrap();
        let kids: Vec<_> = top[0].children().collect::<Result<_, _>>().unwrap();
        assert_eq!(kids[1].value(), "Bank");
        assert_eq!(kids[1].offset(), 11);
    }

    #[test]
    fn all_ascii_matches_std() {
        for len in 0..40 {
            for at in 0..len {
                for b in [0x7F, 0x80, 0xC3, 0xFF] {
                    let mut v = vec![b'a'; len];
                    assert!(all_ascii(&v));
                    v[at] = b;
                    assert_eq!(all_ascii(&v), v.is_ascii(), "{len} {at} {b}");
                }
            }
        }
    }

    #[test]
    fn utf16_len_matches_std() {
        for s in ["", "abc", "ហាងកាហ្វេ ស្រីមុំ", "Shop 😀", "金边", "é"]
        {
            assert_eq!(utf16_len(s), s.encode_utf16().count(), "{s}");
        }
    }
}

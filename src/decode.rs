//! Lossless, zero-copy decoding of a KHQR string.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::amount::Currency;
use crate::error::{Detail, Error, ErrorCode, Field};
use crate::tag;
use crate::tlv::{DataObject, Reader, TlvError, Writer};

/// Which Merchant Account Information template a KHQR carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MerchantType {
    /// Tag 29: an individual's account.
    Individual,
    /// Tag 30: a merchant's account.
    Merchant,
}

impl MerchantType {
    /// The template's tag: 29 or 30.
    #[must_use]
    pub const fn tag(self) -> u8 {
        match self {
            MerchantType::Individual => tag::INDIVIDUAL_ACCOUNT,
            MerchantType::Merchant => tag::MERCHANT_ACCOUNT,
        }
    }

    /// The tag as the SDK's decode reports it: `"29"` or `"30"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            MerchantType::Individual => "29",
            MerchantType::Merchant => "30",
        }
    }
}

/// Storage for up to `N` items inline, more on the heap: decoding a KHQR (at
/// most 16 top-level data objects and 16 template sub-objects) allocates nothing,
/// and a longer string still decodes.
#[derive(Clone)]
enum Slots<T: Copy, const N: usize> {
    Inline { items: [T; N], len: usize },
    Heap(Vec<T>),
}

impl<T: Copy, const N: usize> Slots<T, N> {
    const fn new(fill: T) -> Self {
        Slots::Inline {
            items: [fill; N],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, item: T) {
        match self {
            Slots::Inline { items, len } => {
                if let Some(slot) = items.get_mut(*len) {
                    *slot = item;
                    *len += 1;
                } else {
                    let mut v = Vec::with_capacity(2 * N);
                    v.extend_from_slice(items);
                    v.push(item);
                    *self = Slots::Heap(v);
                }
            }
            Slots::Heap(v) => v.push(item),
        }
    }

    #[inline]
    fn as_slice(&self) -> &[T] {
        match self {
            Slots::Inline { items, len } => items.get(..*len).unwrap_or(&[]),
            Slots::Heap(v) => v,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Slots::Inline { len, .. } => *len = n.min(*len),
            Slots::Heap(v) => v.truncate(n),
        }
    }
}

impl<T: Copy + PartialEq, const N: usize> PartialEq for Slots<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Eq, const N: usize> Eq for Slots<T, N> {}

const TOP_INLINE: usize = 16;
const SUBS_INLINE: usize = 16;

/// The empty store of sub-objects, a constant: copied in one piece into a new
/// [`Decoded`], not filled slot by slot and then copied.
const EMPTY_SUBS: Slots<DataObject<'static>, SUBS_INLINE> = Slots::new(DataObject::EMPTY);

/// [`Element::children`] of a data object without sub-objects (an empty
/// range would be a template with none).
const NO_CHILDREN: (u32, u32) = (u32::MAX, 0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Element<'a> {
    /// The data object.
    pub(crate) object: DataObject<'a>,
    /// Range of this template's sub-objects in `Decoded::subs`; [`NO_CHILDREN`]
    /// when it is not a template that reads as data objects.
    children: (u32, u32),
}

/// A decoded KHQR: every data object of the string, in order, borrowed from it.
///
/// Decoding is **lossless**: every top-level data object, known or not, is kept
/// with its raw value and length digits, and so is every sub-object of a template
/// (tags 26–51, 62, 64, 80–99 — EMV QRCPS-MPM 4.7) whose value reads as data
/// objects; [`Decoded::encode`] gives back the identical string. Private tags of
/// bank apps (ABA's 40, ACLEDA's sub-template 62/99, …) come through untouched.
///
/// Decoding checks structure only (no CRC, no field rules): use [`crate::verify`]
/// for that. It never panics and takes time linear in the input.
///
/// ```
/// use bakong_khqr::{Decoded, MerchantType};
///
/// let s = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
/// let d = Decoded::parse(s)?;
/// assert_eq!(d.merchant_type(), Some(MerchantType::Individual));
/// assert_eq!(d.bakong_account_id(), Some("jonhsmith@nbcq"));
/// assert_eq!(d.merchant_name(), Some("Jonh Smith"));
/// assert_eq!(d.encode(), s);
/// # Ok::<(), bakong_khqr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    payload: &'a str,
    top: Slots<Element<'a>, TOP_INLINE>,
    subs: Slots<DataObject<'a>, SUBS_INLINE>,
}

/// One top-level data object of a [`Decoded`] payload, with its sub-objects when
/// it is a template that reads as data objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'d, 'a> {
    /// The data object: ID, length as written, raw value.
    pub object: DataObject<'a>,
    /// The sub-objects of a template, in order; `None` for a primitive data object
    /// or a template value that does not read as data objects (kept opaque).
    pub children: Option<&'d [DataObject<'a>]>,
}

impl<'a> Entry<'_, 'a> {
    /// The ID, 0–99.
    #[must_use]
    pub const fn id(&self) -> u8 {
        self.object.id()
    }

    /// The raw value.
    #[must_use]
    pub const fn value(&self) -> &'a str {
        self.object.value()
    }

    /// The values of the sub-objects with IDs `0..N`, each at its ID (one pass
    /// over the sub-objects, an ID an index); of a repeated sub-tag, the last,
    /// as [`Entry::sub_value`].
    pub(crate) fn subs_below<const N: usize>(&self) -> [Option<&'a str>; N] {
        subs_below(self.children.unwrap_or(&[]))
    }

    /// The value of sub-object `sub`, if this is a template that has one; of a
    /// repeated sub-tag, the last (as the official SDK reads it; [`crate::verify`]
    /// refuses repeats).
    #[must_use]
    pub fn sub_value(&self, sub: u8) -> Option<&'a str> {
        self.children?
            .iter()
            .rev()
            .find(|o| o.id() == sub)
            .map(DataObject::value)
    }
}

/// The values of the data objects `objects` with IDs `0..N`, each at its ID;
/// of a repeated ID, the last.
#[inline]
pub(crate) fn subs_below<'a, const N: usize>(objects: &[DataObject<'a>]) -> [Option<&'a str>; N] {
    let mut out = [None; N];
    for o in objects {
        if let Some(slot) = out.get_mut(usize::from(o.id())) {
            *slot = Some(o.value());
        }
    }
    out
}

/// Told of each data object [`Decoded::read_observed`] reads, as it reads it.
pub(crate) trait Observer<'a> {
    /// Whether [`Observer::children`] is wanted.
    const WANTS_CHILDREN: bool = true;

    /// A top-level data object was read; if it is a template,
    /// [`Observer::children`] follows when its value reads as data objects.
    fn object(&mut self, object: &DataObject<'a>);

    /// The value of the top-level data object just read, a template with ID
    /// `id`, read as the data objects `children` (in order).
    fn children(&mut self, id: u8, children: &[DataObject<'a>]);
}

/// Told nothing: plain decode.
impl<'a> Observer<'a> for () {
    const WANTS_CHILDREN: bool = false;

    #[inline(always)]
    fn object(&mut self, _: &DataObject<'a>) {}

    #[inline(always)]
    fn children(&mut self, _: u8, _: &[DataObject<'a>]) {}
}

/// Where and why [`Decoded::read`] stopped short of a clean read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stop {
    /// The first KHQR template (29, 30, 62, 64, 99) whose value is not data
    /// objects: its tag and the error inside it.
    pub template: Option<(u8, TlvError)>,
    /// The top-level data object that could not be read (the reading ended there).
    pub top: Option<TlvError>,
}

impl Stop {
    /// The error [`Decoded::parse`] reports: the first in the string.
    pub(crate) fn first_error(&self) -> Option<Error> {
        match (self.template, self.top) {
            (Some((id, e)), _) => Some(malformed(template_field(id), e)),
            (None, Some(e)) => Some(malformed(Field::Payload, e)),
            (None, None) => None,
        }
    }
}

/// The field of a template (29, 30, 62, 64, 99) by its tag; the payload for any other tag.
pub(crate) fn template_field(id: u8) -> Field {
    if tag::is_khqr_template(id) {
        Field::of_tag(id)
    } else {
        Field::Payload
    }
}

pub(crate) fn malformed(field: Field, e: TlvError) -> Error {
    let code = if field == Field::MerchantAccountInformation {
        // A merchant account template that cannot be read: no merchant type.
        ErrorCode::MerchantTypeRequired
    } else {
        ErrorCode::MalformedTlv
    };
    Error::new(code, field, Detail::Tlv(e))
}

impl<'a> Decoded<'a> {
    /// Decodes `payload`.
    ///
    /// # Errors
    /// * [`ErrorCode::KhqrInvalid`] (8) for an empty string.
    /// * [`ErrorCode::MalformedTlv`] (54) when the top level or a KHQR template
    ///   (62, 64, 99) is not well-formed TLV: an ID or length that is not two ASCII
    ///   digits (`"59 9"`, `"59+9"`, `"59-1"`, `"591A"`), a length past the end
    ///   (truncation, a three-digit length), a template whose value is not data
    ///   objects (`"6206XXABCD"`). [`Error::tlv_error`] says where.
    /// * [`ErrorCode::MerchantTypeRequired`] (5) when the merchant account template
    ///   (29 or 30) is not well-formed TLV.
    pub fn parse(payload: &'a str) -> Result<Self, Error> {
        if payload.is_empty() {
            return Err(Error::missing(ErrorCode::KhqrInvalid, Field::Payload));
        }
        // Read into the returned value itself: a `Decoded` is about 1 KB, and
        // building it on the stack and then moving it into the `Result` costs
        // a copy of all of it.
        let mut out = Ok(Decoded::empty(payload));
        if let Ok(d) = &mut out {
            if let Some(e) = d.read().first_error() {
                return Err(e);
            }
        }
        out
    }

    /// The last top-level data object read, if any.
    pub(crate) fn last_object(&self) -> Option<DataObject<'a>> {
        self.top.as_slice().last().map(|e| e.object)
    }

    /// Nothing read yet from `payload`.
    #[inline]
    pub(crate) const fn empty(payload: &'a str) -> Self {
        Decoded {
            payload,
            top: Slots::new(Element {
                object: DataObject::EMPTY,
                children: NO_CHILDREN,
            }),
            subs: EMPTY_SUBS,
        }
    }

    /// Reads the payload into `self` (empty) in one pass of [`Reader`], and
    /// says where and why it stopped. A KHQR template that is not data objects
    /// is recorded and the reading goes on (verify reads the top level the way
    /// the SDK does, past such a template); a top-level data object that is not
    /// well-formed ends it.
    // Not inlined into `parse`: the loop compiles better on its own.
    #[inline(never)]
    pub(crate) fn read(&mut self) -> Stop {
        self.read_observed(&mut (), false)
    }

    /// [`Decoded::read`], telling `observer` of each data object as it is read
    /// (verify collects what it needs in the same pass; plain decode passes
    /// `()`, which is told nothing and costs nothing). `ascii`: the caller
    /// knows the payload is all ASCII (`false`: not known, the reader looks).
    #[inline]
    pub(crate) fn read_observed<O: Observer<'a>>(&mut self, observer: &mut O, ascii: bool) -> Stop {
        let mut stop = Stop::default();
        let mut reader = if ascii {
            Reader::known_ascii(self.payload)
        } else {
            Reader::new(self.payload)
        };
        while let Some(object) = reader.next() {
            let object = match object {
                Ok(o) => o,
                Err(e) => {
                    stop.top = Some(e);
                    break;
                }
            };
            let id = object.id();
            observer.object(&object);
            let mut children = NO_CHILDREN;
            if tag::is_template(id) {
                let start = self.subs.len();
                let mut broken = None;
                for sub in reader.template(&object) {
                    match sub {
                        Ok(s) => self.subs.push(s),
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    }
                }
                match broken {
                    None => {
                        children = (start as u32, self.subs.len() as u32);
                        if O::WANTS_CHILDREN {
                            let subs = self.subs.as_slice().get(start..).unwrap_or(&[]);
                            observer.children(id, subs);
                        }
                    }
                    Some(e) => {
                        self.subs.truncate(start);
                        if tag::is_khqr_template(id) && stop.template.is_none() {
                            stop.template = Some((id, e));
                        }
                    }
                }
            }
            self.top.push(Element { object, children });
        }
        stop
    }

    /// The top-level data objects as stored, in order (with
    /// [`Decoded::entry`], for verify's single pass over them).
    pub(crate) fn elements(&self) -> &[Element<'a>] {
        self.top.as_slice()
    }

    /// The string that was decoded.
    #[must_use]
    pub const fn payload(&self) -> &'a str {
        self.payload
    }

    /// The top-level data objects, in order.
    #[must_use]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Entry<'_, 'a>> + '_ {
        self.top.as_slice().iter().map(|e| self.entry(e))
    }

    /// `e` (one of [`Decoded::elements`]) with its sub-objects.
    pub(crate) fn entry(&self, e: &Element<'a>) -> Entry<'_, 'a> {
        Entry {
            object: e.object,
            children: self
                .subs
                .as_slice()
                .get(e.children.0 as usize..e.children.1 as usize),
        }
    }

    /// The top-level data object with this ID; of a repeated tag, the last (as
    /// the official SDK reads it; [`crate::verify`] refuses repeats).
    #[must_use]
    pub fn get(&self, id: u8) -> Option<Entry<'_, 'a>> {
        self.top
            .as_slice()
            .iter()
            .rev()
            .find(|e| e.object.id() == id)
            .map(|e| self.entry(e))
    }

    /// The value of the top-level data object with this ID (the last, if repeated).
    #[must_use]
    pub fn value(&self, id: u8) -> Option<&'a str> {
        self.top
            .as_slice()
            .iter()
            .rev()
            .find(|e| e.object.id() == id)
            .map(|e| e.object.value())
    }

    /// The value of sub-object `sub` of template `id` (the last of each, if
    /// repeated).
    #[must_use]
    pub fn sub_value(&self, id: u8, sub: u8) -> Option<&'a str> {
        self.get(id)?.sub_value(sub)
    }

    /// How many top-level data objects have this ID.
    #[must_use]
    pub fn count(&self, id: u8) -> usize {
        self.top
            .as_slice()
            .iter()
            .filter(|e| e.object.id() == id)
            .count()
    }

    /// Writes the payload back: identical to the decoded string.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.payload.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the payload, data object by data object, to `out`.
    pub fn encode_into(&self, out: &mut String) {
        let mut w = Writer::new(out);
        for e in self.top.as_slice() {
            let o = e.object;
            // Lengths read from two digits are ≤ 99: this cannot fail.
            let _ = w.write_with_length(o.id(), usize::from(o.length()), o.value());
        }
    }

    // ----- typed accessors -------------------------------------------------

    /// Tag 29 or 30, whichever comes last (the SDK's reading of a payload with
    /// both, which [`crate::verify`] refuses).
    #[must_use]
    pub fn merchant_type(&self) -> Option<MerchantType> {
        self.top
            .as_slice()
            .iter()
            .rev()
            .find_map(|e| match e.object.id() {
                tag::INDIVIDUAL_ACCOUNT => Some(MerchantType::Individual),
                tag::MERCHANT_ACCOUNT => Some(MerchantType::Merchant),
                _ => None,
            })
    }

    /// Whether the point of initiation method is `12` (dynamic: one payment).
    #[must_use]
    pub fn is_dynamic(&self) -> bool {
        self.point_of_initiation_method() == Some("12")
    }

    /// Transaction Currency as a [`Currency`], when it is 116 or 840.
    #[must_use]
    pub fn currency(&self) -> Option<Currency> {
        Currency::from_numeric_text(self.transaction_currency()?)
    }

    /// Creation timestamp in milliseconds since the Unix epoch, when it is digits.
    #[must_use]
    pub fn creation_timestamp_ms(&self) -> Option<u64> {
        parse_ms(self.creation_timestamp()?)
    }

    /// Expiration timestamp in milliseconds since the Unix epoch, when it is digits.
    #[must_use]
    pub fn expiration_timestamp_ms(&self) -> Option<u64> {
        parse_ms(self.expiration_timestamp()?)
    }
}

/// Exactly 13 ASCII digits (leading zeros allowed; the width of milliseconds
/// since the Unix epoch from 2001 to 2286) as their number: [`parse_ms`] of a
/// string of 13 bytes, read in two words.
#[inline]
pub(crate) fn parse_ms13(s: &str) -> Option<u64> {
    let b: &[u8; 13] = s.as_bytes().try_into().ok()?;
    let (head, tail) = (b.first_chunk::<8>()?, b.last_chunk::<8>()?);
    // The first five digits moved up to the end of a group over three zeros.
    let head = (u64::from_le_bytes(*head) << 24) | (u64::from_le_bytes([b'0'; 8]) >> 40);
    Some(eight_digits(head)? * 100_000_000 + eight_digits(u64::from_le_bytes(*tail))?)
}

pub(crate) fn parse_ms(s: &str) -> Option<u64> {
    // At most 19 digits: below u64::MAX, so no overflow.
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    // Eight digits at a time; the first group padded with leading zeros.
    let first = b.len() % 8;
    let (head, rest) = b.split_at(first);
    let mut n = 0;
    if let Some(w) = b.first_chunk::<8>().filter(|_| first > 0) {
        // The head is the first `first` of eight bytes there: moved up to
        // the end of the group (little-endian: the high bytes) over zeros.
        let shift = 8 * (8 - first as u32);
        let zeros = u64::from_le_bytes([b'0'; 8]) >> (64 - shift);
        n = eight_digits((u64::from_le_bytes(*w) << shift) | zeros)?;
    } else if !head.is_empty() {
        // Fewer than eight bytes in all.
        let mut group = [b'0'; 8];
        group[8 - first..].copy_from_slice(head);
        n = eight_digits(u64::from_le_bytes(group))?;
    }
    for c in rest.chunks_exact(8) {
        let mut group = [0; 8];
        group.copy_from_slice(c);
        n = n * 100_000_000 + eight_digits(u64::from_le_bytes(group))?;
    }
    Some(n)
}

/// Eight ASCII digits as a little-endian word (the first digit, most
/// significant, in the low byte), as their number (at most 99,999,999); `None`
/// unless all are digits. A byte is a digit when its high half is 3 both as it
/// is and after adding 6 (0x30-0x39 only); the digits are then paired, the
/// pairs paired, and those paired by multiplications.
fn eight_digits(x: u64) -> Option<u64> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    // A carry out of a byte of 0xFA or more only follows a byte that fails already.
    let digits =
        x & (ONES * 0xF0) == ONES * 0x30 && x.wrapping_add(ONES * 6) & (ONES * 0xF0) == ONES * 0x30;
    if !digits {
        return None;
    }
    let x = (x & (ONES * 0x0F)).wrapping_mul(10 << 8 | 1) >> 8;
    let x = (x & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 << 16 | 1) >> 16;
    let x = (x & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 << 32 | 1) >> 32;
    Some(x)
}

impl fmt::Debug for Decoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for e in self.iter() {
            match e.children {
                Some(c) => l.entry(&(
                    format_args!("{:02}", e.id()),
                    c.iter()
                        .map(|o| (format!("{:02}", o.id()), o.value()))
                        .collect::<Vec<_>>(),
                )),
                None => l.entry(&(format_args!("{:02}", e.id()), e.value())),
            };
        }
        l.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ms_reads_digits_only() {
        for n in [
            0u64,
            7,
            10,
            99_999_999,
            100_000_000,
            1_700_000_000_000,
            u64::MAX / 10,
        ] {
            assert_eq!(parse_ms(&n.to_string()), Some(n), "{n}");
            let padded = format!("00{n}");
            let want = (padded.len() <= 19).then_some(n);
            assert_eq!(parse_ms(&padded), want, "{padded}");
        }
        assert_eq!(
            parse_ms("9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for n in [1_000_000_000_000u64, 1_700_000_000_123, 9_999_999_999_999] {
            assert_eq!(parse_ms13(&n.to_string()), Some(n), "{n}");
        }
        for s in ["0000000000000", "0000000000042", "1700000000000"] {
            assert_eq!(parse_ms13(s), parse_ms(s), "{s}");
        }
        for bad in [
            "170000000000",
            "17000000000000",
            "170000000000a",
            "a700000000000",
        ] {
            assert_eq!(parse_ms13(bad), None, "{bad}");
        }
        for bad in [
            "",
            "17000000000000000000",
            "1700000000/00",
            "17000000000:0",
            "+1",
            "1 ",
            "١٢",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
        // Every non-digit byte at every place of 13 digits.
        for at in 0..13 {
            for b in (0u8..=0x7F).filter(|b| !b.is_ascii_digit()) {
                let mut s = b"1700000000000".to_vec();
                s[at] = b;
                let s = core::str::from_utf8(&s).unwrap();
                assert_eq!(parse_ms(s), None, "{at} {b}");
                assert_eq!(parse_ms13(s), None, "{at} {b}");
            }
        }
    }

    #[test]
    fn more_objects_than_inline_slots_still_round_trip() {
        // 40 top-level objects and 3 templates of 24 sub-objects each: past the
        // inline capacity of both stores.
        let mut s = "0100".repeat(37);
        for id in [80, 81, 82] {
            s.push_str(&id.to_string());
            s.push_str("96");
            s.push_str(&"0500".repeat(24));
        }
        let d = Decoded::parse(&s).unwrap();
        assert_eq!(d.iter().len(), 40);
        assert_eq!(d.count(1), 37);
        let kids = d.get(82).unwrap().children.unwrap();
        assert_eq!(kids.len(), 24);
        assert_eq!(kids[23].offset(), s.len() - 4);
        assert_eq!(d.encode(), s);
        assert_eq!(Decoded::parse(&d.encode()).unwrap(), d);
    }
}

//! Mixed-mode segmentation of a payload, and the symbol built from it.
//!
//! A QR symbol's data is a sequence of segments, each in one mode: numeric
//! (digits, 10 bits per 3), alphanumeric (digits, upper-case letters, space and
//! `$%*+-./:`, 11 bits per 2) or byte (8 bits each); every segment costs a
//! 4-bit mode indicator and a character count whose width depends on the
//! mode and the version range 1–9, 10–26 or 27–40 (ISO/IEC 18004:2015 §7.4.3–
//! §7.4.5, Table 3). KHQR payloads are long runs of digits (tags, lengths,
//! amounts, timestamps) and short runs of other text, so a good split into
//! segments makes the symbol one or two versions smaller than one byte
//! segment: larger modules at the same printed width.
//!
//! The split here is the cheapest one in bits, found exactly by dynamic
//! programming over the bytes (the idea of the standard's Annex J, done
//! optimally). Kanji mode is never used: Khmer UTF-8 bytes can look like
//! Shift JIS pairs, and a decoder would return Kanji in their place. A
//! payload that is not all ASCII starts with an ECI 26 (UTF-8) designator
//! (§7.4.2), so decoders return its bytes as UTF-8.

use qrcode::bits::Bits;
use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{Color, Version};

use super::symbol::ec_level;
use super::{Ecc, RenderError};

/// The ECI assignment number of UTF-8 (AIM ECI specification).
pub(crate) const ECI_UTF8: u32 = 26;

/// Bits of an ECI designator for an assignment number under 128: the 4-bit
/// mode indicator and one 8-bit byte (§7.4.2.2).
const ECI_BITS: usize = 12;

/// The eight mask patterns, in the order of their numbers (ISO/IEC 18004 Table 10).
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// The modules (row by row, true = dark) of `canvas` under the mask with the
/// lowest penalty (the first of equals). `qrcode` masks and draws the format
/// information; the penalty is scored here on flat booleans, because with
/// `QrCode::with_bits`'s own scoring the criterion `qr/encode_dynamic` took
/// 1.02 ms against 0.19 ms with this one (docs/card.md, "The QR symbol").
fn best_mask(canvas: &Canvas, size: usize) -> Vec<bool> {
    let mut best: Option<(u32, Vec<bool>)> = None;
    for mask in MASKS {
        let mut c = canvas.clone();
        c.apply_mask(mask);
        let dark: Vec<bool> = c
            .into_colors()
            .into_iter()
            .map(|m| m == Color::Dark)
            .collect();
        let p = penalty(&dark, size);
        if best.as_ref().is_none_or(|(q, _)| p < *q) {
            best = Some((p, dark));
        }
    }
    best.map(|(_, d)| d).unwrap_or_default()
}

/// The mask penalty of ISO/IEC 18004 §7.8.3.1: runs of 5 or more modules of
/// one colour in a row or column (3 + the run beyond 5), 2 × 2 blocks of one
/// colour (3 each), finder-like 1:1:3:1:1 patterns with 4 light modules on one
/// side (40 each; outside the symbol counts as light), and 10 for every 5%
/// the dark share is away from 50%.
fn penalty(dark: &[bool], n: usize) -> u32 {
    // Written without data-dependent branches: the modules look random, so
    // branches on them are mispredicted about half the time.
    let mut columns = vec![false; n * n];
    for (i, &d) in dark.iter().enumerate() {
        columns[(i % n) * n + i / n] = d;
    }
    let mut score = 0u32;
    for line in dark.chunks_exact(n).chain(columns.chunks_exact(n)) {
        let mut run = 0u32;
        let mut prev = !line[0];
        // The last 11 modules as bits (1 = dark), the line padded with 4
        // light modules at each end.
        let mut window = 0u16;
        for &d in line.iter().chain(&[false; 4]) {
            run = run * u32::from(d == prev) + 1;
            prev = d;
            score += 3 * u32::from(run == 5) + u32::from(run > 5);
            window = (window << 1 | u16::from(d)) & 0x7FF;
            score += 40 * u32::from(window == 0b000_0101_1101 || window == 0b101_1101_0000);
        }
        // The padding is one light run: take back what it added to the runs.
        let tail = u32::try_from(line.iter().rev().take_while(|&&d| !d).count()).unwrap_or(0);
        let runs = |r: u32| if r >= 5 { r - 2 } else { 0 };
        score -= runs(tail + 4) - runs(tail);
    }
    for y in 0..n - 1 {
        let (top, bottom) = (&dark[y * n..(y + 1) * n], &dark[(y + 1) * n..(y + 2) * n]);
        for x in 0..n - 1 {
            let four = [top[x], top[x + 1], bottom[x], bottom[x + 1]];
            let dark_count = four.iter().map(|&d| u32::from(d)).sum::<u32>();
            score += 3 * u32::from(dark_count % 4 == 0);
        }
    }
    let total = n * n;
    let dark_count = dark.iter().filter(|&&d| d).count();
    let off = (dark_count * 20).abs_diff(total * 10) / total;
    score + 10 * u32::try_from(off).unwrap_or(u32::MAX / 20)
}

/// A segment mode. Kanji is left out on purpose (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Numeric,
    Alphanumeric,
    Byte,
}

const MODES: [Mode; 3] = [Mode::Numeric, Mode::Alphanumeric, Mode::Byte];

impl Mode {
    /// Whether this mode can hold byte `b`.
    fn holds(self, b: u8) -> bool {
        match self {
            Mode::Numeric => b.is_ascii_digit(),
            Mode::Alphanumeric => {
                b.is_ascii_digit() || b.is_ascii_uppercase() || b" $%*+-./:".contains(&b)
            }
            Mode::Byte => true,
        }
    }

    /// Characters per group and the bits of a group of 1, 2, … of them:
    /// numeric 4, 7, 10; alphanumeric 6, 11; byte 8 (§7.4.3–§7.4.5).
    const fn group_bits(self) -> &'static [usize] {
        match self {
            Mode::Numeric => &[4, 7, 10],
            Mode::Alphanumeric => &[6, 11],
            Mode::Byte => &[8],
        }
    }

    /// Width of the character count indicator in version range `range`
    /// (0: versions 1–9, 1: 10–26, 2: 27–40), ISO/IEC 18004 Table 3.
    const fn count_bits(self, range: usize) -> usize {
        let widths = match self {
            Mode::Numeric => [10, 12, 14],
            Mode::Alphanumeric => [9, 11, 13],
            Mode::Byte => [8, 16, 16],
        };
        widths[range]
    }

    /// Data bits of `n` characters in this mode, without the header.
    fn data_bits(self, n: usize) -> usize {
        let g = self.group_bits();
        let k = g.len();
        let rest = match n % k {
            0 => 0,
            r => g[r - 1],
        };
        n / k * g[k - 1] + rest
    }
}

/// A run of the payload's bytes, `start..end`, written in one mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) mode: Mode,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Segment {
    /// Bits of the segment with its mode indicator and count, in version range `range`.
    fn bits(self, range: usize) -> usize {
        4 + self.mode.count_bits(range) + self.mode.data_bits(self.end - self.start)
    }
}

/// DP states: a mode and how many characters of its current group are
/// already written (numeric 0–2, alphanumeric 0–1, byte 0).
const STATES: [(Mode, usize); 6] = [
    (Mode::Numeric, 0),
    (Mode::Numeric, 1),
    (Mode::Numeric, 2),
    (Mode::Alphanumeric, 0),
    (Mode::Alphanumeric, 1),
    (Mode::Byte, 0),
];

fn state_index(mode: Mode, phase: usize) -> usize {
    match mode {
        Mode::Numeric => phase,
        Mode::Alphanumeric => 3 + phase,
        Mode::Byte => 5,
    }
}

/// The segments of `data` with the fewest bits in version range `range`
/// (0: versions 1–9, 1: 10–26, 2: 27–40), and that number of bits (headers
/// included, no ECI, no terminator). Empty data gives no segments.
pub(crate) fn segments(data: &[u8], range: usize) -> (Vec<Segment>, usize) {
    const NONE: usize = usize::MAX;
    let n = data.len();
    // cost[i][s]: fewest bits for data[..i] ending in state s; from[i][s]:
    // the state before the last byte (6 = the start).
    let mut cost = vec![[NONE; 6]; n + 1];
    let mut from = vec![[6u8; 6]; n + 1];
    for (i, &b) in data.iter().enumerate() {
        // Index 6 is the start, before the first byte.
        for s in 0..=6 {
            let (base, st) = match (i, s) {
                (0, 6) => (0, None),
                (0, _) | (_, 6) => continue,
                _ if cost[i][s] == NONE => continue,
                _ => (cost[i][s], Some(STATES[s])),
            };
            for mode in MODES.into_iter().filter(|m| m.holds(b)) {
                let g = mode.group_bits();
                let (add, phase) = match st {
                    Some((m, p)) if m == mode => {
                        let before = if p == 0 { 0 } else { g[p - 1] };
                        (g[p] - before, (p + 1) % g.len())
                    }
                    _ => (4 + mode.count_bits(range) + g[0], 1 % g.len()),
                };
                let t = state_index(mode, phase);
                if base + add < cost[i + 1][t] {
                    cost[i + 1][t] = base + add;
                    from[i + 1][t] = if i == 0 { 6 } else { s as u8 };
                }
            }
        }
    }
    let Some((mut s, total)) = cost[n]
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, c)| c != NONE)
        .min_by_key(|&(_, c)| c)
    else {
        return (Vec::new(), 0);
    };
    // Walk back: the mode of every byte, then runs of one mode.
    let mut modes = vec![Mode::Byte; n];
    for i in (0..n).rev() {
        modes[i] = STATES[s].0;
        s = usize::from(from[i + 1][s]);
        if s == 6 {
            break;
        }
    }
    let mut out: Vec<Segment> = Vec::new();
    for (i, &mode) in modes.iter().enumerate() {
        match out.last_mut() {
            Some(seg) if seg.mode == mode => seg.end = i + 1,
            _ => out.push(Segment {
                mode,
                start: i,
                end: i + 1,
            }),
        }
    }
    (out, total)
}

/// The version ranges of Table 3, with the versions in each.
const RANGES: [(usize, core::ops::RangeInclusive<i16>); 3] =
    [(0, 1..=9), (1, 10..=26), (2, 27..=40)];

/// Encodes `payload` in the fewest bits (module docs) in the smallest version
/// that holds it at `ecc`. Returns the side in modules and the
/// modules row by row (true = dark).
///
/// # Errors
/// [`RenderError::TooLong`] when no version holds it.
pub(crate) fn encode(payload: &str, ecc: Ecc) -> Result<(usize, Vec<bool>), RenderError> {
    let data = payload.as_bytes();
    let ec = ec_level(ecc);
    let too_long = || RenderError::TooLong { bytes: data.len() };
    let eci = if payload.is_ascii() { 0 } else { ECI_BITS };
    for (range, versions) in RANGES {
        let (segs, bits) = segments(data, range);
        // A count field caps a segment's length: the 99-unit fields of KHQR
        // never come near it, so a longer run goes to the next range.
        if segs
            .iter()
            .any(|s| s.end - s.start >= 1 << s.mode.count_bits(range))
        {
            continue;
        }
        debug_assert_eq!(bits, segs.iter().map(|s| s.bits(range)).sum::<usize>());
        let Some(v) = versions.into_iter().find(|&v| {
            Bits::new(Version::Normal(v))
                .max_len(ec)
                .is_ok_and(|cap| eci + bits <= cap)
        }) else {
            continue;
        };
        let mut b = Bits::new(Version::Normal(v));
        let pushed = (eci == 0 || b.push_eci_designator(ECI_UTF8).is_ok())
            && segs.iter().all(|s| {
                let d = &data[s.start..s.end];
                match s.mode {
                    Mode::Numeric => b.push_numeric_data(d),
                    Mode::Alphanumeric => b.push_alphanumeric_data(d),
                    Mode::Byte => b.push_byte_data(d),
                }
                .is_ok()
            })
            && b.push_terminator(ec).is_ok();
        if !pushed {
            return Err(too_long());
        }
        let version = b.version();
        let (data_cw, ec_cw) = qrcode::ec::construct_codewords(&b.into_bytes(), version, ec)
            .map_err(|_| too_long())?;
        let mut canvas = Canvas::new(version, ec);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data_cw, &ec_cw);
        let size = 17 + 4 * usize::try_from(v).unwrap_or(0);
        return Ok((size, best_mask(&canvas, size)));
    }
    Err(too_long())
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcode::EcLevel;

    /// Bits of the cheapest assignment of a mode to every byte, found by
    /// trying them all (runs of one mode are one segment).
    fn brute_force(data: &[u8], range: usize) -> usize {
        let n = data.len();
        let mut best = usize::MAX;
        for code in 0..3usize.pow(n as u32) {
            let modes: Vec<Mode> = (0..n)
                .map(|i| MODES[code / 3usize.pow(i as u32) % 3])
                .collect();
            if modes.iter().zip(data).any(|(m, &b)| !m.holds(b)) {
                continue;
            }
            let mut bits = 0;
            let mut i = 0;
            while i < n {
                let j = (i..n).find(|&j| modes[j] != modes[i]).unwrap_or(n);
                bits += Segment {
                    mode: modes[i],
                    start: i,
                    end: j,
                }
                .bits(range);
                i = j;
            }
            best = best.min(bits);
        }
        best
    }

    /// The DP's split costs exactly what it says, and no split costs less
    /// (exhaustive over mixes of digits, capitals, lower case and UTF-8).
    #[test]
    fn split_is_optimal() {
        let alphabet = ["0", "7", "A", "Z", " ", "a", "@", "é", "ក"];
        let mut seed = 0x2545_f491_u32;
        for len in 1..=7 {
            for _ in 0..40 {
                let mut s = String::new();
                while s.len() < len {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    s.push_str(alphabet[seed as usize % alphabet.len()]);
                }
                for range in 0..3 {
                    let (segs, bits) = segments(s.as_bytes(), range);
                    let sum: usize = segs.iter().map(|g| g.bits(range)).sum();
                    assert_eq!(bits, sum, "{s:?}");
                    assert_eq!(
                        bits,
                        brute_force(s.as_bytes(), range),
                        "{s:?} range {range}"
                    );
                    assert_eq!(segs.last().map_or(0, |g| g.end), s.len());
                }
            }
        }
    }

    /// ISO/IEC 18004 bit counts: "01234567" numeric is 4 + 10 + 27 bits
    /// (§7.4.3 example); "AC-42" alphanumeric 4 + 9 + 28 (§7.4.4 example).
    #[test]
    fn standard_examples() {
        assert_eq!(
            segments(b"01234567", 0),
            (
                vec![Segment {
                    mode: Mode::Numeric,
                    start: 0,
                    end: 8
                }],
                41
            )
        );
        assert_eq!(
            segments(b"AC-42", 0),
            (
                vec![Segment {
                    mode: Mode::Alphanumeric,
                    start: 0,
                    end: 5
                }],
                41
            )
        );
        assert_eq!(segments(b"", 0), (Vec::new(), 0));
    }

    /// A KHQR payload splits into digit runs and text: the tag/length
    /// prefix is numeric, the account ID bytes, the CRC alphanumeric.
    #[test]
    fn khqr_payload_splits() {
        let p = b"00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
        let (segs, bits) = segments(p, 0);
        assert_eq!(
            segs[0],
            Segment {
                mode: Mode::Numeric,
                start: 0,
                end: 20
            }
        );
        assert_eq!(segs.last().unwrap().mode, Mode::Alphanumeric);
        assert!(bits < 4 + 8 + 8 * p.len(), "{bits}");
        // No Kanji, and non-ASCII bytes only ever in byte segments.
        let k = "5910ហាងកាហ្វេ6010PHNOM PENH".as_bytes();
        let (segs, _) = segments(k, 0);
        for s in segs {
            if k[s.start..s.end].iter().any(|b| !b.is_ascii()) {
                assert_eq!(s.mode, Mode::Byte);
            }
        }
    }

    /// Version choice (ISO/IEC 18004 Table 7): version 1-L holds 41 digits
    /// (17 in byte mode), version 1-H 17 digits.
    #[test]
    fn smallest_version() {
        assert_eq!(encode(&"9".repeat(41), Ecc::L).unwrap().0, 21);
        assert_eq!(encode(&"9".repeat(42), Ecc::L).unwrap().0, 25);
        assert_eq!(encode(&"9".repeat(17), Ecc::H).unwrap().0, 21);
        assert_eq!(encode(&"9".repeat(18), Ecc::H).unwrap().0, 25);
        assert!(matches!(
            encode(&"a".repeat(2332), Ecc::M),
            Err(RenderError::TooLong { bytes: 2332 })
        ));
    }

    /// §7.8.3.1 by hand: an all-light 21 × 21 square has 42 lines with a run
    /// of 21 (3 + 16 each), 400 light 2 × 2 blocks (3 each), no finder-like
    /// pattern and a dark share 50% off (10 × 10): 798 + 1 200 + 100. Then
    /// 1011101 in the middle of row 10: a finder-like pattern with light on
    /// both sides, counted once per side.
    #[test]
    fn penalty_by_hand() {
        let mut grid = vec![false; 21 * 21];
        assert_eq!(penalty(&grid, 21), 2098);
        for (i, d) in [true, false, true, true, true, false, true]
            .into_iter()
            .enumerate()
        {
            grid[10 * 21 + 7 + i] = d;
        }
        // Runs: that row 5 + 5, its 5 dark columns 8 each, 20 rows and 16
        // columns 19 each: 774. Blocks: 400 − 40 touching the row + 24 still
        // light: 384 × 3. Finder-like: 2 × 40. Dark share 5 of 441: 9 × 10.
        assert_eq!(penalty(&grid, 21), 774 + 1152 + 80 + 90);
    }

    /// The chosen mask's penalty is the least of the eight.
    #[test]
    fn best_mask_is_least_penalty() {
        let payload = "00020101021129180014jonhsmith@nbcq5204599953031165802KH5910Jonh Smith6010Phnom Penh6304856B";
        let (size, chosen) = encode(payload, Ecc::M).unwrap();
        let v = i16::try_from((size - 17) / 4).unwrap();
        let mut bits = Bits::new(Version::Normal(v));
        let (segs, _) = segments(payload.as_bytes(), 0);
        for s in segs {
            let d = &payload.as_bytes()[s.start..s.end];
            match s.mode {
                Mode::Numeric => bits.push_numeric_data(d),
                Mode::Alphanumeric => bits.push_alphanumeric_data(d),
                Mode::Byte => bits.push_byte_data(d),
            }
            .unwrap();
        }
        bits.push_terminator(EcLevel::M).unwrap();
        let version = bits.version();
        let (data, ec) =
            qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M).unwrap();
        let mut canvas = Canvas::new(version, EcLevel::M);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data, &ec);
        let least = MASKS
            .iter()
            .map(|&m| {
                let mut c = canvas.clone();
                c.apply_mask(m);
                let dark: Vec<bool> = c
                    .into_colors()
                    .into_iter()
                    .map(|m| m == Color::Dark)
                    .collect();
                penalty(&dark, size)
            })
            .min()
            .unwrap();
        assert_eq!(penalty(&chosen, size), least);
    }
}

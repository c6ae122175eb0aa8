//! What a QR symbol is made of, for drawing over it safely: which modules
//! belong to function patterns, which codeword (and which Reed–Solomon block)
//! every data module carries, and how many codewords a centre badge may spoil.
//!
//! Rules from ISO/IEC 18004:2015: function patterns §6.3 (finder, separator,
//! timing, alignment, format and version information, dark module), codeword
//! placement §7.7.3, block structure and interleaving §7.5.2 and Table 9 (the
//! table comes from the `qrcode` crate's `ec::construct_codewords`, probed
//! below).

// The anatomy is used by the card only.
#![cfg_attr(not(feature = "card"), allow(dead_code))]
// Symbol sides are 21–177 modules (checked in `version_of`), far inside i16.
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]

use qrcode::{bits::Bits, EcLevel, Version};

use super::Ecc;

/// The `qrcode` crate's name for `ecc`.
pub(crate) fn ec_level(ecc: Ecc) -> EcLevel {
    match ecc {
        Ecc::L => EcLevel::L,
        Ecc::M => EcLevel::M,
        Ecc::Q => EcLevel::Q,
        Ecc::H => EcLevel::H,
    }
}

/// The version (1–40) of a symbol `size` modules wide.
fn version_of(size: usize) -> Option<i16> {
    let v = size.checked_sub(17)? / 4;
    ((1..=40).contains(&v) && 17 + 4 * v == size).then_some(v as i16)
}

/// Which modules of a symbol are function patterns, and the data codeword of
/// every other module.
#[derive(Clone, Debug)]
pub(crate) struct Anatomy {
    size: usize,
    /// Per module, row by row: `None` for a function module or a remainder
    /// bit, else the codeword's index in the interleaved sequence.
    codeword: Vec<Option<u16>>,
    function: Vec<bool>,
    /// Block of each interleaved codeword.
    block_of: Vec<u16>,
    /// Error-correction codewords per block (the same for every block).
    ec_per_block: usize,
    blocks: usize,
}

impl Anatomy {
    /// The anatomy of a symbol `size` modules wide at level `ecc`.
    pub(crate) fn new(size: usize, ecc: Ecc) -> Option<Anatomy> {
        let v = version_of(size)?;
        let version = Version::Normal(v);
        let w = size as i16;
        let mut function = vec![false; size * size];
        for y in 0..w {
            for x in 0..w {
                let version_info = v >= 7
                    && ((x >= w - 11 && x < w - 8 && y < 6) || (y >= w - 11 && y < w - 8 && x < 6));
                function[y as usize * size + x as usize] =
                    version_info || qrcode::canvas::is_functional(version, w, x, y);
            }
        }
        let (block_of, ec_per_block, blocks) = blocks(version, ecc)?;
        // Zigzag placement (§7.7.3): two-column strips from the right, upwards
        // then downwards, skipping the vertical timing column.
        let mut codeword = vec![None; size * size];
        let mut bit = 0usize;
        let mut x = size.cast_signed() - 1;
        let mut upward = true;
        while x > 0 {
            if x == 6 {
                x -= 1;
            }
            for i in 0..size {
                let y = if upward { size - 1 - i } else { i };
                let x = x.cast_unsigned();
                for col in [x, x - 1] {
                    let at = y * size + col;
                    if !function[at] {
                        let cw = bit / 8;
                        if cw < block_of.len() {
                            codeword[at] = Some(cw as u16);
                        }
                        bit += 1;
                    }
                }
            }
            upward = !upward;
            x -= 2;
        }
        Some(Anatomy {
            size,
            codeword,
            function,
            block_of,
            ec_per_block,
            blocks,
        })
    }

    /// Whether `(x, y)` is a module of a function pattern.
    pub(crate) fn is_function(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.function[y * self.size + x]
    }

    /// Errors each block can correct: ⌊EC codewords per block / 2⌋.
    pub(crate) fn capacity(&self) -> usize {
        self.ec_per_block / 2
    }

    /// The most codewords of any one block that the modules for which
    /// `covered(x, y)` is true touch (a touched codeword counts as wrong).
    pub(crate) fn worst_block_damage(&self, covered: impl Fn(usize, usize) -> bool) -> usize {
        let mut hit = vec![false; self.block_of.len()];
        for y in 0..self.size {
            for x in 0..self.size {
                if let Some(cw) = self.codeword[y * self.size + x] {
                    if covered(x, y) {
                        hit[cw as usize] = true;
                    }
                }
            }
        }
        let mut per_block = vec![0usize; self.blocks];
        for (cw, h) in hit.iter().enumerate() {
            if *h {
                per_block[self.block_of[cw] as usize] += 1;
            }
        }
        per_block.into_iter().max().unwrap_or(0)
    }
}

/// The block of every interleaved codeword (data then EC), the EC codewords
/// per block and the number of blocks, for `version` at `ecc`. Read off the
/// `qrcode` crate's interleaver (it holds Table 9): interleaving data whose
/// bytes are their own indices shows where each block's bytes land.
fn blocks(version: Version, ecc: Ecc) -> Option<(Vec<u16>, usize, usize)> {
    let ec = ec_level(ecc);
    let data_len = Bits::new(version).max_len(ec).ok()? / 8;
    let lo: Vec<u8> = (0..data_len).map(|i| (i & 0xFF) as u8).collect();
    let hi: Vec<u8> = (0..data_len).map(|i| (i >> 8) as u8).collect();
    let (lo_out, ec_out) = qrcode::ec::construct_codewords(&lo, version, ec).ok()?;
    let (hi_out, _) = qrcode::ec::construct_codewords(&hi, version, ec).ok()?;
    let order: Vec<usize> = lo_out
        .iter()
        .zip(&hi_out)
        .map(|(&l, &h)| usize::from(h) << 8 | usize::from(l))
        .collect();
    // The first round of the interleave takes byte 0 of every block: the
    // block starts, ascending; it ends where the order first descends (to
    // byte 1 of block 0). An order that never descends is a single block.
    let n = order
        .windows(2)
        .position(|w| w[1] < w[0])
        .map_or(1, |p| p + 1);
    let starts = &order[..n];
    let block_of_data = |i: usize| starts.iter().rposition(|&s| s <= i).unwrap_or(0) as u16;
    let mut block_of: Vec<u16> = order.iter().map(|&i| block_of_data(i)).collect();
    let ec_total = ec_out.len();
    if n == 0 || ec_total % n != 0 {
        return None;
    }
    block_of.extend((0..ec_total).map(|k| (k % n) as u16));
    Some((block_of, ec_total / n, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table 9 spot checks: version 1-M is one block of 16 data + 10 EC; 7-M
    /// four blocks of 31 + 18; 5-Q two of 15 and two of 16, 18 EC each; 40-H
    /// 81 blocks with 30 EC each.
    #[test]
    fn block_structure_matches_table_9() {
        let (b, ec, n) = blocks(Version::Normal(1), Ecc::M).unwrap();
        assert_eq!((b.len(), ec, n), (26, 10, 1));
        let (b, ec, n) = blocks(Version::Normal(7), Ecc::M).unwrap();
        assert_eq!((b.len(), ec, n), (196, 18, 4));
        let (b, ec, n) = blocks(Version::Normal(5), Ecc::Q).unwrap();
        assert_eq!((b.len(), ec, n), (134, 18, 4));
        assert_eq!(b.iter().filter(|&&k| k == 3).count(), 16 + 18);
        assert_eq!(b.iter().filter(|&&k| k == 0).count(), 15 + 18);
        let (b, ec, n) = blocks(Version::Normal(40), Ecc::H).unwrap();
        assert_eq!((b.len(), ec, n), (3706, 30, 81));
    }

    /// Every codeword of the symbol gets exactly 8 modules, and the function
    /// patterns plus data plus remainder bits fill the symbol (§7.7.3).
    #[test]
    fn every_codeword_has_eight_modules() {
        for (v, remainder) in [(1, 0), (2, 7), (7, 0), (14, 3), (21, 4), (40, 0)] {
            let size = 17 + 4 * v;
            let a = Anatomy::new(size, Ecc::M).unwrap();
            let mut count = vec![0; a.block_of.len()];
            let mut free = 0;
            for (i, c) in a.codeword.iter().enumerate() {
                if let Some(c) = c {
                    count[*c as usize] += 1;
                }
                if !a.function[i] {
                    free += 1;
                }
            }
            assert!(count.iter().all(|&n| n == 8), "version {v}");
            assert_eq!(free, a.block_of.len() * 8 + remainder, "version {v}");
        }
    }

    #[test]
    fn version_of_size() {
        assert_eq!(version_of(21), Some(1));
        assert_eq!(version_of(177), Some(40));
        assert_eq!(version_of(22), None);
        assert_eq!(version_of(181), None);
    }
}

//! The payload checksum: CRC-16/CCITT-FALSE (EMV QRCPS-MPM 4.7.3, data object 63).
//!
//! Polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR — the
//! algorithm the CRC catalogue calls CRC-16/IBM-3740 (check value `29B1` for
//! `"123456789"`). It runs over the **UTF-8 bytes** of the payload up to and
//! including the CRC's own ID and length (`"6304"`), and is written as four
//! upper-case hexadecimal digits, zero-padded (the official SDK's behaviour).
//!
//! ```
//! assert_eq!(bakong_khqr::crc::checksum(b"123456789"), 0x29B1);
//! assert_eq!(&bakong_khqr::crc::checksum_hex(b"6304"), b"6007");
//! ```

use crc::{Crc, Table, CRC_16_IBM_3740};

static CRC16: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_IBM_3740);

/// CRC-16/CCITT-FALSE of `bytes`.
#[must_use]
pub fn checksum(bytes: &[u8]) -> u16 {
    CRC16.checksum(bytes)
}

/// CRC-16/CCITT-FALSE of `bytes` as four upper-case ASCII hex digits.
#[must_use]
pub fn checksum_hex(bytes: &[u8]) -> [u8; 4] {
    hex4(checksum(bytes))
}

/// `v` as four upper-case ASCII hex digits, zero-padded.
#[must_use]
pub fn hex4(v: u16) -> [u8; 4] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let b = v.to_be_bytes();
    [
        HEX[usize::from(b[0] >> 4)],
        HEX[usize::from(b[0] & 15)],
        HEX[usize::from(b[1] >> 4)],
        HEX[usize::from(b[1] & 15)],
    ]
}

/// Parses four hex digits (either case) into the CRC value.
#[must_use]
pub fn parse_hex4(s: &str) -> Option<u16> {
    let digits: &[u8; 4] = s.as_bytes().try_into().ok()?;
    digits.iter().try_fold(0u16, |acc, &x| {
        let v = match x {
            b'0'..=b'9' => x - b'0',
            b'a'..=b'f' => x - b'a' + 10,
            b'A'..=b'F' => x - b'A' + 10,
            _ => return None,
        };
        Some(acc << 4 | u16::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_values() {
        assert_eq!(checksum(b""), 0xFFFF);
        assert_eq!(checksum(b"123456789"), 0x29B1);
        assert_eq!(&hex4(2), b"0002");
        assert_eq!(parse_hex4("856b"), Some(0x856B));
        assert_eq!(parse_hex4("+56b"), None);
        assert_eq!(parse_hex4("856"), None);
    }
}

//! Hexadecimal, written without `format!`: a chunk's size line once per
//! stream per flush, and the stop-token key shared through Redis; and the
//! `%XX` escapes of URLs and of composite ids, read back.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` in lowercase hex, without leading zeros (`0` for zero).
pub fn put_number(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = DIGITS[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Bytes as lowercase hex digits, two per byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Fills `out` from exactly `2 * out.len()` lowercase hex digits; `None`
/// for anything else.
pub fn decode(text: &str, out: &mut [u8]) -> Option<()> {
    let text = text.as_bytes();
    if text.len() != out.len() * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(())
}

/// Undoes `%XX` escapes (either case); with `plus_is_space`, a `+` is a
/// space, as in a query string (`URLSearchParams`). `None` for a broken
/// escape or bytes that are not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_bytes_round_trip() {
        for n in [0usize, 1, 15, 16, 255, 4096, 0xdead_beef] {
            let mut out = Vec::new();
            put_number(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{n:x}"));
        }
        let mut out = Vec::new();
        put_number(&mut out, usize::MAX);
        assert_eq!(out.len(), 2 * std::mem::size_of::<usize>());
        let bytes = [0u8, 1, 0xab, 0xff];
        let text = encode(&bytes);
        assert_eq!(text, "0001abff");
        let mut back = [0u8; 4];
        assert_eq!(decode(&text, &mut back), Some(()));
        assert_eq!(back, bytes);
        assert_eq!(decode("0001ABFF", &mut back), None, "lowercase only");
        assert_eq!(decode("000", &mut back), None);
    }
}

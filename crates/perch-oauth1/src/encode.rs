//! Percent-encoding as RFC 5849 §3.6 defines it, and the two decodings a
//! server meets: plain percent-decoding (header values, RFC 3986 §2.1) and
//! `application/x-www-form-urlencoded` decoding (query strings and form
//! bodies, RFC 5849 §3.4.1.3.1), where `+` means a space.

use std::borrow::Cow;

/// A parameter name or value (RFC 5849 §3.4.1.3): borrowed from the
/// request when it needed no decoding, owned when it did, so that
/// collecting a request allocates little.
pub type Text<'a> = Cow<'a, str>;

/// A decoded name/value pair (RFC 5849 §3.4.1.3.1).
pub type Param<'a> = (Text<'a>, Text<'a>);

/// A percent-encoded string that cannot be decoded (RFC 3986 §2.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hexadecimal digits (`%`, `%4`, `%G1`;
    /// RFC 3986 §2.1); `position` is the byte offset of the `%` in the input.
    #[error("malformed percent-escape at byte {position}")]
    MalformedEscape {
        /// Byte offset of the offending `%` in the input.
        position: usize,
    },
    /// The decoded bytes are not UTF-8, which RFC 5849 §3.6 requires.
    #[error("decoded bytes are not valid UTF-8")]
    InvalidUtf8,
}

/// Whether RFC 5849 §3.6 leaves `byte` unencoded: ALPHA, DIGIT, `-`, `.`,
/// `_`, `~` (the RFC 3986 §2.3 unreserved set) and nothing else.
pub(crate) const fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// [`is_unreserved`] as a table: the byte-level encoder below runs on every
/// byte of every base string, and a lookup beats the comparisons.
static UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = is_unreserved(byte as u8);
        byte += 1;
    }
    table
};

/// Uppercase, because RFC 5849 §3.6 requires it and signatures compare bytes.
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encodes `input` per RFC 5849 §3.6: UTF-8 bytes, everything but
/// the unreserved set escaped as `%XX` with uppercase hex.
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    percent_encode_into(&mut out, input);
    out
}

/// Appends the RFC 5849 §3.6 encoding of `input` to `out`; lets the base
/// string and header builders encode without an intermediate `String`.
pub fn percent_encode_into(out: &mut String, input: &str) {
    let bytes = input.as_bytes();
    // Copy runs of unreserved bytes at once: most OAuth values are entirely
    // unreserved, so this is the common path.
    let mut run_start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if is_unreserved(byte) {
            continue;
        }
        // A run of unreserved bytes is ASCII, so a non-empty run is on char
        // boundaries; an empty one may start inside a multi-byte char,
        // where slicing would panic, hence `get`.
        out.push_str(input.get(run_start..i).unwrap_or_default());
        out.push('%');
        out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
        out.push(char::from(HEX_UPPER[usize::from(byte & 0x0F)]));
        run_start = i + 1;
    }
    out.push_str(input.get(run_start..).unwrap_or_default());
}

/// `name=value&...` with every name and value percent-encoded (RFC 5849
/// §3.6), in the order given: the normalised parameter string once the
/// pairs are sorted, and a valid query or form body as it is.
pub(crate) fn encode_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> String {
    let len = pairs
        .iter()
        .map(|(n, v)| n.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = String::with_capacity(len);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode_into(&mut out, name.as_ref());
        out.push('=');
        percent_encode_into(&mut out, value.as_ref());
    }
    out
}

/// Where the byte-level encoder writes: a `Vec` (signing) or a buffer
/// in front of a MAC (verifying, see [`crate::signature`]), so that the
/// base string need not be built in memory before it is hashed.
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The index of the first byte of `input` for which `stop` is true, or
/// `input.len()`: the scanner behind the encoder, the form parser and the
/// header parser.
///
/// Tests eight bytes per step without an early exit (the eight lookups
/// are independent, so the CPU runs them in parallel), then finds the
/// byte inside the step that stopped; this is about twice as fast as a
/// byte-at-a-time search on the long plain runs OAuth text is made of.
#[inline]
pub(crate) fn find_first(input: &[u8], stop: &[bool; 256]) -> usize {
    let (chunks, _) = input.as_chunks::<8>();
    let mut at = 0;
    for chunk in chunks {
        if chunk
            .iter()
            .fold(false, |any, &b| any | stop[usize::from(b)])
        {
            break;
        }
        at += 8;
    }
    let rest = input.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&b| stop[usize::from(b)])
        .unwrap_or(rest.len())
}

/// The bytes RFC 5849 §3.6 escapes: the complement of [`UNRESERVED`].
static ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = !UNRESERVED[byte];
        byte += 1;
    }
    table
};

/// The byte-level twin of [`percent_encode_into`], for the signature base
/// string (RFC 5849 §3.4.1.1), which only ever feeds a MAC and so never
/// needs to be a `String`. With `twice`, it encodes twice in one pass,
/// writing escapes as `%25XY`: the normalised parameters are encoded by
/// §3.4.1.3.2 and then again by §3.4.1.1, and the first encoding's output
/// only has unreserved bytes and `%`, of which the second changes just the
/// `%`.
#[inline]
pub(crate) fn encode_bytes_into<S: Sink>(out: &mut S, mut input: &[u8], twice: bool) {
    // Copy each run of unreserved bytes in one go (most names and values
    // are one such run), then write one escape with a fixed-size store.
    loop {
        let run = find_first(input, &ESCAPED);
        let (plain, rest) = input.split_at(run);
        if !plain.is_empty() {
            out.put(plain);
        }
        let Some((&byte, rest)) = rest.split_first() else {
            return;
        };
        let (hi, lo) = (
            HEX_UPPER[usize::from(byte >> 4)],
            HEX_UPPER[usize::from(byte & 0x0F)],
        );
        if twice {
            out.put(&[b'%', b'2', b'5', hi, lo]);
        } else {
            out.put(&[b'%', hi, lo]);
        }
        input = rest;
    }
}

/// Decodes RFC 3986 §2.1 percent-escapes in `input` (either hex case, as
/// RFC 3986 §2.1 says they are equivalent); `+` stays a `+`. Used for
/// `Authorization` header values, which RFC 5849 §3.5.1 encodes per §3.6.
pub fn percent_decode(input: &str) -> Result<String, DecodeError> {
    decode(input.as_bytes(), 0, false).map(Cow::into_owned)
}

/// Decodes one `application/x-www-form-urlencoded` name or value (RFC 5849
/// §3.4.1.3.1 via W3C HTML 4.01 §17.13.4): `+` is a space, `%XX` a byte.
pub fn form_decode(input: &[u8]) -> Result<String, DecodeError> {
    decode(input, 0, true).map(Cow::into_owned)
}

/// Parses an `application/x-www-form-urlencoded` string (a query string or
/// form body, RFC 5849 §3.4.1.3.1) into decoded name/value pairs, in order
/// and with duplicates kept. Empty `&`-separated segments are skipped and a
/// segment without `=` is a name with an empty value (`c2` in RFC 5849
/// §3.4.1.3.1's example). Names and values without escapes borrow from
/// `input`.
pub fn parse_form(input: &[u8]) -> Result<Vec<Param<'_>>, DecodeError> {
    let mut pairs = Vec::new();
    parse_form_into(&mut pairs, input)?;
    Ok(pairs)
}

/// The bytes [`parse_form_into`] must notice: separators and the two that
/// call for decoding.
static FORM_STOP: [bool; 256] = {
    let mut table = [false; 256];
    table[b'&' as usize] = true;
    table[b'=' as usize] = true;
    table[b'%' as usize] = true;
    table[b'+' as usize] = true;
    table
};

/// [`parse_form`] appending to `pairs`, so that the query, body and header
/// parameters of one request share one vector.
///
/// One pass over `input` (jumping from one `&`, `=`, `%` or `+` to the
/// next with [`find_first`]) finds each segment's end, its first `=` and
/// whether name or value hold a `%` or `+`; only those are decoded, the
/// rest borrow after a UTF-8 check. Errors are those of decoding each
/// name, then its value, segment by segment, as [`decode`] reports them.
pub(crate) fn parse_form_into<'a>(
    pairs: &mut Vec<Param<'a>>,
    input: &'a [u8],
) -> Result<(), DecodeError> {
    let mut start = 0; // of the current segment
    let mut eq: Option<usize> = None; // its first `=`
    let mut escaped_name = false;
    let mut escaped_value = false;
    let mut at = 0;
    loop {
        at += find_first(input.get(at..).unwrap_or_default(), &FORM_STOP);
        match input.get(at) {
            Some(b'%' | b'+') => match eq {
                None => escaped_name = true,
                Some(_) => escaped_value = true,
            },
            Some(b'=') => {
                if eq.is_none() {
                    eq = Some(at);
                }
            }
            // `&` or the end closes the segment.
            end => {
                if at > start {
                    let name_end = eq.unwrap_or(at);
                    let name = input.get(start..name_end).unwrap_or_default();
                    // Without `=`, the value is empty.
                    let value = input.get(name_end + 1..at).unwrap_or_default();
                    let name = decode_part(name, start, escaped_name)?;
                    let value = decode_part(value, name_end + 1, escaped_value)?;
                    pairs.push((name, value));
                }
                if end.is_none() {
                    return Ok(());
                }
                start = at + 1;
                eq = None;
                escaped_name = false;
                escaped_value = false;
            }
        }
        at += 1;
    }
}

/// A form name or value: borrowed after a UTF-8 check when it has no `%`
/// or `+` (`escaped` false), else decoded.
#[inline]
fn decode_part(input: &[u8], base: usize, escaped: bool) -> Result<Cow<'_, str>, DecodeError> {
    if escaped {
        decode(input, base, true)
    } else {
        std::str::from_utf8(input)
            .map(Cow::Borrowed)
            .map_err(|_| DecodeError::InvalidUtf8)
    }
}

/// Decodes an `Authorization` header name or value (RFC 5849 §3.5.1),
/// borrowing when there is nothing to decode.
pub(crate) fn percent_decode_cow(input: &str) -> Result<Cow<'_, str>, DecodeError> {
    // Most header names and values have no escapes, and the input is a
    // `str` already, so no UTF-8 check is needed either. (`contains` on
    // bytes is std's word-at-a-time `memchr`.)
    if !input.as_bytes().contains(&b'%') {
        return Ok(Cow::Borrowed(input));
    }
    decode(input.as_bytes(), 0, false)
}

/// Shared decoder; `base` is added to error positions so that errors inside
/// a form segment point into the whole input. Borrows when `input` has no
/// escapes (and, for forms, no `+`).
fn decode(input: &[u8], base: usize, plus_is_space: bool) -> Result<Cow<'_, str>, DecodeError> {
    let is_special = |b: u8| b == b'%' || (plus_is_space && b == b'+');
    let Some(first) = input.iter().position(|&b| is_special(b)) else {
        return std::str::from_utf8(input)
            .map(Cow::Borrowed)
            .map_err(|_| DecodeError::InvalidUtf8);
    };
    let mut out = Vec::with_capacity(input.len());
    let mut i = first;
    out.extend_from_slice(input.get(..first).unwrap_or_default());
    let stop = if plus_is_space { &FORM_STOP } else { &PERCENT };
    while let Some(&byte) = input.get(i) {
        if byte == b'%' {
            let hi = input.get(i + 1).copied().and_then(hex_value);
            let lo = input.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(DecodeError::MalformedEscape { position: base + i }),
            }
            i += 3;
        } else if byte == b'+' && plus_is_space {
            out.push(b' ');
            i += 1;
        } else {
            // A plain run, up to the next `%` (or `+`); `FORM_STOP` also
            // stops at `=` and `&`, which then make one-byte runs.
            let rest = input.get(i..).unwrap_or_default();
            let run = find_first(rest, stop).max(1);
            out.extend_from_slice(rest.get(..run).unwrap_or_default());
            i += run;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

/// Just `%`, for [`decode`] outside forms.
static PERCENT: [bool; 256] = {
    let mut table = [false; 256];
    table[b'%' as usize] = true;
    table
};

const fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_only_the_unreserved_set_literally() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            percent_encode(" !*'()+,/:;=?@[]&%"),
            "%20%21%2A%27%28%29%2B%2C%2F%3A%3B%3D%3F%40%5B%5D%26%25"
        );
        // RFC 5849 §3.6: UTF-8 first, uppercase hex.
        assert_eq!(percent_encode("é☃"), "%C3%A9%E2%98%83");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn decodes_both_hex_cases_and_keeps_plus() {
        assert_eq!(percent_decode("a%2Bb%2bc+d").unwrap(), "a+b+c+d");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
    }

    #[test]
    fn rejects_malformed_escapes_with_position() {
        for (input, position) in [("%", 0), ("a%4", 1), ("ab%G1", 2), ("%%41", 0), ("x%4G", 1)] {
            assert_eq!(
                percent_decode(input),
                Err(DecodeError::MalformedEscape { position }),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert_eq!(percent_decode("%FF"), Err(DecodeError::InvalidUtf8));
        assert_eq!(percent_decode("%C3"), Err(DecodeError::InvalidUtf8));
        assert_eq!(form_decode(b"\xff"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn form_decoding_treats_plus_as_space() {
        assert_eq!(form_decode(b"a+b%2Bc").unwrap(), "a b+c");
        let pairs = parse_form(b"c2&a3=2+q&&x==y&=v").unwrap();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(pairs, [("c2", ""), ("a3", "2 q"), ("x", "=y"), ("", "v")]);
        // Borrowed unless decoding changed something.
        let pairs = parse_form(b"a=b&c=d+e").unwrap();
        assert!(matches!(pairs[0].1, Cow::Borrowed("b")));
        assert!(matches!(pairs[1].1, Cow::Owned(_)));
        assert_eq!(parse_form(b"").unwrap(), vec![]);
    }

    #[test]
    fn byte_encoder_matches_the_string_encoder_once_and_twice() {
        for input in ["", "abc", "a b+c~é☃%", "%41", "\u{0}\u{7f}\u{80}"] {
            let mut once = Vec::new();
            encode_bytes_into(&mut once, input.as_bytes(), false);
            assert_eq!(once, percent_encode(input).as_bytes());
            let mut twice = Vec::new();
            encode_bytes_into(&mut twice, input.as_bytes(), true);
            assert_eq!(twice, percent_encode(&percent_encode(input)).as_bytes());
        }
    }

    #[test]
    fn form_errors_point_into_the_whole_input() {
        assert_eq!(
            parse_form(b"a=1&b=%4"),
            Err(DecodeError::MalformedEscape { position: 6 })
        );
        assert_eq!(
            parse_form(b"a=1&%zz=2"),
            Err(DecodeError::MalformedEscape { position: 4 })
        );
    }

    /// The old two-step form parser (split on `&`, then at the first `=`,
    /// then decode), the reference for the one-pass [`parse_form_into`].
    fn parse_form_reference(input: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
        let mut pairs = Vec::new();
        let mut offset = 0;
        for segment in input.split(|&b| b == b'&') {
            if !segment.is_empty() {
                let eq = segment.iter().position(|&b| b == b'=');
                let (name, value) = segment.split_at(eq.unwrap_or(segment.len()));
                let value = value.get(1..).unwrap_or_default();
                let value_offset = offset + name.len() + 1;
                pairs.push((
                    decode(name, offset, true)?.into_owned(),
                    decode(value, value_offset, true)?.into_owned(),
                ));
            }
            offset += segment.len() + 1;
        }
        Ok(pairs)
    }

    /// Byte strings rich in what the scanners and decoders look for.
    fn tricky_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::sample::select(b"aZ09-._~%%2B+&&==fF\"\\\t \x7f\x00\xc3\xa9\xff".to_vec()),
            0..40,
        )
    }

    proptest::proptest! {
        /// The one-pass form parser, its scanner and the run-copying
        /// decoder agree with the plain definitions, errors included.
        #[test]
        fn form_fast_paths_match_the_reference(
            bytes in proptest::prop_oneof![tricky_bytes(), proptest::collection::vec(proptest::num::u8::ANY, 0..40)],
        ) {
            let fast = parse_form(&bytes).map(|pairs| {
                pairs.into_iter().map(|(n, v)| (n.into_owned(), v.into_owned())).collect::<Vec<_>>()
            });
            proptest::prop_assert_eq!(fast, parse_form_reference(&bytes));
            for table in [&FORM_STOP, &PERCENT, &ESCAPED] {
                let expected = bytes.iter().position(|&b| table[usize::from(b)]).unwrap_or(bytes.len());
                proptest::prop_assert_eq!(find_first(&bytes, table), expected);
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let mut encoded = Vec::new();
                encode_bytes_into(&mut encoded, &bytes, false);
                proptest::prop_assert_eq!(encoded, percent_encode(text).into_bytes());
            }
        }
    }
}

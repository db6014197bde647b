//! The `Authorization: OAuth ...` header (RFC 5849 §3.5.1): building it and
//! parsing it strictly.
//!
//! Grammar we accept (RFC 5849 §3.5.1 with RFC 7235 §2.1 / RFC 7230 §3.2.6
//! for the HTTP parts):
//!
//! ```text
//! header  = OWS "OAuth" [ 1*(SP / HTAB) [ param ] *( OWS "," OWS [ param ] ) ] OWS
//! param   = name OWS "=" OWS quoted-string
//! ```
//!
//! * The scheme is matched case-insensitively (RFC 7235 §2.1).
//! * Every value must be quoted, `realm` included: §3.5.1 says values are
//!   "wrapped using double quotes", RFC 2617 §1.2 says the same of realm.
//! * Empty list elements (`a="1", , b="2"`) are ignored, as RFC 7230 §7
//!   requires of `#rule` lists.
//! * Names and values other than `realm` are percent-decoded (§3.5.1 item 1,
//!   §3.6); a malformed escape is an error, never passed through.
//! * `realm` is kept apart and not percent-decoded (RFC 2617 §1.2 governs it).
//! * A name appearing twice is an error: §3.5 says a protocol parameter
//!   MUST appear once, and with two values a server could verify one and
//!   act on the other.
//! * Parameters without the `oauth_` prefix are kept, not dropped: RFC 5849
//!   §3.4.1.3.1 puts *every* header parameter but `realm` into the signature
//!   base string, so keeping them lets such a request verify while nothing
//!   unsigned is ever accepted.

use std::borrow::Cow;

use crate::encode::{
    DecodeError, Param, Text, find_first, percent_decode_cow, percent_encode_into,
};

/// A syntactically valid `Authorization: OAuth` header (RFC 5849 §3.5.1).
/// Names and values borrow from the header text unless decoding changed
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationHeader<'a> {
    /// The `realm` parameter (RFC 5849 §3.5.1 item 4, RFC 2617 §1.2),
    /// without quotes; never part of the signature (§3.4.1.3.1).
    pub realm: Option<Text<'a>>,
    /// Every other parameter, percent-decoded (RFC 5849 §3.5.1), in header
    /// order; all of them are signed (§3.4.1.3.1).
    pub params: Vec<Param<'a>>,
}

/// Why an `Authorization` header is not a valid OAuth one (RFC 5849 §3.5.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The auth-scheme is not `OAuth` (RFC 5849 §3.5.1, RFC 7235 §2.1).
    #[error("authorization scheme is not OAuth")]
    NotOAuthScheme,
    /// Where a `name=` was expected something else is (RFC 7235 §2.1).
    #[error("malformed parameter at byte {position}")]
    MalformedParameter {
        /// Byte offset into the header value.
        position: usize,
    },
    /// An unterminated quoted string, a control character in one, or text
    /// after the closing quote (RFC 7230 §3.2.6).
    #[error("malformed quoted string at byte {position}")]
    MalformedQuote {
        /// Byte offset into the header value.
        position: usize,
    },
    /// A value not wrapped in double quotes (RFC 5849 §3.5.1 item 2).
    #[error("value of {0} is not quoted")]
    UnquotedValue(String),
    /// The same parameter twice (RFC 5849 §3.5).
    #[error("parameter {0} appears more than once")]
    DuplicateParameter(String),
    /// A name or value that is not valid percent-encoding (RFC 5849 §3.6).
    #[error("parameter {parameter}: {source}")]
    Decode {
        /// The parameter name as sent (still encoded if the name failed).
        parameter: String,
        /// What was wrong with the encoding.
        #[source]
        source: DecodeError,
    },
}

/// Parses an `Authorization` header value (RFC 5849 §3.5.1) strictly; see
/// the module documentation for the exact grammar. Only syntax is checked
/// here: which parameters are required is decided in
/// [`crate::IncomingRequest::collect`], since §3.5 lets them also come from
/// the body or query.
pub fn parse_authorization(value: &str) -> Result<AuthorizationHeader<'_>, HeaderError> {
    let mut params = Vec::with_capacity(8);
    let realm = parse_authorization_into(value, &mut params)?;
    Ok(AuthorizationHeader { realm, params })
}

/// [`parse_authorization`] appending the parameters to `params` (after
/// whatever is there, which the duplicate check ignores) and returning
/// the realm, so that [`crate::IncomingRequest::collect`] needs one vector.
pub(crate) fn parse_authorization_into<'a>(
    value: &'a str,
    params: &mut Vec<Param<'a>>,
) -> Result<Option<Text<'a>>, HeaderError> {
    let first = params.len();
    let mut realm = None;
    let mut p = Parser { s: value, pos: 0 };
    p.skip_ows();
    let (scheme, _) = p.take_token();
    if !scheme.eq_ignore_ascii_case("OAuth") {
        return Err(HeaderError::NotOAuthScheme);
    }
    match p.peek() {
        None => return Ok(realm),
        Some(b' ' | b'\t') => {}
        Some(_) => return Err(HeaderError::MalformedParameter { position: p.pos }),
    }

    loop {
        p.skip_ows();
        match p.peek() {
            None => break,
            Some(b',') => {
                p.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let (name, name_escaped) = p.take_token();
        if name.is_empty() {
            return Err(HeaderError::MalformedParameter { position: p.pos });
        }
        p.skip_ows();
        if p.peek() != Some(b'=') {
            return Err(HeaderError::MalformedParameter { position: p.pos });
        }
        p.pos += 1;
        p.skip_ows();
        if p.peek() != Some(b'"') {
            return Err(HeaderError::UnquotedValue(name.to_owned()));
        }
        let (raw, value_escaped) = p.quoted_string()?;
        p.skip_ows();
        match p.peek() {
            None => {}
            Some(b',') => p.pos += 1,
            Some(_) => return Err(HeaderError::MalformedQuote { position: p.pos }),
        }

        let decode_err = |source| HeaderError::Decode {
            parameter: name.to_owned(),
            source,
        };
        // The scans above noted any `%`; without one there is nothing to
        // decode and the text is borrowed as it is.
        let name = if name_escaped {
            percent_decode_cow(name).map_err(decode_err)?
        } else {
            Cow::Borrowed(name)
        };
        // RFC 7235 §2.1: auth-param names are case-insensitive, so `Realm`
        // is the realm too; oauth_ names stay case-sensitive (RFC 5849 §3.5).
        // Compared after decoding, so that no spelling of "realm" can enter
        // the signed parameters and so that build → parse is lossless.
        if name.eq_ignore_ascii_case("realm") {
            if realm.is_some() {
                return Err(HeaderError::DuplicateParameter("realm".to_owned()));
            }
            realm = Some(raw);
            continue;
        }
        let value = match raw {
            Cow::Borrowed(raw) if !value_escaped => Cow::Borrowed(raw),
            Cow::Borrowed(raw) => percent_decode_cow(raw).map_err(decode_err)?,
            // Only a value with a quoted-pair is owned; rare enough to copy.
            Cow::Owned(raw) => {
                Cow::Owned(percent_decode_cow(&raw).map_err(decode_err)?.into_owned())
            }
        };
        let header_params = params.get(first..).unwrap_or_default();
        if header_params.iter().any(|(seen, _)| *seen == name) {
            return Err(HeaderError::DuplicateParameter(name.into_owned()));
        }
        params.push((name, value));
    }
    Ok(realm)
}

/// Builds an `Authorization` header value (RFC 5849 §3.5.1): `OAuth `, then
/// the optional realm first, then each pair as `name="value"` with name and
/// value percent-encoded (§3.6), separated by `, `.
///
/// `realm` is written with `"` and `\` escaped (RFC 7230 §3.2.6); it must
/// not contain control characters, which no header may carry. Names must be
/// non-empty (RFC 7235 §2.1 gives a parameter a token name) and not `realm`.
pub fn build_authorization<N: AsRef<str>, V: AsRef<str>>(
    realm: Option<&str>,
    params: &[(N, V)],
) -> String {
    let len: usize = params
        .iter()
        .map(|(n, v)| n.as_ref().len() + v.as_ref().len() * 3 + 5)
        .sum();
    let mut out = String::with_capacity(len + 6 + realm.map_or(0, |r| r.len() + 10));
    out.push_str("OAuth ");
    let mut first = true;
    if let Some(realm) = realm {
        out.push_str("realm=\"");
        for c in realm.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        first = false;
    }
    for (name, value) in params {
        if !first {
            out.push_str(", ");
        }
        first = false;
        percent_encode_into(&mut out, name.as_ref());
        out.push_str("=\"");
        percent_encode_into(&mut out, value.as_ref());
        out.push('"');
    }
    out
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A run of RFC 7230 §3.2.6 `tchar`s (possibly empty), and whether it
    /// holds a `%` (and so may need percent-decoding).
    fn take_token(&mut self) -> (&'a str, bool) {
        let start = self.pos;
        let bytes = self.s.as_bytes();
        let mut escaped = false;
        // `TOKEN_STOP` also stops at `%`, a tchar, so that the scan notes
        // it for free; `%` is rare, so this costs nothing per byte.
        loop {
            let rest = bytes.get(self.pos..).unwrap_or_default();
            self.pos += find_first(rest, &TOKEN_STOP);
            if bytes.get(self.pos) != Some(&b'%') {
                break;
            }
            escaped = true;
            self.pos += 1;
        }
        // tchars are ASCII, so both ends are char boundaries.
        (self.s.get(start..self.pos).unwrap_or_default(), escaped)
    }

    /// An RFC 7230 §3.2.6 quoted-string starting at the current `"`,
    /// returned without quotes and with quoted-pairs resolved, and whether
    /// it holds a `%`.
    fn quoted_string(&mut self) -> Result<(Cow<'a, str>, bool), HeaderError> {
        let open = self.pos;
        let body_start = open + 1;
        let rest = self.s.get(body_start..).unwrap_or_default();
        let bytes = rest.as_bytes();
        // Fast path, a byte scan: no quoted-pair before the closing quote
        // (percent-encoded values never need one). `"`, `\` and the
        // control characters are ASCII, so bytes suffice. The scan also
        // stops at `%` to note it, as in `take_token`.
        let mut escaped = false;
        let mut at = 0;
        loop {
            let tail = bytes.get(at..).unwrap_or_default();
            let end = find_first(tail, &QUOTED_STOP);
            if end == tail.len() {
                return Err(HeaderError::MalformedQuote { position: open });
            }
            at += end;
            match bytes.get(at) {
                Some(b'%') => {
                    escaped = true;
                    at += 1;
                }
                Some(b'"') => {
                    self.pos = body_start + at + 1;
                    return Ok((Cow::Borrowed(rest.get(..at).unwrap_or_default()), escaped));
                }
                _ => break,
            }
        }
        // Only allocate when a quoted-pair forces us to.
        let mut unescaped: Option<String> = None;
        let mut segment_start = 0;
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = body_start + i + 1;
                    let tail = rest.get(segment_start..i).unwrap_or_default();
                    let text = match unescaped {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    };
                    let escaped = text.as_bytes().contains(&b'%');
                    return Ok((text, escaped));
                }
                '\\' => {
                    let s = unescaped.get_or_insert_with(String::new);
                    s.push_str(rest.get(segment_start..i).unwrap_or_default());
                    match chars.next() {
                        Some((j, escaped))
                            if is_qtext_char(escaped) || escaped == '"' || escaped == '\\' =>
                        {
                            s.push(escaped);
                            segment_start = j + escaped.len_utf8();
                        }
                        _ => {
                            return Err(HeaderError::MalformedQuote {
                                position: body_start + i,
                            });
                        }
                    }
                }
                c if is_qtext_char(c) => {}
                _ => {
                    return Err(HeaderError::MalformedQuote {
                        position: body_start + i,
                    });
                }
            }
        }
        Err(HeaderError::MalformedQuote { position: open })
    }
}

/// RFC 7230 §3.2.6 `tchar`.
const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Where [`Parser::take_token`]'s scan stops: every non-`tchar`, and `%`.
static TOKEN_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = !is_tchar(byte as u8) || byte == b'%' as usize;
        byte += 1;
    }
    table
};

/// Where [`Parser::quoted_string`]'s fast scan stops: `"`, `\\`, the
/// control characters but HTAB (RFC 7230 §3.2.6), and `%`.
static QUOTED_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b == b'"' || b == b'\\' || (b < b' ' && b != b'\t') || b == 0x7f || b == b'%';
        byte += 1;
    }
    table
};

/// RFC 7230 §3.2.6 `qdtext` (plus `"` and `\`, handled by the caller):
/// HTAB, SP, visible ASCII and obs-text; no control characters.
const fn is_qtext_char(c: char) -> bool {
    (c == '\t' || c >= ' ') && c != '\x7f' && c != '"' && c != '\\'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs<'h>(header: &'h AuthorizationHeader<'_>) -> Vec<(&'h str, &'h str)> {
        header
            .params
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect()
    }

    #[test]
    fn parses_the_rfc_example() {
        // RFC 5849 §3.5.1.
        let text = "OAuth realm=\"Example\",\n        oauth_consumer_key=\"0685bd9184jfhq22\",\n        oauth_token=\"ad180jjd733klru7\",\n        oauth_signature_method=\"HMAC-SHA1\",\n        oauth_signature=\"wOJIO9A2W5mFwDgiDvZbTSMK%2FPY%3D\",\n        oauth_timestamp=\"137131200\",\n        oauth_nonce=\"4572616e48616d6d65724c61686176\",\n        oauth_version=\"1.0\"".replace('\n', "");
        let header = parse_authorization(&text).unwrap();
        assert_eq!(header.realm.as_deref(), Some("Example"));
        assert_eq!(header.params.len(), 7);
        assert_eq!(
            pairs(&header)[3],
            ("oauth_signature", "wOJIO9A2W5mFwDgiDvZbTSMK/PY=")
        );
    }

    #[test]
    fn accepts_any_scheme_case_and_separator_spacing() {
        for value in [
            "OAuth a=\"1\",b=\"2\"",
            "oauth a=\"1\", b=\"2\"",
            "OAUTH\ta=\"1\" ,\tb=\"2\"",
            "  OAuth  a = \"1\" , , b=\"2\" , ",
        ] {
            let header = parse_authorization(value).unwrap();
            assert_eq!(pairs(&header), [("a", "1"), ("b", "2")], "{value:?}");
        }
        assert_eq!(
            parse_authorization("OAuth").unwrap(),
            AuthorizationHeader::default()
        );
        assert_eq!(
            parse_authorization("OAuth ").unwrap(),
            AuthorizationHeader::default()
        );
    }

    #[test]
    fn realm_is_case_insensitive_kept_apart_and_unescaped() {
        let header = parse_authorization(r#"OAuth Realm="a \"b\" \\ c", oauth_nonce="n""#).unwrap();
        assert_eq!(header.realm.as_deref(), Some(r#"a "b" \ c"#));
        assert_eq!(pairs(&header), [("oauth_nonce", "n")]);
    }

    #[test]
    fn every_error_variant() {
        let cases: [(&str, HeaderError); 16] = [
            ("Basic dXNlcjpwYXNz", HeaderError::NotOAuthScheme),
            ("", HeaderError::NotOAuthScheme),
            ("OAuthx a=\"1\"", HeaderError::NotOAuthScheme),
            (
                "OAuth,a=\"1\"",
                HeaderError::MalformedParameter { position: 5 },
            ),
            (
                "OAuth =\"1\"",
                HeaderError::MalformedParameter { position: 6 },
            ),
            (
                "OAuth a \"1\"",
                HeaderError::MalformedParameter { position: 8 },
            ),
            ("OAuth a=\"1", HeaderError::MalformedQuote { position: 8 }),
            (
                "OAuth a=\"1\"x",
                HeaderError::MalformedQuote { position: 11 },
            ),
            (
                "OAuth a=\"1\" b=\"2\"",
                HeaderError::MalformedQuote { position: 12 },
            ),
            (
                "OAuth a=\"\u{1}\"",
                HeaderError::MalformedQuote { position: 9 },
            ),
            (
                "OAuth oauth_nonce=abc",
                HeaderError::UnquotedValue("oauth_nonce".to_owned()),
            ),
            (
                "OAuth oauth_nonce=\"a\", oauth_nonce=\"b\"",
                HeaderError::DuplicateParameter("oauth_nonce".to_owned()),
            ),
            (
                "OAuth realm=\"a\", REALM=\"b\"",
                HeaderError::DuplicateParameter("realm".to_owned()),
            ),
            (
                "OAuth realm=\"a\", %72ealm=\"b\"",
                HeaderError::DuplicateParameter("realm".to_owned()),
            ),
            (
                "OAuth oauth_nonce=\"%G1\"",
                HeaderError::Decode {
                    parameter: "oauth_nonce".to_owned(),
                    source: DecodeError::MalformedEscape { position: 0 },
                },
            ),
            (
                "OAuth oauth_nonce=\"%FF\"",
                HeaderError::Decode {
                    parameter: "oauth_nonce".to_owned(),
                    source: DecodeError::InvalidUtf8,
                },
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_authorization(value), Err(expected), "{value:?}");
        }
    }

    #[test]
    fn duplicate_detection_uses_decoded_names() {
        assert_eq!(
            parse_authorization("OAuth oauth_nonce=\"a\", oauth%5Fnonce=\"b\""),
            Err(HeaderError::DuplicateParameter("oauth_nonce".to_owned()))
        );
    }

    #[test]
    fn builds_with_realm_first_and_encoded_values() {
        let header = build_authorization(
            Some("Photos \"x\""),
            &[
                ("oauth_callback", "http://printer.example.com/ready"),
                ("oauth_nonce", "a b"),
            ],
        );
        assert_eq!(
            header,
            "OAuth realm=\"Photos \\\"x\\\"\", oauth_callback=\"http%3A%2F%2Fprinter.example.com%2Fready\", oauth_nonce=\"a%20b\""
        );
        let parsed = parse_authorization(&header).unwrap();
        assert_eq!(parsed.realm.as_deref(), Some("Photos \"x\""));
        assert_eq!(
            pairs(&parsed),
            [
                ("oauth_callback", "http://printer.example.com/ready"),
                ("oauth_nonce", "a b")
            ]
        );
    }

    proptest::proptest! {
        /// The scans that note `%` on the way (so that text without one is
        /// borrowed undecoded) decode exactly what plain percent-decoding
        /// of the name and quoted text gives.
        #[test]
        fn escape_noting_scans_match_plain_decoding(
            name in "[a-z%2F4]{1,8}",
            raw in "[a-z%2F4G ~\t]{0,30}",
        ) {
            let header = format!("OAuth {name}=\"{raw}\"");
            let expected = crate::encode::percent_decode(&name).and_then(|n| {
                crate::encode::percent_decode(&raw).map(|v| (n, v))
            });
            match (parse_authorization(&header), expected) {
                (Ok(parsed), Ok((n, v))) if !n.eq_ignore_ascii_case("realm") => {
                    proptest::prop_assert_eq!(pairs(&parsed), vec![(n.as_str(), v.as_str())]);
                }
                (Ok(_), Ok(_)) => {}
                (Err(HeaderError::Decode { .. }), Err(_)) => {}
                (got, want) => proptest::prop_assert!(false, "{:?} vs {:?}", got, want),
            }
        }
    }
}

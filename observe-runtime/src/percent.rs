//! Percent-encoding (RFC 3986) for the values of `OTEL_EXPORTER_OTLP_HEADERS` and W3C `baggage`.

/// Percent-decodes `text`; `None` when an escape is malformed or the result is not UTF-8.
pub(crate) fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Appends `text` to `out`, percent-encoding every byte but the RFC 3986 unreserved characters,
/// so the result is a valid value of a W3C `baggage` entry (no space, comma, semicolon, `=`).
pub(crate) fn encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 15)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_broken_escapes() {
        let text = "user 42, ünïcode; a=b%";
        let mut encoded = String::new();
        encode_into(text, &mut encoded);
        assert_eq!(encoded, "user%2042%2C%20%C3%BCn%C3%AFcode%3B%20a%3Db%25");
        assert_eq!(decode(&encoded).as_deref(), Some(text));
        assert_eq!(decode("Basic%20abc").as_deref(), Some("Basic abc"));
        assert_eq!(decode("50%"), None);
        assert_eq!(decode("%+1"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%C3"), None, "not UTF-8");
    }
}

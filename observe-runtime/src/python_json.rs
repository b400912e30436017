//! JSON text as the official Python SDK writes it, for the values that must match it byte for
//! byte (the id of a local experiment item is a hash of this text): `json.dumps` with its
//! default separators (`", "`, `": "`), every character outside printable ASCII escaped
//! (`\u00e9`, surrogate pairs above U+FFFF), and floats as Python's `repr` writes them
//! (`1e+20`, `1.5e-07`, `100.0`). Works on compact JSON text, so the key order of the value as
//! it was serialized (a struct's field order) is kept. Plain text in, plain text out.

use serde::Serialize;

/// Python's `repr` of a float: the shortest digits that read back the same, fixed notation for
/// exponents from -4 to 15, else `d.ddde±XX`.
fn python_float(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "NaN".into()
        } else if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let whole = exponent as usize + 1;
            if digits.len() <= whole {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', whole - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..whole]);
                out.push('.');
                out.push_str(&digits[whole..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        ));
    }
    out
}

/// Rewrites compact JSON text (as `serde_json` writes it) the way Python's `json.dumps` writes
/// the same value.
pub(crate) fn from_compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 8);
    let mut chars = json.chars().peekable();
    let mut in_string = false;
    let mut escaped = false;
    while let Some(ch) = chars.next() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(ch);
            } else if ch == '\\' {
                escaped = true;
                out.push(ch);
            } else if ch == '"' {
                in_string = false;
                out.push(ch);
            } else if (' '..='~').contains(&ch) {
                out.push(ch);
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            continue;
        }
        match ch {
            '"' => {
                in_string = true;
                out.push(ch);
            }
            ',' => out.push_str(", "),
            ':' => out.push_str(": "),
            '-' | '0'..='9' => {
                let mut number = String::from(ch);
                while let Some(&next) = chars.peek() {
                    if next.is_ascii_digit() || matches!(next, '.' | 'e' | 'E' | '+' | '-') {
                        number.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let is_float = number.contains(['.', 'e', 'E']);
                match number.parse::<f64>() {
                    Ok(value) if is_float => out.push_str(&python_float(value)),
                    _ => out.push_str(&number),
                }
            }
            _ => out.push(ch),
        }
    }
    out
}

/// The Python SDK's `_serialize`: a string as it is, anything else as `json.dumps` text; `None`
/// for null (and for a value that cannot be serialized).
pub(crate) fn serialize(value: &impl Serialize) -> Option<String> {
    match serde_json::to_value(value).ok()? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text),
        _ => serde_json::to_string(value)
            .ok()
            .map(|json| from_compact(&json)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Expected texts as Python 3.11's `json.dumps` writes them.
    #[test]
    fn writes_what_python_writes() {
        #[derive(Serialize)]
        struct Question {
            question: &'static str,
            n: Vec<serde_json::Value>,
        }
        let value = Question {
            question: "What is 2+2?",
            n: vec![json!(1), json!(2.5), json!(true), json!(null)],
        };
        assert_eq!(
            serialize(&value).unwrap(),
            r#"{"question": "What is 2+2?", "n": [1, 2.5, true, null]}"#
        );
        assert_eq!(serialize(&"plain text").unwrap(), "plain text");
        assert_eq!(
            serialize(&json!({"a": "é\u{2028}😀\u{7f}\n"})).unwrap(),
            r#"{"a": "\u00e9\u2028\ud83d\ude00\u007f\n"}"#
        );
        assert_eq!(
            serialize(&json!([
                1e20,
                1.5e-7,
                0.1,
                100.0,
                1e16,
                1e15,
                123456789012345678u64
            ]))
            .unwrap(),
            "[1e+20, 1.5e-07, 0.1, 100.0, 1e+16, 1000000000000000.0, 123456789012345678]"
        );
        assert_eq!(serialize(&serde_json::Value::Null), None);
        assert_eq!(python_float(-0.00012), "-0.00012");
        assert_eq!(python_float(-1.25e-5), "-1.25e-05");
    }
}

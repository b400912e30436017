//! Trace attributes as W3C `baggage` (`key=value,key=value`, values percent-encoded), in the keys
//! Langfuse's official SDKs use, so that a Python or JavaScript service and this one understand
//! each other: `langfuse_session_id`, `langfuse_user_id`, `langfuse_trace_name`,
//! `langfuse_version`, `langfuse_tags`, one `langfuse_metadata_<key>` per metadata key, and the
//! trace-wide prompt link as `langfuse_prompt_name` and `langfuse_prompt_version`. Plain
//! text in, plain text out: knows nothing of traces or threads.

use super::prompt::PromptLink;
use super::trace::TraceAttributes;
use crate::percent;

/// The size every W3C implementation must propagate; more may be cut by any hop.
pub(crate) const MAX_BAGGAGE_BYTES: usize = 8192;
/// The number of entries every W3C implementation must propagate.
pub(crate) const MAX_BAGGAGE_ENTRIES: usize = 180;
/// Past this size an incoming header is read no further (a hostile peer cannot make us parse
/// megabytes).
const MAX_READ_BYTES: usize = 4 * MAX_BAGGAGE_BYTES;

const PREFIX: &str = "langfuse_";
const METADATA_PREFIX: &str = "langfuse_metadata_";
const PROMPT_NAME: &str = "langfuse_prompt_name";
const PROMPT_VERSION: &str = "langfuse_prompt_version";

/// The `baggage` text of some trace attributes.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Encoded {
    /// The header value (empty when there is nothing to carry).
    pub(crate) header: String,
    /// Attributes that were left out: metadata keys that are not W3C tokens, or entries past
    /// the 8192-byte or 180-entry bound.
    pub(crate) left_out: Vec<String>,
}

/// A W3C `token` (RFC 7230 `tchar`s): what a baggage key must be.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
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
        })
}

/// Encodes the attributes that travel with a trace: session, user, trace name, version, tags
/// (as a JSON array) and the metadata keys that fit. Release and `public` stay with the process.
pub(crate) fn encode(attributes: &TraceAttributes) -> Encoded {
    let mut encoded = Encoded::default();
    let mut entries = 0;
    let mut add = |encoded: &mut Encoded, key: &str, value: &str| {
        let start = encoded.header.len();
        if start > 0 {
            encoded.header.push(',');
        }
        encoded.header.push_str(key);
        encoded.header.push('=');
        percent::encode_into(value, &mut encoded.header);
        if encoded.header.len() > MAX_BAGGAGE_BYTES || entries == MAX_BAGGAGE_ENTRIES {
            encoded.header.truncate(start);
            encoded.left_out.push(key.to_string());
        } else {
            entries += 1;
        }
    };
    let fields = [
        ("langfuse_session_id", &attributes.session_id),
        ("langfuse_user_id", &attributes.user_id),
        ("langfuse_trace_name", &attributes.name),
        ("langfuse_version", &attributes.version),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            add(&mut encoded, key, value);
        }
    }
    if !attributes.tags.is_empty() {
        let tags = serde_json::to_string(&attributes.tags).unwrap_or_default();
        add(&mut encoded, "langfuse_tags", &tags);
    }
    if let Some(prompt) = &attributes.prompt {
        add(&mut encoded, PROMPT_NAME, &prompt.name);
        add(&mut encoded, PROMPT_VERSION, &prompt.version.to_string());
    }
    for (key, json) in &attributes.metadata {
        let name = format!("{METADATA_PREFIX}{key}");
        if !is_token(key) {
            encoded.left_out.push(name);
            continue;
        }
        // JSON text, as the Python SDK 5.x sends every metadata value (so `"123"` and `123`
        // stay apart).
        add(&mut encoded, &name, json);
    }
    encoded
}

/// What an incoming `baggage` header carried.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decoded {
    /// The Langfuse entries, as trace attributes (metadata values as JSON strings).
    pub(crate) attributes: TraceAttributes,
    /// Langfuse entries that were skipped, with the reason (a broken escape, an empty value).
    pub(crate) skipped: Vec<String>,
}

impl Decoded {
    /// Whether a Langfuse entry was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.attributes == TraceAttributes::default()
    }
}

/// The strings of a Python list's text (`['a', "it's"]`, as `str(list)` writes it), escapes
/// read; `None` when the text is not such a list.
fn python_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut tags = Vec::new();
    let mut chars = inner.trim().chars().peekable();
    while let Some(quote) = chars.next() {
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut tag = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => tag.push('\n'),
                    't' => tag.push('\t'),
                    'r' => tag.push('\r'),
                    other => tag.push(other),
                },
                c if c == quote => break,
                c => tag.push(c),
            }
        }
        tags.push(tag);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some(_) => return None,
        }
    }
    Some(tags)
}

/// Tags as sent: a JSON array of strings (this SDK, the JS SDK), a Python list's text
/// (`['a', 'b']`, the Python SDK), or a comma-separated list.
fn decode_tags(text: &str) -> Vec<String> {
    if let Ok(tags) = serde_json::from_str::<Vec<String>>(text) {
        return tags;
    }
    if let Some(tags) = python_list(text) {
        return tags.into_iter().filter(|tag| !tag.is_empty()).collect();
    }
    text.split(',')
        .map(|tag| tag.trim().trim_matches(|c| c == '\'' || c == '"'))
        .filter(|tag| !tag.is_empty())
        .map(str::to_string)
        .collect()
}

/// A value as the Python SDK's propagator writes it: form encoding (`urllib.parse.quote_plus`),
/// where `+` is a space and every other character but letters, digits and `_.-~` is escaped.
/// Only such a value has its `+` read as a space; in any other (a raw `:` or `/`, as Go's and
/// Java's propagators leave them) a `+` stays a plus. Our encoder and the JS SDK's escape a plus
/// as `%2B`, so their values read the same either way.
fn is_form_encoded(raw: &str) -> bool {
    raw.contains('+')
        && raw.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'%' | b'+')
        })
}

/// Reads the Langfuse entries of a `baggage` header; other entries (another vendor's) are
/// ignored, and so is everything past 32 KB or 180 entries.
pub(crate) fn decode(header: &str) -> Decoded {
    let mut decoded = Decoded::default();
    // The prompt link needs both entries, in any order.
    let mut prompt_name = None;
    let mut prompt_version = None;
    let mut read = 0;
    for (index, entry) in header.split(',').enumerate() {
        read += entry.len() + 1;
        if read > MAX_READ_BYTES || index >= MAX_BAGGAGE_ENTRIES {
            decoded
                .skipped
                .push("entries past 32 KB or 180 entries".to_string());
            break;
        }
        // Properties (`;prop=value`) carry nothing for us.
        let member = entry.split(';').next().unwrap_or_default();
        let Some((key, value)) = member.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !key.starts_with(PREFIX) {
            continue;
        }
        let raw = value.trim();
        let raw = if is_form_encoded(raw) {
            std::borrow::Cow::Owned(raw.replace('+', " "))
        } else {
            std::borrow::Cow::Borrowed(raw)
        };
        let Some(value) = percent::decode(&raw) else {
            decoded.skipped.push(format!(
                "{key}: the value is not valid percent-encoded UTF-8"
            ));
            continue;
        };
        if value.is_empty() {
            decoded.skipped.push(format!("{key}: the value is empty"));
            continue;
        }
        let attributes = &mut decoded.attributes;
        match key {
            "langfuse_session_id" => attributes.session_id = Some(value),
            "langfuse_user_id" => attributes.user_id = Some(value),
            "langfuse_trace_name" => attributes.name = Some(value),
            "langfuse_version" => attributes.version = Some(value),
            PROMPT_NAME => prompt_name = Some(value),
            PROMPT_VERSION => match value.parse::<u32>() {
                Ok(version) if version > 0 => prompt_version = Some(version),
                _ => decoded.skipped.push(format!(
                    "{key}: {value:?} is not a prompt version (a whole number from 1)"
                )),
            },
            "langfuse_tags" => {
                for tag in decode_tags(&value) {
                    if !attributes.tags.contains(&tag) {
                        attributes.tags.push(tag);
                    }
                }
            }
            _ => {
                let Some(name) = key.strip_prefix(METADATA_PREFIX).filter(|k| !k.is_empty()) else {
                    continue;
                };
                // JSON text as the Python SDK 5.x writes it; anything else (an older or
                // another writer's plain text) is a string.
                let json = match serde_json::from_str::<serde_json::Value>(&value) {
                    Ok(_) => value,
                    Err(_) => serde_json::Value::String(value).to_string(),
                };
                attributes.metadata.retain(|(k, _)| k != name);
                attributes.metadata.push((name.to_string(), json));
            }
        }
    }
    match (prompt_name, prompt_version) {
        (Some(name), Some(version)) => {
            decoded.attributes.prompt = Some(PromptLink { name, version })
        }
        (None, None) => {}
        (Some(_), None) => decoded.skipped.push(format!(
            "{PROMPT_NAME}: {PROMPT_VERSION} is missing, so no prompt is linked"
        )),
        (None, Some(_)) => decoded.skipped.push(format!(
            "{PROMPT_VERSION}: {PROMPT_NAME} is missing, so no prompt is linked"
        )),
    }
    decoded
}

/// Adds what `incoming` carries to `attributes`: its values win, tags and metadata keys are
/// added.
pub(crate) fn adopt(attributes: &mut TraceAttributes, incoming: &TraceAttributes) {
    for (mine, theirs) in [
        (&mut attributes.session_id, &incoming.session_id),
        (&mut attributes.user_id, &incoming.user_id),
        (&mut attributes.name, &incoming.name),
        (&mut attributes.version, &incoming.version),
    ] {
        if theirs.is_some() {
            mine.clone_from(theirs);
        }
    }
    if incoming.prompt.is_some() {
        attributes.prompt.clone_from(&incoming.prompt);
    }
    for tag in &incoming.tags {
        if !attributes.tags.contains(tag) {
            attributes.tags.push(tag.clone());
        }
    }
    for (key, json) in &incoming.metadata {
        attributes.metadata.retain(|(k, _)| k != key);
        attributes.metadata.push((key.clone(), json.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes() -> TraceAttributes {
        TraceAttributes {
            name: Some("chat turn".into()),
            user_id: Some("user@example.com".into()),
            session_id: Some("session 7, part 2".into()),
            tags: vec!["prod".into(), "a,b".into()],
            metadata: vec![
                ("tenant".into(), "\"acme\"".into()),
                ("attempt".into(), "3".into()),
                ("bad key".into(), "\"x\"".into()),
            ],
            release: Some("1.2.3".into()),
            version: Some("v2".into()),
            public: Some(true),
            input: None,
            output: None,
            prompt: Some(PromptLink {
                name: "agent/system".into(),
                version: 5,
            }),
            experiment: None,
        }
    }

    #[test]
    fn encodes_in_the_keys_of_the_official_sdks() {
        let encoded = encode(&attributes());
        assert_eq!(
            encoded.header,
            "langfuse_session_id=session%207%2C%20part%202,langfuse_user_id=user%40example.com,\
             langfuse_trace_name=chat%20turn,langfuse_version=v2,\
             langfuse_tags=%5B%22prod%22%2C%22a%2Cb%22%5D,langfuse_prompt_name=agent%2Fsystem,\
             langfuse_prompt_version=5,langfuse_metadata_tenant=%22acme%22,\
             langfuse_metadata_attempt=3"
        );
        assert_eq!(encoded.left_out, vec!["langfuse_metadata_bad key"]);
    }

    #[test]
    fn round_trips_what_travels() {
        let decoded = decode(&encode(&attributes()).header);
        assert!(decoded.skipped.is_empty(), "{:?}", decoded.skipped);
        let expected = TraceAttributes {
            name: Some("chat turn".into()),
            user_id: Some("user@example.com".into()),
            session_id: Some("session 7, part 2".into()),
            tags: vec!["prod".into(), "a,b".into()],
            metadata: vec![
                ("tenant".into(), "\"acme\"".into()),
                ("attempt".into(), "3".into()),
            ],
            version: Some("v2".into()),
            prompt: Some(PromptLink {
                name: "agent/system".into(),
                version: 5,
            }),
            ..TraceAttributes::default()
        };
        assert_eq!(decoded.attributes, expected);
    }

    #[test]
    fn reads_what_the_python_sdk_writes() {
        // `propagate_attributes(session_id="chat 42", tags=["interop", "py", "it's"],
        // metadata={"tier": "a+b c"}, as_baggage=True)` through OpenTelemetry's W3C propagator
        // (metadata values are JSON text since the Python SDK 5).
        let decoded = decode(
            "langfuse_session_id=chat+42,\
             langfuse_tags=%5B%27interop%27%2C+%27py%27%2C+%22it%27s%22%5D,\
             langfuse_metadata_tier=%22a%2Bb+c%22,langfuse_metadata_plain=a+b,\
             langfuse_prompt_name=team%2Fsummarise,\
             langfuse_prompt_version=3",
        );
        assert!(decoded.skipped.is_empty(), "{:?}", decoded.skipped);
        let attributes = decoded.attributes;
        assert_eq!(attributes.session_id.as_deref(), Some("chat 42"));
        assert_eq!(attributes.tags, ["interop", "py", "it's"]);
        assert_eq!(
            attributes.metadata,
            [
                ("tier".to_string(), "\"a+b c\"".to_string()),
                // Plain text (an older or another writer's) is a string.
                ("plain".to_string(), "\"a b\"".to_string()),
            ]
        );
        assert_eq!(
            attributes.prompt,
            Some(PromptLink {
                name: "team/summarise".into(),
                version: 3
            })
        );
    }

    #[test]
    fn a_plus_is_a_space_only_in_form_encoding() {
        // The JS SDK (`encodeURIComponent`) and this one escape both.
        assert_eq!(
            decode("langfuse_user_id=a%2Bb%20c")
                .attributes
                .user_id
                .as_deref(),
            Some("a+b c")
        );
        // A value with a raw `:` was not form-encoded: its `+` is a plus.
        assert_eq!(
            decode("langfuse_user_id=mailto:a+b@example.com")
                .attributes
                .user_id
                .as_deref(),
            Some("mailto:a+b@example.com")
        );
        assert_eq!(
            decode("langfuse_user_id=a+b").attributes.user_id.as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn python_lists_with_quotes_and_commas_inside_are_read_whole() {
        assert_eq!(
            decode_tags(r#"['a, b', "it's", 'back\\slash']"#),
            ["a, b", "it's", "back\\slash"]
        );
        assert_eq!(decode_tags("[]"), Vec::<String>::new());
        assert_eq!(decode_tags("x, y"), ["x", "y"]);
    }

    #[test]
    fn a_prompt_link_needs_both_entries_and_a_version_from_one() {
        for (header, skipped) in [
            (
                "langfuse_prompt_name=a",
                "langfuse_prompt_name: langfuse_prompt_version is missing, so no prompt is linked",
            ),
            (
                "langfuse_prompt_version=2",
                "langfuse_prompt_version: langfuse_prompt_name is missing, so no prompt is linked",
            ),
        ] {
            let decoded = decode(header);
            assert_eq!(decoded.attributes.prompt, None);
            assert_eq!(decoded.skipped, [skipped]);
        }
        let decoded = decode("langfuse_prompt_version=0,langfuse_prompt_name=a");
        assert_eq!(
            decoded.skipped,
            [
                "langfuse_prompt_version: \"0\" is not a prompt version (a whole number from 1)",
                "langfuse_prompt_name: langfuse_prompt_version is missing, so no prompt is linked"
            ]
        );
        let decoded = decode("langfuse_prompt_version=3,langfuse_prompt_name=a%2Fb");
        assert_eq!(
            decoded.attributes.prompt,
            Some(PromptLink {
                name: "a/b".into(),
                version: 3
            })
        );
    }

    #[test]
    fn reads_other_vendors_and_python_lists_and_skips_broken_entries() {
        let decoded = decode(
            " userId=alice , langfuse_user_id = bob ;prop=1,langfuse_session_id=%zz,\
             langfuse_tags=%5B%27x%27%2C%20%27y%27%5D,langfuse_version=,novalue,langfuse_metadata_=1",
        );
        assert_eq!(decoded.attributes.user_id.as_deref(), Some("bob"));
        assert_eq!(decoded.attributes.session_id, None);
        assert_eq!(decoded.attributes.tags, vec!["x", "y"]);
        assert_eq!(decoded.attributes.version, None);
        assert!(decoded.attributes.metadata.is_empty());
        assert_eq!(
            decoded.skipped,
            vec![
                "langfuse_session_id: the value is not valid percent-encoded UTF-8",
                "langfuse_version: the value is empty",
            ]
        );
    }

    #[test]
    fn stays_within_the_w3c_bounds() {
        let mut big = TraceAttributes {
            session_id: Some("s".repeat(1000)),
            ..TraceAttributes::default()
        };
        for i in 0..400 {
            big.metadata.push((format!("k{i}"), "\"v\"".into()));
        }
        let encoded = encode(&big);
        assert!(encoded.header.len() <= MAX_BAGGAGE_BYTES);
        assert_eq!(encoded.header.split(',').count(), MAX_BAGGAGE_ENTRIES);
        assert_eq!(encoded.left_out.len(), 401 - MAX_BAGGAGE_ENTRIES);
        assert!(encoded.header.starts_with("langfuse_session_id=sss"));
        let huge = TraceAttributes {
            user_id: Some("u".into()),
            session_id: Some("s".repeat(MAX_BAGGAGE_BYTES)),
            ..TraceAttributes::default()
        };
        let encoded = encode(&huge);
        assert_eq!(encoded.header, "langfuse_user_id=u");
        assert_eq!(encoded.left_out, vec!["langfuse_session_id"]);

        let hostile = "langfuse_user_id=u,".repeat(100_000);
        let decoded = decode(&hostile);
        assert_eq!(decoded.attributes.user_id.as_deref(), Some("u"));
        assert_eq!(decoded.skipped, vec!["entries past 32 KB or 180 entries"]);
    }

    #[test]
    fn adopting_adds_and_overrides() {
        let mut mine = TraceAttributes {
            user_id: Some("me".into()),
            release: Some("r".into()),
            tags: vec!["a".into()],
            metadata: vec![("k".into(), "1".into())],
            ..TraceAttributes::default()
        };
        let theirs = decode("langfuse_user_id=them,langfuse_tags=a%2Cb,langfuse_metadata_k=2");
        adopt(&mut mine, &theirs.attributes);
        assert_eq!(mine.user_id.as_deref(), Some("them"));
        assert_eq!(mine.release.as_deref(), Some("r"));
        assert_eq!(mine.tags, vec!["a", "b"]);
        // JSON text, as the Python SDK 5.x writes metadata values.
        assert_eq!(mine.metadata, vec![("k".to_string(), "2".to_string())]);
    }
}

//! A streamed chat completion chunk read without a JSON parser: the members a generation needs
//! (the model, each choice's index and its delta's role, content and refusal, the usage, an
//! error) found by a scan that skips everything else without decoding it. A chunk it does not
//! fully understand (a tool-call delta, more than a few choices, anything malformed) is left to
//! the typed parse in `stream` (`None`). Knows nothing about the generation.

use std::borrow::Cow;

/// The most choices a chunk may have to be scanned (one, unless the request asked for `n`).
const MAX_CHOICES: usize = 4;

/// What a chunk says.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Scanned<'a> {
    pub(crate) model: Option<Cow<'a, str>>,
    pub(crate) choices: [Option<ChoiceDelta<'a>>; MAX_CHOICES],
    /// The JSON text of a usage that is not `null`.
    pub(crate) usage: Option<&'a [u8]>,
    /// The JSON text of an error that is not `null`.
    pub(crate) error: Option<&'a [u8]>,
}

/// One choice's delta.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ChoiceDelta<'a> {
    pub(crate) index: usize,
    pub(crate) role: Option<Cow<'a, str>>,
    pub(crate) content: Option<Cow<'a, str>>,
    pub(crate) refusal: Option<Cow<'a, str>>,
}

/// Scans one chunk (the payload of a `data:` line); `None` when it must be parsed instead.
pub(crate) fn scan(data: &[u8]) -> Option<Scanned<'_>> {
    let mut cursor = Cursor { bytes: data, at: 0 };
    let mut scanned = Scanned::default();
    let mut choices = 0;
    cursor.open(b'{')?;
    let mut first = true;
    while let Some(key) = cursor.next_key(&mut first)? {
        match key {
            b"model" => scanned.model = cursor.nullable_string()?,
            b"usage" => scanned.usage = cursor.nullable_raw()?,
            b"error" => scanned.error = cursor.nullable_raw()?,
            b"choices" => {
                cursor.open(b'[')?;
                let mut first = true;
                while cursor.next_element(&mut first)? {
                    let slot = scanned.choices.get_mut(choices)?;
                    *slot = Some(cursor.choice()?);
                    choices += 1;
                }
            }
            _ => cursor.skip_value()?,
        }
    }
    cursor.whitespace();
    (cursor.at == data.len()).then_some(scanned)
}

/// A position in the chunk's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Consumes `byte` (after whitespace).
    fn open(&mut self, byte: u8) -> Option<()> {
        self.whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The next key of an object (`None` inside: malformed; `Some(None)`: the object ended).
    fn next_key(&mut self, first: &mut bool) -> Option<Option<&'a [u8]>> {
        self.whitespace();
        match self.peek()? {
            b'}' => {
                self.at += 1;
                return Some(None);
            }
            b',' if !*first => self.at += 1,
            _ if *first => {}
            _ => return None,
        }
        *first = false;
        self.whitespace();
        let (key, escaped) = self.string_bytes()?;
        if escaped {
            return None;
        }
        self.open(b':')?;
        Some(Some(key))
    }

    /// Whether an array has a next element (`None`: malformed).
    fn next_element(&mut self, first: &mut bool) -> Option<bool> {
        self.whitespace();
        match self.peek()? {
            b']' => {
                self.at += 1;
                return Some(false);
            }
            b',' if !*first => self.at += 1,
            _ if *first => {}
            _ => return None,
        }
        *first = false;
        Some(true)
    }

    /// The bytes between the quotes of a string at the cursor, and whether it has escapes.
    fn string_bytes(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            at += memchr::memchr2(b'"', b'\\', self.bytes.get(at..)?)?;
            if self.bytes[at] == b'"' {
                break;
            }
            escaped = true;
            at += 2;
        }
        self.at = at + 1;
        Some((&self.bytes[start..at], escaped))
    }

    /// A string, or `None` for `null` (the outer `None`: malformed).
    fn nullable_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        self.whitespace();
        if self.null() {
            return Some(None);
        }
        let start = self.at;
        let (text, escaped) = self.string_bytes()?;
        let text = if escaped {
            Cow::Owned(serde_json::from_slice(&self.bytes[start..self.at]).ok()?)
        } else {
            Cow::Borrowed(std::str::from_utf8(text).ok()?)
        };
        Some(Some(text))
    }

    /// The JSON text of a value, or `None` for `null`.
    fn nullable_raw(&mut self) -> Option<Option<&'a [u8]>> {
        self.whitespace();
        if self.null() {
            return Some(None);
        }
        let start = self.at;
        self.skip_value()?;
        Some(Some(&self.bytes[start..self.at]))
    }

    fn null(&mut self) -> bool {
        let is_null = self.bytes[self.at..].starts_with(b"null");
        if is_null {
            self.at += 4;
        }
        is_null
    }

    /// Steps over one value of any kind, strings and nesting respected.
    fn skip_value(&mut self) -> Option<()> {
        self.whitespace();
        match self.peek()? {
            b'"' => self.string_bytes().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string_bytes()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                // A number, `true`, `false` or `null`.
                let start = self.at;
                while let Some(byte) = self.peek() {
                    if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }

    /// One element of `choices`.
    fn choice(&mut self) -> Option<ChoiceDelta<'a>> {
        let mut choice = ChoiceDelta::default();
        self.open(b'{')?;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            match key {
                b"index" => {
                    self.whitespace();
                    let start = self.at;
                    self.skip_value()?;
                    choice.index = std::str::from_utf8(&self.bytes[start..self.at])
                        .ok()?
                        .parse()
                        .ok()?;
                }
                b"delta" => {
                    self.whitespace();
                    if !self.null() {
                        self.delta(&mut choice)?;
                    }
                }
                _ => self.skip_value()?,
            }
        }
        Some(choice)
    }

    fn delta(&mut self, choice: &mut ChoiceDelta<'a>) -> Option<()> {
        self.open(b'{')?;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            match key {
                b"role" => choice.role = self.nullable_string()?,
                b"content" => choice.content = self.nullable_string()?,
                b"refusal" => choice.refusal = self.nullable_string()?,
                b"tool_calls" => {
                    // Tool-call deltas are merged from the typed parse.
                    self.whitespace();
                    if !self.null() {
                        return None;
                    }
                }
                _ => self.skip_value()?,
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_members_needed_are_found_and_the_rest_skipped() {
        let chunk = br#"{"id":"c-1","object":"chat.completion.chunk","created":1700000000,
            "model":"gpt-4o","system_fingerprint":null,"x":{"a":[1,{"b":"}]"}],"c":-1.5e3},
            "choices":[{"index":0,"delta":{"role":"assistant","content":"Say \"hi\"\n","refusal":null},
            "logprobs":null,"finish_reason":null}],"usage":null}"#;
        let scanned = scan(chunk).expect("scanned");
        assert_eq!(scanned.model.as_deref(), Some("gpt-4o"));
        let choice = scanned.choices[0].as_ref().expect("a choice");
        assert_eq!(choice.index, 0);
        assert_eq!(choice.role.as_deref(), Some("assistant"));
        assert_eq!(choice.content.as_deref(), Some("Say \"hi\"\n"));
        assert_eq!(choice.refusal, None);
        assert_eq!(scanned.choices[1], None);
        assert_eq!(scanned.usage, None);

        let last = br#"{"model":"m","choices":[],"usage":{"prompt_tokens":3,"total_tokens":5}}"#;
        let scanned = scan(last).expect("scanned");
        assert_eq!(
            scanned.usage,
            Some(&br#"{"prompt_tokens":3,"total_tokens":5}"#[..])
        );
        assert_eq!(scanned.choices[0], None);
    }

    #[test]
    fn what_is_not_understood_is_left_to_the_parser() {
        for chunk in [
            &br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#[..],
            br#"{"choices":[{"index":0,"delta":{"content":"a"}}"#,
            br#"{"choices":[{},{},{},{},{}]}"#,
            br#"{"choices":null}"#,
            br#"{"model":"m"} trailing"#,
            br#"{"mo\u0064el":"m"}"#,
            br#"[1]"#,
            br#"{"model":"m",}"#,
        ] {
            assert_eq!(scan(chunk), None, "{}", String::from_utf8_lossy(chunk));
        }
        assert!(scan(br#"{"choices":[{"delta":{"tool_calls":null,"content":"x"}}]}"#).is_some());
    }
}

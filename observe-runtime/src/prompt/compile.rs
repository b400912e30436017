//! Compiling a prompt: `{{variable}}` filled from any `Serialize` map or struct, placeholders of
//! a chat prompt replaced by the messages given under their names. One rule for a variable
//! without a value: it stays as written (`{{name}}`), and [`Prompt::variables`] lists the names so
//! a caller can check first. Pure text work: no I/O, no cache.

use serde::Serialize;
use serde_json::{Map, Value};

use super::types::{Body, ChatMessage};
use super::{Prompt, PromptError};

/// The `{{ ... }}` spans of `text`: byte range and trimmed name, in order. An empty name (`{{ }}`)
/// is not a variable.
fn variables_in(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| from + i) {
        let Some(close) = text[open + 2..].find("}}").map(|i| open + 2 + i) else {
            break;
        };
        let name = text[open + 2..close].trim();
        if !name.is_empty() && !name.contains("{{") {
            found.push((open..close + 2, name));
            from = close + 2;
        } else {
            from = open + 2;
        }
    }
    found
}

/// `text` with every variable that has a value replaced: strings as they are, other values as
/// JSON text; the others stay as written.
fn fill(text: &str, values: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, name) in variables_in(text) {
        let Some(value) = values.get(name) else {
            continue;
        };
        out.push_str(&text[last..range.start]);
        match value {
            Value::String(text) => out.push_str(text),
            other => out.push_str(&other.to_string()),
        }
        last = range.end;
    }
    out.push_str(&text[last..]);
    out
}

/// `value` serialized as a JSON object (`null` and `()` give no values).
fn as_object(
    prompt: &Prompt,
    what: &'static str,
    value: &impl Serialize,
) -> Result<Map<String, Value>, PromptError> {
    let invalid = |reason: String| PromptError::InvalidArguments {
        name: prompt.name().to_string(),
        what,
        reason,
    };
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(invalid(format!(
            "got {}",
            other.to_string().chars().take(100).collect::<String>()
        ))),
        Err(error) => Err(invalid(format!("serializing them failed: {error}"))),
    }
}

impl Prompt {
    /// The names of the variables the prompt uses, in order of first use, without repeats (in
    /// every message of a chat prompt).
    ///
    /// ```
    /// # use observe_runtime::Prompt;
    /// # fn demo(prompt: &Prompt) {
    /// // "Summarise {{ text }} for {{audience}} in {{text_language}}."
    /// assert_eq!(prompt.variables(), ["text", "audience", "text_language"]);
    /// # }
    /// ```
    pub fn variables(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut add = |text: &str| {
            for (_, name) in variables_in(text) {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        };
        match &self.data.body {
            Body::Text(text) => add(text),
            Body::Chat(messages) => messages.iter().for_each(|m| add(&m.content)),
        }
        names
    }

    /// A text prompt with its `{{name}}` variables filled from `vars`, a map or a struct: string
    /// values as they are, other values as JSON text. Whitespace inside the braces is ignored
    /// (`{{ name }}`). A variable `vars` has no value for stays as written, so the gap shows;
    /// [`variables`](Self::variables) lists the names to check first.
    ///
    /// ```
    /// # use observe_runtime::Prompt;
    /// # fn demo(prompt: &Prompt) -> Result<(), observe_runtime::PromptError> {
    /// // "Summarise {{ text }} in {{words}} words."
    /// let text = prompt.compile(&serde_json::json!({"text": "the report", "words": 50}))?;
    /// assert_eq!(text, "Summarise the report in 50 words.");
    /// # Ok(()) }
    /// ```
    ///
    /// A chat prompt is an error here: use [`compile_chat`](Self::compile_chat).
    pub fn compile(&self, vars: &impl Serialize) -> Result<String, PromptError> {
        let Body::Text(text) = &self.data.body else {
            return Err(self.wrong_type("text", "compile_chat"));
        };
        let values = as_object(self, "variables", vars)?;
        Ok(fill(text, &values))
    }

    /// A chat prompt compiled: the variables filled in every message as
    /// [`compile`](Self::compile) does, and each placeholder replaced by the list of messages
    /// `placeholders` has under its name (each an object with `role` and `content`, other fields
    /// such as `tool_calls` kept; no variables are filled inside them). A placeholder with no
    /// list is an error that names it; names that match no placeholder are ignored.
    ///
    /// ```
    /// # use observe_runtime::Prompt;
    /// # fn demo(prompt: &Prompt) -> Result<(), observe_runtime::PromptError> {
    /// use serde_json::json;
    /// // [system "You are {{persona}}.", placeholder "history", user "{{question}}"]
    /// let messages = prompt.compile_chat(
    ///     &json!({"persona": "a librarian", "question": "Where is Rust?"}),
    ///     &json!({"history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}),
    /// )?;
    /// assert_eq!(messages.len(), 4);
    /// # Ok(()) }
    /// ```
    pub fn compile_chat(
        &self,
        vars: &impl Serialize,
        placeholders: &impl Serialize,
    ) -> Result<Vec<ChatMessage>, PromptError> {
        let Body::Chat(messages) = &self.data.body else {
            return Err(self.wrong_type("chat", "compile"));
        };
        let values = as_object(self, "variables", vars)?;
        let mut lists = as_object(self, "placeholders", placeholders)?;
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            let Some(name) = message.placeholder_name() else {
                let mut compiled = message.clone();
                compiled.content = fill(&message.content, &values);
                out.push(compiled);
                continue;
            };
            let invalid = |reason: String| PromptError::InvalidPlaceholder {
                name: self.name().to_string(),
                placeholder: name.to_string(),
                reason,
            };
            match lists.remove(name) {
                None => {
                    return Err(PromptError::MissingPlaceholder {
                        name: self.name().to_string(),
                        placeholder: name.to_string(),
                    })
                }
                Some(Value::Array(entries)) => {
                    for entry in entries {
                        let message = ChatMessage::from_value(entry).map_err(&invalid)?;
                        if message.placeholder_name().is_some() {
                            return Err(invalid("a placeholder cannot hold a placeholder".into()));
                        }
                        out.push(message);
                    }
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "expected a list of messages, got {}",
                        other.to_string().chars().take(100).collect::<String>()
                    )))
                }
            }
        }
        Ok(out)
    }

    fn wrong_type(&self, expected: &'static str, instead: &'static str) -> PromptError {
        PromptError::WrongType {
            name: self.name().to_string(),
            expected,
            found: self.data.body.kind(),
            instead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::PromptData;
    use super::*;
    use serde_json::json;

    fn text(text: &str) -> Prompt {
        Prompt::new(PromptData {
            name: "p".into(),
            version: 1,
            body: Body::Text(text.into()),
            config: Value::Null,
            labels: vec![],
            tags: vec![],
            commit_message: None,
            fallback: false,
        })
    }

    #[test]
    fn variables_are_found_trimmed_in_order_without_repeats() {
        let prompt = text("{{a}} {{ b }} {{a}} {{ }} {{c d}} {{unclosed");
        assert_eq!(prompt.variables(), ["a", "b", "c d"]);
    }

    #[test]
    fn values_fill_strings_as_they_are_and_others_as_json() {
        let prompt = text("{{ s }}|{{n}}|{{b}}|{{o}}|{{missing}}|{{ }}");
        let out = prompt
            .compile(&json!({"s": "x \"y\"", "n": 2.5, "b": true, "o": {"k": [1]}}))
            .unwrap();
        assert_eq!(out, r#"x "y"|2.5|true|{"k":[1]}|{{missing}}|{{ }}"#);
    }

    #[test]
    fn a_value_holding_braces_is_not_filled_again() {
        let prompt = text("{{a}} {{b}}");
        let out = prompt.compile(&json!({"a": "{{b}}", "b": "B"})).unwrap();
        assert_eq!(out, "{{b}} B");
    }

    #[test]
    fn structs_maps_and_unit_are_variables() {
        #[derive(Serialize)]
        struct Vars {
            topic: String,
        }
        let prompt = text("about {{topic}}");
        let out = prompt
            .compile(&Vars {
                topic: "rust".into(),
            })
            .unwrap();
        assert_eq!(out, "about rust");
        assert_eq!(prompt.compile(&()).unwrap(), "about {{topic}}");
        let error = prompt.compile(&[1, 2]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "prompt \"p\": the variables must be a map or a struct: got [1,2]"
        );
    }
}

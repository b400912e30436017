//! [`PromptLink`]: the prompt version a generation was made from, as the record carries it (set
//! on the generation, or trace-wide in the trace attributes). Plain data.

/// A prompt a generation was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLink {
    /// The prompt's name in Langfuse.
    pub name: String,
    /// The prompt's version.
    pub version: u32,
}

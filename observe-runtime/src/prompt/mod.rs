//! Prompt management: prompts edited and labelled in Langfuse, fetched at run time
//! ([`get_prompt`]), cached per name and label or version with a background refresh, compiled
//! (`{{variables}}`, chat placeholders), created and relabelled. The link of a generation to its
//! prompt lives with the observation handles (`link_prompt`). Imports the REST client, the
//! record layer's [`PromptLink`](crate::PromptLink) and the leaves.

mod cache;
mod compile;
mod create;
mod error;
mod fetch;
mod types;

pub use create::{create_prompt, set_prompt_labels, set_prompt_labels_async, CreatePrompt};
pub use error::PromptError;
pub use fetch::{get_prompt, PromptRequest, DEFAULT_PROMPT_CACHE_TTL};
pub use types::{ChatMessage, Prompt};

pub(crate) use fetch::{configure, prefetch};

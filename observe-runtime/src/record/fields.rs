//! An observation's fields written directly, through [`ObservationFields`]: at once, or after the
//! observation has ended, off the thread that ran it (a fill a
//! [`DetachedSpan`](crate::DetachedSpan) carries to the exporter). Integrations defer work the
//! program itself does not wait for (parsing an HTTP body that the caller parses again anyway).
//! Plain data: a deferred fill runs where the record becomes a
//! [`FinishedSpan`](super::FinishedSpan), with nothing recorded meanwhile.

use serde::Serialize;

use super::span::Fill;
use super::{Cost, Level, SpanData, Usage};
use crate::capture;
use crate::diagnostics;
use crate::media::MediaField;
use crate::unobserved;

/// An observation's fields, written directly: see
/// [`DetachedSpan::record`](crate::DetachedSpan::record) (now) and
/// [`DetachedSpan::defer`](crate::DetachedSpan::defer) (after it has ended, on the exporter's
/// thread).
///
/// The setters mean what those of [`ObservationHandle`](crate::ObservationHandle) mean: values
/// are JSON held to the field limit, media in them is found and uploaded, and the user's mask
/// runs over them afterwards, as over every captured value.
pub struct ObservationFields<'a> {
    data: &'a mut SpanData,
    limit: usize,
}

impl std::fmt::Debug for ObservationFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservationFields")
            .field("observation", &self.data.span_id)
            .finish()
    }
}

/// Runs `fill` on the fields of `data` now.
pub(crate) fn fill_now(
    data: &mut SpanData,
    limit: usize,
    fill: impl FnOnce(&mut ObservationFields<'_>),
) {
    fill(&mut ObservationFields { data, limit });
}

/// A fill to run once the observation has ended: caught if it panics (the span is then sent
/// with what was set before, and one warning per process), with nothing recorded meanwhile.
pub(crate) fn deferred(fill: impl FnOnce(&mut ObservationFields<'_>) + Send + 'static) -> Fill {
    Fill::new(move |data, limit| {
        let mut fields = ObservationFields { data, limit };
        let outcome = unobserved::run(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fill(&mut fields)))
        });
        if outcome.is_err() {
            diagnostics::warn_once(
                "deferred fill panicked",
                format!(
                    "a deferred fill of the observation {:?} panicked: it is sent with what was \
                     set before",
                    fields.data.name
                ),
            );
        }
    })
}

impl ObservationFields<'_> {
    fn json(&mut self, field: MediaField, value: &impl Serialize) -> String {
        let (json, media) = capture::serialize_json_with_media(value, self.limit, field);
        self.data.add_media(field, media);
        json
    }

    /// Sets the input (any `Serialize` value, sent as JSON).
    pub fn input(&mut self, value: impl Serialize) -> &mut Self {
        let json = self.json(MediaField::Input, &value);
        self.data.set_input(json);
        self
    }

    /// Sets the output (any `Serialize` value, sent as JSON).
    pub fn output(&mut self, value: impl Serialize) -> &mut Self {
        let json = self.json(MediaField::Output, &value);
        self.data.set_output(json);
        self
    }

    /// Adds a metadata key; the value is sent as JSON.
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Serialize) -> &mut Self {
        let json = self.json(MediaField::Metadata, &value);
        self.data.set_metadata(key.into(), json);
        self
    }

    /// Sets the model parameters (a JSON object such as `{"temperature": 0.2}`).
    pub fn model_parameters(&mut self, parameters: impl Serialize) -> &mut Self {
        let json = self.json(MediaField::Metadata, &parameters);
        self.data.details().model_parameters = Some(json);
        self
    }

    /// Sets the model name of a generation.
    pub fn model(&mut self, model: impl Into<String>) -> &mut Self {
        self.data.details().model = Some(model.into());
        self
    }

    /// Sets the token counts.
    pub fn usage(&mut self, usage: Usage) -> &mut Self {
        self.data.details().usage = Some(usage);
        self
    }

    /// Sets the costs in USD.
    pub fn cost(&mut self, cost: Cost) -> &mut Self {
        self.data.details().cost = Some(cost);
        self
    }

    /// Records when the first token of a streamed completion arrived (time to first token).
    pub fn completion_start_time(&mut self, at: std::time::SystemTime) -> &mut Self {
        self.data.details().completion_start_unix_nanos = Some(crate::clock::unix_nanos(at));
        self
    }

    /// Sets the level.
    pub fn level(&mut self, level: Level) -> &mut Self {
        self.data.set_level(level);
        self
    }

    /// Sets the status message.
    pub fn status_message(&mut self, message: impl Into<String>) -> &mut Self {
        *self.data.status_message_mut() = Some(message.into());
        self
    }
}

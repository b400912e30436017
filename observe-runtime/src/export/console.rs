//! The console sink: prints each finished trace as an indented tree on stderr, once its local root
//! has ended (leftovers at flush and shutdown), and each score as one line.

use std::collections::HashMap;
use std::io::Write;

use super::sink::{Failure, ScoresSent, Sink};
use super::waiter::Waiter;
use crate::ids::{ObservationId, TraceId};
use crate::record::{Cost, Level};
use crate::record::{FinishedScore, FinishedSpan};

/// Spans kept while waiting for their root; beyond it the oldest traces are printed early.
const MAX_PENDING_SPANS: usize = 10_000;
const PREVIEW_CHARS: usize = 80;

pub(crate) struct ConsoleSink {
    pending: HashMap<TraceId, Vec<FinishedSpan>>,
    pending_spans: usize,
    header: Option<&'static str>,
}

impl ConsoleSink {
    pub(crate) fn new(header: Option<&'static str>) -> Self {
        Self {
            pending: HashMap::new(),
            pending_spans: 0,
            header,
        }
    }

    fn print_trace(&mut self, trace_id: TraceId) {
        let Some(spans) = self.pending.remove(&trace_id) else {
            return;
        };
        self.pending_spans -= spans.len();
        let text = render_tree(trace_id, &spans);
        let mut err = std::io::stderr().lock();
        if let Some(header) = self.header.take() {
            let _ = writeln!(err, "[langfuse] note: {header}");
        }
        let _ = err.write_all(text.as_bytes());
    }
}

fn preview(json: &str) -> String {
    let mut text: String = json.chars().take(PREVIEW_CHARS).collect();
    if json.chars().count() > PREVIEW_CHARS {
        text.push('…');
    }
    text
}

fn duration(span: &FinishedSpan) -> String {
    nanos_text(span.end_unix_nanos.saturating_sub(span.start_unix_nanos))
}

fn nanos_text(nanos: u64) -> String {
    if nanos >= 1_000_000_000 {
        format!("{:.2} s", nanos as f64 / 1e9)
    } else {
        format!("{:.1} ms", nanos as f64 / 1e6)
    }
}

fn line(span: &FinishedSpan) -> String {
    let mut text = format!("{} [{}] {}", span.name, span.kind, duration(span));
    if span.level != Level::Default {
        text.push_str(&format!(" {}", span.level));
        if let Some(message) = &span.status_message {
            text.push_str(&format!(": {}", preview(message)));
        }
    }
    if let Some(model) = &span.model {
        text.push_str(&format!(" model={model}"));
    }
    if let Some(first) = span.completion_start_unix_nanos {
        let after = first.saturating_sub(span.start_unix_nanos);
        text.push_str(&format!(" first-token={}", nanos_text(after)));
    }
    if let Some(usage) = &span.usage {
        text.push_str(&format!(" usage={}", usage.to_json()));
    }
    if let Some(usd) = span.cost.as_ref().and_then(Cost::total_usd) {
        text.push_str(&format!(" cost=${usd:.6}"));
    }
    // Media shows as `<image/png 312 KB>`, not as its reference.
    let shown = |value: &str| {
        let mut value = value.to_string();
        for media in &span.media {
            value = value.replace(
                &media.reference,
                &crate::media::describe(&media.content_type, media.bytes.len()),
            );
        }
        value
    };
    if let Some(input) = &span.input {
        text.push_str(&format!(" input={}", preview(&shown(input))));
    }
    if let Some(output) = &span.output {
        text.push_str(&format!(" output={}", preview(&shown(output))));
    }
    text
}

/// The tree of one trace: roots first, children under their parents by start time.
pub(crate) fn render_tree(trace_id: TraceId, spans: &[FinishedSpan]) -> String {
    let ids: Vec<ObservationId> = spans.iter().map(|s| s.span_id).collect();
    let mut children: HashMap<Option<ObservationId>, Vec<&FinishedSpan>> = HashMap::new();
    for span in spans {
        let parent = span.parent_span_id.filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_unix_nanos);
    }
    let mut out = format!("trace {trace_id}\n");
    fn walk(
        out: &mut String,
        children: &HashMap<Option<ObservationId>, Vec<&FinishedSpan>>,
        parent: Option<ObservationId>,
        prefix: &str,
    ) {
        let Some(list) = children.get(&parent) else {
            return;
        };
        for (i, span) in list.iter().enumerate() {
            let last = i + 1 == list.len();
            out.push_str(prefix);
            out.push_str(if last { "└─ " } else { "├─ " });
            out.push_str(&line(span));
            out.push('\n');
            let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
            walk(out, children, Some(span.span_id), &deeper);
        }
    }
    walk(&mut out, &children, None, "");
    out
}

/// One score as one line: name, value, data type, what it belongs to, and its comment.
pub(crate) fn score_line(score: &FinishedScore) -> String {
    let mut text = format!(
        "score {:?} = {} [{}]",
        score.name,
        score.value,
        score.value.data_type()
    );
    match (score.trace_id, score.observation_id) {
        (Some(trace_id), Some(observation_id)) => text.push_str(&format!(
            " on observation {observation_id} of trace {trace_id}"
        )),
        (Some(trace_id), None) => text.push_str(&format!(" on trace {trace_id}")),
        _ => {}
    }
    if let Some(session_id) = &score.session_id {
        text.push_str(&format!(" on session {session_id:?}"));
    }
    if let Some(run_id) = &score.dataset_run_id {
        text.push_str(&format!(" on dataset run {run_id:?}"));
    }
    if let Some(comment) = &score.comment {
        text.push_str(&format!(" comment={:?}", preview(comment)));
    }
    text
}

impl Sink for ConsoleSink {
    fn export_scores(&mut self, batch: Vec<FinishedScore>, _: &mut Waiter) -> ScoresSent {
        let mut err = std::io::stderr().lock();
        if let Some(header) = self.header.take() {
            let _ = writeln!(err, "[langfuse] note: {header}");
        }
        for score in &batch {
            let _ = writeln!(err, "{}", score_line(score));
        }
        ScoresSent {
            exported: batch.len(),
            ..ScoresSent::default()
        }
    }

    fn export(&mut self, batch: Vec<FinishedSpan>, _: &mut Waiter) -> Result<(), Failure> {
        let mut finished = Vec::new();
        for span in batch {
            if span.is_local_root {
                finished.push(span.trace_id);
            }
            self.pending_spans += 1;
            self.pending.entry(span.trace_id).or_default().push(span);
        }
        for trace_id in finished {
            self.print_trace(trace_id);
        }
        while self.pending_spans > MAX_PENDING_SPANS {
            let Some(oldest) = self.pending.keys().next().copied() else {
                break;
            };
            self.print_trace(oldest);
        }
        Ok(())
    }

    fn close(&mut self) {
        let left: Vec<TraceId> = self.pending.keys().copied().collect();
        for trace_id in left {
            self.print_trace(trace_id);
        }
    }
}

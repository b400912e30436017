//! Scores to Langfuse: `POST {base}/api/public/scores` with JSON bodies of at most 1 MiB, in the
//! form the server takes (the wire doc, section 4). The JSON names of a score live here only.
//!
//! Current Langfuse takes an array of scores and answers 202, or 207 with one error per rejected
//! score: a 207 is not retried, its errors are reported once and the rejected scores counted.
//! Langfuse v4.16 takes one score per request (answering 200 `{"id"}`) and refuses an array with
//! a 400 saying it expected an object. The array goes first; after that 400 the same scores are
//! sent again one per request, and the server's form is remembered for the rest of the process
//! (a server upgraded meanwhile answers one object with a 400 saying it expected an array, and
//! gets arrays again).
//! Retries, backoff and auth failures are the transport's.

use std::sync::{Mutex, MutexGuard};

use super::sink::ScoresSent;
use super::transport::{Reply, Route, Transport, Undelivered};
use super::waiter::Waiter;
use crate::diagnostics;
use crate::record::{FinishedScore, ScoreValue};

/// The largest request body the scores route accepts.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// At most this many rejection messages are quoted from one answer.
const MAX_QUOTED_ERRORS: usize = 5;

/// The scores URLs of servers that take one score per request (Langfuse v4.16), learnt from
/// their answers; kept for the process.
static ONE_PER_REQUEST: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn one_per_request_servers() -> MutexGuard<'static, Vec<String>> {
    crate::sync::lock(&ONE_PER_REQUEST)
}

fn takes_one_per_request(url: &str) -> bool {
    one_per_request_servers().iter().any(|known| known == url)
}

fn remember_one_per_request(url: &str, one: bool) {
    let mut servers = one_per_request_servers();
    servers.retain(|known| known != url);
    if one {
        servers.push(url.to_string());
    }
}

/// A score as Langfuse's scores route takes it: `BOOLEAN` values as 1 or 0, metadata as an
/// object, absent fields left out.
pub(crate) fn to_json(score: &FinishedScore) -> serde_json::Value {
    use serde_json::Value;
    let mut object = serde_json::Map::new();
    let mut put = |key: &str, value: Value| {
        object.insert(key.to_string(), value);
    };
    put("id", Value::from(score.id.as_str()));
    if let Some(trace_id) = score.trace_id {
        put("traceId", Value::from(trace_id.to_string()));
    }
    if let Some(observation_id) = score.observation_id {
        put("observationId", Value::from(observation_id.to_string()));
    }
    if let Some(session_id) = &score.session_id {
        put("sessionId", Value::from(session_id.as_str()));
    }
    if let Some(run_id) = &score.dataset_run_id {
        put("datasetRunId", Value::from(run_id.as_str()));
    }
    put("name", Value::from(score.name.as_str()));
    let value = match &score.value {
        ScoreValue::Numeric(number) => Value::from(*number),
        ScoreValue::Boolean(yes) => Value::from(u8::from(*yes)),
        ScoreValue::Categorical(text) => Value::from(text.as_str()),
    };
    put("value", value);
    put("dataType", Value::from(score.value.data_type()));
    if let Some(comment) = &score.comment {
        put("comment", Value::from(comment.as_str()));
    }
    if !score.metadata.is_empty() {
        let metadata: serde_json::Map<String, Value> = score
            .metadata
            .iter()
            .map(|(key, json)| {
                let value =
                    serde_json::from_str(json).unwrap_or_else(|_| Value::from(json.as_str()));
                (key.clone(), value)
            })
            .collect();
        put("metadata", Value::Object(metadata));
    }
    if let Some(environment) = &score.environment {
        put("environment", Value::from(environment.as_str()));
    }
    Value::Object(object)
}

/// Whether a 400 says the server expected one object where it got an array, as the validation
/// of Langfuse v4.16 words it (zod: `Expected object, received array`, or `"expected":"object"`
/// with `"received":"array"` in its issue list). Case and spacing do not matter.
pub(crate) fn wants_one_object(body: &[u8]) -> bool {
    let text: String = String::from_utf8_lossy(body)
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    text.contains("array")
        && (text.contains("expectedobject") || text.contains("\"expected\":\"object\""))
}

/// Whether a 400 says the server expected an array where it got one object (current Langfuse).
pub(crate) fn wants_array(body: &[u8]) -> bool {
    let text: String = String::from_utf8_lossy(body)
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    text.contains("object")
        && (text.contains("expectedarray") || text.contains("\"expected\":\"array\""))
}

/// The server's reasons: its message, and the messages of its issue list if it has one.
fn reasons(reply: &Reply) -> String {
    let mut text = reply.message();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
    let issues = parsed
        .as_ref()
        .and_then(|value| value.get("error"))
        .and_then(|error| error.as_array());
    if let Some(issues) = issues {
        let messages: Vec<&str> = issues
            .iter()
            .filter_map(|issue| issue.get("message").and_then(|m| m.as_str()))
            .take(MAX_QUOTED_ERRORS)
            .collect();
        if !messages.is_empty() {
            text.push_str(": ");
            text.push_str(&messages.join("; "));
        }
    }
    text
}

/// Reads a 207 answer: how many of `sent` scores were rejected, and the text reporting it.
fn partial(reply: &Reply, sent: usize) -> (usize, String) {
    let parsed: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let errors: Vec<&str> = parsed
        .get("errors")
        .and_then(|errors| errors.as_array())
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("no message")
                })
                .collect()
        })
        .unwrap_or_default();
    let count = |key: &str| parsed.get(key).and_then(|n| n.as_u64()).map(|n| n as usize);
    let rejected = count("rejected")
        .or_else(|| count("accepted").map(|accepted| sent.saturating_sub(accepted)))
        .unwrap_or(errors.len())
        .min(sent);
    let mut quoted: Vec<String> = errors
        .iter()
        .take(MAX_QUOTED_ERRORS)
        .map(|message| format!("{message:?}"))
        .collect();
    if errors.len() > MAX_QUOTED_ERRORS {
        quoted.push(format!("and {} more", errors.len() - MAX_QUOTED_ERRORS));
    }
    let why = if quoted.is_empty() {
        "no reason given".to_string()
    } else {
        quoted.join("; ")
    };
    (
        rejected,
        format!(
            "Langfuse rejected {rejected} of {sent} score(s) (HTTP 207; rejected scores are not \
             retried): {why}"
        ),
    )
}

/// What one request did with the scores it carried.
enum Sent {
    /// Every score accepted.
    Accepted,
    /// Some (or all) rejected one by one; the text reports it.
    Rejected(usize, String),
    /// The request was refused as a whole (not retried).
    Refused(String),
    /// The server takes one score per request.
    WantsOneObject,
    /// The server takes arrays of scores.
    WantsArray,
}

fn judge(reply: Reply, url: &str, count: usize, array: bool) -> Sent {
    match reply.status {
        207 => {
            let (rejected, text) = partial(&reply, count);
            if rejected == 0 {
                Sent::Accepted
            } else {
                Sent::Rejected(rejected, text)
            }
        }
        200..=299 => Sent::Accepted,
        400 if array && wants_one_object(&reply.body) => Sent::WantsOneObject,
        400 if !array && wants_array(&reply.body) => Sent::WantsArray,
        400 | 422 if !array => Sent::Rejected(
            1,
            format!(
                "Langfuse rejected a score with HTTP {}: {:?}; it is not retried",
                reply.status,
                reasons(&reply)
            ),
        ),
        status => Sent::Refused(format!(
            "{url} refused {count} score(s) with HTTP {status}: {:?}; the request is not retried",
            reasons(&reply)
        )),
    }
}

/// Sends a batch of scores in as few requests as the server's form and the body limit allow.
pub(crate) fn deliver(
    transport: &mut Transport,
    batch: Vec<FinishedScore>,
    waiter: &mut Waiter,
) -> ScoresSent {
    let url = transport.url(Route::Scores).to_string();
    let mut sent = ScoresSent::default();
    let mut items: Vec<(FinishedScore, String)> = Vec::with_capacity(batch.len());
    for score in batch {
        let text = to_json(&score).to_string();
        if text.len() + 2 > MAX_BODY_BYTES {
            let message = format!(
                "score {:?} (id {}) is {} bytes as JSON, over the 1 MiB Langfuse takes in one \
                 request; it was dropped: shorten its comment or metadata",
                score.name,
                score.id,
                text.len()
            );
            diagnostics::error("score-too-large", &message);
            sent.failed += 1;
            sent.error = Some(message);
            continue;
        }
        items.push((score, text));
    }
    // Each switch of form resends the same scores; two are enough for any server.
    let mut switches = 0;
    let mut next = 0;
    while next < items.len() {
        let array = !takes_one_per_request(&url);
        let end = if array {
            // The brackets, then each score and a comma (one more than needed).
            let mut end = next;
            let mut bytes = 2;
            while let Some((_, text)) = items.get(end) {
                let with_comma = text.len() + 1;
                if bytes + with_comma > MAX_BODY_BYTES {
                    break;
                }
                bytes += with_comma;
                end += 1;
            }
            // A score alone always fits: larger ones were dropped above.
            end.max(next + 1)
        } else {
            next + 1
        };
        let body = if array {
            let texts: Vec<&str> = items[next..end].iter().map(|(_, t)| t.as_str()).collect();
            format!("[{}]", texts.join(","))
        } else {
            items[next].1.clone()
        };
        let count = end - next;
        match transport.exchange(Route::Scores, body.as_bytes(), waiter) {
            Ok(reply) => match judge(reply, &url, count, array) {
                Sent::Accepted => sent.exported += count,
                Sent::WantsOneObject | Sent::WantsArray if switches < 2 => {
                    switches += 1;
                    remember_one_per_request(&url, array);
                    diagnostics::debug(|| {
                        format!(
                            "{url} takes {}; sending scores that way from now on",
                            if array {
                                "one score per request (Langfuse v4.16)"
                            } else {
                                "arrays of scores"
                            }
                        )
                    });
                    continue;
                }
                Sent::WantsOneObject | Sent::WantsArray => {
                    let text = format!(
                        "{url} refused {count} score(s) both as an array and one by one; they \
                         were dropped"
                    );
                    sent.failed += count;
                    diagnostics::error("score-refused", &text);
                    transport.note_error(&text);
                    sent.error = Some(text);
                }
                Sent::Rejected(rejected, text) => {
                    sent.exported += count - rejected;
                    sent.rejected += rejected;
                    diagnostics::error("score-rejected", &text);
                    transport.note_error(&text);
                    sent.error = Some(text);
                }
                Sent::Refused(text) => {
                    sent.failed += count;
                    diagnostics::error("score-refused", &text);
                    transport.note_error(&text);
                    sent.error = Some(text);
                }
            },
            // Scores carry their own ids, so a copy stored twice is one score: an unanswered
            // request is like any other failure (cut by the deadline, or given up).
            Err(why @ Undelivered::Unanswered(_)) if waiter.passed() => {
                sent.unsent = items.drain(next..).map(|(score, _)| score).collect();
                sent.error = Some(why.into_reason());
                break;
            }
            Err(why @ Undelivered::Deadline(_)) => {
                sent.unsent = items.drain(next..).map(|(score, _)| score).collect();
                sent.error = Some(why.into_reason());
                break;
            }
            Err(why) => {
                // Refused, refused keys, or a server down for the whole retry budget: the rest
                // of the batch would fare no better.
                let lost = items.len() - next;
                sent.failed += lost;
                if !why.already_reported() {
                    diagnostics::error(
                        "score-export",
                        format!("{lost} score(s) were not delivered: {why}"),
                    );
                }
                sent.error = Some(why.into_reason());
                break;
            }
        }
        next = end;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::score::ScoreDraft;

    fn score(value: ScoreValue) -> FinishedScore {
        let mut draft = ScoreDraft::new("quality".into(), value);
        draft.trace_id = "0af7651916cd43dd8448eb211c80319c".parse().ok();
        draft.observation_id = "00f067aa0ba902b7".parse().ok();
        draft.finish(|| "s-1".into()).unwrap()
    }

    #[test]
    fn every_kind_has_its_wire_value_and_data_type() {
        let mut numeric = score(ScoreValue::Numeric(0.75));
        numeric.comment = Some("close".into());
        numeric.metadata = vec![
            ("judge".into(), r#"{"model":"gpt-4o"}"#.into()),
            ("note".into(), "not json".into()),
        ];
        numeric.environment = Some("production".into());
        assert_eq!(
            to_json(&numeric),
            serde_json::json!({
                "id": "s-1",
                "traceId": "0af7651916cd43dd8448eb211c80319c",
                "observationId": "00f067aa0ba902b7",
                "name": "quality",
                "value": 0.75,
                "dataType": "NUMERIC",
                "comment": "close",
                "metadata": {"judge": {"model": "gpt-4o"}, "note": "not json"},
                "environment": "production",
            })
        );
        let yes = to_json(&score(ScoreValue::Boolean(true)));
        assert_eq!(
            (&yes["value"], &yes["dataType"]),
            (&serde_json::json!(1), &serde_json::json!("BOOLEAN"))
        );
        let no = to_json(&score(ScoreValue::Boolean(false)));
        assert_eq!(no["value"], serde_json::json!(0));
        let category = to_json(&score(ScoreValue::Categorical("good".into())));
        assert_eq!(
            (&category["value"], &category["dataType"]),
            (
                &serde_json::json!("good"),
                &serde_json::json!("CATEGORICAL")
            )
        );
        assert_eq!(category.get("comment"), None);
        assert_eq!(category.get("metadata"), None);
        assert_eq!(category.get("sessionId"), None);
    }

    #[test]
    fn the_single_object_answer_is_recognised_in_its_wordings() {
        let zod3 = br#"{"message":"Invalid request data","error":[{"code":"invalid_type","expected":"object","received":"array","path":[],"message":"Expected object, received array"}]}"#;
        let zod4 = br#"{"message":"Invalid input: expected object, received array"}"#;
        let spaced = br#"{"error": [{"expected": "object", "received": "array"}]}"#;
        for body in [&zod3[..], &zod4[..], &spaced[..]] {
            assert!(wants_one_object(body), "{}", String::from_utf8_lossy(body));
        }
        let other = br#"{"message":"Invalid request data","error":[{"code":"invalid_type","expected":"number","received":"string","path":[0,"value"],"message":"Expected number, received string"}]}"#;
        for body in [
            &other[..],
            b"Bad Request",
            br#"{"error":"expected object"}"#,
        ] {
            assert!(!wants_one_object(body), "{}", String::from_utf8_lossy(body));
            assert!(!wants_array(body), "{}", String::from_utf8_lossy(body));
        }
        let array = br#"{"message":"Invalid request data","error":[{"code":"invalid_type","expected":"array","received":"object","path":[],"message":"Expected array, received object"}]}"#;
        assert!(wants_array(array));
        assert!(!wants_one_object(array));
        assert!(!wants_array(zod3));
    }

    #[test]
    fn a_207_counts_its_rejections_and_quotes_them() {
        let reply = Reply {
            status: 207,
            body: br#"{"accepted":2,"rejected":1,"errors":[{"message":"Score config not found"}]}"#
                .to_vec(),
        };
        assert_eq!(
            partial(&reply, 3),
            (
                1,
                "Langfuse rejected 1 of 3 score(s) (HTTP 207; rejected scores are not retried): \
                 \"Score config not found\""
                    .to_string()
            )
        );
        let unreadable = Reply {
            status: 207,
            body: b"?".to_vec(),
        };
        assert_eq!(partial(&unreadable, 2).0, 0);
        let only_errors = Reply {
            status: 207,
            body: br#"{"errors":[{"message":"a"},{"message":"b"}]}"#.to_vec(),
        };
        assert_eq!(partial(&only_errors, 5).0, 2);
    }
}

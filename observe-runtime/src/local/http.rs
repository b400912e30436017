//! The `http` feature: a trace context in and out of an [`http::HeaderMap`] (the header type of
//! reqwest, axum, hyper and tonic), as W3C `traceparent` and `baggage`.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::context::TraceContext;
use super::w3c::TraceparentError;
use crate::gate;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
impl TraceContext {
    /// Writes this context into outgoing request headers: `traceparent`, and `baggage` with the
    /// trace attributes unless [`Config::propagate_attributes`](crate::Config::propagate_attributes)
    /// is off. Langfuse entries already in a `baggage` header are replaced; other entries are
    /// kept.
    ///
    /// ```
    /// use observe_runtime::{span, TraceContext};
    /// let _call = span("call-search-service").start();
    /// let mut headers = http::HeaderMap::new();
    /// if let Some(context) = TraceContext::current() {
    ///     context.inject(&mut headers); // then reqwest's `.headers(headers)`
    /// }
    /// ```
    pub fn inject(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.to_traceparent()) {
            headers.insert(TRACEPARENT, value);
        }
        let Some(ours) = self.baggage_to_send() else {
            return;
        };
        let foreign: Vec<&str> = headers
            .get_all(BAGGAGE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty() && !entry.starts_with("langfuse_"))
            .collect();
        let mut value = foreign.join(",");
        if !value.is_empty() {
            value.push(',');
        }
        value.push_str(&ours);
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(BAGGAGE, value);
        }
    }

    /// Reads the context of an incoming request: `Ok(None)` without a `traceparent` header, an
    /// error saying what is wrong with a malformed one, else a context that joins the caller's
    /// trace under its span, with the session, user and other attributes of its `baggage`
    /// (unless [`Config::propagate_attributes`](crate::Config::propagate_attributes) is off:
    /// turn it off when callers are not trusted to name the user).
    ///
    /// ```
    /// use observe_runtime::{span, TraceContext};
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
    /// headers.insert("baggage", "langfuse_session_id=chat-42".parse().unwrap());
    /// let context = TraceContext::extract(&headers).unwrap().unwrap();
    /// assert_eq!(context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// let _attached = context.attach();
    /// let _handler = span("handle-request").start(); // a child of the caller's span
    /// ```
    pub fn extract(headers: &HeaderMap) -> Result<Option<TraceContext>, TraceparentError> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let text = value.to_str().map_err(|_| {
            TraceparentError::new(
                &String::from_utf8_lossy(value.as_bytes()),
                "the header holds bytes that are not visible ASCII",
            )
        })?;
        if values.next().is_some() {
            return Err(TraceparentError::new(
                text,
                "the request has more than one traceparent header",
            ));
        }
        let context = TraceContext::from_traceparent(text)?;
        if !gate::propagates_attributes() {
            return Ok(Some(context));
        }
        let baggage: Vec<&str> = headers
            .get_all(BAGGAGE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        Ok(Some(if baggage.is_empty() {
            context
        } else {
            context.with_baggage(&baggage.join(","))
        }))
    }
}

//! [`ObserveLayer`] and its service: which requests are recorded, the request rebuilt once for
//! the first attempt (with `stream_options.include_usage` when asked), attempts counted, and
//! the response read once and rebuilt (or its body wrapped when streamed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use observe_runtime::TraceContext;
use reqwest::{Request, Response};

use crate::call::{Attempts, Call, Options};
use crate::endpoint::{with_usage_requested, Endpoint};
use crate::price::Price;
use crate::stream::ObservedBody;

/// A [`tower::Layer`] that records async-openai calls as Langfuse generations; see the
/// [crate docs](crate). Place it outside async-openai's retry layer.
///
/// ```
/// use observe_openai::{ObserveLayer, Price};
/// let layer = ObserveLayer::new()
///     .include_usage(true)
///     .price("gpt-4o-mini", Price::new(0.15, 0.60).cached_input(0.075));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ObserveLayer {
    options: Options,
}

impl ObserveLayer {
    /// The layer with default options: no request is changed, and Langfuse prices the
    /// generations from their model names.
    pub fn new() -> ObserveLayer {
        ObserveLayer::default()
    }

    /// Adds `stream_options: {"include_usage": true}` to streamed chat completion requests
    /// that do not set `include_usage` themselves, so that the token counts of streams are
    /// known. The server then sends one more chunk, with the usage and no choices.
    pub fn include_usage(mut self, include: bool) -> ObserveLayer {
        self.options.include_usage = include;
        self
    }

    /// Prices for a model (the answer's model name, else the request's): the generations of
    /// that model carry a cost computed from their usage instead of Langfuse's own prices.
    pub fn price(mut self, model: impl Into<String>, price: Price) -> ObserveLayer {
        self.options.prices.insert(model.into(), price);
        self
    }

    /// Prices for several models; see [`ObserveLayer::price`].
    pub fn prices(
        mut self,
        prices: impl IntoIterator<Item = (impl Into<String>, Price)>,
    ) -> ObserveLayer {
        for (model, price) in prices {
            self.options.prices.insert(model.into(), price);
        }
        self
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> ObserveService<S> {
        ObserveService {
            inner,
            options: Arc::new(self.options.clone()),
        }
    }
}

/// The service [`ObserveLayer`] puts around async-openai's HTTP service.
#[derive(Debug, Clone)]
pub struct ObserveService<S> {
    inner: S,
    options: Arc<Options>,
}

type CallFuture = Pin<Box<dyn Future<Output = Result<Response, OpenAIError>> + Send + 'static>>;

impl<S> tower::Service<HttpRequestFactory> for ObserveService<S>
where
    S: tower::Service<HttpRequestFactory, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<OpenAIError>,
    S: Clone,
{
    type Response = Response;
    type Error = OpenAIError;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, factory: HttpRequestFactory) -> CallFuture {
        // The service made ready goes into the future; a clone stays for the next call.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        // What is current where the call is made: the generation goes under it.
        let context = TraceContext::current();
        Box::pin(observe_call(inner, factory, self.options.clone(), context))
    }
}

/// One call, recorded. What is held across an await is boxed with the future per call, so the
/// steps between the awaits are functions of their own and the call is one local throughout:
/// the future stays small enough for the allocator's fast path.
async fn observe_call<S>(
    mut inner: S,
    factory: HttpRequestFactory,
    options: Arc<Options>,
    context: Option<TraceContext>,
) -> Result<Response, OpenAIError>
where
    S: tower::Service<HttpRequestFactory, Response = Response>,
    S::Error: Into<OpenAIError>,
{
    let first = factory.build().await?;
    let (replay, mut call) = prepare(factory, first, &options, context);
    let result = inner.call(replay).await.map_err(Into::into);
    let mut response = match received(&mut call, result) {
        Received::Done(result) => return result,
        Received::Read(response) => response,
    };
    let read = whole(&mut response).await;
    answered(call, response, read)
}

/// The replayable request, with its first attempt built, and the call opened when the endpoint
/// is recorded.
fn prepare(
    factory: HttpRequestFactory,
    mut first: Request,
    options: &Arc<Options>,
    context: Option<TraceContext>,
) -> (HttpRequestFactory, Option<Call>) {
    let Some(endpoint) = Endpoint::of(first.method(), first.url().path()) else {
        return (replay(factory, Arc::new(Attempts::new(first)), None), None);
    };
    let body = shared_body(&mut first);
    let replacement = match (endpoint, options.include_usage, &body) {
        (Endpoint::Chat, true, Some(body)) => with_usage_requested(body).map(Bytes::from),
        _ => None,
    };
    let attempts = Arc::new(Attempts::new(first));
    let call = {
        let _current = context.as_ref().map(TraceContext::attach);
        Call::open(endpoint, body, options.clone(), attempts.clone())
    };
    (replay(factory, attempts, replacement), call)
}

/// What came back: a result to give as it is (the call ended or not recorded), or a complete
/// answer to read first.
enum Received {
    Done(Result<Response, OpenAIError>),
    Read(Response),
}

/// Ends the call on a failure; wraps a streamed body (the call goes with it).
fn received(call: &mut Option<Call>, result: Result<Response, OpenAIError>) -> Received {
    let Some(recorded) = call.take() else {
        return Received::Done(result);
    };
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            recorded.failed(error_message(&error));
            return Received::Done(Err(error));
        }
    };
    let streamed = response.status().is_success()
        && response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
    if streamed {
        let (head, url) = Head::take(&mut response);
        let body = http::Response::from(response).into_body();
        let observed = ObservedBody::new(body.into_data_stream(), recorded);
        return Received::Done(Ok(head.with(url, reqwest::Body::wrap_stream(observed))));
    }
    *call = Some(recorded);
    Received::Read(response)
}

/// Ends the call with the answer read, and gives the response rebuilt around it: its status,
/// version, headers, extensions and URL moved over, its body the bytes read. (`call` is the one
/// [`received`] put back; it stays an `Option` so that the future holds a single call.)
fn answered(
    call: Option<Call>,
    mut response: Response,
    read: Result<Bytes, reqwest::Error>,
) -> Result<Response, OpenAIError> {
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(error) => {
            if let Some(call) = call {
                call.failed(format!("reading the answer failed: {error}"));
            }
            return Err(OpenAIError::Reqwest(error));
        }
    };
    let status = response.status();
    if let Some(call) = call {
        if status.is_success() {
            call.answered(&bytes);
        } else {
            call.http_error(status, &bytes);
        }
    }
    Ok(rebuilt(&mut response, bytes))
}

/// A response like `response` (its status, version, headers, extensions and URL moved over)
/// around `body`: reqwest sets a body only on a response built from an `http::Response`.
fn rebuilt(response: &mut Response, body: Bytes) -> Response {
    let (head, url) = Head::take(response);
    head.with(url, reqwest::Body::from(body))
}

/// What a response is besides its body and URL.
struct Head {
    status: reqwest::StatusCode,
    version: reqwest::Version,
    headers: http::HeaderMap,
    extensions: http::Extensions,
}

impl Head {
    /// What `response` is besides its body (its headers and extensions taken), and its URL.
    fn take(response: &mut Response) -> (Head, reqwest::Url) {
        let head = Head {
            status: response.status(),
            version: response.version(),
            headers: std::mem::take(response.headers_mut()),
            extensions: std::mem::take(response.extensions_mut()),
        };
        (head, response.url().clone())
    }

    /// The response with `url` and `body`. Only http's builder sets a response's URL (reqwest's
    /// `ResponseBuilderExt::url`, an extension of reqwest's own type): the extensions are moved
    /// into the builder first, so that the URL joins them, with no other map of extensions made
    /// and merged.
    fn with(self, url: reqwest::Url, body: reqwest::Body) -> Response {
        use reqwest::ResponseBuilderExt as _;
        let mut builder = http::Response::builder()
            .status(self.status)
            .version(self.version);
        if let Some(extensions) = builder.extensions_mut() {
            *extensions = self.extensions;
        }
        if let Some(headers) = builder.headers_mut() {
            *headers = self.headers;
        }
        match builder.url(url).body(body) {
            Ok(built) => Response::from(built),
            // Never: the status and version are a response's own.
            Err(_) => Response::from(http::Response::new(reqwest::Body::from(Bytes::new()))),
        }
    }
}

/// The request's body as shared bytes, put back into the request (not copied: a body built
/// from bytes gives them up at once, as one frame, and a body made of them again shares them);
/// `None` for a streamed body, which is left as it is.
fn shared_body(request: &mut Request) -> Option<Bytes> {
    request.body()?.as_bytes()?;
    let body = request.body_mut().as_mut()?;
    let mut context = Context::from_waker(std::task::Waker::noop());
    let bytes = match Pin::new(&mut body.frame()).poll(&mut context) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().ok()?,
        Poll::Ready(None) => Bytes::new(),
        // Not for a body of bytes.
        Poll::Ready(Some(Err(_))) | Poll::Pending => return None,
    };
    *request.body_mut() = Some(reqwest::Body::from(bytes.clone()));
    Some(bytes)
}

/// All of a response's body: its only frame as it is (shared, not copied), several joined;
/// trailers are left out.
async fn whole(response: &mut Response) -> Result<Bytes, reqwest::Error> {
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(data) = response.chunk().await? {
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut both = BytesMut::with_capacity(first.len() + data.len());
                both.extend_from_slice(&first);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

/// The status message of a failed call: the server's message for an API error.
fn error_message(error: &OpenAIError) -> String {
    match error {
        OpenAIError::ApiError(api) => {
            format!(
                "HTTP {}: {}",
                api.status_code.as_u16(),
                api.api_error.message
            )
        }
        other => other.to_string(),
    }
}

/// A factory for the inner service: the request already built for the first attempt (held in
/// `attempts`), rebuilt for the next ones; each attempt counted, and the body replaced when
/// asked.
fn replay(
    factory: HttpRequestFactory,
    attempts: Arc<Attempts>,
    body: Option<Bytes>,
) -> HttpRequestFactory {
    HttpRequestFactory::new(move || {
        let built = attempts.next().ok_or_else(|| factory.clone());
        let body = body.clone();
        async move {
            let mut request = match built {
                Ok(request) => request,
                Err(factory) => factory.build().await?,
            };
            if let Some(body) = body {
                *request.body_mut() = Some(reqwest::Body::from(body));
            }
            Ok(request)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&'static str]) -> reqwest::Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = parts
            .iter()
            .map(|part| Ok(Bytes::from_static(part.as_bytes())))
            .collect();
        reqwest::Body::wrap_stream(stream_of(frames))
    }

    fn stream_of(
        items: Vec<Result<Bytes, std::io::Error>>,
    ) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static
    {
        struct Iter(std::vec::IntoIter<Result<Bytes, std::io::Error>>);
        impl futures_core::Stream for Iter {
            type Item = Result<Bytes, std::io::Error>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                Poll::Ready(self.0.next())
            }
        }
        Iter(items.into_iter())
    }

    fn answer(body: reqwest::Body) -> Response {
        Response::from(http::Response::new(body))
    }

    /// A service that is never called: only the size of the call's future is looked at.
    #[derive(Clone)]
    struct Unused;

    impl tower::Service<HttpRequestFactory> for Unused {
        type Response = Response;
        type Error = OpenAIError;
        type Future = CallFuture;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: HttpRequestFactory) -> CallFuture {
            Box::pin(async { Err(OpenAIError::InvalidArgument("unused".into())) })
        }
    }

    #[test]
    fn a_call_boxes_a_future_small_enough_for_the_allocators_fast_path() {
        let factory = HttpRequestFactory::new(|| async {
            Err(OpenAIError::InvalidArgument("unused".into()))
        });
        let call = observe_call(Unused, factory, Arc::default(), None);
        // glibc's per-thread cache takes up to 1,032 bytes; the future was 1,368 before its steps
        // became functions of their own.
        let size = std::mem::size_of_val(&call);
        assert!(size <= 640, "the future of a call takes {size} bytes");
    }

    #[test]
    fn the_request_body_is_shared_not_copied() {
        let sent = Bytes::from(b"{\"model\":\"m\"}".to_vec());
        let mut request = Request::new(
            reqwest::Method::POST,
            "http://127.0.0.1/v1/chat/completions"
                .parse()
                .expect("a URL"),
        );
        *request.body_mut() = Some(reqwest::Body::from(sent.clone()));
        let shared = shared_body(&mut request).expect("a body of bytes");
        assert_eq!(shared, sent);
        assert_eq!(shared.as_ptr(), sent.as_ptr());
        let left = request.body().and_then(reqwest::Body::as_bytes);
        assert_eq!(left.map(<[u8]>::as_ptr), Some(sent.as_ptr()));

        let mut empty = request;
        *empty.body_mut() = Some(reqwest::Body::from(Vec::new()));
        assert_eq!(shared_body(&mut empty), Some(Bytes::new()));
        *empty.body_mut() = None;
        assert_eq!(shared_body(&mut empty), None);
    }

    /// An extension another layer might have put on the response.
    #[derive(Clone, Debug, PartialEq)]
    struct Marker(u32);

    #[tokio::test]
    async fn the_rebuilt_response_keeps_everything_but_its_body() {
        use reqwest::ResponseBuilderExt as _;
        let url: reqwest::Url = "http://127.0.0.1:9/v1/chat/completions?x=1"
            .parse()
            .expect("a URL");
        let mut response = Response::from(
            http::Response::builder()
                .status(201)
                .version(reqwest::Version::HTTP_2)
                .header("x-request-id", "req-7")
                .extension(Marker(7))
                .url(url.clone())
                .body(reqwest::Body::from("the answer as sent"))
                .expect("a response"),
        );
        let read = whole(&mut response).await.expect("the body");
        assert_eq!(read, "the answer as sent");

        let rebuilt = rebuilt(&mut response, Bytes::from_static(b"{\"read\":true}"));
        assert_eq!(rebuilt.status(), reqwest::StatusCode::CREATED);
        assert_eq!(rebuilt.version(), reqwest::Version::HTTP_2);
        assert_eq!(rebuilt.url(), &url);
        assert_eq!(
            rebuilt.headers().get("x-request-id").map(|v| v.as_bytes()),
            Some(&b"req-7"[..])
        );
        assert_eq!(rebuilt.extensions().get::<Marker>(), Some(&Marker(7)));
        assert_eq!(rebuilt.bytes().await.expect("the body"), "{\"read\":true}");
    }

    #[tokio::test]
    async fn a_body_of_one_frame_is_shared_and_several_are_joined() {
        let shared = Bytes::from(b"{\"model\":\"m\"}".to_vec());
        let mut one = answer(reqwest::Body::from(shared.clone()));
        let read = whole(&mut one).await.expect("the body");
        assert_eq!(read, shared);
        assert_eq!(
            read.as_ptr(),
            shared.as_ptr(),
            "the one frame is not copied"
        );

        let mut several = answer(frames(&["{\"a\":", "", "1,\"b\"", ":2}"]));
        assert_eq!(
            whole(&mut several).await.expect("the body"),
            "{\"a\":1,\"b\":2}"
        );

        let mut empty = answer(frames(&[]));
        assert_eq!(whole(&mut empty).await.expect("the body"), "");
    }
}

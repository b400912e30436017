//! # observe-openai: every async-openai call a Langfuse generation
//!
//! [`ObserveLayer`] is a [`tower::Layer`] for async-openai's HTTP path (its `middleware`
//! feature): each chat completion, Responses API call and embedding becomes a generation (an
//! embedding observation for embeddings) under the current observation, streamed or not, with
//! model, model parameters, input, output, usage, cost, time to first token and errors. Other
//! endpoints pass through untouched and unrecorded.
//!
//! ```no_run
//! use observe_openai::async_openai::config::OpenAIConfig;
//!
//! let client = observe_openai::client(OpenAIConfig::default());
//! // client.chat().create(request).await: a generation in the current trace
//! # let _ = client;
//! ```
//!
//! With a tower stack of your own, put the layer outside async-openai's retry layer, so that one
//! logical call is one generation with its retries counted in its metadata:
//!
//! ```no_run
//! use observe_openai::async_openai::config::OpenAIConfig;
//! use observe_openai::async_openai::middleware::{retry::OpenAIRetryLayer, ReqwestService};
//! use observe_openai::async_openai::Client;
//! use observe_openai::ObserveLayer;
//! use tower::ServiceBuilder;
//!
//! let service = ServiceBuilder::new()
//!     .layer(ObserveLayer::new().include_usage(true))
//!     .layer(OpenAIRetryLayer::default())
//!     .service(ReqwestService::new(reqwest::Client::new()));
//! let client = Client::with_config(OpenAIConfig::default()).with_http_service(service);
//! # let _ = client;
//! ```
//!
//! The generation opens when the call is first polled, under what is current then (an
//! `#[observe]` function, a manual span, a bridged `tracing` span), or starts a trace. A
//! streamed answer is passed through unchanged and read on the side; the generation ends with
//! the stream (`data: [DONE]`, the end of the body, or the Responses API's final event). A
//! request and a complete answer within the field limit are read on the exporter's thread, after
//! the call (see `DetachedSpan::defer`): the calling task only hands their bytes over. Capture
//! switches, masking, sampling and field limits apply as for `#[observe]`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod call;
mod chunk;
mod endpoint;
mod json;
mod layer;
mod price;
mod stream;

/// The async-openai crate this layer is built for, so that your code names one version.
pub use async_openai;

pub use layer::{ObserveLayer, ObserveService};
pub use price::Price;

use async_openai::config::Config;
use async_openai::middleware::{retry::OpenAIRetryLayer, ReqwestService};
use async_openai::Client;

/// An async-openai client whose calls are recorded: [`ObserveLayer::default`] over
/// async-openai's default retry layer and HTTP service.
///
/// ```no_run
/// use observe_openai::async_openai::config::OpenAIConfig;
/// let client = observe_openai::client(OpenAIConfig::new().with_api_base("http://localhost:8000/v1"));
/// # let _ = client;
/// ```
pub fn client<C: Config>(config: C) -> Client<C> {
    client_with(config, ObserveLayer::default())
}

/// The same as [`client`], with a layer of your own options (prices, `include_usage`).
pub fn client_with<C: Config>(config: C, layer: ObserveLayer) -> Client<C> {
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(OpenAIRetryLayer::default())
        .service(ReqwestService::new(reqwest::Client::new()));
    Client::with_config(config).with_http_service(service)
}

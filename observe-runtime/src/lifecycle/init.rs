//! `Config::init`: validate the configuration, start the exporter, install the client, and put
//! the exit and panic hooks in place.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::{flush, hooks, signals, FlushGuard};
use crate::api::{self, ApiClient};
use crate::clock::UnixClock;
use crate::config::{Config, ConfigError, Destination, Settings};
use crate::diagnostics;
use crate::export::console::ConsoleSink;
use crate::export::otlp::{Envelope, OtlpSink};
use crate::export::spool::Spool;
use crate::export::transport::Transport;
use crate::export::worker::{self, WorkerSettings};
use crate::export::{queue, Counters, MemoryExporter, Sink};
use crate::gate::{self, Client, Handoff, ProcessParent};
use crate::local::context::TraceContext;
use crate::local::{buffer, owned};
use crate::prompt;
use crate::record::baggage;

fn child_environment(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if let Destination::Otlp(target) = &settings.destination {
        if let Some(keys) = &target.langfuse {
            vars.push(("LANGFUSE_PUBLIC_KEY", keys.public_key.clone()));
            vars.push(("LANGFUSE_SECRET_KEY", keys.secret_key.clone()));
            vars.push(("LANGFUSE_BASE_URL", target.base_url.clone()));
        } else {
            vars.push((
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                target.endpoint.clone(),
            ));
        }
    }
    if let Some(environment) = &settings.environment {
        vars.push(("LANGFUSE_TRACING_ENVIRONMENT", environment.clone()));
    }
    if let Some(release) = &settings.release {
        vars.push(("LANGFUSE_RELEASE", release.clone()));
    }
    vars.push(("LANGFUSE_SAMPLE_RATE", settings.sample_rate.to_string()));
    if !settings.propagate_attributes {
        vars.push(("LANGFUSE_PROPAGATE_ATTRIBUTES", "false".to_string()));
    }
    vars
}

/// The REST client of the Langfuse keys (prompts work with tracing disabled too), a fresh prompt
/// cache, and the pre-fetch.
fn install_api(settings: &Settings) -> Option<Arc<ApiClient>> {
    let client =
        settings
            .api
            .as_ref()
            .and_then(|target| match ApiClient::new(target, settings.timeout) {
                Ok(client) => Some(Arc::new(client)),
                Err(why) => {
                    diagnostics::warn(
                        "api",
                        format!("the Langfuse API client is not available: {why}"),
                    );
                    None
                }
            });
    api::install(client.clone());
    prompt::configure(settings.prompt_cache_ttl);
    prompt::prefetch(&settings.prefetch_prompts);
    client
}

/// `Config::init`: validate, start the exporter, install the client.
pub(crate) fn init(config: Config) -> Result<FlushGuard, ConfigError> {
    let traceparent = config.traceparent.clone();
    let baggage = config.baggage.clone();
    let settings = config.validate()?;
    diagnostics::set_debug(settings.debug);
    crate::capture::set_capture_debug(settings.capture_debug);
    // A generic collector has no media API: media stays text there.
    let collector =
        matches!(&settings.destination, Destination::Otlp(target) if target.langfuse.is_none());
    crate::media::set_enabled(settings.media_upload && !collector);
    for note in &settings.notes {
        diagnostics::note(note);
    }
    for warning in &settings.warnings {
        diagnostics::warn(warning, warning);
    }
    if !settings.enabled {
        diagnostics::debug(|| "tracing is disabled; nothing will be recorded".into());
        let api = install_api(&settings);
        return Ok(FlushGuard::disabled(api));
    }
    // Checked again when installing; this spares starting a thread for nothing.
    if gate::is_installed() {
        return Err(ConfigError::AlreadyInitialized);
    }
    // Before the exporter's thread starts (see `owned::prepare`).
    owned::prepare();

    let process_parent = traceparent.and_then(|value| {
        let context = TraceContext::from_traceparent(&value)
            .map_err(|error| {
                diagnostics::warn("TRACEPARENT", format!("TRACEPARENT ignored: {error}"));
            })
            .ok()?;
        let attributes = baggage
            .filter(|_| settings.propagate_attributes)
            .and_then(|text| {
                let decoded = baggage::decode(&text);
                for skipped in &decoded.skipped {
                    diagnostics::warn("BAGGAGE", format!("BAGGAGE entry ignored: {skipped}"));
                }
                (!decoded.is_empty()).then_some(decoded.attributes)
            });
        Some(ProcessParent {
            trace_id: context.trace_id(),
            span_id: context.observation_id()?,
            sampled: context.is_sampled(),
            attributes,
        })
    });
    let counters = Arc::new(Counters::default());
    let child_environment = child_environment(&settings);
    let envelope = Envelope::new(
        &settings.service_name,
        &settings.resource_attributes,
        settings.environment.clone(),
        settings.release.clone(),
    );
    let worker_settings = WorkerSettings {
        flush_at: settings.flush_at,
        flush_interval: settings.flush_interval,
        mask: settings.mask.clone(),
        field_limit: settings.max_field_bytes,
        collect: Some(Box::new(buffer::collect_into_installed)),
    };
    let timeout = settings.timeout;
    let flush_on_signals = settings.flush_on_signals;
    let takes_scores = match &settings.destination {
        Destination::Otlp(target) => target.langfuse.is_some(),
        Destination::Memory(_) | Destination::Console | Destination::ConsoleNoCredentials => true,
    };
    diagnostics::debug(|| match &settings.destination {
        Destination::Otlp(target) => format!(
            "sending spans to {} ({})",
            target.endpoint,
            if target.langfuse.is_some() {
                "Langfuse"
            } else {
                "OpenTelemetry collector"
            }
        ),
        Destination::Memory(_) => "keeping spans in memory".to_string(),
        Destination::Console | Destination::ConsoleNoCredentials => {
            "printing traces to stderr".to_string()
        }
    });
    let api = install_api(&settings);
    let handoff = match settings.destination {
        Destination::Memory(memory) => {
            memory.set_collect(buffer::collect_into_installed);
            Handoff::Memory {
                memory,
                clock: Mutex::new(UnixClock::new()),
            }
        }
        Destination::Console | Destination::ConsoleNoCredentials => {
            let header = matches!(settings.destination, Destination::ConsoleNoCredentials)
                .then_some(
                    "no LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY set: traces are printed here \
                 instead of being sent to Langfuse",
                );
            let (queue, receiver) =
                queue::queue(settings.max_queue, settings.flush_at, counters.clone());
            let spawned = worker::spawn(worker_settings, counters.clone(), receiver, move || {
                Ok(Box::new(ConsoleSink::new(header)) as Box<dyn Sink>)
            });
            Handoff::Worker {
                queue,
                worker: spawned.map_err(ConfigError::Startup)?,
            }
        }
        Destination::Otlp(target) => {
            let spool = match settings.spool.clone() {
                Some((dir, max_bytes)) => Some(
                    Spool::open(dir.clone(), max_bytes, counters.clone()).map_err(|why| {
                        ConfigError::InvalidValue {
                            variable: "LANGFUSE_SPOOL_DIR",
                            value: dir.display().to_string(),
                            expected: format!("{why}; set a directory this process can write"),
                        }
                    })?,
                ),
                None => None,
            };
            let sink_counters = counters.clone();
            let (queue, receiver) =
                queue::queue(settings.max_queue, settings.flush_at, counters.clone());
            let spawned = worker::spawn(worker_settings, counters.clone(), receiver, move || {
                let transport = Transport::new(target, timeout, sink_counters)?;
                Ok(Box::new(OtlpSink::new(transport, envelope, spool)) as Box<dyn Sink>)
            });
            Handoff::Worker {
                queue,
                worker: spawned.map_err(ConfigError::Startup)?,
            }
        }
    };
    let sample_below = sample_below(settings.sample_rate);
    let client = Arc::new(Client {
        sample_below,
        capture_io: settings.capture_io,
        field_limit: settings.max_field_bytes,
        shutdown_timeout: settings.shutdown_timeout,
        mask: settings.mask,
        child_environment,
        process_parent,
        propagate_attributes: settings.propagate_attributes,
        handoff,
        environment: settings.environment.clone(),
        takes_scores,
        counters,
        stopped: AtomicBool::new(false),
    });
    if gate::install(client.clone()).is_err() {
        // Another init won the race: stop what was started for this one.
        let _ = flush::shutdown(&client);
        if let Some(api) = &api {
            api::uninstall(api);
        }
        return Err(ConfigError::AlreadyInitialized);
    }
    hooks::register_exit_hook();
    hooks::install_panic_hook();
    if flush_on_signals {
        signals::install();
    }
    Ok(FlushGuard::new(client, api))
}

impl Config {
    /// Validates everything, starts the exporter thread and installs the global client.
    pub fn init(self) -> Result<FlushGuard, ConfigError> {
        init(self)
    }
}

/// A client for a capture scope (`testing::capture`): the configuration's sampling, capture,
/// field limit and mask, spans and scores kept in `memory`; never installed, no exporter thread,
/// no hooks, nothing read from the environment but what `config` holds.
pub(crate) fn scope_client(
    config: Config,
    memory: MemoryExporter,
) -> Result<Arc<Client>, ConfigError> {
    let settings = config.validate()?;
    let sample_below = sample_below(settings.sample_rate);
    Ok(Arc::new(Client {
        sample_below,
        capture_io: settings.capture_io,
        field_limit: settings.max_field_bytes,
        shutdown_timeout: settings.shutdown_timeout,
        mask: settings.mask,
        child_environment: Vec::new(),
        process_parent: None,
        propagate_attributes: settings.propagate_attributes,
        handoff: Handoff::Memory {
            memory,
            clock: Mutex::new(UnixClock::new()),
        },
        environment: settings.environment,
        takes_scores: true,
        counters: Arc::new(Counters::default()),
        stopped: AtomicBool::new(false),
    }))
}

/// Traces whose sampling value is below this are kept (`None`: all are).
fn sample_below(sample_rate: f64) -> Option<u64> {
    (sample_rate < 1.0).then_some((sample_rate * 18_446_744_073_709_551_616.0) as u64)
}

//! Every configuration problem `init` reports, with the exact text a user reads. None of these
//! installs a client, so they run in parallel.

use observe_runtime::{Config, ConfigError};

const TIMEOUT_EXPECTED: &str = "expected seconds from 0.001 (1 ms) to 3600 (1 hour), the time \
     limit of one HTTP request, such as 5 or 0.5";
const SHUTDOWN_TIMEOUT_EXPECTED: &str = "expected seconds from 0.001 (1 ms) to 3600 (1 hour), \
     the longest flush and shutdown may take, such as 5 or 0.5";
const FLUSH_INTERVAL_EXPECTED: &str = "expected seconds from 0.001 (1 ms) to 3600 (1 hour), the \
     longest a finished span waits before it is sent, such as 5 or 0.5";
const FLUSH_AT_EXPECTED: &str = "expected a whole number of spans from 1 to 100000, such as 512";
const FIELD_SIZE_EXPECTED: &str =
    "expected a whole number of bytes from 256 to 3000000, such as 1000000";

fn error_of(vars: &[(&str, &str)]) -> String {
    match Config::from_vars(vars.iter().copied()).init() {
        Ok(guard) => {
            drop(guard);
            panic!("init accepted {vars:?}")
        }
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_missing_secret_key_names_both_variables() {
    assert_eq!(
        error_of(&[("LANGFUSE_PUBLIC_KEY", "pk-lf-1234")]),
        "Langfuse credentials are incomplete: LANGFUSE_SECRET_KEY is not set. Set both \
         LANGFUSE_PUBLIC_KEY (pk-lf-...) and LANGFUSE_SECRET_KEY (sk-lf-...) from the project \
         settings in Langfuse, or unset both to print traces to the console"
    );
}

#[test]
fn a_missing_public_key_names_both_variables() {
    let error = Config::from_vars([("LANGFUSE_SECRET_KEY", "sk-lf-1234")])
        .init()
        .unwrap_err();
    assert_eq!(
        error,
        ConfigError::MissingCredentials {
            missing: vec!["LANGFUSE_PUBLIC_KEY"]
        }
    );
}

#[test]
fn asking_for_otlp_without_keys_names_both() {
    let error = Config::default()
        .exporter(observe_runtime::Exporter::Otlp)
        .init()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Langfuse credentials are incomplete: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are \
         not set. Set both LANGFUSE_PUBLIC_KEY (pk-lf-...) and LANGFUSE_SECRET_KEY (sk-lf-...) \
         from the project settings in Langfuse, or unset both to print traces to the console"
    );
}

#[test]
fn swapped_keys_are_named() {
    assert_eq!(
        error_of(&[
            ("LANGFUSE_PUBLIC_KEY", "sk-lf-secret-0000-1111"),
            ("LANGFUSE_SECRET_KEY", "pk-lf-public-2222"),
        ]),
        "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are swapped: the public key holds a secret \
         key (sk-lf-...) and the secret key a public key (pk-lf-...); exchange the two values"
    );
}

#[test]
fn a_secret_key_in_the_public_slot_is_masked() {
    let text = error_of(&[
        ("LANGFUSE_PUBLIC_KEY", "sk-lf-secret-0000-1111"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-secret-0000-1111"),
    ]);
    assert_eq!(
        text,
        "LANGFUSE_PUBLIC_KEY holds a secret key (sk-lf-…1111): set it to the project's public \
         key (pk-lf-...), and never share the secret key"
    );
    assert!(!text.contains("secret-0000"));
}

#[test]
fn a_public_key_in_both_slots_is_named() {
    assert_eq!(
        error_of(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-public-2222"),
            ("LANGFUSE_SECRET_KEY", "pk-lf-public-2222"),
        ]),
        "LANGFUSE_SECRET_KEY holds a public key (\"pk-lf-public-2222\"): set it to the secret key \
         (sk-lf-...) of the same project as LANGFUSE_PUBLIC_KEY"
    );
}

#[test]
fn a_base_url_without_scheme_is_refused() {
    assert_eq!(
        error_of(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
            ("LANGFUSE_BASE_URL", "us.cloud.langfuse.com"),
        ]),
        "LANGFUSE_BASE_URL=\"us.cloud.langfuse.com\" is not valid: it must start with https:// \
         or http://, for example https://us.cloud.langfuse.com"
    );
}

#[test]
fn the_older_host_variable_is_named_when_it_is_used() {
    assert_eq!(
        error_of(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
            ("LANGFUSE_HOST", "localhost:3000"),
        ]),
        "LANGFUSE_HOST=\"localhost:3000\" is not valid: it must start with https:// or http://, \
         for example https://localhost:3000"
    );
}

#[test]
fn out_of_range_and_non_numeric_values_name_the_variable() {
    assert_eq!(
        error_of(&[("LANGFUSE_SAMPLE_RATE", "1.5")]),
        "LANGFUSE_SAMPLE_RATE=\"1.5\" is not valid: expected a number from 0 to 1, the fraction \
         of traces to keep (1 keeps all)"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_SAMPLE_RATE", "half")]),
        "LANGFUSE_SAMPLE_RATE=\"half\" is not valid: expected a number from 0 to 1, the fraction \
         of traces to keep (1 keeps all)"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_FLUSH_AT", "lots")]),
        "LANGFUSE_FLUSH_AT=\"lots\" is not valid: expected a whole number of spans from 1 to \
         100000, such as 512"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_FLUSH_INTERVAL", "5s")]),
        format!("LANGFUSE_FLUSH_INTERVAL=\"5s\" is not valid: {FLUSH_INTERVAL_EXPECTED}")
    );
    assert_eq!(
        error_of(&[("LANGFUSE_TIMEOUT", "-1")]),
        format!("LANGFUSE_TIMEOUT=\"-1\" is not valid: {TIMEOUT_EXPECTED}")
    );
    assert_eq!(
        error_of(&[("LANGFUSE_MAX_QUEUE", "0")]),
        "LANGFUSE_MAX_QUEUE=\"0\" is not valid: expected a whole number of spans from 1 to \
         10000000, such as 8192"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_MAX_QUEUE", "10000001")]),
        "LANGFUSE_MAX_QUEUE=\"10000001\" is not valid: expected a whole number of spans from 1 to \
         10000000, such as 8192"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_MAX_QUEUE", "1e12")]),
        "LANGFUSE_MAX_QUEUE=\"1e12\" is not valid: expected a whole number of spans from 1 to \
         10000000, such as 8192"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_MAX_QUEUE", "lots")]),
        "LANGFUSE_MAX_QUEUE=\"lots\" is not valid: expected a whole number of spans from 1 to \
         10000000, such as 8192"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_DEBUG", "maybe")]),
        "LANGFUSE_DEBUG=\"maybe\" is not valid: expected true or false"
    );
    assert_eq!(
        error_of(&[("LANGFUSE_SHUTDOWN_TIMEOUT", "soon")]),
        format!("LANGFUSE_SHUTDOWN_TIMEOUT=\"soon\" is not valid: {SHUTDOWN_TIMEOUT_EXPECTED}")
    );
}

#[test]
fn a_builder_value_replaces_a_bad_environment_value() {
    let guard = Config::from_vars([("LANGFUSE_SAMPLE_RATE", "half")])
        .sample_rate(0.5)
        .enabled(false)
        .init()
        .expect("the builder's sample rate wins over the unreadable variable");
    assert!(!guard.is_enabled());
}

#[test]
fn a_builder_sample_rate_out_of_range_is_refused() {
    assert_eq!(
        Config::default()
            .sample_rate(-0.1)
            .init()
            .unwrap_err()
            .to_string(),
        "LANGFUSE_SAMPLE_RATE=\"-0.1\" is not valid: expected a number from 0 to 1, the fraction \
         of traces to keep (1 keeps all)"
    );
}

#[test]
fn a_builder_queue_above_the_limit_is_refused() {
    assert_eq!(
        Config::default()
            .max_queue(20_000_000)
            .init()
            .unwrap_err()
            .to_string(),
        "LANGFUSE_MAX_QUEUE=\"20000000\" is not valid: expected a whole number of spans from 1 to \
         10000000, such as 8192"
    );
    assert_eq!(observe_runtime::MAX_QUEUE_LIMIT, 10_000_000);
}

#[test]
fn an_environment_langfuse_would_rename_is_refused() {
    for bad in ["Production", "langfuse-prod", "prod env", &"x".repeat(41)] {
        assert_eq!(
            error_of(&[("LANGFUSE_TRACING_ENVIRONMENT", bad)]),
            format!(
                "LANGFUSE_TRACING_ENVIRONMENT={bad:?} is not valid: Langfuse would silently store \
                 it as \"default\": use at most 40 lowercase letters, digits, '-' and '_', not \
                 starting with \"langfuse\" (for example \"production\")"
            )
        );
    }
}

#[test]
fn otlp_headers_with_a_raw_space_are_explained() {
    let text = error_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Basic cGstbGYtMTpzay1sZi0x",
        ),
    ]);
    assert_eq!(
        text,
        "OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Basic …Zi0x\" is not valid: the value of \
         Authorization contains a raw space; values are percent-encoded, so write %20 for a space \
         (for example Authorization=Basic%20<base64>)"
    );
    assert!(
        !text.contains("cGstbGYtMTpzay1sZi0x"),
        "the credential is masked"
    );
}

#[test]
fn malformed_otlp_header_pairs_are_explained() {
    assert_eq!(
        error_of(&[("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ml,broken")]),
        "OTEL_EXPORTER_OTLP_HEADERS=\"broken\" is not valid: pair 2 has no '=': write \
         comma-separated key=value pairs, such as Authorization=Basic%20<base64>"
    );
    assert_eq!(
        error_of(&[("OTEL_EXPORTER_OTLP_HEADERS", "x-team=m%zz")]),
        "OTEL_EXPORTER_OTLP_HEADERS=\"x-team=…\" is not valid: the value of x-team has a \
         malformed percent-encoding (use %XX)"
    );
}

#[test]
fn several_problems_are_reported_together() {
    let text = error_of(&[
        ("LANGFUSE_SAMPLE_RATE", "2"),
        ("LANGFUSE_TRACING_ENVIRONMENT", "Prod"),
    ]);
    assert_eq!(
        text,
        "2 configuration problems:\n  - LANGFUSE_SAMPLE_RATE=\"2\" is not valid: expected a \
         number from 0 to 1, the fraction of traces to keep (1 keeps all)\n  - \
         LANGFUSE_TRACING_ENVIRONMENT=\"Prod\" is not valid: Langfuse would silently store it as \
         \"default\": use at most 40 lowercase letters, digits, '-' and '_', not starting with \
         \"langfuse\" (for example \"production\")"
    );
}

#[test]
fn debug_output_never_shows_the_secret_key() {
    let config = Config::from_vars([
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-public-1"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-very-secret-value-9876"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Basic%20c2VjcmV0LXRva2Vu",
        ),
    ]);
    let debug = format!("{config:?}");
    assert!(debug.contains("pk-lf-public-1"), "{debug}");
    assert!(debug.contains("sk-lf-…9876"), "{debug}");
    assert!(!debug.contains("very-secret"), "{debug}");
    assert!(!debug.contains("c2VjcmV0LXRva2Vu"), "{debug}");
}

#[test]
fn disabled_tracing_needs_no_credentials() {
    for vars in [
        [
            ("OTEL_SDK_DISABLED", "true"),
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
        ],
        [
            ("LANGFUSE_TRACING_ENABLED", "false"),
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
        ],
    ] {
        let error = Config::from_vars(vars).init().unwrap_err();
        // Half-set keys are still a mistake worth telling, even with tracing off.
        assert_eq!(
            error,
            ConfigError::MissingCredentials {
                missing: vec!["LANGFUSE_SECRET_KEY"]
            }
        );
    }
    let guard = Config::from_vars([("OTEL_SDK_DISABLED", "true")])
        .init()
        .unwrap();
    assert!(!guard.is_enabled());
    assert_eq!(observe_runtime::stats(), observe_runtime::Stats::default());
}

#[test]
fn durations_that_cannot_work_are_refused() {
    let cases = [
        ("LANGFUSE_TIMEOUT", TIMEOUT_EXPECTED),
        ("LANGFUSE_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT_EXPECTED),
        ("LANGFUSE_FLUSH_INTERVAL", FLUSH_INTERVAL_EXPECTED),
    ];
    for (variable, expected) in cases {
        for bad in ["0", "1e-12", "0.0005", "3601", "1e9", "NaN", "inf"] {
            assert_eq!(
                error_of(&[(variable, bad)]),
                format!("{variable}={bad:?} is not valid: {expected}")
            );
        }
    }
    // The bounds themselves are accepted.
    let guard = Config::from_vars([
        ("LANGFUSE_TIMEOUT", "0.001"),
        ("LANGFUSE_SHUTDOWN_TIMEOUT", "3600"),
        ("LANGFUSE_FLUSH_INTERVAL", "0.001"),
        ("LANGFUSE_TRACING_ENABLED", "false"),
    ])
    .init()
    .expect("1 ms and 1 hour are accepted");
    drop(guard);
}

#[test]
fn sizes_that_cannot_work_are_refused() {
    for (variable, bad, expected) in [
        ("LANGFUSE_FLUSH_AT", "0", FLUSH_AT_EXPECTED),
        ("LANGFUSE_FLUSH_AT", "100001", FLUSH_AT_EXPECTED),
        ("LANGFUSE_MAX_FIELD_SIZE", "0", FIELD_SIZE_EXPECTED),
        ("LANGFUSE_MAX_FIELD_SIZE", "255", FIELD_SIZE_EXPECTED),
        ("LANGFUSE_MAX_FIELD_SIZE", "3000001", FIELD_SIZE_EXPECTED),
        ("LANGFUSE_MAX_FIELD_SIZE", "1e6", FIELD_SIZE_EXPECTED),
    ] {
        assert_eq!(
            error_of(&[(variable, bad)]),
            format!("{variable}={bad:?} is not valid: {expected}")
        );
    }
}

#[test]
fn builder_values_that_cannot_work_are_refused_in_seconds() {
    use std::time::Duration;
    let error = Config::default()
        .timeout(Duration::ZERO)
        .shutdown_timeout(Duration::from_secs(7200))
        .flush_interval(Duration::from_nanos(1))
        .flush_at(0)
        .max_field_bytes(10)
        .init()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "5 configuration problems:\n  \
             - LANGFUSE_FLUSH_AT=\"0\" is not valid: {FLUSH_AT_EXPECTED}\n  \
             - LANGFUSE_MAX_FIELD_SIZE=\"10\" is not valid: {FIELD_SIZE_EXPECTED}\n  \
             - LANGFUSE_FLUSH_INTERVAL=\"0.000000001\" is not valid: {FLUSH_INTERVAL_EXPECTED}\n  \
             - LANGFUSE_TIMEOUT=\"0\" is not valid: {TIMEOUT_EXPECTED}\n  \
             - LANGFUSE_SHUTDOWN_TIMEOUT=\"7200\" is not valid: {SHUTDOWN_TIMEOUT_EXPECTED}"
        )
    );
}

#[test]
fn a_base_url_with_a_query_or_fragment_is_refused() {
    for (url, without) in [
        (
            "https://langfuse.example.com/?region=eu",
            "https://langfuse.example.com",
        ),
        (
            "https://langfuse.example.com/lf#top",
            "https://langfuse.example.com/lf",
        ),
    ] {
        assert_eq!(
            error_of(&[
                ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
                ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
                ("LANGFUSE_BASE_URL", url),
            ]),
            format!(
                "LANGFUSE_BASE_URL={url:?} is not valid: a query (?...) or fragment (#...) cannot \
                 be part of it: paths are appended to it, so the request would go to the wrong \
                 address; remove it, for example {without}"
            )
        );
    }
}

#[test]
fn a_base_url_with_credentials_is_refused_without_showing_them() {
    let text = error_of(&[
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
        (
            "LANGFUSE_BASE_URL",
            "http://admin:hunter2@langfuse.internal:3000/",
        ),
    ]);
    assert_eq!(
        text,
        "LANGFUSE_BASE_URL=\"http://***@langfuse.internal:3000\" is not valid: it holds \
         credentials (user:password@), which would be logged and sent in the clear; remove them \
         (Langfuse takes the keys from LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY), for example \
         http://langfuse.internal:3000"
    );
    let text = error_of(&[(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "https://bot:p/ss@collector.example.com/v1/traces",
    )]);
    assert_eq!(
        text,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=\"https://***@collector.example.com/v1/traces\" is \
         not valid: it holds credentials (user:password@), which would be logged and sent in the \
         clear; remove them (give the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS \
         (Authorization=Basic%20<base64>)), for example https://collector.example.com/v1/traces"
    );
    // Without a scheme, the credentials are masked too.
    assert_eq!(
        error_of(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
            ("LANGFUSE_HOST", "admin:hunter2@localhost:3000"),
        ]),
        "LANGFUSE_HOST=\"***@localhost:3000\" is not valid: it must start with https:// or \
         http://, for example https://localhost:3000"
    );
}

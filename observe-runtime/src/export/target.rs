//! Where the OTLP exporter sends: the [`Target`] (endpoint, base URL, headers, Langfuse keys), the
//! Langfuse Cloud regions and the hint that names them after a 401, and the small URL and secret
//! helpers these need. Configuration builds a `Target` and the transport reads it; this module
//! imports nothing from the crate, and never from config.

use std::fmt;

/// The Langfuse Cloud regions: base URL and name. Keys belong to exactly one of them.
pub(crate) const CLOUD_REGIONS: [(&str, &str); 4] = [
    ("https://cloud.langfuse.com", "EU"),
    ("https://us.cloud.langfuse.com", "US"),
    ("https://jp.cloud.langfuse.com", "JP"),
    ("https://hipaa.cloud.langfuse.com", "HIPAA"),
];

/// Names the region of a Langfuse Cloud base URL and the other regions to try after a 401.
pub(crate) fn region_hint(base_url: &str) -> Option<String> {
    let (_, region) = CLOUD_REGIONS.iter().find(|(url, _)| *url == base_url)?;
    let others: Vec<String> = CLOUD_REGIONS
        .iter()
        .filter(|(url, _)| *url != base_url)
        .map(|(url, name)| format!("{url} ({name})"))
        .collect();
    Some(format!(
        "Langfuse Cloud keys belong to one region and this is the {region} region; if the project \
         lives in another, set LANGFUSE_BASE_URL to {}",
        others.join(", ")
    ))
}

/// Where the OTLP exporter sends.
#[derive(Clone)]
pub(crate) struct Target {
    /// The full traces URL.
    pub(crate) endpoint: String,
    /// The base URL, for messages and the auth check.
    pub(crate) base_url: String,
    /// Extra headers (generic collectors).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) langfuse: Option<LangfuseKeys>,
}

#[derive(Clone)]
pub(crate) struct LangfuseKeys {
    pub(crate) public_key: String,
    pub(crate) secret_key: String,
}

impl fmt::Debug for Target {
    /// Header values are masked: they often hold a collector's credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), mask_secret(value)))
            .collect();
        f.debug_struct("Target")
            .field("endpoint", &self.endpoint)
            .field("base_url", &self.base_url)
            .field("headers", &headers)
            .field("langfuse", &self.langfuse)
            .finish()
    }
}

impl fmt::Debug for LangfuseKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LangfuseKeys")
            .field("public_key", &self.public_key)
            .field("secret_key", &mask_secret(&self.secret_key))
            .finish()
    }
}

fn host_of(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

pub(crate) fn is_loopback(url: &str) -> bool {
    let host = host_of(url);
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Shows the first 6 and last 4 characters of a secret (`sk-lf-…cdef`), or nothing of a short one.
pub(crate) fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 12 {
        return "…".to_string();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// A URL as it may be shown: anything up to the last `@` after the scheme (a `user:password@`
/// written into it) becomes `***`, so `http://user:secret@host` shows as `http://***@host`. Masks
/// too much rather than too little: a password may hold `/`, `?` or `#`.
pub(crate) fn mask_url_credentials(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(index) => url.split_at(index + 3),
        None => ("", url),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
    }
}

//! The prompt cache: one entry per name and label or per name and version (two maps, so no
//! label, `latest` included, can collide with a version), each with its expiry. A hit is a read
//! lock, two hash lookups and a reference count; a stale entry is handed out at once and claims
//! the one refresh of its key; the refresh's outcome replaces, keeps or evicts the entry it
//! started from, never a newer one. No lock is held across a request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::Prompt;

/// After a failed refresh, the stale entry is served this long (or its TTL, if shorter) before
/// the next refresh is tried.
pub(crate) const RETRY_AFTER_FAILED_REFRESH: Duration = Duration::from_secs(10);

/// Which version of a prompt: by label or by number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Selector {
    Label(String),
    Version(u32),
}

impl Selector {
    /// The selector as a key to look up, without allocating.
    pub(crate) fn as_key(&self) -> Key<'_> {
        match self {
            Self::Label(label) => Key::Label(label),
            Self::Version(version) => Key::Version(*version),
        }
    }

    /// `label "production"` or `version 3`, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Label(label) => format!("label {label:?}"),
            Self::Version(version) => format!("version {version}"),
        }
    }
}

/// A [`Selector`] borrowed, for lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    Label(&'a str),
    Version(u32),
}

/// A cached prompt.
pub(crate) struct Slot {
    prompt: Prompt,
    expires: Instant,
    ttl: Duration,
    /// A refresh of this entry is in flight.
    refreshing: AtomicBool,
    /// The last refresh failed (and was reported).
    failing: bool,
}

impl Slot {
    fn new(prompt: Prompt, ttl: Duration, failing: bool) -> Arc<Slot> {
        Arc::new(Slot {
            prompt,
            expires: Instant::now() + ttl,
            ttl,
            refreshing: AtomicBool::new(false),
            failing,
        })
    }
}

#[derive(Default)]
struct Versions {
    labels: HashMap<String, Arc<Slot>>,
    numbers: HashMap<u32, Arc<Slot>>,
}

impl Versions {
    fn get(&self, key: Key<'_>) -> Option<&Arc<Slot>> {
        match key {
            Key::Label(label) => self.labels.get(label),
            Key::Version(version) => self.numbers.get(&version),
        }
    }

    fn set(&mut self, selector: &Selector, slot: Arc<Slot>) {
        match selector {
            Selector::Label(label) => {
                self.labels.insert(label.clone(), slot);
            }
            Selector::Version(version) => {
                self.numbers.insert(*version, slot);
            }
        }
    }

    fn remove(&mut self, selector: &Selector) {
        match selector {
            Selector::Label(label) => {
                self.labels.remove(label.as_str());
            }
            Selector::Version(version) => {
                self.numbers.remove(version);
            }
        }
    }
}

/// What the cache holds for a key.
pub(crate) enum Lookup {
    /// Within its TTL.
    Fresh(Prompt),
    /// Past its TTL; a refresh is already in flight (or waits after a failure).
    Stale(Prompt),
    /// Past its TTL, and this caller claimed the refresh: it must start it and hand the slot back
    /// to [`PromptCache::refreshed`].
    Refresh(Prompt, Arc<Slot>),
    /// Nothing cached.
    Miss,
}

/// How a refresh ended.
pub(crate) enum Refreshed {
    /// A new (or the same) version.
    Fetched(Prompt),
    /// 404: the label was moved away or the prompt deleted.
    NotFound,
    /// No answer, or another error: the stale prompt stays.
    Failed,
}

/// What the refresher must say about its outcome.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// Nothing new to say.
    Nothing,
    /// The first failure since the entry was last fetched: say it once.
    FirstFailure,
    /// The prompt answers again after failures.
    Recovered,
}

/// Prompts by name, then by label or version.
#[derive(Default)]
pub(crate) struct PromptCache {
    names: RwLock<HashMap<String, Versions>>,
}

impl PromptCache {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Versions>> {
        crate::sync::read(&self.names)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Versions>> {
        crate::sync::write(&self.names)
    }

    /// The cached prompt for `name` and `selector`, and whether this caller must refresh it.
    #[inline]
    pub(crate) fn get(&self, name: &str, key: Key<'_>) -> Lookup {
        let names = self.read();
        let Some(slot) = names.get(name).and_then(|versions| versions.get(key)) else {
            return Lookup::Miss;
        };
        if Instant::now() < slot.expires {
            return Lookup::Fresh(slot.prompt.clone());
        }
        let claimed = slot
            .refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if claimed {
            Lookup::Refresh(slot.prompt.clone(), slot.clone())
        } else {
            Lookup::Stale(slot.prompt.clone())
        }
    }

    /// Keeps a freshly fetched prompt for `ttl`.
    pub(crate) fn put(&self, name: &str, selector: &Selector, prompt: Prompt, ttl: Duration) {
        let slot = Slot::new(prompt, ttl, false);
        self.write()
            .entry(name.to_string())
            .or_default()
            .set(selector, slot);
    }

    /// Applies the outcome of the refresh claimed on `started`, unless the entry was replaced or
    /// removed meanwhile (a newer fetch, `create_prompt`, `set_prompt_labels`): then the outcome
    /// is stale itself and dropped.
    pub(crate) fn refreshed(
        &self,
        name: &str,
        selector: &Selector,
        started: &Arc<Slot>,
        outcome: Refreshed,
    ) -> Report {
        let mut names = self.write();
        let Some(versions) = names.get_mut(name) else {
            return Report::Nothing;
        };
        if !versions
            .get(selector.as_key())
            .is_some_and(|slot| Arc::ptr_eq(slot, started))
        {
            return Report::Nothing;
        }
        match outcome {
            Refreshed::Fetched(prompt) => {
                versions.set(selector, Slot::new(prompt, started.ttl, false));
                if started.failing {
                    Report::Recovered
                } else {
                    Report::Nothing
                }
            }
            Refreshed::NotFound => {
                versions.remove(selector);
                if versions.labels.is_empty() && versions.numbers.is_empty() {
                    names.remove(name);
                }
                Report::Nothing
            }
            Refreshed::Failed => {
                let wait = started.ttl.min(RETRY_AFTER_FAILED_REFRESH);
                versions.set(selector, Slot::new(started.prompt.clone(), wait, true));
                if started.failing {
                    Report::Nothing
                } else {
                    Report::FirstFailure
                }
            }
        }
    }

    /// Forgets every entry of `name` (a version was created or labels moved).
    pub(crate) fn invalidate(&self, name: &str) {
        self.write().remove(name);
    }

    /// Forgets everything (a new client, perhaps another project).
    pub(crate) fn clear(&self) {
        self.write().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::{Body, PromptData};
    use super::*;

    fn prompt(version: u32) -> Prompt {
        Prompt::new(PromptData {
            name: "p".into(),
            version,
            body: Body::Text("t".into()),
            config: serde_json::Value::Null,
            labels: vec![],
            tags: vec![],
            commit_message: None,
            fallback: false,
        })
    }

    #[test]
    fn labels_and_versions_never_collide() {
        let cache = PromptCache::default();
        let latest = Selector::Label("latest".into());
        cache.put("p", &latest, prompt(7), Duration::from_secs(60));
        cache.put(
            "p",
            &Selector::Version(3),
            prompt(3),
            Duration::from_secs(60),
        );
        let version_of = |selector: &Selector| match cache.get("p", selector.as_key()) {
            Lookup::Fresh(p) => Some(p.version()),
            _ => None,
        };
        assert_eq!(version_of(&latest), Some(7));
        assert_eq!(version_of(&Selector::Version(3)), Some(3));
        assert_eq!(version_of(&Selector::Label("3".into())), None);
        assert_eq!(version_of(&Selector::Version(7)), None);
    }

    #[test]
    fn one_caller_claims_the_refresh_and_its_outcome_applies_once() {
        let cache = PromptCache::default();
        let key = Selector::Label("production".into());
        cache.put("p", &key, prompt(1), Duration::ZERO);
        let Lookup::Refresh(stale, slot) = cache.get("p", key.as_key()) else {
            panic!("the first stale read claims the refresh");
        };
        assert_eq!(stale.version(), 1);
        assert!(matches!(cache.get("p", key.as_key()), Lookup::Stale(_)));
        assert_eq!(
            cache.refreshed("p", &key, &slot, Refreshed::Failed),
            Report::FirstFailure
        );
        // The outcome of a refresh that no longer owns the entry is dropped.
        assert_eq!(
            cache.refreshed("p", &key, &slot, Refreshed::Fetched(prompt(9))),
            Report::Nothing
        );
        let Lookup::Refresh(_, slot) = cache.get("p", key.as_key()) else {
            panic!("a zero TTL retries at once after a failure");
        };
        assert_eq!(
            cache.refreshed("p", &key, &slot, Refreshed::Failed),
            Report::Nothing
        );
        let Lookup::Refresh(_, slot) = cache.get("p", key.as_key()) else {
            panic!("claimable again");
        };
        assert_eq!(
            cache.refreshed("p", &key, &slot, Refreshed::Fetched(prompt(2))),
            Report::Recovered
        );
        let Lookup::Refresh(_, slot) = cache.get("p", key.as_key()) else {
            panic!("claimable again");
        };
        assert_eq!(
            cache.refreshed("p", &key, &slot, Refreshed::NotFound),
            Report::Nothing
        );
        assert!(matches!(cache.get("p", key.as_key()), Lookup::Miss));
    }
}

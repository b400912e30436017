//! The exporter thread's control messages (flush, shutdown, credential check, each with a reply
//! and a deadline), and the [`Waiter`] a sink waits with between retries while they keep coming.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::auth::{AuthCheck, AuthError};

pub(crate) enum Control {
    Flush {
        deadline: Instant,
        reply: Sender<Result<(), String>>,
    },
    Shutdown {
        deadline: Instant,
        reply: Sender<Result<(), String>>,
    },
    AuthCheck {
        deadline: Instant,
        reply: Sender<Result<AuthCheck, AuthError>>,
    },
}

impl Control {
    pub(crate) fn deadline(&self) -> Instant {
        match self {
            Self::Flush { deadline, .. }
            | Self::Shutdown { deadline, .. }
            | Self::AuthCheck { deadline, .. } => *deadline,
        }
    }
}

/// Lets a sink wait (between retries) while control messages keep arriving: a flush or shutdown
/// that comes in tightens the deadline the sink works under.
pub(crate) struct Waiter {
    pub(crate) control: Receiver<Control>,
    /// Control messages taken in while waiting, handled once the sink is done.
    pub(crate) pending: VecDeque<Control>,
    pub(crate) deadline: Option<Instant>,
}

impl Waiter {
    /// Time left before the current deadline, if there is one.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    pub(crate) fn tighten(&mut self, deadline: Instant) {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Waits `duration`, taking in control messages; `false` when a deadline comes first.
    pub(crate) fn sleep(&mut self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        loop {
            if self.deadline.is_some_and(|d| d < until) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            match self.control.recv_timeout(until - now) {
                Ok(message) => {
                    if !matches!(message, Control::AuthCheck { .. }) {
                        self.tighten(message.deadline());
                    }
                    self.pending.push_back(message);
                }
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    return true;
                }
            }
        }
    }
}

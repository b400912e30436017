//! Observations still open when the process ends without unwinding: at `std::process::exit` (and
//! any other `exit`) and at a panic under `panic = "abort"`. Those open on the ending thread are
//! ended where they stand and handed to the pipeline, so that what finished under them does not
//! arrive as orphans in a trace without a root.
//!
//! Only the ending thread's stack is reachable: an observation open on another thread, or held
//! by a future or stream that is not being polled on this thread now, is not (the stack is
//! thread-local, and the registry holds only finished records). At `exit`, glibc destroys the
//! exiting thread's thread-locals before the exit hooks run; the stack then keeps its open
//! observations for the hook (see [`stack::take_all`]).

use super::span;
use super::stack;
use crate::record::Level;

/// How the process is ending.
pub(crate) enum Ending {
    /// `exit` was called (by `std::process::exit` or after `main` returned).
    Exit,
    /// A panic with this message, and the panic strategy is `abort`.
    Abort(String),
}

impl Ending {
    fn level(&self) -> Level {
        match self {
            Ending::Exit => Level::Warning,
            Ending::Abort(_) => Level::Error,
        }
    }

    fn message(&self) -> String {
        match self {
            Ending::Exit => "the process exited before this observation ended".to_string(),
            Ending::Abort(panic) => format!(
                "{panic}; the process aborted (panic = \"abort\") before this observation ended"
            ),
        }
    }
}

/// Ends every observation open on this thread, innermost first, with the level and message of
/// `ending` (an error already recorded on one keeps its level, and its message comes first).
/// Returns how many were recorded ones.
pub(crate) fn end_open_observations(ending: &Ending) -> usize {
    let (level, message) = (ending.level(), ending.message());
    let mut ended = 0;
    for mut core in stack::take_all() {
        if let Some(data) = core.data.as_mut() {
            if data.level() < level {
                data.set_level(level);
            }
            let status = data.status_message_mut();
            *status = Some(match status.take() {
                Some(own) => format!("{own}; {message}"),
                None => message.clone(),
            });
            ended += 1;
        }
        span::close(core);
    }
    ended
}

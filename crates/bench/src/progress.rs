//! Progress lines on stderr, stamped with the seconds since the start.

use std::fmt::Display;
use std::time::Instant;

/// Where progress lines go.
pub struct Progress {
    started: Instant,
}

impl Progress {
    /// Starts the clock.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    /// Seconds since the start.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Prints `message` on stderr.
    pub fn line(&self, message: impl Display) {
        eprintln!("[{:6.1}s] {message}", self.elapsed_s());
    }
}

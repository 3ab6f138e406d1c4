//! Progress bars on standard error, shown only on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use backup_core::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A byte-count progress bar, or nothing when quiet or not on a terminal.
#[derive(Debug)]
pub(crate) struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub(crate) fn new(quiet: bool, message: &'static str) -> Arc<Self> {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner().with_message(message);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} {binary_bytes} ({binary_bytes_per_sec}) {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Arc::new(Bar { bar })
    }

    pub(crate) fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Switches to a bar with an ETA once the total is known.
    pub(crate) fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} \
                     ({binary_bytes_per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn plaintext(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}

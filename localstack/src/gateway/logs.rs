//! Where function output and the gateway's own messages go: each line prefixed with the name
//! of the function it came from.

use std::sync::{Arc, Mutex};

type Write = dyn Fn(&str, &str) + Send + Sync;
/// Lines kept by [`LogSink::capture`]: (source, line).
pub type Captured = Arc<Mutex<Vec<(String, String)>>>;

#[derive(Clone)]
pub struct LogSink(Arc<Write>);

impl LogSink {
    /// Lines go to `write(source, line)` (e.g. [`super::metrics::Metrics::tee`]).
    pub fn new(write: impl Fn(&str, &str) + Send + Sync + 'static) -> LogSink {
        LogSink(Arc::new(write))
    }

    /// `[Name] line` on standard error.
    pub fn stderr() -> LogSink {
        LogSink(Arc::new(|source, line| eprintln!("[{source}] {line}")))
    }

    /// Keeps every line, for tests; also echoes to standard error.
    pub fn capture() -> (LogSink, Captured) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        let sink = LogSink(Arc::new(move |source: &str, line: &str| {
            eprintln!("[{source}] {line}");
            if let Ok(mut v) = kept.lock() {
                v.push((source.to_string(), line.to_string()));
            }
        }));
        (sink, lines)
    }

    pub fn line(&self, source: &str, line: &str) {
        (self.0)(source, line)
    }
}

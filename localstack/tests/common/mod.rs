//! What the gateway's integration tests (`sqs`, `streams`, `websocket`) share: a directory of
//! function binaries and a gateway configuration of a test's own, the lines the gateway logged
//! for a function, and waiting for something to happen.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use localstack::gateway::logs::Captured;
use localstack::gateway::{GatewayConfig, LogSink};
use localstack::template::Template;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What [`setup`] makes for a test: the suffix of its resources' names, the gateway's captured
/// lines, and its binaries' directory (removed on drop).
pub struct Local {
    /// `-{kind}-{ULID}`: appended to every resource's logical id (the gateway's
    /// `name_suffix`).
    pub suffix: String,
    pub logs: Captured,
    /// How long [`Local::until_logged`] waits.
    pub deadline: Duration,
    bin_dir: PathBuf,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.bin_dir);
    }
}

/// A new suffix `-{kind}-{ULID}`, a directory in which each of `binaries` (the name a function's
/// `Metadata.BuildProperties.Binary` gives, the executable) is a link, and the configuration of
/// a gateway for `template` that listens on a free port, names resources with that suffix, runs
/// the functions from that directory and captures what it logs.
pub fn setup(
    kind: &str,
    template: Template,
    binaries: &[(&str, PathBuf)],
    deadline: Duration,
) -> (Local, GatewayConfig) {
    let suffix = format!("-{kind}-{}", ulid::Ulid::new());
    let bin_dir = std::env::temp_dir().join(format!("localstack{suffix}"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    for (name, executable) in binaries {
        std::os::unix::fs::symlink(executable, bin_dir.join(name)).unwrap();
    }
    let mut config = GatewayConfig::from_env(template).unwrap();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.name_suffix = suffix.clone();
    config.bin_dir = bin_dir.clone();
    let (logs, lines) = LogSink::capture();
    config.logs = logs;
    let local = Local {
        suffix,
        logs: lines,
        deadline,
        bin_dir,
    };
    (local, config)
}

impl Local {
    /// The gateway's lines about a function (by its logical id), in order.
    pub fn lines(&self, function: &str) -> Vec<String> {
        let source = format!("{function}{}", self.suffix);
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == source)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Waits until `find` finds something in the function's lines, and returns it.
    pub async fn until_logged<T>(
        &self,
        function: &str,
        what: &str,
        find: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        wait_for(
            self.deadline,
            || find(&self.lines(function)),
            || {
                format!(
                    "timed out waiting for {what}; {function} logged:\n{}",
                    self.lines(function).join("\n")
                )
            },
        )
        .await
    }
}

/// Tries `attempt` every 20 ms until it gives a value; panics with `timed_out()` once `deadline`
/// has passed without one.
pub async fn wait_for<T>(
    deadline: Duration,
    mut attempt: impl FnMut() -> Option<T>,
    timed_out: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = attempt() {
            return found;
        }
        assert!(start.elapsed() < deadline, "{}", timed_out());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The body of a message received from the queue at `url` (long polls of 1 s); panics with
/// `missing` when none has come within `deadline`.
pub async fn receive_one(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    deadline: Duration,
    missing: &str,
) -> Option<String> {
    let start = Instant::now();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = got.messages.and_then(|m| m.into_iter().next()) {
            return m.body;
        }
        assert!(start.elapsed() < deadline, "{missing}");
    }
}

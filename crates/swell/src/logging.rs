//! Structured logs: `SWELL_LOG` is the filter (default `info`), `SWELL_LOG_FORMAT=json`
//! switches to JSON lines.

use tracing_subscriber::EnvFilter;

/// Installs the process-wide subscriber (logs go to stderr).
pub fn init() {
    let filter = EnvFilter::try_from_env("SWELL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("SWELL_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

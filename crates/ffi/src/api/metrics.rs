//! A metrics snapshot.

use std::ffi::{c_char, c_int};

use crate::{Failure, SHIPSHAPE_OK, arg, boundary, give, need_out, runtime};

/// Metrics as Prometheus text format 0.0.4.
pub const SHIPSHAPE_FORMAT_PROMETHEUS: c_int = 0;
/// Metrics as OpenMetrics 1.0 text.
pub const SHIPSHAPE_FORMAT_OPENMETRICS: c_int = 1;
/// Metrics as JSON (values in human units, per-collector status).
pub const SHIPSHAPE_FORMAT_JSON: c_int = 2;

/// Collects one metrics snapshot with the collectors `config_toml`
/// configures (metricsd's config format; null: the host collector alone)
/// and renders it as `format` ([`SHIPSHAPE_FORMAT_PROMETHEUS`],
/// [`SHIPSHAPE_FORMAT_OPENMETRICS`] or [`SHIPSHAPE_FORMAT_JSON`]) into
/// `*out`.
///
/// # Safety
/// `config_toml` is null or NUL-terminated; `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_metrics_snapshot(
    config_toml: *const c_char,
    format: c_int,
    out: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        let config = if config_toml.is_null() {
            metrics_core::Config::default()
        } else {
            // SAFETY: the caller's promise, passed on.
            metrics_core::Config::parse(unsafe { arg(config_toml, "config_toml") }?)?
        };
        need_out(out)?;
        let render_as = match format {
            SHIPSHAPE_FORMAT_PROMETHEUS => Some(metrics_core::Format::Prometheus),
            SHIPSHAPE_FORMAT_OPENMETRICS => Some(metrics_core::Format::OpenMetrics),
            SHIPSHAPE_FORMAT_JSON => None,
            other => {
                return Err(Failure(format!(
                    "format {other}: 0 Prometheus, 1 OpenMetrics, 2 JSON"
                )));
            }
        };
        let runtime = runtime()?;
        let scraper = {
            let _entered = runtime.enter();
            config.scraper()?
        };
        let (snapshot, statuses) = runtime.block_on(scraper.scrape());
        let text = match render_as {
            Some(f) => metrics_core::render(&snapshot, f),
            None => metrics_core::to_json(&snapshot, &statuses).to_string(),
        };
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { give(out, text) }?;
        Ok(SHIPSHAPE_OK)
    })
}

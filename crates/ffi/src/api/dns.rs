//! DNS checks.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use serde::Deserialize;

use crate::{Failure, SHIPSHAPE_OK, arg, boundary, give, need_out, options, runtime};

/// Options of a DNS check (JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsOpts {
    /// Resolvers, `IP:PORT` (default: /etc/resolv.conf).
    #[serde(default)]
    resolvers: Vec<std::net::SocketAddr>,
    /// Ask the zone's authoritative servers (found through `resolvers`).
    #[serde(default)]
    authoritative: bool,
    /// Their port (default 53).
    port: Option<u16>,
    /// Values every server must answer.
    expect: Option<Vec<String>>,
    /// Per-server timeout as a duration, e.g. `"2s"`, `"1500ms"` (default
    /// 2s).
    #[serde(default, with = "settings::duration::serde::option")]
    timeout: Option<Duration>,
    /// The same in milliseconds (older spelling; give one of the two).
    timeout_ms: Option<u64>,
}

/// Asks every server at once for `name` and `type` (`A`, `AAAA`, `CNAME`,
/// `TXT`, `MX`, `NS`, `CAA`, `SRV`) and writes the report to
/// `*report_json` (each server's status: NOERROR, NXDOMAIN, NODATA,
/// SERVFAIL, REFUSED, TIMEOUT, its values, whether it agrees).
/// `options_json`: `{"resolvers": ["IP:PORT"], "authoritative": false,
/// "port": 53, "expect": ["192.0.2.1"], "timeout": "2s"}`.
///
/// Returns 0 when every server agrees, 1 when one does not (the report
/// says which and why), -1 when the check could not run.
///
/// # Safety
/// Strings are null or NUL-terminated; `report_json` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_dns_check(
    name: *const c_char,
    rtype: *const c_char,
    options_json: *const c_char,
    report_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promises, passed on.
        let (name, rtype, opts) = unsafe {
            (
                arg(name, "name")?,
                arg(rtype, "type")?,
                options::<DnsOpts>(options_json, "options")?,
            )
        };
        need_out(report_json)?;
        let rtype: dns::RecordType = rtype.parse()?;
        let expect = opts
            .expect
            .map(|values| {
                values
                    .iter()
                    .map(|v| dns::record::canonical_value(rtype, v, None))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .transpose()?;
        let servers = if opts.authoritative {
            dns::check::Servers::Authoritative {
                via: opts.resolvers,
                port: opts.port.unwrap_or(53),
            }
        } else if opts.resolvers.is_empty() {
            dns::check::Servers::System
        } else {
            dns::check::Servers::Resolvers(opts.resolvers)
        };
        let check = dns::check::Check {
            name: name.to_owned(),
            rtype,
            expect,
            timeout: match (opts.timeout, opts.timeout_ms) {
                (Some(_), Some(_)) => {
                    return Err(Failure(
                        "options: give timeout or timeout_ms, not both".into(),
                    ));
                }
                (Some(t), None) => t,
                (None, ms) => Duration::from_millis(ms.unwrap_or(2000)),
            },
        };
        let report = runtime()?.block_on(dns::check::check(&check, &servers))?;
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { give(report_json, serde_json::to_string(&report)?) }?;
        Ok(if report.ok { SHIPSHAPE_OK } else { 1 })
    })
}

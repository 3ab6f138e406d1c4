//! Checks: one question to many servers at once, compared with what is
//! expected, and a report of which servers agree.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::query::{Outcome, ask};
use crate::record::{RecordType, absolute};
use crate::wire::Status;

/// Which servers to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Servers {
    /// The resolvers in `/etc/resolv.conf`.
    System,
    /// These resolvers (`IP:PORT`).
    Resolvers(Vec<SocketAddr>),
    /// The zone's authoritative servers: its NS records, looked up through
    /// `via` (the system resolvers when empty), each address asked
    /// directly on `port` (53 in the wild) without recursion.
    Authoritative {
        /// Resolvers to find the NS records and their addresses with.
        via: Vec<SocketAddr>,
        /// The port the authoritative servers listen on.
        port: u16,
    },
}

/// A question, and optionally the answer it should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Absolute name.
    pub name: String,
    /// Type.
    pub rtype: RecordType,
    /// Expected canonical values (as a set); `None`: any NOERROR answer.
    pub expect: Option<Vec<String>>,
    /// Per-query timeout; every server is asked at once, so a whole check
    /// takes about one timeout at most (plus the NS lookup for
    /// [`Servers::Authoritative`]).
    pub timeout: Duration,
}

/// One server's part of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerReport {
    /// What it answered.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The NS name it was found under ([`Servers::Authoritative`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<String>,
    /// Whether it answered NOERROR (or, for a delegation's NS records, a
    /// referral carrying them) with the expected values (any values when
    /// nothing is expected).
    pub agrees: bool,
}

/// Which servers agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Absolute name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub rtype: RecordType,
    /// What was expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Vec<String>>,
    /// Every server's answer, in the order they were given.
    pub servers: Vec<ServerReport>,
    /// Whether every server agrees (and there was at least one).
    pub ok: bool,
    /// Whether every server gave the same status and values, expected or
    /// not (propagation finished, whatever it converged to).
    pub consistent: bool,
    /// Wall time of the whole check.
    pub elapsed_ms: u64,
}

impl Report {
    /// One line per server, for people.
    pub fn lines(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| {
                let o = &s.outcome;
                let mark = if s.agrees { "ok  " } else { "FAIL" };
                let ns =
                    s.ns.as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                let detail = if o.answer.values.is_empty() {
                    o.error
                        .clone()
                        .or_else(|| o.answer.rcode.clone())
                        .unwrap_or_default()
                } else {
                    o.answer.values.join(", ")
                };
                format!(
                    "{mark} {}{ns}: {} {detail} [{} ms]",
                    o.server, o.answer.status, o.elapsed_ms
                )
            })
            .collect()
    }
}

/// The resolvers `/etc/resolv.conf` names (port 53).
///
/// # Errors
///
/// When `/etc/resolv.conf` cannot be read or names no resolver.
pub fn system_resolvers() -> Result<Vec<SocketAddr>, Error> {
    let text = std::fs::read("/etc/resolv.conf")
        .map_err(|e| Error::Invalid(format!("cannot read /etc/resolv.conf: {e}")))?;
    let conf = resolv_conf::Config::parse(&text)
        .map_err(|e| Error::Invalid(format!("cannot parse /etc/resolv.conf: {e}")))?;
    let servers: Vec<SocketAddr> = conf
        .nameservers
        .iter()
        .map(|ns| SocketAddr::new(IpAddr::from(ns), 53))
        .collect();
    if servers.is_empty() {
        return Err(Error::Invalid(
            "/etc/resolv.conf names no nameserver: pass --resolver IP:PORT".into(),
        ));
    }
    Ok(servers)
}

/// Runs a check against every server at once.
///
/// # Errors
///
/// When the check cannot run: no resolver, or the authoritative servers
/// cannot be found. A server that disagrees is in the report, not an
/// error.
pub async fn check(check: &Check, servers: &Servers) -> Result<Report, Error> {
    check_all(check, std::slice::from_ref(servers)).await
}

/// Runs a check against several groups of servers at once — a
/// propagation check: the zone's authoritative servers and the resolvers
/// users ask, in one report.
///
/// # Errors
///
/// As [`check`].
pub async fn check_all(check: &Check, groups: &[Servers]) -> Result<Report, Error> {
    let started = Instant::now();
    let name = absolute(&check.name)?;
    // (address, NS name, recursion desired)
    let mut targets: Vec<(SocketAddr, Option<String>, bool)> = Vec::new();
    for servers in groups {
        match servers {
            Servers::System => {
                targets.extend(system_resolvers()?.into_iter().map(|s| (s, None, true)))
            }
            Servers::Resolvers(list) => targets.extend(list.iter().map(|s| (*s, None, true))),
            Servers::Authoritative { via, port } => {
                let via = if via.is_empty() {
                    system_resolvers()?
                } else {
                    via.clone()
                };
                let found = authoritative_servers(&name, &via, *port, check.timeout).await?;
                targets.extend(found.into_iter().map(|(ns, addr)| (addr, Some(ns), false)));
            }
        }
    }
    let asked = futures::future::join_all(
        targets
            .iter()
            .map(|(addr, _, recurse)| ask(*addr, &name, check.rtype, *recurse, check.timeout)),
    )
    .await;
    let expect = check.expect.as_ref().map(|values| {
        let mut v = values.clone();
        v.sort();
        v.dedup();
        v
    });
    let servers: Vec<ServerReport> = asked
        .into_iter()
        .zip(targets)
        .map(|(outcome, (_, ns, _))| {
            // A referral agrees when it carries the values (a
            // delegation's NS records, asked of the parent's servers).
            let answered = outcome.answer.status == Status::NoError
                || (outcome.answer.status == Status::Referral && !outcome.answer.values.is_empty());
            let agrees = answered && expect.as_ref().is_none_or(|e| *e == outcome.answer.values);
            ServerReport {
                outcome,
                ns,
                agrees,
            }
        })
        .collect();
    let consistent = servers.windows(2).all(|w| {
        w[0].outcome.answer.status == w[1].outcome.answer.status
            && w[0].outcome.answer.values == w[1].outcome.answer.values
    });
    Ok(Report {
        name,
        rtype: check.rtype,
        expect,
        ok: !servers.is_empty() && servers.iter().all(|s| s.agrees),
        consistent,
        servers,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// The zone's authoritative servers for `name`: the NS records of the
/// closest enclosing name that has them, each NS name's A and AAAA
/// addresses, all found through `via`; `(ns name, address:port)` pairs.
///
/// # Errors
///
/// When no enclosing name has NS records that resolve.
pub async fn authoritative_servers(
    name: &str,
    via: &[SocketAddr],
    port: u16,
    timeout: Duration,
) -> Result<Vec<(String, SocketAddr)>, Error> {
    let name = absolute(name)?;
    let mut candidate = name.as_str();
    let ns_names = loop {
        let outcome = first_answer(via, candidate, RecordType::NS, timeout).await;
        if outcome.answer.status == Status::NoError && !outcome.answer.aliases.is_empty() {
            // An alias: its own zone is elsewhere; keep walking up ours.
        } else if outcome.answer.status == Status::NoError {
            break outcome.answer.values;
        } else if matches!(
            outcome.answer.status,
            Status::Timeout | Status::Error | Status::Refused | Status::ServFail
        ) {
            return Err(Error::Invalid(format!(
                "cannot find the name servers of {name}: asking for NS {candidate} got {}{}",
                outcome.answer.status,
                outcome.error.map(|e| format!(" ({e})")).unwrap_or_default()
            )));
        }
        match candidate.split_once('.') {
            Some((_, parent)) if !parent.is_empty() => candidate = parent,
            _ => {
                return Err(Error::Invalid(format!(
                    "no NS records found for {name} or any name above it"
                )));
            }
        }
    };
    let lookups = ns_names.iter().flat_map(|ns| {
        [RecordType::A, RecordType::AAAA]
            .into_iter()
            .map(move |t| async move { (ns.clone(), first_answer(via, ns, t, timeout).await) })
    });
    let mut servers = Vec::new();
    for (ns, outcome) in futures::future::join_all(lookups).await {
        for value in outcome.answer.values {
            if let Ok(ip) = value.parse::<IpAddr>() {
                servers.push((ns.clone(), SocketAddr::new(ip, port)));
            }
        }
    }
    servers.sort();
    servers.dedup();
    if servers.is_empty() {
        return Err(Error::Invalid(format!(
            "the name servers of {name} ({}) have no addresses",
            ns_names.join(", ")
        )));
    }
    Ok(servers)
}

/// Asks the resolvers in turn until one answers (not `TIMEOUT`/`ERROR`).
async fn first_answer(
    via: &[SocketAddr],
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Outcome {
    let mut last = None;
    for server in via {
        let outcome = ask(*server, name, rtype, true, timeout).await;
        if !matches!(outcome.answer.status, Status::Timeout | Status::Error) {
            return outcome;
        }
        last = Some(outcome);
    }
    last.unwrap_or_else(|| Outcome {
        server: SocketAddr::from(([0, 0, 0, 0], 0)),
        answer: crate::wire::Answer::empty(Status::Error),
        elapsed_ms: 0,
        error: Some("no resolver to ask".into()),
    })
}

//! `dnsctl`: DNS that is checked — the arguments and what each command
//! does; `main.rs` only parses and runs them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dns::check::{Check, Report, Servers, check, check_all};
use dns::plan::{Plan, apply, plan, verify};
use dns::provider::ProviderConfig;
use dns::record::canonical_value;
use dns::records::RecordsFile;
use dns::{Error, RecordType};

/// Checks that names resolve as they should — on the system resolvers,
/// on resolvers you name, or on every authoritative server of the zone —
/// and keeps a zone's records as a records file declares them: planned,
/// applied through PowerDNS, RFC 2136 (TSIG) or Cloudflare, then
/// confirmed on the authoritative servers.
///
/// Provider credentials come from environment variables or files the
/// provider config names (PDNS_API_KEY, DNS_TSIG_SECRET,
/// CLOUDFLARE_API_TOKEN by default), never from the command line.
///
/// Durations are written 90s, 5min, 1h30m or 7d; logs go to standard
/// error (-v, -q, --log-format json, SHIPSHAPE_LOG).
///
/// Exit status: 0 success (check: every server agrees); 1 failure (apply:
/// the servers did not answer the new values in time); 2 usage error; 4 a
/// check's answer is no (a server disagrees, with the status named). With
/// --json a failure prints {"error": {"kind", "status", "message",
/// "hint"}} on standard output.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Logging.
    #[command(flatten)]
    pub log: cli::LogArgs,
    /// Output.
    #[command(flatten)]
    pub output: cli::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Asks every server at once and compares the answers.
    ///
    /// Example: dnsctl check www.example.com --type A --expect 192.0.2.10 --authoritative
    Check {
        #[command(flatten)]
        question: Question,
        /// Ask the zone's authoritative servers directly (its NS records'
        /// addresses), not resolvers.
        #[arg(long)]
        authoritative: bool,
        /// The port the authoritative servers listen on.
        #[arg(long, default_value_t = 53, requires = "authoritative")]
        port: u16,
    },
    /// Whether a change has reached everyone: the zone's authoritative
    /// servers and the resolvers (--resolver, or the system's) in one
    /// report; with --wait, asks again every --interval until all agree.
    ///
    /// Example: dnsctl propagation www.example.com --expect 192.0.2.10 --resolver 1.1.1.1:53 --wait 10m
    Propagation {
        #[command(flatten)]
        question: Question,
        /// The port the authoritative servers listen on.
        #[arg(long, default_value_t = 53)]
        port: u16,
        /// Keep asking until every server agrees, or this long has passed.
        #[arg(long, default_value = "0s", value_parser = cli::parse_duration)]
        wait: Duration,
        /// How often to ask again while waiting.
        #[arg(long, default_value = "2s", value_parser = cli::parse_duration)]
        interval: Duration,
    },
    /// Shows what apply would create, update and delete. Records the file
    /// does not manage are left alone.
    Plan {
        #[command(flatten)]
        files: Files,
    },
    /// Applies the plan, then asks the authoritative servers until they
    /// answer the new values (exit 1 if they do not in time).
    Apply {
        #[command(flatten)]
        files: Files,
        /// How long to wait for the authoritative servers to answer the new values.
        #[arg(long, default_value = "60s", value_parser = cli::parse_duration)]
        verify_timeout: Duration,
        /// Apply a plan that deletes more than the records file's
        /// max_delete_share of the zone, or overwrites record sets no
        /// marker says are ours.
        #[arg(long)]
        force: bool,
    },
}

/// What to ask, and how.
#[derive(Debug, clap::Args)]
struct Question {
    /// The name to look up (absolute; a trailing dot is optional).
    name: String,
    /// A, AAAA, CNAME, TXT, MX, NS, CAA or SRV.
    #[arg(long = "type", short = 't', default_value = "A", value_parser = parse_type)]
    rtype: RecordType,
    /// A value every server must answer (repeat for a set: all of them,
    /// and nothing else).
    #[arg(long)]
    expect: Vec<String>,
    /// A resolver to ask, IP:PORT (repeat; default: /etc/resolv.conf).
    /// For authoritative servers, the resolvers their NS records are
    /// looked up through.
    #[arg(long = "resolver", value_name = "IP:PORT")]
    resolvers: Vec<SocketAddr>,
    /// How long to wait for each server (all are asked at once).
    #[arg(long, default_value = "2s", value_parser = cli::parse_duration)]
    timeout: Duration,
}

impl Question {
    fn check(&self) -> Result<Check, Error> {
        let expect = if self.expect.is_empty() {
            None
        } else {
            Some(
                self.expect
                    .iter()
                    .map(|v| canonical_value(self.rtype, v, None))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(Check {
            name: self.name.clone(),
            rtype: self.rtype,
            expect,
            timeout: self.timeout,
        })
    }

    fn resolvers(&self) -> Servers {
        if self.resolvers.is_empty() {
            Servers::System
        } else {
            Servers::Resolvers(self.resolvers.clone())
        }
    }

    /// Prints the report; the exit code it means.
    fn print(&self, report: &Report, json: bool) -> anyhow::Result<ExitCode> {
        if json {
            cli::print_json(report)?;
        } else {
            let agree = report.servers.iter().filter(|s| s.agrees).count();
            let expected = report
                .expect
                .as_ref()
                .map(|e| format!(", expected {}", e.join(", ")))
                .unwrap_or_default();
            println!(
                "{} {}: {agree}/{} servers agree{expected} [{} ms]",
                report.name,
                report.rtype,
                report.servers.len(),
                report.elapsed_ms
            );
            for line in report.lines() {
                println!("  {line}");
            }
        }
        Ok(if report.ok {
            cli::exit::SUCCESS
        } else {
            cli::exit::check_failed()
        })
    }
}

#[derive(Debug, clap::Args)]
struct Files {
    /// The records file (TOML): zone, owner, and one `[[record]]` table per record set.
    #[arg(long)]
    records: PathBuf,
    /// The provider config (TOML): provider = "powerdns" | "rfc2136" | "cloudflare".
    #[arg(long)]
    provider: PathBuf,
}

impl Files {
    fn load(&self) -> Result<(RecordsFile, ProviderConfig), Error> {
        Ok((
            RecordsFile::load(&self.records)?,
            ProviderConfig::load(&self.provider)?,
        ))
    }
}

fn parse_type(s: &str) -> Result<RecordType, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn print_plan(plan: &Plan) {
    if plan.is_empty() {
        println!("no changes: {} matches the records file", plan.zone);
        return;
    }
    for change in plan.changes.iter().chain(&plan.markers) {
        println!("{}", change.line());
    }
    for reason in &plan.needs_force {
        println!("needs --force: {reason}");
    }
}

/// The flag that fixes an error, for the errors a flag can fix.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    match e.chain().find_map(|c| c.downcast_ref::<Error>())? {
        Error::NeedsForce(_) => Some("pass --force to apply it anyway".into()),
        _ => None,
    }
}

/// Runs the command; its exit status.
///
/// # Errors
///
/// When a check cannot run, a file cannot be read, or the provider fails.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.output.json;
    match cli.command {
        Command::Check {
            question,
            authoritative,
            port,
        } => {
            let servers = if authoritative {
                Servers::Authoritative {
                    via: question.resolvers.clone(),
                    port,
                }
            } else {
                question.resolvers()
            };
            let report = check(&question.check()?, &servers).await?;
            question.print(&report, json)
        }
        Command::Propagation {
            question,
            port,
            wait,
            interval,
        } => {
            let groups = [
                Servers::Authoritative {
                    via: question.resolvers.clone(),
                    port,
                },
                question.resolvers(),
            ];
            let check = question.check()?;
            let started = std::time::Instant::now();
            loop {
                let report = check_all(&check, &groups).await?;
                let elapsed = started.elapsed();
                if report.ok || elapsed >= wait {
                    return question.print(&report, json);
                }
                if !json {
                    let agree = report.servers.iter().filter(|s| s.agrees).count();
                    eprintln!(
                        "{agree}/{} servers agree after {}; asking again",
                        report.servers.len(),
                        cli::format_duration(elapsed)
                    );
                }
                tokio::time::sleep(interval.min(wait - elapsed)).await;
            }
        }
        Command::Plan { files } => {
            let (records, config) = files.load()?;
            let existing = config.provider.list(&records.zone).await?;
            let plan = plan(&records, &existing);
            if json {
                cli::print_json(&plan)?;
            } else {
                print_plan(&plan);
            }
            Ok(cli::exit::SUCCESS)
        }
        Command::Apply {
            files,
            verify_timeout,
            force,
        } => {
            let (records, config) = files.load()?;
            let existing = config.provider.list(&records.zone).await?;
            let plan = plan(&records, &existing);
            if plan.is_empty() {
                if json {
                    cli::print_json(&serde_json::json!({ "plan": plan, "verification": null }))?;
                } else {
                    print_plan(&plan);
                }
                return Ok(cli::exit::SUCCESS);
            }
            if !json {
                print_plan(&plan);
            }
            apply(config.provider.as_ref(), &plan, force)
                .await
                .context("applying")?;
            let verification = verify(
                &plan,
                &config.verify,
                verify_timeout,
                Duration::from_millis(250),
            )
            .await?;
            if json {
                cli::print_json(
                    &serde_json::json!({ "plan": plan, "verification": verification }),
                )?;
            } else if verification.converged {
                println!(
                    "applied; every authoritative server answers the new values ({} ms)",
                    verification.elapsed_ms
                );
            } else {
                println!(
                    "applied, but after {} ms these do not answer the new values yet:",
                    verification.elapsed_ms
                );
                for report in &verification.pending {
                    for line in report.lines() {
                        println!("  {} {}: {line}", report.name, report.rtype);
                    }
                }
            }
            Ok(if verification.converged {
                cli::exit::SUCCESS
            } else {
                cli::exit::FAILURE
            })
        }
    }
}

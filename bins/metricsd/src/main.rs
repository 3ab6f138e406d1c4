//! `metricsd`: host, PostgreSQL, HTTP probe and backup freshness metrics
//! for Prometheus and as JSON, with alerts and rate limiting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Serves /metrics (Prometheus text 0.0.4 or OpenMetrics, by Accept),
/// /api/v1/metrics (JSON in human units), /api/v1/alerts and /healthz,
/// evaluates alert rules and POSTs firing/resolved notifications to
/// webhooks. Every route is rate-limited per client. Binds 127.0.0.1:9188
/// unless told otherwise.
///
/// Durations in the config are written 90s, 5min, 1h30m or 7d; logs go
/// to standard error (-v, -q, --log-format json, SHIPSHAPE_LOG; info by
/// default).
///
/// Exit status: 0 success (check: everything up); 1 failure; 2 usage
/// error; 4 check: something down. With --json a failure prints
/// {"error": {"kind", "status", "message", "hint"}} on standard output.
///
/// Example: metricsd --config /etc/shipshape/metricsd.toml
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The configuration file (TOML): [server], [host], [[postgres]],
    /// [[probe]], [[backup]], [docker], [[alert]], [[webhook]].
    #[arg(
        long,
        short,
        global = true,
        value_name = "FILE",
        env = "SHIPSHAPE_METRICSD_CONFIG"
    )]
    config: Option<PathBuf>,
    /// Listen here instead of [server].listen.
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    log: cli::LogArgs,
    #[command(flatten)]
    output: cli::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every collector and probe once and exits 0 when all are up,
    /// 4 otherwise: a smoke test after a deploy.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.clone();
    cli::Main::new()
        .default_level(tracing::Level::INFO)
        .max_blocking_threads(4)
        .json(cli.output.json)
        .run(&log, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(path) = cli.config.clone() else {
        return Err(cli::usage(
            "--config FILE is required (see metricsd --help)",
        ));
    };
    let (mut server, config) = metricsd::load(&path)?;
    if let Some(Command::Check) = cli.command {
        let report = metricsd::check(&config).await?;
        if cli.output.json {
            cli::print_json(&report)?;
        } else {
            print!("{report}");
        }
        return Ok(if report.ok {
            cli::exit::SUCCESS
        } else {
            cli::exit::check_failed()
        });
    }
    if let Some(listen) = cli.listen {
        server.listen = listen;
    }
    let state = metricsd::AppState::new(&server, &config)?;
    let webhooks = config.webhooks()?;
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", server.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        collectors = ?state.scraper().names(),
        rules = config.rules().len(),
        "metricsd serving /metrics, /api/v1/metrics, /api/v1/alerts, /healthz"
    );
    let shutdown = async {
        cli::shutdown_signal().await;
        tracing::info!("shutting down");
    };
    metricsd::serve(
        listener,
        state,
        &server,
        webhooks,
        config.evaluation_interval,
        shutdown,
    )
    .await?;
    Ok(cli::exit::SUCCESS)
}

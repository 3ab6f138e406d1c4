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
/// Example: metricsd --config /etc/shipshape/metricsd.toml
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The configuration file (TOML): [server], [host], [[postgres]],
    /// [[probe]], [[backup]], [[alert]], [[webhook]].
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Listen here instead of [server].listen.
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every collector and probe once and exits 0 when all are up,
    /// 1 otherwise: a smoke test after a deploy.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let Some(config) = cli.config.clone() else {
        eprintln!("metricsd: --config FILE is required (see metricsd --help)");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("metricsd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("metricsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, path: PathBuf) -> anyhow::Result<ExitCode> {
    let (mut server, config) = metricsd::load(&path)?;
    if let Some(Command::Check) = cli.command {
        let ok = metricsd::check(&config, &mut std::io::stdout()).await?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
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
        rules = config.alert.len(),
        "metricsd serving /metrics, /api/v1/metrics, /api/v1/alerts, /healthz"
    );
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
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
    Ok(ExitCode::SUCCESS)
}

//! Command-line arguments.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Encrypted, compressed backups that provably restore.
///
/// Backups are streamed through zstd and age into a repository (a local
/// directory by default). Each stored object is a standard age file holding a
/// zstd stream, so stock tools restore it too:
/// `age -d -i IDENTITY data/ID.tar.zst.age | zstd -d | tar -x`.
///
/// Durations are written 90s, 5min, 1h30m or 7d; sizes 16MiB, 512m or a
/// byte count; logs go to standard error (-v, -q, --log-format json,
/// SHIPSHAPE_LOG), results to standard output (--json for scripts).
///
/// Keys are named as age names them: -r RECIPIENT, -R RECIPIENTS_FILE,
/// -i IDENTITY; the repository only by --repo (or SHIPSHAPE_REPO).
///
/// Exit status: 0 success, 1 failure, 2 usage error, 3 done with warnings
/// (e.g. unreadable files skipped), 10 no repository there (create one with
/// `backupctl init`), 12 no key given opens the backup, 130 interrupted.
/// With --json a failure prints {"error": {"kind", "status", "message",
/// "hint"}} on standard output.
#[derive(Debug, Parser)]
#[command(name = "backupctl", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Logging.
    #[command(flatten)]
    pub log: cli::LogArgs,

    /// Output.
    #[command(flatten)]
    pub output: cli::OutputArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository: a local directory or s3://BUCKET/PREFIX.
    ///
    /// Every other command refuses a location where there is no
    /// repository (exit status 10), so a mistyped --repo fails instead of
    /// quietly starting a new, empty repository. Only the default
    /// repository (no --repo, no SHIPSHAPE_REPO) is created by the first
    /// backup on its own.
    ///
    /// Examples:
    ///   backupctl init --repo /srv/backups
    ///   backupctl init --repo s3://backups/db1
    #[command(verbatim_doc_comment)]
    Init {
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Create an age identity (private key) file and print its public key.
    ///
    /// The file is written with mode 0600 and is never overwritten. Give the
    /// printed `age1...` recipient to `backup -r`; keep the file (and a copy
    /// somewhere safe) for `restore` and `verify` (-i). With --json, prints
    /// {"identity": FILE, "recipient": "age1..."}.
    Keygen {
        /// Where to write the identity [default: the default identity,
        /// $SHIPSHAPE_IDENTITY or ~/.config/shipshape/identity.txt].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Back up a file, a directory, standard input (`-`), a PostgreSQL
    /// database (a postgres:// URL), a Docker volume (docker-volume:NAME)
    /// or a command's output.
    ///
    /// SOURCE is written as a job's `source` is in the jobs config, and as
    /// the C ABI takes it.
    ///
    /// Prints the new backup's id (with --json, its manifest). Without -r,
    /// -R, -i or a passphrase option, the backup is encrypted to the default
    /// identity, which is created on first use. Exits 3 when it succeeded
    /// with warnings (unreadable files skipped with --skip-unreadable).
    ///
    /// A PostgreSQL database is dumped with `pg_dump --format=custom` in a
    /// snapshot in which every table's rows are counted (--row-counts), so
    /// `verify --restore-test` can prove the dump restores to the same rows.
    /// The URL is completed from PGHOST, PGPORT, PGUSER, PGPASSWORD,
    /// PGDATABASE, PGSSLMODE and ~/.pgpass, like psql's; put passwords there,
    /// not in the URL, to keep them out of the process list.
    ///
    /// A Docker volume is read through the Docker Engine API (a helper
    /// container mounts it and never runs; no host path is needed) and
    /// stored as the engine's tar archive; --stop-label stops the containers
    /// carrying that label while it is read and starts them again after,
    /// also when the backup fails.
    ///
    /// Examples:
    ///   backupctl backup /srv/app --name app
    ///   backupctl backup docker-volume:pgdata --stop-label com.example.backup=stop
    ///   backupctl backup postgres://backup@db.internal/orders
    ///   backupctl backup postgres://postgres@/postgres --globals
    ///   backupctl backup --name redis -- redis-cli --rdb /dev/stdout
    #[command(verbatim_doc_comment)]
    Backup(Box<BackupArgs>),

    /// Import an age-encrypted zstd file made by other tools as a backup.
    ///
    /// For archives from scripts such as `tar -c DIR | zstd | age -r KEY >
    /// FILE`: the file is decrypted and decompressed once to check it and
    /// record its sizes and SHA-256 digests, then stored unchanged with a
    /// manifest. Afterwards it is listed, verified and restored like any
    /// other backup. Prints the new backup's id.
    Import {
        /// The age file to import.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The backup's name [default: the file name without .tar.zst.age].
        #[arg(short, long)]
        name: Option<String>,
        /// How to decrypt.
        #[command(flatten)]
        keys: DecryptArgs,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Archive one WAL file: PostgreSQL's archive_command.
    ///
    /// The file is stored through zstd and age, encrypted to the public
    /// keys given (the database host needs no private key), under
    /// wal/TIMELINE/NAME.zst.age; a small record beside it, written last,
    /// makes it archived, so a push killed half way leaves nothing listed
    /// and PostgreSQL's retry stores it again. A file archived before with
    /// the same content succeeds without writing; different content under
    /// the same name is refused (exit 1) and never overwritten.
    ///
    /// In postgresql.conf (the repository and the key must be readable by
    /// the server's user):
    ///   archive_mode = on
    ///   archive_command = 'backupctl wal-push --repo /srv/backups -r age1... %p'
    #[command(verbatim_doc_comment)]
    WalPush {
        /// The file PostgreSQL hands over (%p).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Encrypt to this public key, as `age -r` (repeatable).
        #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
        recipients: Vec<String>,
        /// Encrypt to the public keys in FILE, as `age -R` (repeatable).
        #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
        recipients_file: Vec<PathBuf>,
        /// The zstd level (1-19).
        #[arg(short, long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
        level: i32,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Fetch one archived WAL file: PostgreSQL's restore_command.
    ///
    /// Writes the file NAME (%f) to PATH (%p), checked against what was
    /// archived: PATH appears only once every byte is authenticated and
    /// the SHA-256 matches. Exits 1 when the file is not archived (which
    /// PostgreSQL expects at the end of the archive) or cannot be read.
    ///
    /// In postgresql.conf (`restore --to` writes this for you):
    ///   restore_command = 'backupctl wal-fetch --repo /srv/backups -i /etc/shipshape/identity.txt %f %p'
    #[command(verbatim_doc_comment)]
    WalFetch {
        /// The file's name (%f).
        #[arg(value_name = "NAME")]
        name: String,
        /// Where to write it (%p).
        #[arg(value_name = "PATH")]
        dest: PathBuf,
        /// Append a line for each file asked for (fetched, missing or
        /// damaged) to FILE; `restore --to` reads it to name what stopped
        /// a recovery.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// How to decrypt.
        #[command(flatten)]
        keys: DecryptArgs,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// The WAL archive: list it, and check it for gaps.
    #[command(subcommand)]
    Wal(WalCommand),

    /// List the backups in the repository, oldest first.
    List {
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
        /// Only backups with this name.
        #[arg(long)]
        name: Option<String>,
    },

    /// Restore a backup to a directory, a file, standard output (`-`) or a
    /// PostgreSQL database.
    ///
    /// A directory backup is extracted into TARGET (created if missing); any
    /// other backup is written to TARGET as a file, or into it under the
    /// original file name when TARGET is a directory. A non-empty target is
    /// refused unless --force is given (on a terminal you are asked). Every
    /// byte is authenticated and the SHA-256 digests are checked; a new
    /// target only appears once all checks passed.
    ///
    /// A PostgreSQL backup restores into a postgres:// URL's database, which
    /// is created when missing. pg_restore runs in one transaction, so a
    /// failure leaves the database as it was; its errors are printed. A
    /// database with tables is refused unless --force (then the backup's
    /// objects are dropped first: pg_restore --clean --if-exists).
    ///
    /// A Docker volume backup restores into docker-volume:NAME, created when
    /// missing; a volume with files is refused unless --force.
    ///
    /// With --include, only those paths of a directory backup (files or
    /// whole directories, as `backupctl ls` names them) are restored;
    /// with the backup's index, only the parts of the stored object that
    /// hold them are read (ranged reads on S3).
    ///
    /// A PostgreSQL base backup (backup --physical) restores into a new or
    /// empty data directory and is recovered with the archived WAL to --to
    /// (default: latest). `restore latest --to TIME` picks the newest base
    /// backup that ended before TIME. The recovery is proven before the
    /// command succeeds: a throwaway server on a private socket replays the
    /// WAL and must pause at the target (for latest: replay into the newest
    /// archived segment); a missing or damaged segment on the way fails
    /// the restore, naming it, and the directory is removed. Then the
    /// directory holds recovery.signal and, in postgresql.auto.conf, a
    /// restore_command running `backupctl wal-fetch` with this repository
    /// and identity (both must be readable by the server's user): its first
    /// start finishes recovery and promotes to a new timeline. Run as root,
    /// the server runs as the owner of the backed-up files.
    ///
    /// Examples:
    ///   backupctl restore latest --target /srv/app.restored
    ///   backupctl restore latest --include etc/nginx/nginx.conf --target /tmp/r
    ///   backupctl restore 20261122T030000Z-0a1b2c3d --target postgres://postgres@/orders_copy
    ///   backupctl restore latest --name postgres-base --to '2026-12-07 09:14:00+01' --target /var/lib/postgresql/15/restored
    #[command(verbatim_doc_comment)]
    Restore {
        /// Which backup.
        #[command(flatten)]
        which: WhichArgs,
        /// Restore only this path of a directory backup (repeatable): a
        /// file, or a directory with everything below it, as `ls` names it
        /// or by its absolute path on the backed-up machine.
        #[arg(long, value_name = "PATH")]
        include: Vec<String>,
        /// For a PostgreSQL base backup: recover to `latest` (the end of
        /// the archived WAL, the default), a time (2026-12-07T09:14:00Z or
        /// '2026-12-07 09:14:00+01'; UTC when no offset is given: the state
        /// after every transaction committed at or before it) or a WAL
        /// position (0/5000028).
        #[arg(long, value_name = "latest|TIME|LSN")]
        to: Option<backup_core::postgres::RecoveryTarget>,
        /// Where to restore to: a path, `-` for standard output, a
        /// postgres:// URL of a database, or docker-volume:NAME.
        #[arg(short, long, value_name = "PATH|-|postgres://...|docker-volume:NAME")]
        target: PathBuf,
        /// Restore over a non-empty directory, an existing file, or a
        /// database that has tables.
        #[arg(short, long)]
        force: bool,
        /// PostgreSQL options.
        #[command(flatten)]
        pg: PgRestoreArgs,
        /// How to decrypt.
        #[command(flatten)]
        keys: DecryptArgs,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// List what a directory backup holds: type and mode, size, mtime and
    /// path of each entry, at or below PATH.
    ///
    /// Reads only the backup's encrypted index (every directory backup has
    /// one), never the data; a backup made before indexes existed is
    /// streamed instead. An incremental lists what its own layer stored.
    /// With --json, a JSON array of {path, kind, size, mode, mtime, link}.
    ///
    /// Examples:
    ///   backupctl ls latest --name app
    ///   backupctl ls 20261122T030000Z-0a1b2c3d etc/nginx --json
    #[command(verbatim_doc_comment)]
    Ls {
        /// Which backup.
        #[command(flatten)]
        which: WhichArgs,
        /// Only this path and what is below it.
        #[arg(value_name = "PATH", default_value = ".")]
        path: String,
        /// How to decrypt the index.
        #[command(flatten)]
        keys: DecryptArgs,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Remove what failed or killed backups left behind.
    ///
    /// Finds unfinished writes (incomplete S3 multipart uploads, local
    /// temporary files) and data objects that no manifest references, older
    /// than --older-than. Without --apply only reports them. Never touches a
    /// backup that is listed; refuses to delete anything while a manifest
    /// cannot be read.
    ///
    /// Examples:
    ///   backupctl gc --repo s3://backups/db1
    ///   backupctl gc --repo s3://backups/db1 --older-than 2h --apply
    #[command(verbatim_doc_comment)]
    Gc {
        /// Only leftovers at least this old (e.g. 90min, 24h, 7d), so
        /// backups running right now are never touched.
        #[arg(long, value_name = "AGE", default_value = "24h", value_parser = cli::parse_duration)]
        older_than: std::time::Duration,
        /// Remove them (the default is a dry run that only reports).
        #[arg(long)]
        apply: bool,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Remove stale repository locks (or, with --force, every lock).
    ///
    /// Every command takes a lock object under locks/ naming its host,
    /// process and operation, and rewrites it every 5 minutes while it
    /// runs. A lock not rewritten for 30 minutes, or whose process is gone
    /// on this host, is stale: others already ignore it, but gc leaves alone
    /// what its holder may have written until it is removed. --force also
    /// removes live locks: their holders stop at their next change to the
    /// repository. Lists every lock it found (with --json, an array).
    ///
    /// Examples:
    ///   backupctl unlock --repo /srv/backups
    ///   backupctl unlock --repo s3://backups/db1 --force
    #[command(verbatim_doc_comment)]
    Unlock {
        /// Remove live locks too.
        #[arg(long)]
        force: bool,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Check a backup without writing anything, or run a restore drill.
    ///
    /// Streams the stored object, decrypts and decompresses it, and compares
    /// sizes and SHA-256 digests (of the stored object and of the plaintext)
    /// with the manifest; for directory backups also walks the archive.
    ///
    /// With --restore-test (PostgreSQL backups), the backup is restored into
    /// a new scratch database on the --scratch server, every table's rows
    /// are counted and compared with the counts taken in the dump's
    /// snapshot, a table-by-table report is printed, and the scratch
    /// database is dropped (also on failure or Ctrl-C). Exits 1 on any
    /// mismatch or restore error.
    ///
    /// A base backup (backup --physical) needs no --scratch: it is restored
    /// into a temporary directory and recovered with the archived WAL to
    /// --to (default: a WAL position picked at random between the backup's
    /// end and the newest archived segment) by a throwaway server on a
    /// private socket, proven as `restore --to` proves it; every table of
    /// every database is counted, and everything is deleted again (also on
    /// failure or Ctrl-C). The report gives the achieved RPO (how old the
    /// newest archived WAL was) and RTO (the drill's duration).
    ///
    /// Examples:
    ///   backupctl verify latest --name orders --restore-test --scratch postgres://postgres@/postgres
    ///   backupctl verify latest --name postgres-base --restore-test
    #[command(verbatim_doc_comment)]
    Verify {
        /// Which backup.
        #[command(flatten)]
        which: WhichArgs,
        /// Restore a PostgreSQL backup into a scratch database and compare
        /// every table's row count with the manifest (a base backup:
        /// recover it in a temporary directory and count every table).
        #[arg(long)]
        restore_test: bool,
        /// The server for --restore-test: a postgres:// URL of a database
        /// the user can connect to there (e.g. `postgres`); the user must be
        /// allowed to create databases.
        #[arg(long, value_name = "postgres://...", requires = "restore_test")]
        scratch: Option<String>,
        /// A base backup's drill: recover to `latest`, a time or a WAL
        /// position instead of a random position.
        #[arg(long, value_name = "latest|TIME|LSN", requires = "restore_test")]
        to: Option<backup_core::postgres::RecoveryTarget>,
        /// PostgreSQL options.
        #[command(flatten)]
        pg: PgRestoreArgs,
        /// How to decrypt.
        #[command(flatten)]
        keys: DecryptArgs,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Remove old backups by a retention policy (restic's rules).
    ///
    /// Backups are grouped by name; in each group the newest backup of
    /// each of the last N hours / days / ISO weeks / months / years is kept
    /// (periods in --time-zone), plus the last N backups with --keep-last.
    /// As in restic, a rule with count left also keeps the oldest backup.
    /// The newest backup of a name and every backup a kept incremental
    /// builds on are never removed. Without --apply this is a dry run that
    /// lists every backup with the rules that keep it, or `remove`.
    ///
    /// With --config and --job, the job's repository, time zone and
    /// retention are used (flags given as well override the policy).
    ///
    /// Examples:
    ///   backupctl prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12
    ///   backupctl prune --config /etc/shipshape/backup.toml --job app --apply
    #[command(verbatim_doc_comment)]
    Prune(PruneArgs),

    /// Print a job's next scheduled runs (RFC 3339, with the offset).
    ///
    /// Example:
    ///   backupctl schedule next --config backup.toml --job app --count 5
    #[command(subcommand)]
    Schedule(ScheduleCommand),

    /// Run one job of the config now (a full backup, or with --drill its
    /// restore drill), with its hooks, retention, webhook and history.
    ///
    /// Exits 1 when the run fails.
    Run {
        /// The job's name.
        job: String,
        /// The config file.
        #[arg(short, long, value_name = "FILE", env = "SHIPSHAPE_CONFIG")]
        config: PathBuf,
        /// Run the job's restore drill instead of a backup.
        #[arg(long)]
        drill: bool,
    },

    /// Run every job of the config on its schedule until SIGTERM or Ctrl-C.
    ///
    /// A job never runs twice at once (a run due while the previous one
    /// goes is recorded as skipped). Runs missed while the daemon was down
    /// run once at start (missed = "run-once", the default) or wait for
    /// their next time (missed = "skip"). On SIGTERM or Ctrl-C no new run
    /// starts, and running ones get the daemon section's shutdown_grace (default 5m)
    /// to finish before they are stopped and recorded as aborted.
    Daemon {
        /// The config file.
        #[arg(short, long, value_name = "FILE", env = "SHIPSHAPE_CONFIG")]
        config: PathBuf,
    },

    /// Show the run history: every run of every job (or of --job), with
    /// its result, error, sizes and duration, oldest first.
    History {
        /// The config file: the history of its jobs' repositories.
        #[arg(short, long, value_name = "FILE", conflicts_with = "repo")]
        config: Option<PathBuf>,
        /// Only this job.
        #[arg(long)]
        job: Option<String>,
        /// Only the last N runs.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
        /// Where the repository is (without --config).
        #[command(flatten)]
        repo: RepoArgs,
    },
}

/// `wal` subcommands.
#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// List the archived WAL files, oldest first, with their sizes.
    List {
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Stream a server's WAL into the repository until SIGTERM or Ctrl-C.
    ///
    /// Runs pg_receivewal over the replication protocol (so nothing of
    /// ours runs on the database host: a server in a container needs only
    /// a login with the REPLICATION attribute and a published port) into a
    /// local spool; every finished segment is stored through zstd and age
    /// and then deleted from the spool, and the segment being written is
    /// stored as NAME.partial every --partial-every, which bounds what a
    /// dying server loses. A replication slot (created when missing) keeps
    /// the server from recycling WAL not yet received. Lost connections
    /// are retried. `wal-fetch` serves a segment from its .partial when
    /// the full one is not there, so `restore --to latest` reaches it.
    ///
    /// Example:
    ///   backupctl wal stream postgres://replicator@db.internal/postgres --spool /var/lib/shipshape/wal-spool --repo /srv/backups -r age1...
    #[command(verbatim_doc_comment)]
    Stream {
        /// The server: a postgres:// URL of a user with REPLICATION.
        #[arg(value_name = "postgres://...")]
        url: String,
        /// Where received WAL waits to be stored.
        #[arg(long, value_name = "DIR")]
        spool: PathBuf,
        /// The replication slot.
        #[arg(long, value_name = "NAME", default_value = "shipshape")]
        slot: String,
        /// How often the segment being written is stored.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = cli::parse_duration)]
        partial_every: std::time::Duration,
        /// Encrypt to this public key, as `age -r` (repeatable).
        #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
        recipients: Vec<String>,
        /// Encrypt to the public keys in FILE, as `age -R` (repeatable).
        #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
        recipients_file: Vec<PathBuf>,
        /// PostgreSQL: use pg_receivewal from DIR only.
        #[arg(long, value_name = "DIR", env = "SHIPSHAPE_PG_BIN")]
        pg_bin: Option<PathBuf>,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Check that every kept base backup can be recovered: walks each
    /// timeline from the backup's start to the newest archived segment and
    /// reports every segment missing on the way. Needs no key.
    ///
    /// Exits 1 when a segment a base backup needs is missing.
    Verify {
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },
}

/// `schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next runs of a job's schedule.
    Next {
        /// The config file.
        #[arg(short, long, value_name = "FILE", env = "SHIPSHAPE_CONFIG")]
        config: PathBuf,
        /// The job.
        #[arg(long)]
        job: String,
        /// How many runs.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Runs after this time (RFC 3339) [default: now].
        #[arg(long, value_name = "RFC3339")]
        after: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// The drill's schedule instead of the backup's.
        #[arg(long)]
        drill: bool,
    },
}

/// `prune` arguments.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the last N backups.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<backup_core::retention::Keep>,
    /// Keep the newest backup of each of the last N hours.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<backup_core::retention::Keep>,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<backup_core::retention::Keep>,
    /// Keep the newest backup of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<backup_core::retention::Keep>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<backup_core::retention::Keep>,
    /// Keep the newest backup of each of the last N years (`all` keeps one
    /// of every period, for any of these).
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<backup_core::retention::Keep>,
    /// The time zone periods are counted in [default: the job's, else the
    /// system's].
    #[arg(long, value_name = "IANA")]
    pub time_zone: Option<String>,
    /// Only backups with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Take repository, time zone and policy from this config's --job.
    #[arg(short, long, value_name = "FILE", requires = "job")]
    pub config: Option<PathBuf>,
    /// The job (with --config).
    #[arg(long, requires = "config")]
    pub job: Option<String>,
    /// Only list what would be removed (the default).
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Remove the backups the policy does not keep.
    #[arg(long)]
    pub apply: bool,
    /// Where the repository is.
    #[command(flatten)]
    pub repo: RepoArgs,
}

/// Where the repository is.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The repository: a directory, or s3://BUCKET/PREFIX [default:
    /// $SHIPSHAPE_REPO or ~/.local/share/shipshape/repo]. It must have been
    /// created with `backupctl init`, but for the default one, which the
    /// first backup creates.
    ///
    /// For S3, credentials, region and endpoint come from the standard AWS
    /// configuration: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or
    /// AWS_PROFILE and ~/.aws/config), AWS_REGION, and AWS_ENDPOINT_URL_S3
    /// or AWS_ENDPOINT_URL for R2, Garage, MinIO and other S3-compatible
    /// stores.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub repo: Option<OsString>,

    /// S3: size of each multipart part. Memory for an upload is at most
    /// part size x (concurrency + 1). At least 5MiB; up to 10,000 parts
    /// per object, so 16MiB parts allow objects up to 156GiB.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = cli::parse_size)]
    pub s3_part_size: u64,

    /// S3: parts uploaded (and ranges downloaded) at the same time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub s3_concurrency: u16,

    /// S3: use virtual-hosted-style addressing (BUCKET.ENDPOINT) even with
    /// a custom endpoint, where path-style (ENDPOINT/BUCKET) is the default.
    #[arg(long)]
    pub s3_virtual_hosted: bool,

    /// How long to wait for another process's repository lock (e.g. 30s,
    /// 10min) before failing with exit status 11. Backups, restores and
    /// verifies share the repository; prune, forget-style removals and gc
    /// hold it alone.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = cli::parse_duration)]
    pub retry_lock: std::time::Duration,

    /// Take no lock: for reading a repository this process cannot write
    /// (a read-only mount or bucket). Refused by commands that delete.
    #[arg(long)]
    pub no_lock: bool,
}

/// Which backup.
#[derive(Debug, Args)]
pub struct WhichArgs {
    /// A backup id, or `latest`.
    #[arg(value_name = "ID|latest")]
    pub backup: String,
    /// With `latest`: the newest backup with this name.
    #[arg(long)]
    pub name: Option<String>,
}

/// Secrets for decrypting.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Identity file: age identities (`AGE-SECRET-KEY-1...`) or an SSH
    /// private key (ed25519 or RSA, unencrypted), as `age -d -i`
    /// (repeatable) [default: $SHIPSHAPE_IDENTITY or
    /// ~/.config/shipshape/identity.txt]. Must not be readable by group or
    /// others.
    #[arg(short, long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Where a passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// Where a passphrase comes from (never the command line itself).
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the passphrase from the first line of FILE (mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the passphrase from the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

/// PostgreSQL options of `restore` and `verify`.
#[derive(Debug, Args)]
pub struct PgRestoreArgs {
    /// PostgreSQL: do not restore object owners (`pg_restore --no-owner`);
    /// everything belongs to the user restoring.
    #[arg(long)]
    pub no_owner: bool,
    /// PostgreSQL: use the client tools (pg_restore, psql) in DIR only
    /// [default: the oldest new enough of /usr/lib/postgresql/*/bin,
    /// /usr/pgsql-*/bin and PATH].
    #[arg(long, value_name = "DIR", env = "SHIPSHAPE_PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    /// PostgreSQL: the server runs in this Docker container (name or id);
    /// pg_restore and psql run inside it through the Engine API, so no
    /// port or host tools are needed. The URL gives the user and database.
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
}

/// `backupctl backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// What to back up: a file or directory, `-` for standard input, a
    /// postgres:// URL, or docker-volume:NAME. Several files and
    /// directories go into one archive, named relative to their deepest
    /// common directory (`/srv/app /etc/nginx` as `srv/app/...` and
    /// `etc/nginx/...`).
    #[arg(value_name = "SOURCE", required_unless_present = "command")]
    pub sources: Vec<PathBuf>,

    /// Back up this command's standard output instead (after `--`). The
    /// backup fails if the command exits unsuccessfully.
    #[arg(last = true, value_name = "COMMAND", conflicts_with = "sources")]
    pub command: Vec<OsString>,

    /// Encrypt to this public key: an age key (`age1...`) or an SSH key
    /// (`ssh-ed25519 AAAA...`, `ssh-rsa AAAA...`), as `age -r` (repeatable).
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Encrypt to the public keys listed in FILE, one per line (`#`
    /// comments; age and SSH keys), as `age -R` reads them (repeatable).
    #[arg(short = 'R', long, value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,

    /// Encrypt to the public key of this identity file (an age identity
    /// or an SSH private key), as `age -e -i` (repeatable).
    #[arg(short, long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,

    /// Where a passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,

    /// The backup's name [default: the file or directory name, `stdin`, or
    /// the command's name].
    #[arg(short, long)]
    pub name: Option<String>,

    /// zstd compression level.
    #[arg(short, long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,

    /// Threads compressing in parallel [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,

    /// Plaintext bytes per zstd frame, in KiB; frames are compressed
    /// independently and in parallel. Larger frames compress a little better
    /// and use more memory [default: 512 up to level 9, 2048 above].
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(64..=262144))]
    pub frame_size: Option<u32>,

    /// Skip files and directories that cannot be read, recording a warning
    /// in the manifest, instead of failing the backup.
    #[arg(long)]
    pub skip_unreadable: bool,
    /// Leave out of a directory backup the paths matching PATTERN, in
    /// gitignore syntax relative to the directory: `node_modules/` (a
    /// directory anywhere), `/build` (at the top only), `**/*.log`,
    /// `!keep.log` (back in). Repeatable. The repository and the index
    /// directory are left out on their own when they are inside.
    #[arg(long, value_name = "PATTERN", help_heading = "Excludes")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from FILE, one per line, `#` comments (a
    /// `.gitignore`). Repeatable.
    #[arg(long, value_name = "FILE", help_heading = "Excludes")]
    pub exclude_file: Vec<PathBuf>,
    /// Leave out the contents of directories marked as caches with a
    /// CACHEDIR.TAG (the directory and the tag are kept, as in GNU tar).
    #[arg(long, help_heading = "Excludes")]
    pub exclude_caches: bool,
    /// Leave out every directory holding a file named NAME, e.g.
    /// `.nobackup`. Repeatable.
    #[arg(long, value_name = "NAME", help_heading = "Excludes")]
    pub exclude_if_present: Vec<String>,
    /// Stay on the directory's file system: mount points below it are
    /// kept as empty directories.
    #[arg(short = 'x', long, help_heading = "Excludes")]
    pub one_file_system: bool,
    /// Make an incremental backup of a directory: store only the files
    /// that changed since this backup (an id, or `latest` of the same
    /// name), plus a list of what was deleted. Restoring it restores its
    /// chain. Needs the parent's file index in --index-dir.
    #[arg(long, value_name = "ID|latest")]
    pub parent: Option<String>,
    /// Where directory backups keep the file index that incrementals
    /// compare against (on this host only; it names every file) [default:
    /// $SHIPSHAPE_INDEX_DIR, else ~/.cache/shipshape/index].
    #[arg(long, value_name = "DIR")]
    pub index_dir: Option<PathBuf>,
    /// Record this time (RFC 3339) as the backup's start instead of now,
    /// as restic's --time: for imports of old backups and for tests.
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<chrono::DateTime<chrono::FixedOffset>>,

    /// PostgreSQL: back up the cluster's roles and tablespaces
    /// (`pg_dumpall --globals-only`) instead of the URL's database.
    #[arg(long, conflicts_with = "physical")]
    pub globals: bool,

    /// PostgreSQL: a physical base backup of the whole cluster
    /// (`pg_basebackup --format=tar`, over a replication connection) instead
    /// of a dump: with the WAL archived by `wal-push`, restorable to any
    /// point in time (`restore --to`). The server's archive_command must
    /// push into the same repository; the backup waits for its WAL there.
    #[arg(long)]
    pub physical: bool,

    /// PostgreSQL: how each table's rows are counted in the dump's
    /// snapshot: `exact` (count(*), checked exactly by `verify
    /// --restore-test`), `estimate` (the planner's statistics, free; a drill
    /// then only checks the tables exist) or `off`.
    #[arg(long, value_name = "MODE", default_value = "exact")]
    pub row_counts: backup_core::manifest::RowCounts,

    /// Docker volumes: stop running containers with this label (`key` or
    /// `key=value`) while the volume is read.
    #[arg(long, value_name = "LABEL")]
    pub stop_label: Option<String>,

    /// PostgreSQL: use the client tools (pg_dump, pg_dumpall) in DIR only
    /// [default: the oldest at least as new as the server, from
    /// /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and PATH].
    #[arg(long, value_name = "DIR", env = "SHIPSHAPE_PG_BIN")]
    pub pg_bin: Option<PathBuf>,

    /// PostgreSQL: the server runs in this Docker container (name or id,
    /// e.g. a compose service's container); pg_dump runs inside it through
    /// the Engine API, so it always matches the server and needs no port.
    /// The URL gives the user and database: postgres://postgres@/app.
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,

    /// Where the repository is.
    #[command(flatten)]
    pub repo: RepoArgs,
}

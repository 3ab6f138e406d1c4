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
/// Exit status: 0 on success, 1 when the operation failed, 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "backupctl", version, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Show more detail on standard error (repeat for debug output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print nothing but results and errors (no progress bars, no summaries).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an age identity (private key) file and print its public key.
    ///
    /// The file is written with mode 0600 and is never overwritten. Give the
    /// printed `age1...` recipient to `backup --recipient`; keep the file (and
    /// a copy somewhere safe) for `restore` and `verify`.
    Keygen {
        /// Where to write the identity [default: the default identity,
        /// $SHIPSHAPE_IDENTITY or ~/.config/shipshape/identity.txt].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Back up a file, a directory, standard input (`-`) or a command's output.
    ///
    /// Prints the new backup's id (with --json, its manifest). Without
    /// --recipient, --recipients-file or a passphrase option, the backup is
    /// encrypted to the default identity, which is created on first use.
    ///
    /// Examples:
    ///   backupctl backup /srv/app --name app
    ///   pg_dumpall | backupctl backup - --name postgres
    ///   backupctl backup --name redis -- redis-cli --rdb /dev/stdout
    #[command(verbatim_doc_comment)]
    Backup(BackupArgs),

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
        /// Print the new backup's manifest as JSON instead of its id.
        #[arg(long)]
        json: bool,
    },

    /// List the backups in the repository, oldest first.
    List {
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
        /// Only backups with this name.
        #[arg(long)]
        name: Option<String>,
        /// Print the manifests as a JSON array.
        #[arg(long)]
        json: bool,
    },

    /// Restore a backup to a directory, a file, or standard output (`-`).
    ///
    /// A directory backup is extracted into TARGET (created if missing); any
    /// other backup is written to TARGET as a file, or into it under the
    /// original file name when TARGET is a directory. A non-empty target is
    /// refused unless --force is given (on a terminal you are asked). Every
    /// byte is authenticated and the SHA-256 digests are checked; a new
    /// target only appears once all checks passed.
    Restore {
        /// Which backup.
        #[command(flatten)]
        which: WhichArgs,
        /// Where to restore to: a path, or `-` for standard output.
        #[arg(short, long, value_name = "PATH|-")]
        target: PathBuf,
        /// Restore over a non-empty directory or an existing file.
        #[arg(short, long)]
        force: bool,
        /// How to decrypt.
        #[command(flatten)]
        keys: DecryptArgs,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
    },

    /// Check a backup without writing anything.
    ///
    /// Streams the stored object, decrypts and decompresses it, and compares
    /// sizes and SHA-256 digests (of the stored object and of the plaintext)
    /// with the manifest; for directory backups also walks the archive.
    Verify {
        /// Which backup.
        #[command(flatten)]
        which: WhichArgs,
        /// How to decrypt.
        #[command(flatten)]
        keys: DecryptArgs,
        /// Where the repository is.
        #[command(flatten)]
        repo: RepoArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where the repository is.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The repository directory [default: $SHIPSHAPE_REPO or
    /// ~/.local/share/shipshape/repo].
    #[arg(short, long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
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
    /// Age identity file [default: $SHIPSHAPE_IDENTITY or
    /// ~/.config/shipshape/identity.txt]. Must not be readable by group or
    /// others.
    #[arg(short, long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
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

/// `backupctl backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file or directory to back up, or `-` for standard input.
    #[arg(value_name = "PATH|-", required_unless_present = "command")]
    pub path: Option<PathBuf>,

    /// Back up this command's standard output instead (after `--`). The
    /// backup fails if the command exits unsuccessfully.
    #[arg(last = true, value_name = "COMMAND", conflicts_with = "path")]
    pub command: Vec<OsString>,

    /// Encrypt to this age public key (repeatable).
    #[arg(short = 'R', long = "recipient", value_name = "age1...")]
    pub recipients: Vec<String>,

    /// Encrypt to the public keys listed in FILE, one per line.
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,

    /// Encrypt to the public key of this identity file.
    #[arg(short, long, value_name = "FILE")]
    pub identity: Option<PathBuf>,

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

    /// Print the new backup's manifest as JSON instead of its id.
    #[arg(long)]
    pub json: bool,

    /// Where the repository is.
    #[command(flatten)]
    pub repo: RepoArgs,
}

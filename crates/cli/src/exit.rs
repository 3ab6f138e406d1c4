//! Exit statuses, the same in every binary.
//!
//! | status | [`Status`] | meaning |
//! |---|---|---|
//! | 0 | `success` | done (a check: everything agrees, no drift, all up) |
//! | 1 | `failure` | the operation failed |
//! | 2 | `usage` | the command was called wrongly (clap's own errors too) |
//! | 3 | `warnings` | done, with warnings (e.g. unreadable files skipped) |
//! | 4 | `check_failed` | a check ran and its answer is no: drift found, a DNS server disagrees, a collector down |
//! | 10 | `repository_missing` | there is no repository where one was named (create it with `backupctl init`) |
//! | 11 | `locked` | another process holds a lock that this operation cannot share (wait with `--retry-lock`) |
//! | 12 | `wrong_key` | no key given opens the backup |
//! | 130 | `interrupted` | stopped by Ctrl-C or SIGTERM |
//!
//! With `--json`, a failure prints one object on standard output,
//! `{"error": {"kind": "wrong_key", "status": 12, "message": "...", "hint": null}}`,
//! where `kind` is the name in the table.

use std::fmt;
use std::process::ExitCode;

/// Why a binary exits: its status and the name `--json` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// 0: done.
    Success,
    /// 1: the operation failed.
    Failure,
    /// 2: the command was called wrongly.
    Usage,
    /// 3: done, with warnings.
    Warnings,
    /// 4: a check's answer is no (drift found, a server disagrees).
    CheckFailed,
    /// 10: no repository where one was named.
    RepositoryMissing,
    /// 11: another process holds a conflicting repository lock.
    Locked,
    /// 12: no key given opens the backup.
    WrongKey,
    /// 130: stopped by Ctrl-C or SIGTERM.
    Interrupted,
}

impl Status {
    /// The numeric exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Usage => 2,
            Status::Warnings => 3,
            Status::CheckFailed => 4,
            Status::RepositoryMissing => 10,
            Status::Locked => 11,
            Status::WrongKey => 12,
            Status::Interrupted => 130,
        }
    }

    /// The name `--json` gives it: `wrong_key`.
    pub fn kind(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Usage => "usage",
            Status::Warnings => "warnings",
            Status::CheckFailed => "check_failed",
            Status::RepositoryMissing => "repository_missing",
            Status::Locked => "locked",
            Status::WrongKey => "wrong_key",
            Status::Interrupted => "interrupted",
        }
    }

    /// Every status, in the order of the table above.
    pub const ALL: [Status; 9] = [
        Status::Success,
        Status::Failure,
        Status::Usage,
        Status::Warnings,
        Status::CheckFailed,
        Status::RepositoryMissing,
        Status::Locked,
        Status::WrongKey,
        Status::Interrupted,
    ];
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(s.code())
    }
}

/// Success.
pub const SUCCESS: ExitCode = ExitCode::SUCCESS;
/// Failure.
pub const FAILURE: ExitCode = ExitCode::FAILURE;

/// A check's negative answer (drift found, a server disagrees): status 4,
/// distinct from a failure to check.
pub fn check_failed() -> ExitCode {
    Status::CheckFailed.into()
}

/// A usage error's status.
pub fn usage_status() -> ExitCode {
    Status::Usage.into()
}

/// A mistake in how the command was called: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The work was stopped by Ctrl-C or SIGTERM: exit status 130.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// The status for an error: what `classify` says (a binary knows its
/// libraries' errors), else 2 for a [`UsageError`] and 130 for
/// [`Interrupted`] anywhere in its chain, else 1.
pub fn status_of(
    e: &anyhow::Error,
    classify: Option<fn(&anyhow::Error) -> Option<Status>>,
) -> Status {
    if let Some(s) = classify.and_then(|c| c(e)) {
        return s;
    }
    if e.chain().any(|c| c.is::<UsageError>()) {
        Status::Usage
    } else if e.chain().any(|c| c.is::<Interrupted>()) {
        Status::Interrupted
    } else {
        Status::Failure
    }
}

/// The numeric status for an error with no classifier, as [`status_of`].
pub fn status(e: &anyhow::Error) -> u8 {
    status_of(e, None).code()
}

/// The exit status for an error with no classifier, as [`status_of`].
pub fn code(e: &anyhow::Error) -> ExitCode {
    status_of(e, None).into()
}

/// The one JSON object a failure prints with `--json`.
pub fn error_json(status: Status, e: &anyhow::Error, hint: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "kind": status.kind(),
            "status": status.code(),
            "message": format!("{e:#}"),
            "hint": hint,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_even_with_context() {
        assert_eq!(status(&usage("bad flag")), 2);
        assert_eq!(status(&usage("bad flag").context("while parsing")), 2);
        assert_eq!(status(&anyhow::anyhow!("broken")), 1);
        assert_eq!(
            status(&anyhow::Error::new(Interrupted).context("backup")),
            130
        );
    }

    #[test]
    fn a_classifier_comes_first() {
        fn wrong_key(e: &anyhow::Error) -> Option<Status> {
            e.to_string().contains("key").then_some(Status::WrongKey)
        }
        let e = anyhow::anyhow!("no key opens it");
        assert_eq!(status_of(&e, Some(wrong_key)), Status::WrongKey);
        assert_eq!(
            status_of(&anyhow::anyhow!("other"), Some(wrong_key)),
            Status::Failure
        );
    }

    #[test]
    fn codes_and_kinds_are_distinct() {
        let mut codes: Vec<u8> = Status::ALL.iter().map(|s| s.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), Status::ALL.len());
        let v = error_json(Status::WrongKey, &anyhow::anyhow!("no key"), Some("use -i"));
        assert_eq!(v["error"]["kind"], "wrong_key");
        assert_eq!(v["error"]["status"], 12);
        assert_eq!(v["error"]["hint"], "use -i");
    }
}

//! The operations on a repository, one file each with its options and its
//! report: [`init`], [`backup`], [`import`], [`list`] (and finding backups),
//! [`restore`], [`verify`], [`prune`], [`gc`] and [`history`].
//!
//! Each works on a [`Store`](crate::Store) and never on the
//! [`Repository`](crate::Repository) type, whose methods (in `repo.rs`)
//! are the public face of these functions: read that file for what a
//! repository can do, and these for how.

pub(crate) mod backup;
pub(crate) mod gc;
pub(crate) mod history;
pub(crate) mod import;
pub(crate) mod init;
pub(crate) mod list;
pub(crate) mod ls;
pub(crate) mod prune;
pub(crate) mod restore;
pub(crate) mod verify;

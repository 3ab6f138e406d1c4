//! The exported functions, by what they do.

// In the order the header lists them.
mod backups;
mod restores;

mod metrics;

mod dns;

mod rate;

pub use backups::{
    shipshape_backup, shipshape_backup_fd, shipshape_backup_path, shipshape_init, shipshape_keygen,
};
pub use dns::shipshape_dns_check;
pub use metrics::{
    SHIPSHAPE_FORMAT_JSON, SHIPSHAPE_FORMAT_OPENMETRICS, SHIPSHAPE_FORMAT_PROMETHEUS,
    shipshape_metrics_snapshot,
};
pub use rate::{
    ShipshapeRateLimiter, shipshape_ratelimiter_check, shipshape_ratelimiter_free,
    shipshape_ratelimiter_new,
};
pub use restores::{shipshape_list, shipshape_restore, shipshape_verify};

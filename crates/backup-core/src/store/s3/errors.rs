//! S3 errors as the store's: not-found kept apart, every other failure
//! described with the service's code and message or the transport's
//! causes.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::S3Store;
use crate::error::Error;
use crate::store::Store;

impl S3Store {
    /// `operation` on `key` failed with `e`.
    pub(super) fn err<E>(&self, operation: &'static str, key: &str, e: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let not_found = operation != "list"
            && (matches!(
                e.as_service_error().and_then(|s| s.code()),
                Some("NoSuchKey" | "NotFound")
            ) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404));
        if not_found {
            return Error::NotFound {
                store: self.describe(),
                key: key.to_owned(),
            };
        }
        Error::store(self.describe(), operation, key, describe_sdk_error(e))
    }
}

/// The SDK's `Display` for errors is terse ("service error"); this adds the
/// code, message and cause chain.
fn describe_sdk_error<E>(e: SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let mut text = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(),
    };
    if let Some(status) = status {
        text.push_str(&format!(" (HTTP {status})"));
    }
    // A service error's code and message say it all; transport errors
    // (DNS, refused or reset connections, timeouts) need their causes.
    let mut source = match e.code() {
        Some(_) => None,
        None => std::error::Error::source(&e),
    };
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

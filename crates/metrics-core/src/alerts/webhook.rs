//! Delivering alert notifications to webhooks.

use std::time::Duration;

use super::Notification;

/// POSTs notifications as JSON to every configured URL, three attempts
/// each (1 s, then 4 s apart), with a 10 s timeout per attempt. URLs are
/// never logged (they often carry a token).
#[derive(Debug, Clone)]
pub struct Webhooks {
    urls: Vec<String>,
    client: reqwest::Client,
}

impl Webhooks {
    /// Webhooks at `urls`.
    pub fn new(urls: Vec<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("shipshape-metricsd")
            .build()
            .unwrap_or_default();
        Webhooks { urls, client }
    }

    /// Whether there is anywhere to send to.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Sends `notification` to every webhook; returns how many accepted it.
    pub async fn send(&self, notification: &Notification) -> usize {
        let body = notification.to_json().to_string();
        let mut delivered = 0;
        for (i, url) in self.urls.iter().enumerate() {
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=3 {
                match self
                    .client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        delivered += 1;
                        break;
                    }
                    Ok(r) => tracing::warn!(
                        webhook = i + 1,
                        attempt,
                        status = r.status().as_u16(),
                        "alert webhook refused the notification"
                    ),
                    Err(e) => tracing::warn!(
                        webhook = i + 1,
                        attempt,
                        "alert webhook unreachable: {}",
                        e.without_url()
                    ),
                }
                if attempt < 3 {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
        delivered
    }
}

//! The PowerDNS Authoritative HTTP API: a zone's record sets read with
//! `GET /api/v1/servers/{id}/zones/{zone}`, changed with `PATCH` and
//! `changetype` `REPLACE` or `DELETE` (each PATCH is one transaction).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::{DnsProvider, Secret};
use crate::Error;
use crate::record::{RecordSet, RecordType, absolute, canonical_value, txt_presentation};

const NAME: &str = "powerdns";

/// A PowerDNS server's API.
#[derive(Debug, Clone)]
pub struct PowerDns {
    base: String,
    key: Secret,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Zone {
    #[serde(default)]
    rrsets: Vec<RrSet>,
}

#[derive(Deserialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    content: String,
    #[serde(default)]
    disabled: bool,
}

impl PowerDns {
    /// The API at `url` (`http://HOST:8081`), server `server_id`
    /// (`localhost` unless configured otherwise).
    ///
    /// # Errors
    ///
    /// When `url` is not a URL or the HTTP client cannot be built.
    pub fn new(url: &str, server_id: &str, key: Secret) -> Result<Self, Error> {
        let http = super::http_client(NAME)?;
        Ok(Self {
            base: format!("{}/api/v1/servers/{server_id}", url.trim_end_matches('/')),
            key,
            http,
        })
    }

    /// Sends a request; `Ok(None)` for an empty success, the JSON for any
    /// other, PowerDNS's `error` text for a failure.
    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<serde_json::Value>, Error> {
        let response = request.header("X-API-Key", self.key.expose()).send().await;
        let fail = |message: String| Error::Provider {
            provider: NAME,
            message,
        };
        let response = response.map_err(|e| fail(format!("{what}: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(format!("{what}: reading the answer: {e}")))?;
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            return Ok(json);
        }
        let said = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(|e| e.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (check the API key)"
        } else {
            ""
        };
        Err(fail(format!("{what}: HTTP {status}: {said}{hint}")))
    }

    fn zone_url(&self, zone: &str) -> String {
        format!("{}/zones/{zone}", self.base)
    }

    /// Creates a native zone with these name servers (absolute names) and
    /// an A record for each one that lies inside the zone, pointing at
    /// `glue`. For setting up a server (and tests); records files manage
    /// records, not zones.
    ///
    /// # Errors
    ///
    /// When the API refuses.
    pub async fn create_zone(
        &self,
        zone: &str,
        nameservers: &[&str],
        glue: std::net::Ipv4Addr,
    ) -> Result<(), Error> {
        let zone = absolute(zone)?;
        let nameservers: Vec<String> = nameservers
            .iter()
            .map(|n| absolute(n))
            .collect::<Result<_, _>>()?;
        let body = json!({ "name": zone, "kind": "Native", "nameservers": nameservers });
        self.send(
            &format!("creating zone {zone}"),
            self.http.post(format!("{}/zones", self.base)).json(&body),
        )
        .await?;
        for ns in nameservers
            .iter()
            .filter(|n| crate::record::in_zone(n, &zone))
        {
            let glue = RecordSet::new(ns.clone(), RecordType::A, 3600, vec![glue.to_string()]);
            self.ensure(&zone, &glue, None).await?;
        }
        Ok(())
    }

    /// Deletes a zone (for tests); a zone that does not exist is fine.
    ///
    /// # Errors
    ///
    /// When the API refuses.
    pub async fn delete_zone(&self, zone: &str) -> Result<(), Error> {
        let zone = absolute(zone)?;
        match self
            .send(
                &format!("deleting zone {zone}"),
                self.http.delete(self.zone_url(&zone)),
            )
            .await
        {
            Err(Error::Provider { message, .. })
                if message.contains("404") || message.contains("422") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    fn content(set: &RecordSet, value: &str) -> String {
        if set.rtype == RecordType::TXT {
            txt_presentation(value)
        } else {
            value.to_owned()
        }
    }

    async fn patch(&self, zone: &str, rrset: serde_json::Value, what: &str) -> Result<(), Error> {
        let zone = absolute(zone)?;
        let body = json!({ "rrsets": [rrset] });
        self.send(what, self.http.patch(self.zone_url(&zone)).json(&body))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl DnsProvider for PowerDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn list(&self, zone: &str) -> Result<Vec<RecordSet>, Error> {
        let zone = absolute(zone)?;
        let what = format!("listing zone {zone}");
        let json = self
            .send(&what, self.http.get(self.zone_url(&zone)))
            .await?
            .unwrap_or_default();
        let parsed: Zone = serde_json::from_value(json).map_err(|e| Error::Provider {
            provider: NAME,
            message: format!("{what}: unexpected answer: {e}"),
        })?;
        let mut sets = Vec::new();
        for rrset in parsed.rrsets {
            let Ok(rtype) = rrset.rtype.parse::<RecordType>() else {
                continue;
            };
            let values = rrset
                .records
                .iter()
                .filter(|r| !r.disabled)
                .map(|r| canonical_value(rtype, &r.content, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Provider {
                    provider: NAME,
                    message: format!("{what}: {} {}: {e}", rrset.name, rrset.rtype),
                })?;
            if !values.is_empty() {
                sets.push(RecordSet::new(
                    absolute(&rrset.name)?,
                    rtype,
                    rrset.ttl,
                    values,
                ));
            }
        }
        Ok(sets)
    }

    async fn ensure(
        &self,
        zone: &str,
        desired: &RecordSet,
        _current: Option<&RecordSet>,
    ) -> Result<(), Error> {
        let records: Vec<serde_json::Value> = desired
            .values
            .iter()
            .map(|v| json!({ "content": Self::content(desired, v), "disabled": false }))
            .collect();
        let rrset = json!({
            "name": desired.name,
            "type": desired.rtype.as_str(),
            "ttl": desired.ttl,
            "changetype": "REPLACE",
            "records": records,
        });
        self.patch(
            zone,
            rrset,
            &format!("replacing {} {}", desired.name, desired.rtype),
        )
        .await
    }

    async fn delete(&self, zone: &str, current: &RecordSet) -> Result<(), Error> {
        let rrset = json!({
            "name": current.name,
            "type": current.rtype.as_str(),
            "changetype": "DELETE",
        });
        self.patch(
            zone,
            rrset,
            &format!("deleting {} {}", current.name, current.rtype),
        )
        .await
    }
}

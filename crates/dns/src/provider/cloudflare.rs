//! The Cloudflare API v4: the zone found by name (`GET /zones?name=`),
//! records listed page by page (`GET /zones/{id}/dns_records`), created,
//! updated and deleted one record at a time, a record set being all
//! records of one name and type. `ttl: 1` is Cloudflare's "automatic";
//! `proxied` is managed when the records file sets it. Errors carry
//! Cloudflare's codes, e.g. 81057 (the record already exists) and 81053
//! (a CNAME cannot stand beside an A, AAAA or CNAME record).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{DnsProvider, Secret};
use crate::Error;
use crate::record::{RecordSet, RecordType, absolute, canonical_value};

const NAME: &str = "cloudflare";

/// Cloudflare's API.
pub const API_URL: &str = "https://api.cloudflare.com/client/v4";

/// Records asked for per page.
const PER_PAGE: u32 = 100;

/// A Cloudflare account's zones, through an API token.
#[derive(Debug)]
pub struct Cloudflare {
    api: String,
    token: Secret,
    http: reqwest::Client,
    zone_ids: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiError>,
    result: Option<T>,
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ApiError {
    code: i64,
    message: String,
}

#[derive(Deserialize)]
struct ResultInfo {
    page: u32,
    total_pages: u32,
}

#[derive(Deserialize)]
struct ZoneInfo {
    id: String,
}

/// One Cloudflare DNS record.
#[derive(Debug, Clone, Deserialize)]
struct CfRecord {
    id: String,
    #[serde(rename = "type")]
    rtype: String,
    name: String,
    #[serde(default)]
    content: String,
    ttl: u32,
    #[serde(default)]
    proxied: Option<bool>,
    #[serde(default)]
    priority: Option<u16>,
    #[serde(default)]
    data: Option<Value>,
}

impl CfRecord {
    /// The record's value in canonical form.
    fn value(&self, rtype: RecordType) -> Result<String, Error> {
        let data = self.data.as_ref();
        let field = |k: &str| {
            data.and_then(|d| d.get(k))
                .map(|v| v.to_string().trim_matches('"').to_owned())
        };
        let text = match rtype {
            RecordType::MX => format!("{} {}", self.priority.unwrap_or_default(), self.content),
            RecordType::SRV => match (
                field("priority"),
                field("weight"),
                field("port"),
                field("target"),
            ) {
                (Some(p), Some(w), Some(port), Some(t)) => format!("{p} {w} {port} {t}"),
                _ => format!("{} {}", self.priority.unwrap_or_default(), self.content),
            },
            RecordType::CAA => match (
                field("flags"),
                field("tag"),
                data.and_then(|d| d.get("value")).and_then(Value::as_str),
            ) {
                (Some(f), Some(t), Some(v)) => format!("{f} {t} \"{}\"", v.replace('"', "\\\"")),
                _ => self.content.clone(),
            },
            _ => self.content.clone(),
        };
        canonical_value(rtype, &text, None)
    }
}

/// A name as Cloudflare writes it: no trailing dot.
fn bare(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

impl Cloudflare {
    /// The API at `api` ([`API_URL`], or a test server), with this token.
    ///
    /// # Errors
    ///
    /// When `api` is not a URL or the HTTP client cannot be built.
    pub fn new(api: &str, token: Secret) -> Result<Self, Error> {
        let http = super::http_client(NAME)?;
        Ok(Self {
            api: api.trim_end_matches('/').to_owned(),
            token,
            http,
            zone_ids: Mutex::new(HashMap::new()),
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(Option<T>, Option<ResultInfo>), Error> {
        self.call_with_codes(what, request)
            .await
            .map_err(|(_, e)| e)
    }

    /// As `call`, with Cloudflare's error codes beside the error.
    async fn call_with_codes<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(Option<T>, Option<ResultInfo>), (Vec<i64>, Error)> {
        let response = request.bearer_auth(self.token.expose()).send().await;
        let (status, envelope): (_, Envelope<T>) = super::http_json(NAME, what, response)
            .await
            .map_err(|e| (Vec::new(), e))?;
        if envelope.success && status.is_success() {
            return Ok((envelope.result, envelope.result_info));
        }
        let errors: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| {
                let hint = match e.code {
                    81057 => " (an identical record exists already)",
                    81053 => {
                        " (a CNAME cannot stand beside an A, AAAA or CNAME record of the same name)"
                    }
                    9109 | 10000 => " (check the API token and its permissions)",
                    _ => "",
                };
                format!("error {}: {}{hint}", e.code, e.message)
            })
            .collect();
        Err((
            envelope.errors.iter().map(|e| e.code).collect(),
            Error::Provider {
                provider: NAME,
                message: format!("{what}: HTTP {status}: {}", errors.join("; ")),
            },
        ))
    }

    async fn zone_id(&self, zone: &str) -> Result<String, Error> {
        let zone = absolute(zone)?;
        if let Some(id) = self
            .zone_ids
            .lock()
            .ok()
            .and_then(|m| m.get(&zone).cloned())
        {
            return Ok(id);
        }
        let what = format!("looking up zone {zone}");
        let (zones, _): (Option<Vec<ZoneInfo>>, _) = self
            .call(
                &what,
                self.http
                    .get(format!("{}/zones", self.api))
                    .query(&[("name", bare(&zone))]),
            )
            .await?;
        let id = zones
            .and_then(|z| z.into_iter().next())
            .map(|z| z.id)
            .ok_or_else(|| Error::Provider {
                provider: NAME,
                message: format!(
                    "{what}: no such zone in this account (or the token may not read it)"
                ),
            })?;
        if let Ok(mut m) = self.zone_ids.lock() {
            m.insert(zone, id.clone());
        }
        Ok(id)
    }

    /// Every record of the zone, or of one name and type, all pages.
    async fn records(
        &self,
        zone: &str,
        only: Option<(&str, RecordType)>,
    ) -> Result<Vec<CfRecord>, Error> {
        let id = self.zone_id(zone).await?;
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let mut query = vec![
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            if let Some((name, rtype)) = only {
                query.push(("name", bare(name).to_owned()));
                query.push(("type", rtype.as_str().to_owned()));
            }
            let what = format!("listing records of {zone} (page {page})");
            let (records, info): (Option<Vec<CfRecord>>, _) = self
                .call(
                    &what,
                    self.http
                        .get(format!("{}/zones/{id}/dns_records", self.api))
                        .query(&query),
                )
                .await?;
            out.extend(records.unwrap_or_default());
            match info {
                Some(info) if info.page < info.total_pages && page < 10_000 => page = info.page + 1,
                _ => return Ok(out),
            }
        }
    }

    /// The request body for one value of a record set.
    fn body(set: &RecordSet, value: &str) -> Value {
        let mut body =
            json!({ "type": set.rtype.as_str(), "name": bare(&set.name), "ttl": set.ttl });
        let tokens: Vec<&str> = value.split_whitespace().collect();
        match (set.rtype, tokens.as_slice()) {
            (RecordType::MX, [pref, host]) => {
                body["priority"] = json!(pref.parse::<u16>().unwrap_or_default());
                body["content"] = json!(bare(host));
            }
            (RecordType::SRV, [priority, weight, port, target]) => {
                body["data"] = json!({
                    "priority": priority.parse::<u16>().unwrap_or_default(),
                    "weight": weight.parse::<u16>().unwrap_or_default(),
                    "port": port.parse::<u16>().unwrap_or_default(),
                    "target": bare(target),
                });
            }
            (RecordType::CAA, [flags, tag, ..]) => {
                let quoted = value.splitn(3, ' ').nth(2).unwrap_or_default();
                let inner = quoted
                    .strip_prefix('"')
                    .and_then(|q| q.strip_suffix('"'))
                    .unwrap_or(quoted);
                body["data"] = json!({
                    "flags": flags.parse::<u8>().unwrap_or_default(),
                    "tag": tag,
                    "value": inner.replace("\\\"", "\""),
                });
            }
            (RecordType::CNAME | RecordType::NS, [host]) => body["content"] = json!(bare(host)),
            _ => body["content"] = json!(value),
        }
        if let Some(proxied) = set.proxied {
            body["proxied"] = json!(proxied);
        }
        body
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn list(&self, zone: &str) -> Result<Vec<RecordSet>, Error> {
        let mut sets: std::collections::BTreeMap<(String, RecordType), RecordSet> =
            Default::default();
        for record in self.records(zone, None).await? {
            let Ok(rtype) = record.rtype.parse::<RecordType>() else {
                continue;
            };
            let value = record.value(rtype).map_err(|e| Error::Provider {
                provider: NAME,
                message: format!(
                    "record {} ({} {}): {e}",
                    record.id, record.name, record.rtype
                ),
            })?;
            let name = absolute(&record.name)?;
            let set = sets.entry((name.clone(), rtype)).or_insert_with(|| {
                let mut s = RecordSet::new(name, rtype, record.ttl, Vec::new());
                s.proxied = record.proxied;
                s
            });
            set.values.push(value);
        }
        Ok(sets
            .into_values()
            .map(|s| {
                let proxied = s.proxied;
                let mut set = RecordSet::new(s.name, s.rtype, s.ttl, s.values);
                set.proxied = proxied;
                set
            })
            .collect())
    }

    async fn ensure(
        &self,
        zone: &str,
        desired: &RecordSet,
        _current: Option<&RecordSet>,
    ) -> Result<(), Error> {
        let id = self.zone_id(zone).await?;
        let existing = self
            .records(zone, Some((&desired.name, desired.rtype)))
            .await?;
        let url = format!("{}/zones/{id}/dns_records", self.api);
        let mut spare: Vec<CfRecord> = Vec::new();
        let mut missing: Vec<&String> = desired.values.iter().collect();
        for record in existing {
            let value = record.value(desired.rtype).ok();
            match missing.iter().position(|v| Some(*v) == value.as_ref()) {
                Some(i) => {
                    let v = missing.remove(i);
                    let stale = record.ttl != desired.ttl
                        || desired.proxied.is_some_and(|p| record.proxied != Some(p));
                    if stale {
                        let what = format!("updating {} {} {v}", desired.name, desired.rtype);
                        self.call::<Value>(
                            &what,
                            self.http
                                .put(format!("{url}/{}", record.id))
                                .json(&Self::body(desired, v)),
                        )
                        .await?;
                    }
                }
                None => spare.push(record),
            }
        }
        for v in missing {
            let body = Self::body(desired, v);
            let what = format!("setting {} {} {v}", desired.name, desired.rtype);
            match spare.pop() {
                Some(r) => {
                    self.call::<Value>(&what, self.http.put(format!("{url}/{}", r.id)).json(&body))
                        .await?
                }
                None => {
                    self.call::<Value>(&what, self.http.post(&url).json(&body))
                        .await?
                }
            };
        }
        for r in spare {
            let what = format!("deleting {} {} {}", desired.name, desired.rtype, r.content);
            self.call::<Value>(&what, self.http.delete(format!("{url}/{}", r.id)))
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, zone: &str, current: &RecordSet) -> Result<(), Error> {
        let id = self.zone_id(zone).await?;
        for r in self
            .records(zone, Some((&current.name, current.rtype)))
            .await?
        {
            let what = format!("deleting {} {} {}", current.name, current.rtype, r.content);
            self.call::<Value>(
                &what,
                self.http
                    .delete(format!("{}/zones/{id}/dns_records/{}", self.api, r.id)),
            )
            .await?;
        }
        Ok(())
    }
}

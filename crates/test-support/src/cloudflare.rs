//! A local server speaking the Cloudflare API v4 endpoints Shipshape's DNS
//! provider uses, as Cloudflare documents them (the real API cannot be
//! reached from here): zones looked up by name; DNS records listed page
//! by page (`page`, `per_page`, `result_info`), filtered by `name` and
//! `type`, created, replaced and deleted; bearer-token authentication;
//! the envelope `{success, errors: [{code, message}], messages, result,
//! result_info}`; and the error codes a client has to handle:
//!
//! - 10000 authentication error (HTTP 403);
//! - 81057 an identical record already exists;
//! - 81053 an A, AAAA or CNAME record with that host already exists (a
//!   CNAME cannot share its name with them);
//! - 81044 the record does not exist;
//! - 9021 a TTL that is neither 1 (automatic) nor 60..=86400;
//! - 9004 `proxied` on a type that cannot be proxied.
//!
//! SRV and CAA records take their value as `data` (`{priority, weight,
//! port, target}`, `{flags, tag, value}`); MX takes `priority` beside
//! `content`, as Cloudflare's API does.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::http::{Message, Reply, Server};

#[derive(Debug)]
struct State {
    token: String,
    zones: Vec<(String, String)>,
    records: Vec<Value>,
    next_id: u64,
    max_per_page: usize,
}

/// The fake API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeCloudflare {
    server: Server,
    state: Arc<Mutex<State>>,
}

fn envelope(status: u16, result: Value, info: Option<Value>) -> Reply {
    let mut body = json!({ "success": true, "errors": [], "messages": [], "result": result });
    if let Some(info) = info {
        body["result_info"] = info;
    }
    Reply::json(status, &body.to_string())
}

fn error(status: u16, code: u32, message: &str) -> Reply {
    let body = json!({
        "success": false,
        "errors": [{ "code": code, "message": message }],
        "messages": [],
        "result": null,
    });
    Reply::json(status, &body.to_string())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_of(path: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path.to_owned(), pairs)
}

impl State {
    fn zone_name(&self, id: &str) -> Option<String> {
        self.zones
            .iter()
            .find(|(zid, _)| zid == id)
            .map(|(_, n)| n.clone())
    }

    /// Checks a record body as Cloudflare would and fills in what it
    /// derives (full name, content for SRV/CAA); `Err` is the reply.
    fn validate(
        &self,
        zone_id: &str,
        zone: &str,
        body: &Value,
        replacing: Option<&str>,
    ) -> Result<Value, Reply> {
        let rtype = body["type"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if !["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA"].contains(&rtype.as_str()) {
            return Err(error(400, 1004, "DNS Validation Error: unsupported type"));
        }
        let raw_name = body["name"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let name = if raw_name == "@" || raw_name.is_empty() {
            zone.to_owned()
        } else if raw_name == zone || raw_name.ends_with(&format!(".{zone}")) {
            raw_name
        } else {
            format!("{raw_name}.{zone}")
        };
        let ttl = body["ttl"].as_u64().unwrap_or(1);
        if ttl != 1 && !(60..=86400).contains(&ttl) {
            return Err(error(
                400,
                9021,
                "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
            ));
        }
        let proxiable = ["A", "AAAA", "CNAME"].contains(&rtype.as_str());
        let proxied = body["proxied"].as_bool().unwrap_or(false);
        if proxied && !proxiable {
            return Err(error(400, 9004, "This record type cannot be proxied."));
        }
        let data = body.get("data").cloned().filter(|d| !d.is_null());
        let mut priority = body.get("priority").cloned().filter(|p| !p.is_null());
        let content = match rtype.as_str() {
            "SRV" => {
                let d = data
                    .clone()
                    .ok_or_else(|| error(400, 1004, "DNS Validation Error: SRV needs data"))?;
                priority = Some(d["priority"].clone());
                format!(
                    "{} {} {}",
                    d["weight"],
                    d["port"],
                    d["target"].as_str().unwrap_or_default()
                )
            }
            "CAA" => {
                let d = data
                    .clone()
                    .ok_or_else(|| error(400, 1004, "DNS Validation Error: CAA needs data"))?;
                format!(
                    "{} {} \"{}\"",
                    d["flags"],
                    d["tag"].as_str().unwrap_or_default(),
                    d["value"].as_str().unwrap_or_default()
                )
            }
            "MX" if priority.is_none() => {
                return Err(error(400, 1004, "DNS Validation Error: MX needs priority"));
            }
            _ => body["content"].as_str().unwrap_or_default().to_owned(),
        };
        if content.is_empty() {
            return Err(error(400, 1004, "DNS Validation Error: content is empty"));
        }
        let others = self.records.iter().filter(|r| {
            r["zone_id"] == zone_id
                && r["name"] == name.as_str()
                && Some(r["id"].as_str().unwrap_or_default()) != replacing
        });
        for other in others {
            let other_type = other["type"].as_str().unwrap_or_default();
            if other_type == rtype && other["content"] == content.as_str() {
                return Err(error(400, 81057, "Record already exists."));
            }
            let address_like = |t: &str| ["A", "AAAA", "CNAME"].contains(&t);
            if (rtype == "CNAME" && address_like(other_type))
                || (other_type == "CNAME" && address_like(&rtype))
            {
                return Err(error(
                    400,
                    81053,
                    "An A, AAAA, or CNAME record with that host already exists.",
                ));
            }
        }
        let mut record = json!({
            "zone_id": zone_id,
            "zone_name": zone,
            "name": name,
            "type": rtype,
            "content": content,
            "proxiable": proxiable,
            "proxied": proxied,
            "ttl": ttl,
            "created_on": "2026-01-01T00:00:00Z",
            "modified_on": "2026-01-01T00:00:00Z",
        });
        if let Some(p) = priority {
            record["priority"] = p;
        }
        if let Some(d) = data {
            record["data"] = d;
        }
        Ok(record)
    }

    fn handle(&mut self, request: &Message) -> Reply {
        let expected = format!("Bearer {}", self.token);
        if request.header("authorization") != Some(expected.as_str()) {
            return error(403, 10000, "Authentication error");
        }
        let (method, full_path) = request.method_path();
        let (path, query) = query_of(full_path);
        let param = |k: &str| query.iter().find(|(qk, _)| qk == k).map(|(_, v)| v.clone());
        let parts: Vec<&str> = path.trim_start_matches("/client/v4/").split('/').collect();
        match (method, parts.as_slice()) {
            ("GET", ["zones"]) => {
                let zones: Vec<Value> = self
                    .zones
                    .iter()
                    .filter(|(_, n)| param("name").is_none_or(|want| &want == n))
                    .map(|(id, n)| json!({ "id": id, "name": n, "status": "active" }))
                    .collect();
                let count = zones.len();
                envelope(
                    200,
                    json!(zones),
                    Some(
                        json!({ "page": 1, "per_page": 20, "count": count, "total_count": count, "total_pages": 1 }),
                    ),
                )
            }
            ("GET", ["zones", zid, "dns_records"]) => {
                if self.zone_name(zid).is_none() {
                    return error(
                        404,
                        7003,
                        "Could not route to /zones/..., perhaps your object identifier is invalid?",
                    );
                }
                let name = param("name").map(|n| n.trim_end_matches('.').to_ascii_lowercase());
                let rtype = param("type").map(|t| t.to_ascii_uppercase());
                let matching: Vec<&Value> = self
                    .records
                    .iter()
                    .filter(|r| r["zone_id"] == *zid)
                    .filter(|r| name.as_ref().is_none_or(|n| r["name"] == n.as_str()))
                    .filter(|r| rtype.as_ref().is_none_or(|t| r["type"] == t.as_str()))
                    .collect();
                let per_page = param("per_page")
                    .and_then(|p| p.parse::<usize>().ok())
                    .unwrap_or(100)
                    .clamp(5, self.max_per_page);
                let page = param("page")
                    .and_then(|p| p.parse::<usize>().ok())
                    .unwrap_or(1)
                    .max(1);
                let total = matching.len();
                let pages = total.div_ceil(per_page).max(1);
                let slice: Vec<&Value> = matching
                    .into_iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .collect();
                let info = json!({ "page": page, "per_page": per_page, "count": slice.len(), "total_count": total, "total_pages": pages });
                envelope(200, json!(slice), Some(info))
            }
            ("POST", ["zones", zid, "dns_records"]) => {
                let Some(zone) = self.zone_name(zid) else {
                    return error(404, 7003, "Could not route to /zones/...");
                };
                let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                    return error(400, 9207, "Request body is invalid.");
                };
                match self.validate(zid, &zone, &body, None) {
                    Ok(mut record) => {
                        self.next_id += 1;
                        record["id"] = json!(format!("{:032x}", self.next_id));
                        self.records.push(record.clone());
                        envelope(200, record, None)
                    }
                    Err(reply) => reply,
                }
            }
            ("PUT", ["zones", zid, "dns_records", rid]) => {
                let Some(zone) = self.zone_name(zid) else {
                    return error(404, 7003, "Could not route to /zones/...");
                };
                let Some(index) = self
                    .records
                    .iter()
                    .position(|r| r["id"] == *rid && r["zone_id"] == *zid)
                else {
                    return error(404, 81044, "Record does not exist.");
                };
                let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                    return error(400, 9207, "Request body is invalid.");
                };
                match self.validate(zid, &zone, &body, Some(rid)) {
                    Ok(mut record) => {
                        record["id"] = json!(rid);
                        self.records[index] = record.clone();
                        envelope(200, record, None)
                    }
                    Err(reply) => reply,
                }
            }
            ("DELETE", ["zones", zid, "dns_records", rid]) => {
                let before = self.records.len();
                self.records
                    .retain(|r| !(r["id"] == *rid && r["zone_id"] == *zid));
                if self.records.len() == before {
                    return error(404, 81044, "Record does not exist.");
                }
                envelope(200, json!({ "id": rid }), None)
            }
            _ => error(404, 7000, "No route for that URI"),
        }
    }
}

impl FakeCloudflare {
    /// Serves `zones` (names without the trailing dot) to clients that
    /// present `token`. At most 100 records per page.
    pub fn start(token: &str, zones: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            zones: zones
                .iter()
                .enumerate()
                .map(|(i, z)| (format!("{:032x}", 0xc0ffee_u64 + i as u64), z.to_string()))
                .collect(),
            records: Vec::new(),
            next_id: 0,
            max_per_page: 100,
        }));
        let shared = Arc::clone(&state);
        let server = Server::start(move |request| match shared.lock() {
            Ok(mut state) => state.handle(request),
            Err(_) => error(500, 10001, "internal error"),
        });
        Self { server, state }
    }

    /// The API base URL: `http://127.0.0.1:PORT/client/v4`.
    pub fn url(&self) -> String {
        format!("{}/client/v4", self.server.url().trim_end_matches('/'))
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// Serves at most `n` records per page (Cloudflare's own limits
    /// differ by endpoint), so tests cross page boundaries with few records.
    pub fn set_max_per_page(&self, n: usize) {
        if let Ok(mut s) = self.state.lock() {
            s.max_per_page = n.max(5);
        }
    }

    /// Every record of the zone, as the API would return it.
    pub fn records(&self, zone: &str) -> Vec<Value> {
        self.state
            .lock()
            .map(|s| {
                s.records
                    .iter()
                    .filter(|r| r["zone_name"] == zone)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Message> {
        self.server.received()
    }
}

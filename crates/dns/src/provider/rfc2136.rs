//! RFC 2136 dynamic updates, signed with TSIG (RFC 8945), to a primary
//! server (Knot, BIND, PowerDNS with `dnsupdate=yes`). A zone is listed
//! with a TSIG-signed AXFR. Every ensure and delete carries
//! prerequisites — "this record set holds exactly what the plan saw", or
//! "this record set does not exist" — so a change made by someone else
//! since the plan fails the update (`NXRRSET`/`YXRRSET`) instead of being
//! overwritten.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::{DNSClass, Name, RData, Record, TSigner};

use super::{DnsProvider, Secret};
use crate::Error;
use crate::query::{rand_id, tcp_read, tcp_send};
use crate::record::{RecordSet, RecordType, absolute, rdata_text, to_rdata};
use crate::wire::parse_name;

const NAME: &str = "rfc2136";

/// A primary server that takes TSIG-signed updates.
#[derive(Clone)]
pub struct Rfc2136 {
    server: SocketAddr,
    signer: TSigner,
    key_name: String,
    timeout: Duration,
}

impl std::fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136")
            .field("server", &self.server)
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

impl Rfc2136 {
    /// Updates go to `server`, signed with the key `key_name` and its
    /// base64 `secret`; `algorithm` is `hmac-sha256` (or -sha384,
    /// -sha512). `timeout` bounds each exchange.
    ///
    /// # Errors
    ///
    /// When the algorithm is not one of those or the secret is not base64.
    pub fn new(
        server: SocketAddr,
        key_name: &str,
        algorithm: &str,
        secret: &Secret,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let key = data_encoding::BASE64
            .decode(secret.expose().as_bytes())
            .map_err(|_| {
                Error::Invalid(format!(
                    "the TSIG secret of key {key_name} is not valid base64"
                ))
            })?;
        let algorithm_name = Name::from_ascii(algorithm.trim_end_matches('.').to_ascii_lowercase())
            .map_err(|e| Error::Invalid(format!("TSIG algorithm {algorithm:?}: {e}")))?;
        let alg = TsigAlgorithm::from_name(algorithm_name);
        let signer = TSigner::new(key, alg, parse_name(key_name)?, 300).map_err(|_| {
            Error::Invalid(format!(
                "TSIG algorithm {algorithm:?} is not supported: hmac-sha256, hmac-sha384 or hmac-sha512"
            ))
        })?;
        Ok(Self {
            server,
            signer,
            key_name: key_name.to_owned(),
            timeout,
        })
    }

    fn fail(&self, message: String) -> Error {
        Error::Provider {
            provider: NAME,
            message,
        }
    }

    /// Signs and sends `message` over TCP; reads responses until `done`
    /// says the last one came, checking each one's TSIG.
    async fn exchange(
        &self,
        mut message: Message,
        what: &str,
        mut done: impl FnMut(&Message) -> bool,
    ) -> Result<Vec<Message>, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut verifier = message
            .finalize(&self.signer, now)
            .map_err(|e| self.fail(format!("{what}: cannot sign: {e}")))?;
        let bytes = message
            .to_vec()
            .map_err(|e| self.fail(format!("{what}: cannot encode: {e}")))?;
        let id = message.metadata.id;
        let run = async {
            let mut stream = tcp_send(self.server, &bytes).await?;
            let mut out = Vec::new();
            loop {
                let raw = tcp_read(self.server, &mut stream).await?;
                let response = Message::from_vec(&raw)
                    .map_err(|e| self.fail(format!("{what}: malformed response: {e}")))?;
                if response.metadata.id != id
                    || response.metadata.message_type != MessageType::Response
                {
                    return Err(self.fail(format!("{what}: a response to another message")));
                }
                self.refused(&response, what)?;
                // The first response must be signed; later ones in a
                // transfer may leave it to the next (RFC 8945 5.3.1).
                if let (Some(v), true) = (
                    &mut verifier,
                    response.signature().is_some() || out.is_empty(),
                ) {
                    v.verify(&raw).map_err(|e| {
                        self.fail(format!("{what}: the response's TSIG does not verify: {e}"))
                    })?;
                }
                let last = done(&response);
                out.push(response);
                if last {
                    return Ok(out);
                }
            }
        };
        tokio::time::timeout(self.timeout, run).await.map_err(|_| {
            self.fail(format!(
                "{what}: no answer from {} within {:?}",
                self.server, self.timeout
            ))
        })?
    }

    /// An error naming why the server said no, for any response code but
    /// NOERROR.
    fn refused(&self, response: &Message, what: &str) -> Result<(), Error> {
        let code = response.metadata.response_code;
        if code == ResponseCode::NoError {
            return Ok(());
        }
        let tsig_error = response.signature().and_then(|s| s.data.error);
        let message = match (code, tsig_error) {
            (_, Some(TsigError::BadSig)) => format!(
                "{what}: {} refused the TSIG signature of key {} (BADSIG: the secret does not match the server's)",
                self.server, self.key_name
            ),
            (_, Some(TsigError::BadKey)) => format!(
                "{what}: {} does not know the TSIG key {} (BADKEY: check key_name and algorithm)",
                self.server, self.key_name
            ),
            (_, Some(TsigError::BadTime)) => format!(
                "{what}: {} refused the TSIG time (BADTIME: this machine's clock is off by more than 5 minutes)",
                self.server
            ),
            (ResponseCode::NXRRSet | ResponseCode::YXRRSet, _) => {
                return Err(Error::Conflict(format!(
                    "{what}: the record set changed on {} since the plan was made ({}); plan again",
                    self.server,
                    code.to_str()
                )));
            }
            (ResponseCode::NotAuth, _) => format!(
                "{what}: {} is not authoritative for the zone, or refused key {} (NOTAUTH)",
                self.server, self.key_name
            ),
            (ResponseCode::NotZone, _) => format!("{what}: a name is outside the zone (NOTZONE)"),
            (ResponseCode::Refused, _) => format!(
                "{what}: {} refused (REFUSED: does its ACL allow key {} to update or transfer this zone?)",
                self.server, self.key_name
            ),
            (other, _) => format!("{what}: {} answered {}", self.server, other.to_str()),
        };
        Err(self.fail(message))
    }

    fn update(&self, zone: &str) -> Result<(Message, Name), Error> {
        let origin = parse_name(&absolute(zone)?)?;
        let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Update);
        let mut q = Query::query(origin.clone(), hickory_proto::rr::RecordType::SOA);
        q.set_query_class(DNSClass::IN);
        message.add_query(q);
        Ok((message, origin))
    }

    /// Prerequisite: the record set is exactly `current`, or (none) does
    /// not exist.
    fn prerequisite(
        message: &mut Message,
        name: &Name,
        rtype: RecordType,
        current: Option<&RecordSet>,
    ) -> Result<(), Error> {
        match current {
            Some(set) => {
                for value in &set.values {
                    let mut r = Record::from_rdata(name.clone(), 0, to_rdata(rtype, value)?);
                    r.dns_class = DNSClass::IN;
                    message.answers.push(r);
                }
            }
            None => {
                let mut r = Record::update0(name.clone(), 0, rtype.to_hickory());
                r.dns_class = DNSClass::NONE;
                message.answers.push(r);
            }
        }
        Ok(())
    }

    fn delete_all(message: &mut Message, name: &Name, rtype: RecordType) {
        let mut r = Record::update0(name.clone(), 0, rtype.to_hickory());
        r.dns_class = DNSClass::ANY;
        message.authorities.push(r);
    }

    fn in_zone(&self, zone: &str, name: &str) -> Result<Name, Error> {
        let zone = absolute(zone)?;
        if !crate::record::in_zone(name, &zone) {
            return Err(Error::Invalid(format!(
                "{name} is not inside the zone {zone}"
            )));
        }
        parse_name(name)
    }
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn list(&self, zone: &str) -> Result<Vec<RecordSet>, Error> {
        let zone = absolute(zone)?;
        let origin = parse_name(&zone)?;
        let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
        message.add_query(Query::query(origin, hickory_proto::rr::RecordType::AXFR));
        let mut soas = 0;
        let what = format!("transferring zone {zone} (AXFR)");
        let responses = self
            .exchange(message, &what, |m| {
                soas += m
                    .answers
                    .iter()
                    .filter(|r| matches!(r.data, RData::SOA(_)))
                    .count();
                soas >= 2 || m.answers.is_empty()
            })
            .await?;
        let mut sets: BTreeMap<(String, RecordType), RecordSet> = BTreeMap::new();
        for record in responses.iter().flat_map(|m| &m.answers) {
            let Some(rtype) = RecordType::from_hickory(record.record_type()) else {
                continue;
            };
            let Some(value) = rdata_text(&record.data) else {
                continue;
            };
            let name = record.name.to_ascii().to_ascii_lowercase();
            let set = sets
                .entry((name.clone(), rtype))
                .or_insert_with(|| RecordSet::new(name, rtype, record.ttl, Vec::new()));
            set.ttl = set.ttl.min(record.ttl);
            set.values.push(value);
        }
        Ok(sets
            .into_values()
            .map(|s| RecordSet::new(s.name, s.rtype, s.ttl, s.values))
            .collect())
    }

    async fn ensure(
        &self,
        zone: &str,
        desired: &RecordSet,
        current: Option<&RecordSet>,
    ) -> Result<(), Error> {
        let name = self.in_zone(zone, &desired.name)?;
        let (mut message, _) = self.update(zone)?;
        Self::prerequisite(&mut message, &name, desired.rtype, current)?;
        Self::delete_all(&mut message, &name, desired.rtype);
        for value in &desired.values {
            message.authorities.push(Record::from_rdata(
                name.clone(),
                desired.ttl,
                to_rdata(desired.rtype, value)?,
            ));
        }
        let what = format!("updating {} {}", desired.name, desired.rtype);
        self.exchange(message, &what, |_| true).await.map(|_| ())
    }

    async fn delete(&self, zone: &str, current: &RecordSet) -> Result<(), Error> {
        let name = self.in_zone(zone, &current.name)?;
        let (mut message, _) = self.update(zone)?;
        Self::prerequisite(&mut message, &name, current.rtype, Some(current))?;
        Self::delete_all(&mut message, &name, current.rtype);
        let what = format!("deleting {} {}", current.name, current.rtype);
        self.exchange(message, &what, |_| true).await.map(|_| ())
    }
}

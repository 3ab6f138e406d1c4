//! DNS messages: a query put on the wire, and an answer read off it and
//! classified. [`classify`] is what every check ends in, and it takes
//! whatever bytes a server (or anything pretending to be one) sent.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::record::{RecordType, rdata_text};

/// What a server said about a name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The name has records of this type.
    NoError,
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no records of this type.
    NoData,
    /// The server delegated the name elsewhere instead of answering (a
    /// non-recursive query to a server that is not authoritative for it).
    /// For an NS question about the delegated name itself, `values` holds
    /// the delegation's NS records: what the parent zone serves for it.
    Referral,
    /// The server failed (a zone that did not load, a broken upstream).
    ServFail,
    /// The server refused to answer (not authoritative, not allowed).
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// Any other response code, or no usable answer.
    Error,
}

impl Status {
    /// The name a user sees: `NOERROR`, `NXDOMAIN`, `NODATA`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoError => "NOERROR",
            Self::NxDomain => "NXDOMAIN",
            Self::NoData => "NODATA",
            Self::Referral => "REFERRAL",
            Self::ServFail => "SERVFAIL",
            Self::Refused => "REFUSED",
            Self::Timeout => "TIMEOUT",
            Self::Error => "ERROR",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The status.
    pub status: Status,
    /// Canonical values of the records of the asked type, sorted; for a
    /// name that is an alias, the values at the end of the CNAME chain
    /// the answer carried.
    pub values: Vec<String>,
    /// The smallest TTL among those records.
    pub ttl: Option<u32>,
    /// Whether the server said it is authoritative.
    pub authoritative: bool,
    /// The CNAME chain followed, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The zone named by an SOA in the authority section (negative
    /// answers carry one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The response code, when `status` is [`Status::Error`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
}

impl Answer {
    /// An answer with only a status (no response, or nothing usable).
    pub(crate) fn empty(status: Status) -> Self {
        Self {
            status,
            values: Vec::new(),
            ttl: None,
            authoritative: false,
            aliases: Vec::new(),
            zone: None,
            rcode: None,
        }
    }
}

/// A query for `name` (absolute) and `rtype` with this id, ready to send;
/// `recurse` asks a resolver to resolve it (off for authoritative servers).
///
/// # Errors
///
/// When `name` is not a domain name.
pub fn query(name: &str, rtype: RecordType, id: u16, recurse: bool) -> Result<Vec<u8>, Error> {
    let name = parse_name(name)?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = recurse;
    let mut q = Query::query(name, rtype.to_hickory());
    q.set_query_class(DNSClass::IN);
    message.add_query(q);
    message
        .to_vec()
        .map_err(|e| Error::Invalid(format!("cannot encode a query: {e}")))
}

pub(crate) fn parse_name(name: &str) -> Result<Name, Error> {
    Name::from_ascii(name).map_err(|e| Error::Invalid(format!("bad domain name {name:?}: {e}")))
}

/// Reads a server's response to the query `(id, name, rtype)` and says
/// what it means. Errors: the bytes are not a DNS response to that query
/// (wrong id or question, not a response, malformed) — the caller keeps
/// waiting for the real one, as a resolver would.
///
/// # Errors
///
/// As said above: not a response to that query.
pub fn classify(bytes: &[u8], id: u16, name: &str, rtype: RecordType) -> Result<Answer, Error> {
    let message = Message::from_vec(bytes)
        .map_err(|e| Error::Invalid(format!("malformed DNS response: {e}")))?;
    if message.metadata.message_type != MessageType::Response || message.metadata.id != id {
        return Err(Error::Invalid("not a response to this query".into()));
    }
    let asked = parse_name(name)?;
    let same_question = message.queries.first().is_some_and(|q| {
        q.name().eq_ignore_root_case(&asked) && q.query_type() == rtype.to_hickory()
    });
    if !same_question {
        return Err(Error::Invalid(
            "the response is for another question".into(),
        ));
    }
    Ok(answer_of(&message, &asked, rtype))
}

/// Classifies a parsed response (the question already checked).
pub(crate) fn answer_of(message: &Message, asked: &Name, rtype: RecordType) -> Answer {
    let zone = message.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(_) => Some(r.name.to_ascii().to_ascii_lowercase()),
        _ => None,
    });
    let mut answer = Answer {
        authoritative: message.metadata.authoritative,
        zone,
        ..Answer::empty(Status::Error)
    };
    answer.status = match message.metadata.response_code {
        ResponseCode::NoError => {
            // Follow the CNAME chain inside this answer (bounded: each
            // name at most once).
            let mut current = asked.clone();
            if rtype != RecordType::CNAME {
                while let Some(target) = message.answers.iter().find_map(|r| match &r.data {
                    RData::CNAME(c) if r.name.eq_ignore_root_case(&current) => Some(c.0.clone()),
                    _ => None,
                }) {
                    let text = target.to_ascii().to_ascii_lowercase();
                    if answer.aliases.contains(&text) || answer.aliases.len() > 16 {
                        break;
                    }
                    answer.aliases.push(text);
                    current = target;
                }
            }
            for record in &message.answers {
                if record.name.eq_ignore_root_case(&current)
                    && record.record_type() == rtype.to_hickory()
                {
                    if let Some(text) = rdata_text(&record.data) {
                        answer.values.push(text);
                        answer.ttl = Some(answer.ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                    }
                }
            }
            answer.values.sort();
            answer.values.dedup();
            let delegated = !message.metadata.authoritative
                && message.answers.is_empty()
                && message
                    .authorities
                    .iter()
                    .any(|r| matches!(r.data, RData::NS(_)));
            if !answer.values.is_empty() {
                Status::NoError
            } else if delegated {
                // Asked for the NS records of a delegated name, the parent's
                // servers answer with them in a referral: those are the
                // records the parent zone holds for it.
                if rtype == RecordType::NS {
                    answer.values = message
                        .authorities
                        .iter()
                        .filter(|r| r.name.eq_ignore_root_case(&current))
                        .filter_map(|r| match &r.data {
                            RData::NS(_) => rdata_text(&r.data),
                            _ => None,
                        })
                        .collect();
                    answer.values.sort();
                    answer.values.dedup();
                }
                Status::Referral
            } else {
                Status::NoData
            }
        }
        ResponseCode::NXDomain => Status::NxDomain,
        ResponseCode::ServFail => Status::ServFail,
        ResponseCode::Refused => Status::Refused,
        other => {
            answer.rcode = Some(other.to_str().to_owned());
            Status::Error
        }
    };
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, CNAME, SOA};

    fn respond(
        id: u16,
        name: &str,
        rtype: RecordType,
        code: ResponseCode,
        answers: Vec<Record>,
    ) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.metadata.response_code = code;
        m.metadata.authoritative = true;
        m.add_query(Query::query(
            parse_name(name).unwrap_or_default(),
            rtype.to_hickory(),
        ));
        for a in answers {
            m.add_answer(a);
        }
        m.to_vec().unwrap_or_default()
    }

    fn n(s: &str) -> Name {
        parse_name(s).unwrap_or_default()
    }

    #[test]
    fn follows_cnames_and_names_each_status() -> Result<(), Error> {
        let bytes = respond(
            7,
            "www.example.test.",
            RecordType::A,
            ResponseCode::NoError,
            vec![
                Record::from_rdata(
                    n("www.example.test."),
                    60,
                    RData::CNAME(CNAME(n("web.example.test."))),
                ),
                Record::from_rdata(n("web.example.test."), 30, RData::A(A::new(192, 0, 2, 1))),
            ],
        );
        let a = classify(&bytes, 7, "www.example.test.", RecordType::A)?;
        assert_eq!(a.status, Status::NoError);
        assert_eq!(a.values, vec!["192.0.2.1"]);
        assert_eq!(a.ttl, Some(30));
        assert_eq!(a.aliases, vec!["web.example.test."]);

        let nx = respond(
            8,
            "nope.example.test.",
            RecordType::A,
            ResponseCode::NXDomain,
            vec![],
        );
        assert_eq!(
            classify(&nx, 8, "nope.example.test.", RecordType::A)?.status,
            Status::NxDomain
        );
        let nodata = respond(
            9,
            "www.example.test.",
            RecordType::MX,
            ResponseCode::NoError,
            vec![],
        );
        assert_eq!(
            classify(&nodata, 9, "www.example.test.", RecordType::MX)?.status,
            Status::NoData
        );
        // Another id or question is not the answer.
        assert!(classify(&nodata, 10, "www.example.test.", RecordType::MX).is_err());
        assert!(classify(&nodata, 9, "www.example.test.", RecordType::A).is_err());
        Ok(())
    }

    #[test]
    fn negative_answers_name_their_zone() -> Result<(), Error> {
        let mut m = Message::new(3, MessageType::Response, OpCode::Query);
        m.metadata.response_code = ResponseCode::NXDomain;
        m.add_query(Query::query(
            n("x.example.test."),
            RecordType::A.to_hickory(),
        ));
        m.add_authority(Record::from_rdata(
            n("example.test."),
            60,
            RData::SOA(SOA::new(
                n("ns1.example.test."),
                n("h.example.test."),
                1,
                2,
                3,
                4,
                5,
            )),
        ));
        let bytes = m.to_vec().unwrap_or_default();
        let a = classify(&bytes, 3, "x.example.test.", RecordType::A)?;
        assert_eq!(a.zone.as_deref(), Some("example.test."));
        Ok(())
    }
}

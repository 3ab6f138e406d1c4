//! The dns crate against real servers: PowerDNS (HTTP API) and Knot
//! (RFC 2136 + TSIG) as `scripts/test-services.sh start` runs them, and
//! the local Cloudflare API stand-in.

mod cloudflare;
mod property;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dns::check::{Check, Servers, check};
use dns::plan::{Action, apply, plan, verify};
use dns::provider::powerdns::PowerDns;
use dns::provider::rfc2136::Rfc2136;
use dns::provider::{DnsProvider, Secret};
use dns::records::RecordsFile;
use dns::wire::Status;
use dns::{Error, RecordSet, RecordType};

type R = Result<(), Box<dyn std::error::Error>>;

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A zone name no other test (or earlier run) uses.
fn unique_zone(prefix: &str) -> String {
    format!("{prefix}-{}.test.", std::process::id())
}

async fn pdns_zone(
    server: &test_support::services::PowerDnsServer,
    prefix: &str,
) -> Result<(PowerDns, String), Error> {
    let pdns = PowerDns::new(&server.api, "localhost", Secret::new(&server.api_key))?;
    let zone = unique_zone(prefix);
    pdns.delete_zone(&zone).await?;
    pdns.create_zone(&zone, &[&format!("ns1.{zone}")], [127, 0, 0, 1].into())
        .await?;
    Ok((pdns, zone))
}

fn knot_provider(
    server: &test_support::services::KnotServer,
    secret: &str,
) -> Result<Rfc2136, Error> {
    Rfc2136::new(
        server.dns,
        &server.key_name,
        "hmac-sha256",
        &Secret::new(secret),
        Duration::from_secs(5),
    )
}

/// Empties a Knot zone of everything but its SOA, NS and the NS's address.
async fn reset(provider: &dyn DnsProvider, zone: &str) -> Result<(), Error> {
    for set in provider.list(zone).await? {
        let keep =
            set.rtype == RecordType::NS && set.name == zone || set.name == format!("ns1.{zone}");
        if !keep {
            provider.delete(zone, &set).await?;
        }
    }
    Ok(())
}

fn knot_zone(server: &test_support::services::KnotServer, index: usize) -> String {
    format!("{}.", server.zones[index])
}

fn authoritative(server: SocketAddr) -> Servers {
    Servers::Authoritative {
        via: vec![server],
        port: server.port(),
    }
}

fn records_file(zone: &str, extra: &str) -> Result<RecordsFile, Error> {
    RecordsFile::parse(&test_support::dns::records_file(zone, "tests", extra))
}

/// Apply converges, every record answers on the authoritative servers, a
/// second plan is empty, records nobody declared are left alone, and a
/// record taken out of the file is deleted (and answers NODATA).
async fn converges(provider: &dyn DnsProvider, zone: &str, servers: &Servers) -> R {
    // A record set the file does not manage, there before and after.
    let unmanaged = RecordSet::new(
        format!("legacy.{zone}"),
        RecordType::A,
        60,
        vec!["192.0.2.99".into()],
    );
    provider.ensure(zone, &unmanaged, None).await?;

    // The five types of the "done when", and SRV, CAA and a delegation's NS.
    let more = r#"
[[record]]
name = "_sip._tcp"
type = "SRV"
value = "10 5 5060 sip"

[[record]]
name = "@"
type = "CAA"
value = "0 issue \"letsencrypt.org\""

[[record]]
name = "sub"
type = "NS"
values = ["ns1.elsewhere.example.", "ns2.elsewhere.example."]
"#;
    let file = records_file(zone, more)?;
    let first = plan(&file, &provider.list(zone).await?);
    assert_eq!(first.changes.len(), 8, "{first:#?}");
    assert!(first.changes.iter().all(|c| c.action == Action::Create));
    assert!(first.needs_force.is_empty(), "{:?}", first.needs_force);
    apply(provider, &first, false).await?;
    let verification = verify(
        &first,
        servers,
        Duration::from_secs(30),
        Duration::from_millis(100),
    )
    .await?;
    assert!(verification.converged, "{verification:#?}");

    for set in &file.records {
        let report = check(
            &Check {
                name: set.name.clone(),
                rtype: set.rtype,
                expect: Some(set.values.clone()),
                timeout: Duration::from_secs(2),
            },
            servers,
        )
        .await?;
        assert!(report.ok, "{report:#?}");
    }
    let second = plan(&file, &provider.list(zone).await?);
    assert!(second.is_empty(), "a second plan is not empty: {second:#?}");
    assert!(provider.list(zone).await?.contains(&unmanaged));

    // Take the MX out of the file: exactly it is deleted.
    let smaller = RecordsFile {
        records: file
            .records
            .iter()
            .filter(|r| r.rtype != RecordType::MX)
            .cloned()
            .collect(),
        max_delete_share: 1.0,
        ..file.clone()
    };
    let third = plan(&smaller, &provider.list(zone).await?);
    assert_eq!(third.changes.len(), 1, "{third:#?}");
    assert_eq!(
        (third.changes[0].action, third.changes[0].rtype),
        (Action::Delete, RecordType::MX)
    );
    apply(provider, &third, false).await?;
    assert!(
        verify(
            &third,
            servers,
            Duration::from_secs(30),
            Duration::from_millis(100)
        )
        .await?
        .converged
    );
    let mx = check(
        &Check {
            name: zone.to_owned(),
            rtype: RecordType::MX,
            expect: None,
            timeout: Duration::from_secs(2),
        },
        servers,
    )
    .await?;
    assert!(
        mx.servers
            .iter()
            .all(|s| s.outcome.answer.status == Status::NoData),
        "{mx:#?}"
    );
    assert!(provider.list(zone).await?.contains(&unmanaged));
    assert!(plan(&smaller, &provider.list(zone).await?).is_empty());
    Ok(())
}

#[test]
fn powerdns_apply_converges_and_a_second_plan_is_empty() -> R {
    let Some(server) = test_support::services::powerdns() else {
        return Ok(());
    };
    rt().block_on(async {
        let (pdns, zone) = pdns_zone(&server, "converge").await?;
        converges(&pdns, &zone, &authoritative(server.dns)).await?;
        pdns.delete_zone(&zone).await?;
        Ok(())
    })
}

#[test]
fn knot_apply_through_rfc2136_converges_and_a_second_plan_is_empty() -> R {
    let Some(server) = test_support::services::knot() else {
        return Ok(());
    };
    rt().block_on(async {
        let knot = knot_provider(&server, &server.secret)?;
        let zone = knot_zone(&server, 0);
        reset(&knot, &zone).await?;
        converges(&knot, &zone, &authoritative(server.dns)).await
    })
}

#[test]
fn rfc2136_prerequisites_refuse_a_change_made_since_the_plan() -> R {
    let Some(server) = test_support::services::knot() else {
        return Ok(());
    };
    rt().block_on(async {
        let knot = knot_provider(&server, &server.secret)?;
        let zone = knot_zone(&server, 1);
        reset(&knot, &zone).await?;
        let file = RecordsFile::parse(&format!(
            "zone = \"{zone}\"\n[[record]]\nname = \"www\"\ntype = \"A\"\nvalue = \"192.0.2.1\""
        ))?;
        let stale = plan(&file, &knot.list(&zone).await?);
        assert_eq!(stale.changes[0].action, Action::Create);
        // Someone else creates the record set after the plan was made.
        let theirs = RecordSet::new(
            format!("www.{zone}"),
            RecordType::A,
            60,
            vec!["192.0.2.77".into()],
        );
        knot.ensure(&zone, &theirs, None).await?;
        let err = apply(&knot, &stale, false)
            .await
            .err()
            .ok_or("a stale plan was applied")?;
        let Error::Apply { source, .. } = &err else {
            return Err(format!("not an apply error: {err}").into());
        };
        assert!(matches!(**source, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains("changed"), "{err}");
        // Their record is intact.
        assert!(knot.list(&zone).await?.contains(&theirs));

        // An update against values that are no longer there fails too.
        let mut outdated = theirs.clone();
        outdated.values = vec!["192.0.2.5".into()];
        let mine = RecordSet::new(
            theirs.name.clone(),
            RecordType::A,
            60,
            vec!["192.0.2.6".into()],
        );
        let err = knot
            .ensure(&zone, &mine, Some(&outdated))
            .await
            .err()
            .ok_or("clobbered")?;
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        // Against what is there, it goes through.
        knot.ensure(&zone, &mine, Some(&theirs)).await?;
        assert!(knot.list(&zone).await?.contains(&mine));
        Ok(())
    })
}

#[test]
fn a_wrong_tsig_key_is_refused_with_a_clear_error() -> R {
    let Some(server) = test_support::services::knot() else {
        return Ok(());
    };
    rt().block_on(async {
        let zone = knot_zone(&server, 2);
        let wrong_secret = "d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nMTI=";
        let wrong = knot_provider(&server, wrong_secret)?;
        let set = RecordSet::new(
            format!("www.{zone}"),
            RecordType::A,
            60,
            vec!["192.0.2.1".into()],
        );
        for err in [
            wrong
                .list(&zone)
                .await
                .err()
                .ok_or("AXFR with a wrong secret worked")?,
            wrong
                .ensure(&zone, &set, None)
                .await
                .err()
                .ok_or("update with a wrong secret worked")?,
        ] {
            let text = err.to_string();
            assert!(
                text.contains("BADSIG") && text.contains(&server.key_name),
                "{text}"
            );
            assert!(
                !text.contains(wrong_secret) && !text.contains(&server.secret),
                "{text}"
            );
        }
        let unknown = Rfc2136::new(
            server.dns,
            "nobody",
            "hmac-sha256",
            &Secret::new(&server.secret),
            Duration::from_secs(5),
        )?;
        let text = unknown
            .list(&zone)
            .await
            .err()
            .ok_or("an unknown key worked")?
            .to_string();
        assert!(text.contains("BADKEY") && text.contains("nobody"), "{text}");
        Ok(())
    })
}

async fn status_of(server: SocketAddr, name: &str, rtype: RecordType) -> Result<Status, Error> {
    let report = check(
        &Check {
            name: name.into(),
            rtype,
            expect: None,
            timeout: Duration::from_millis(700),
        },
        &Servers::Resolvers(vec![server]),
    )
    .await?;
    Ok(report.servers[0].outcome.answer.status.clone())
}

#[test]
fn nxdomain_nodata_servfail_refused_and_timeout_are_told_apart() -> R {
    let (Some(knot), Some(pdns)) = (
        test_support::services::knot(),
        test_support::services::powerdns(),
    ) else {
        return Ok(());
    };
    rt().block_on(async {
        let zone = knot_zone(&knot, 2);
        assert_eq!(
            status_of(knot.dns, &format!("ns1.{zone}"), RecordType::A).await?,
            Status::NoError
        );
        assert_eq!(
            status_of(knot.dns, &format!("nope.{zone}"), RecordType::A).await?,
            Status::NxDomain
        );
        assert_eq!(
            status_of(knot.dns, &format!("ns1.{zone}"), RecordType::MX).await?,
            Status::NoData
        );
        assert_eq!(
            status_of(knot.dns, "www.broken.test", RecordType::A).await?,
            Status::ServFail
        );
        assert_eq!(
            status_of(knot.dns, "www.example.org", RecordType::A).await?,
            Status::Refused
        );

        let (provider, pzone) = pdns_zone(&pdns, "status").await?;
        assert_eq!(
            status_of(pdns.dns, &format!("ns1.{pzone}"), RecordType::A).await?,
            Status::NoError
        );
        assert_eq!(
            status_of(pdns.dns, &format!("nope.{pzone}"), RecordType::A).await?,
            Status::NxDomain
        );
        assert_eq!(
            status_of(pdns.dns, &pzone, RecordType::TXT).await?,
            Status::NoData
        );
        assert_eq!(
            status_of(pdns.dns, "www.example.org", RecordType::A).await?,
            Status::Refused
        );
        provider.delete_zone(&pzone).await?;

        // A server that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0")?;
        assert_eq!(
            status_of(silent.local_addr()?, "www.example.org", RecordType::A).await?,
            Status::Timeout
        );
        Ok(())
    })
}

/// A DNS server on UDP that answers `A 192.0.2.1` to anything, but only
/// once all of its `barrier`'s servers have received their query: a
/// check that asked one server after another would see the first one
/// time out.
async fn barrier_server(
    socket: tokio::net::UdpSocket,
    barrier: Arc<tokio::sync::Barrier>,
) -> std::io::Result<()> {
    let mut buf = [0u8; 512];
    let (n, peer) = socket.recv_from(&mut buf).await?;
    barrier.wait().await;
    let mut reply = buf[..n].to_vec();
    reply[2] |= 0x84; // QR, AA
    reply[3] = 0; // NOERROR
    reply[6..8].copy_from_slice(&1u16.to_be_bytes()); // ANCOUNT
    reply[8..12].fill(0); // NSCOUNT, ARCOUNT (drop any EDNS)
    let question_end = 12 + buf[12..n].iter().position(|&b| b == 0).unwrap_or(0) + 1 + 4;
    reply.truncate(question_end);
    reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    socket.send_to(&reply, peer).await?;
    Ok(())
}

#[test]
fn a_propagation_check_asks_five_resolvers_at_once() -> R {
    rt().block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(5));
        let mut servers = Vec::new();
        for _ in 0..5 {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            servers.push(socket.local_addr()?);
            tokio::spawn(barrier_server(socket, Arc::clone(&barrier)));
        }
        let report = check(
            &Check {
                name: "www.example.test".into(),
                rtype: RecordType::A,
                expect: Some(vec!["192.0.2.1".into()]),
                timeout: Duration::from_secs(5),
            },
            &Servers::Resolvers(servers),
        )
        .await?;
        assert!(report.ok && report.consistent, "{report:#?}");
        assert_eq!(report.servers.len(), 5);
        Ok(())
    })
}

#[test]
fn deleting_much_of_a_zone_or_adopting_a_record_needs_force() -> R {
    let Some(server) = test_support::services::powerdns() else {
        return Ok(());
    };
    rt().block_on(async {
        let (pdns, zone) = pdns_zone(&server, "force").await?;
        let file = records_file(&zone, "")?;
        apply(&pdns, &plan(&file, &pdns.list(&zone).await?), false).await?;

        // The file emptied: deleting 5 of the zone's 7 record sets.
        let empty = RecordsFile {
            records: Vec::new(),
            ..file.clone()
        };
        let before = pdns.list(&zone).await?;
        let deleting = plan(&empty, &before);
        assert_eq!((deleting.changes.len(), deleting.zone_sets), (5, 7));
        assert!(!deleting.needs_force.is_empty());
        let err = apply(&pdns, &deleting, false)
            .await
            .err()
            .ok_or("applied without --force")?;
        assert!(matches!(err, Error::NeedsForce(_)), "{err}");
        assert_eq!(pdns.list(&zone).await?, before);

        // An unmarked record set with other values is not overwritten
        // without force.
        let theirs = RecordSet::new(
            format!("api.{zone}"),
            RecordType::A,
            60,
            vec!["192.0.2.50".into()],
        );
        pdns.ensure(&zone, &theirs, None).await?;
        let adopting = records_file(
            &zone,
            "[[record]]\nname = \"api\"\ntype = \"A\"\nvalue = \"192.0.2.51\"",
        )?;
        let p = plan(&adopting, &pdns.list(&zone).await?);
        assert!(p.changes.iter().any(|c| c.action == Action::Adopt));
        assert!(matches!(
            apply(&pdns, &p, false).await,
            Err(Error::NeedsForce(_))
        ));
        assert!(pdns.list(&zone).await?.contains(&theirs));
        apply(&pdns, &p, true).await?;
        assert!(plan(&adopting, &pdns.list(&zone).await?).is_empty());
        pdns.delete_zone(&zone).await?;
        Ok(())
    })
}

//! The Cloudflare provider against the local stand-in for its API.

use dns::plan::{apply, plan};
use dns::provider::cloudflare::Cloudflare;
use dns::provider::{DnsProvider, Secret};
use dns::records::RecordsFile;
use dns::{RecordSet, RecordType};
use test_support::cloudflare::FakeCloudflare;

use crate::{R, rt};

const TOKEN: &str = "cf-test-token-5f2b9c";

/// The shared records file, plus a proxied record with automatic TTL,
/// an SRV and a CAA (Cloudflare takes those two as `data`).
fn file(extra: &str) -> Result<RecordsFile, dns::Error> {
    let cloudflare_only = r#"
[[record]]
name = "cdn"
type = "A"
value = "192.0.2.20"
proxied = true
ttl = 1

[[record]]
name = "_sip._tcp"
type = "SRV"
value = "10 5 5060 sip"

[[record]]
name = "@"
type = "CAA"
value = "0 issue \"letsencrypt.org\""
"#;
    RecordsFile::parse(&test_support::dns::records_file(
        "example.com",
        "cf-tests",
        &format!("{cloudflare_only}{extra}"),
    ))
}

#[test]
fn cloudflare_apply_converges_across_pages_and_leaves_other_records_alone() -> R {
    let fake = FakeCloudflare::start(TOKEN, &["example.com", "example.net"]);
    fake.set_max_per_page(5);
    let cf = Cloudflare::new(&fake.url(), Secret::new(TOKEN))?;
    rt().block_on(async {
        let zone = "example.com.";
        // Twelve records nobody declared: the zone spans several pages.
        let mut unmanaged = Vec::new();
        for i in 0..12 {
            let set = RecordSet::new(
                format!("host{i}.example.com."),
                RecordType::A,
                300,
                vec![format!("192.0.2.{}", 100 + i)],
            );
            cf.ensure(zone, &set, None).await?;
            unmanaged.push(set);
        }
        let records = file("")?;
        let first = plan(&records, &cf.list(zone).await?);
        assert_eq!(first.changes.len(), records.records.len());
        apply(&cf, &first, false).await?;

        let listed = cf.list(zone).await?;
        for want in &records.records {
            let got = listed
                .iter()
                .find(|s| s.key() == want.key())
                .ok_or_else(|| format!("{} {} missing", want.name, want.rtype))?;
            assert_eq!(
                (&got.values, got.ttl),
                (&want.values, want.ttl),
                "{}",
                want.name
            );
        }
        let cdn = listed
            .iter()
            .find(|s| s.name == "cdn.example.com." && s.rtype == RecordType::A);
        assert_eq!(cdn.and_then(|s| s.proxied), Some(true));
        for set in &unmanaged {
            let got = listed.iter().find(|s| s.key() == set.key());
            assert_eq!(got.map(|s| &s.values), Some(&set.values));
        }
        assert!(
            plan(&records, &listed).is_empty(),
            "{:#?}",
            plan(&records, &listed)
        );
        // Pagination was followed: 12 + 7 + 6 markers = 25 records, 5 a page.
        assert!(fake.records("example.com").len() >= 25);
        assert!(
            fake.requests()
                .iter()
                .any(|r| r.method_path().1.contains("page=5")),
            "the client never asked for page 5"
        );

        // One value changed: updated in place, not deleted and re-created.
        let ids_before: Vec<String> = fake
            .records("example.com")
            .iter()
            .map(|r| r["id"].to_string())
            .collect();
        let mut changed = file("")?;
        changed.records[0].values = vec!["192.0.2.10".into(), "192.0.2.12".into()];
        let second = plan(&changed, &cf.list(zone).await?);
        assert_eq!(second.changes.len(), 1);
        apply(&cf, &second, false).await?;
        let ids_after: Vec<String> = fake
            .records("example.com")
            .iter()
            .map(|r| r["id"].to_string())
            .collect();
        assert_eq!(ids_before, ids_after);
        assert!(plan(&changed, &cf.list(zone).await?).is_empty());
        Ok(())
    })
}

#[test]
fn cloudflare_errors_carry_their_codes_and_never_the_token() -> R {
    let fake = FakeCloudflare::start(TOKEN, &["example.com"]);
    let cf = Cloudflare::new(&fake.url(), Secret::new(TOKEN))?;
    rt().block_on(async {
        let zone = "example.com.";
        // 81053: an A record where a CNAME stands.
        let cname = RecordSet::new("shop.example.com.".into(), RecordType::CNAME, 300, vec!["shops.example.net.".into()]);
        cf.ensure(zone, &cname, None).await?;
        let records = RecordsFile::parse(
            "zone = \"example.com\"\n[[record]]\nname = \"shop\"\ntype = \"A\"\nvalue = \"192.0.2.1\"",
        )?;
        let err = apply(&cf, &plan(&records, &cf.list(zone).await?), false)
            .await
            .err()
            .ok_or("an A beside a CNAME was accepted")?;
        assert!(err.to_string().contains("81053"), "{err}");

        // 9021: a TTL Cloudflare does not take.
        let short = RecordSet::new("short.example.com.".into(), RecordType::A, 30, vec!["192.0.2.2".into()]);
        let err = cf.ensure(zone, &short, None).await.err().ok_or("ttl 30 was accepted")?;
        assert!(err.to_string().contains("9021"), "{err}");

        // 81057: the API refuses an identical record; ensure never sends one.
        let a = RecordSet::new("dup.example.com.".into(), RecordType::A, 300, vec!["192.0.2.3".into()]);
        cf.ensure(zone, &a, None).await?;
        cf.ensure(zone, &a, None).await?;
        let zone_id = fake.records("example.com")[0]["zone_id"].as_str().unwrap_or_default().to_owned();
        let raw = test_support::http::request(
            fake.addr(),
            "POST",
            &format!("/client/v4/zones/{zone_id}/dns_records"),
            &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Type", "application/json")],
            br#"{"type":"A","name":"dup","content":"192.0.2.3","ttl":300}"#,
        )?;
        assert!(raw.text().contains("81057"), "{}", raw.text());
        let dups = fake.records("example.com").iter().filter(|r| r["name"] == "dup.example.com").count();
        assert_eq!(dups, 1);

        // 10000: a wrong token; the error does not echo any token.
        let wrong = Cloudflare::new(&fake.url(), Secret::new("not-the-token-77"))?;
        let text = wrong.list(zone).await.err().ok_or("a wrong token worked")?.to_string();
        assert!(text.contains("10000") && text.contains("token"), "{text}");
        assert!(!text.contains("not-the-token-77") && !text.contains(TOKEN), "{text}");

        // A zone the account does not have.
        let text = cf.list("missing.example.").await.err().ok_or("a missing zone listed")?.to_string();
        assert!(text.contains("no such zone"), "{text}");
        Ok(())
    })
}

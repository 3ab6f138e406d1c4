//! dnsctl against real PowerDNS and Knot, as a user runs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dns::provider::Secret;
use dns::provider::powerdns::PowerDns;
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

fn dnsctl(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dnsctl"))
        .args(args)
        .env_remove("PDNS_API_KEY")
        .env_remove("DNS_TSIG_SECRET")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run dnsctl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// apply converges, `check --authoritative` confirms every record, a
/// second plan is empty, a second apply changes nothing.
fn apply_check_replan(
    dir: &Path,
    zone: &str,
    provider: &str,
    env: &[(&str, &str)],
    dns: std::net::SocketAddr,
) {
    let records_path = dir.join("records.toml");
    std::fs::write(
        &records_path,
        test_support::dns::records_file(zone, "dnsctl-tests", ""),
    )
    .expect("write records");
    let provider_path = dir.join("provider.toml");
    std::fs::write(&provider_path, provider).expect("write provider");
    let files = [
        "--records",
        records_path.to_str().expect("utf-8 path"),
        "--provider",
        provider_path.to_str().expect("utf-8 path"),
    ];

    // What an earlier run left: the owner's own records, removed with an
    // empty records file (only what the owner's markers name goes).
    let empty_path = dir.join("empty.toml");
    std::fs::write(
        &empty_path,
        format!("zone = \"{zone}\"\nowner = \"dnsctl-tests\"\n"),
    )
    .expect("write");
    let cleanup = [
        "apply",
        "--records",
        empty_path.to_str().expect("utf-8 path"),
        "--provider",
        provider_path.to_str().expect("utf-8 path"),
        "--force",
    ];
    assert_eq!(dnsctl(&cleanup, env).code, 0);

    let plan = dnsctl(&[&["plan"][..], &files, &["--json"]].concat(), env);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(
        plan.json()["changes"].as_array().map(Vec::len),
        Some(5),
        "{}",
        plan.stdout
    );

    let apply = dnsctl(
        &[
            &["apply"][..],
            &files,
            &["--json", "--verify-timeout", "30s"],
        ]
        .concat(),
        env,
    );
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert_eq!(
        apply.json()["verification"]["converged"],
        Value::Bool(true),
        "{}",
        apply.stdout
    );

    let port = dns.port().to_string();
    let resolver = dns.to_string();
    for (name, rtype, values) in test_support::dns::expectations(zone) {
        let mut args = vec![
            "check",
            &name,
            "--type",
            rtype,
            "--authoritative",
            "--resolver",
            &resolver,
            "--port",
            &port,
        ];
        for v in &values {
            args.extend(["--expect", v]);
        }
        let check = dnsctl(&args, &[]);
        assert_eq!(
            check.code, 0,
            "check {name} {rtype}: {}{}",
            check.stdout, check.stderr
        );
        assert!(
            check.stdout.contains("1/1 servers agree"),
            "{}",
            check.stdout
        );
    }

    let again = dnsctl(&[&["plan"][..], &files, &["--json"]].concat(), env);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let json = again.json();
    assert_eq!(json["changes"], Value::Array(vec![]), "{}", again.stdout);
    assert_eq!(json["markers"], Value::Array(vec![]), "{}", again.stdout);
    let text = dnsctl(&[&["apply"][..], &files].concat(), env);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("no changes"), "{}", text.stdout);
}

#[test]
fn apply_on_powerdns_converges_and_check_confirms_every_record() {
    let Some(server) = test_support::services::powerdns() else {
        return;
    };
    let zone = format!("dnsctl-{}.test.", std::process::id());
    let pdns =
        PowerDns::new(&server.api, "localhost", Secret::new(&server.api_key)).expect("client");
    rt().block_on(async {
        pdns.delete_zone(&zone).await.expect("delete zone");
        pdns.create_zone(&zone, &[&format!("ns1.{zone}")], [127, 0, 0, 1].into())
            .await
            .expect("create zone");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("pdns.key");
    std::fs::write(&key_file, format!("{}\n", server.api_key)).expect("key file");
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("a secret is private");
    let provider = format!(
        "provider = \"powerdns\"\n[powerdns]\nurl = \"{}\"\napi_key_file = \"{}\"\n[verify]\nresolvers = [\"{}\"]\nport = {}\n",
        server.api,
        key_file.display(),
        server.dns,
        server.dns.port()
    );
    apply_check_replan(dir.path(), &zone, &provider, &[], server.dns);
    rt().block_on(pdns.delete_zone(&zone)).expect("delete zone");
}

#[test]
fn apply_on_knot_converges_and_check_confirms_every_record() {
    let Some(server) = test_support::services::knot() else {
        return;
    };
    let zone = format!("{}.", server.zones[3]);
    let dir = tempfile::tempdir().expect("tempdir");
    let provider = format!(
        "provider = \"rfc2136\"\n[rfc2136]\nserver = \"{}\"\nkey_name = \"{}\"\n[verify]\nresolvers = [\"{}\"]\nport = {}\n",
        server.dns,
        server.key_name,
        server.dns,
        server.dns.port()
    );
    apply_check_replan(
        dir.path(),
        &zone,
        &provider,
        &[("DNS_TSIG_SECRET", &server.secret)],
        server.dns,
    );

    // A wrong secret: exit 1, BADSIG named, no secret printed.
    let wrong = "d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nMTI=";
    let records_path = dir.path().join("records.toml");
    let provider_path = dir.path().join("provider.toml");
    let plan = |env: &[(&str, &str)]| {
        let args = [
            "plan",
            "--records",
            records_path.to_str().expect("utf-8"),
            "--provider",
            provider_path.to_str().expect("utf-8"),
        ];
        dnsctl(&args, env)
    };
    let run = plan(&[("DNS_TSIG_SECRET", wrong)]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("BADSIG"), "{}", run.stderr);
    assert!(!run.stderr.contains(wrong) && !run.stdout.contains(wrong));
    // No secret at all: the variable to set is named.
    let run = plan(&[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("DNS_TSIG_SECRET"), "{}", run.stderr);
}

#[test]
fn check_exits_4_naming_nxdomain_nodata_and_servfail() {
    let Some(server) = test_support::services::knot() else {
        return;
    };
    let resolver = server.dns.to_string();
    let zone = &server.zones[2];
    for (name, rtype, status) in [
        (format!("nope.{zone}"), "A", "NXDOMAIN"),
        (format!("ns1.{zone}"), "MX", "NODATA"),
        ("www.broken.test".to_owned(), "A", "SERVFAIL"),
    ] {
        let run = dnsctl(
            &["check", &name, "--type", rtype, "--resolver", &resolver],
            &[],
        );
        assert_eq!(run.code, 4, "{name}: {}", run.stdout);
        assert!(run.stdout.contains(status), "{name}: {}", run.stdout);
        let json = dnsctl(
            &[
                "check",
                &name,
                "--type",
                rtype,
                "--resolver",
                &resolver,
                "--json",
            ],
            &[],
        );
        assert_eq!(json.code, 4);
        assert_eq!(
            json.json()["servers"][0]["status"],
            Value::String(status.into()),
            "{}",
            json.stdout
        );
    }
    // The right answer, and a wrong expectation of it.
    let ns1 = format!("ns1.{zone}");
    assert_eq!(
        dnsctl(
            &[
                "check",
                &ns1,
                "--resolver",
                &resolver,
                "--expect",
                "127.0.0.1"
            ],
            &[]
        )
        .code,
        0
    );
    let wrong = dnsctl(
        &[
            "check",
            &ns1,
            "--resolver",
            &resolver,
            "--expect",
            "127.0.0.2",
        ],
        &[],
    );
    assert_eq!(wrong.code, 4);
    assert!(
        wrong.stdout.contains("0/1 servers agree"),
        "{}",
        wrong.stdout
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(dnsctl(&["check"], &[]).code, 2);
    assert_eq!(dnsctl(&["apply", "--records", "x.toml"], &[]).code, 2);
    assert_eq!(
        dnsctl(&["check", "example.com", "--port", "53"], &[]).code,
        2
    );
    let bad_type = dnsctl(
        &[
            "check",
            "example.com",
            "--type",
            "PTRX",
            "--resolver",
            "127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(bad_type.code, 2);
    assert!(
        bad_type.stderr.contains("unknown record type"),
        "{}",
        bad_type.stderr
    );
}

#[test]
fn propagation_waits_until_every_server_answers_the_new_value() {
    use std::io::{BufRead, BufReader};

    use dns::DnsProvider;
    use dns::provider::rfc2136::Rfc2136;
    use dns::{RecordSet, RecordType};

    let Some(server) = test_support::services::knot() else {
        return;
    };
    let zone = format!("{}.", server.zones[2]);
    let name = format!("propagation.{zone}");
    let knot = Rfc2136::new(
        server.dns,
        &server.key_name,
        "hmac-sha256",
        &Secret::new(&server.secret),
        Duration::from_secs(5),
    )
    .expect("client");
    rt().block_on(async {
        for set in knot.list(&zone).await.expect("list") {
            if set.name == name {
                knot.delete(&zone, &set).await.expect("reset");
            }
        }
    });
    let resolver = server.dns.to_string();
    let port = server.dns.port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnsctl"))
        .args([
            "propagation",
            &name,
            "--expect",
            "192.0.2.99",
            "--resolver",
            &resolver,
        ])
        .args(["--port", &port, "--wait", "60s", "--interval", "100ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dnsctl");
    // It reports the first round (nobody agrees yet) ...
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read");
    assert!(line.contains("0/2 servers agree"), "{line}");
    // ... and finishes once the record exists everywhere.
    let set = RecordSet::new(name.clone(), RecordType::A, 60, vec!["192.0.2.99".into()]);
    rt().block_on(knot.ensure(&zone, &set, None))
        .expect("create");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("2/2 servers agree"), "{stdout}");
}

/// Durations are written as in every Shipshape flag and config file; a
/// bare number is a usage error, with the grammar in the message.
#[test]
fn duration_flags_take_humantimes_grammar() {
    let Some(server) = test_support::services::knot() else {
        return;
    };
    let resolver = server.dns.to_string();
    let ask = |timeout: &str| {
        dnsctl(
            &[
                "check",
                "ns1.k1.test",
                "--resolver",
                &resolver,
                "--timeout",
                timeout,
                "--expect",
                "127.0.0.1",
                "--json",
            ],
            &[],
        )
    };
    let run = ask("1h30m");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["ok"], true);
    let run = ask("90");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("1h30m"), "{}", run.stderr);
}

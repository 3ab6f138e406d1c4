//! `schedule next`, `backup --time`, `prune`, `run` and `history`.

use std::collections::BTreeSet;
use std::fs;

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::Sandbox;

fn config(sb: &Sandbox, jobs: &str) -> String {
    let path = sb.path("backup.toml");
    sb.repo("repo");
    sb.ok([
        "keygen",
        "--output",
        sb.path("id.txt").to_str().expect("utf-8"),
    ]);
    fs::write(
        &path,
        format!(
            "[repositories.main]\nlocation = \"repo\"\n\n[keys.ops]\nidentity_file = \"id.txt\"\n\n{jobs}"
        ),
    )
    .expect("config");
    path.to_str().expect("utf-8").to_owned()
}

fn job(name: &str, schedule: &str) -> String {
    format!(
        "[jobs.{name}]\nsource = {{ command = [\"echo\", \"{name}\"] }}\nrepository = \"main\"\n\
         key = \"ops\"\nschedule = \"{schedule}\"\ntime_zone = \"America/Chicago\"\n\n"
    )
}

#[test]
fn schedule_next_is_right_across_dst() {
    let sb = Sandbox::new();
    let cfg = config(
        &sb,
        &[
            job("three", "0 3 * * *"),
            job("gap", "30 2 * * *"),
            job("twice", "30 1 * * *"),
        ]
        .concat(),
    );
    let next = |job: &str, after: &str, count: &str| {
        sb.ok([
            "schedule", "next", "--config", &cfg, "--job", job, "--after", after, "--count", count,
        ])
    };
    assert_eq!(
        next("three", "2027-03-13T00:00:00Z", "2"),
        "2027-03-13T03:00:00-06:00\n2027-03-14T03:00:00-05:00\n"
    );
    // 02:30 does not exist on 2027-03-14: once, at the end of the gap.
    let gap = next("gap", "2027-03-13T12:00:00Z", "2");
    assert_eq!(
        gap,
        "2027-03-14T03:00:00-05:00\n2027-03-15T02:30:00-05:00\n"
    );
    // 01:30 happens twice on 2026-11-01: once, the first time.
    let twice = next("twice", "2026-10-31T12:00:00Z", "2");
    assert_eq!(
        twice,
        "2026-11-01T01:30:00-05:00\n2026-11-02T01:30:00-06:00\n"
    );

    let out = sb.run(["schedule", "next", "--config", &cfg, "--job", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("three"));
}

/// restic's rules read independently: the newest backup of each of the N
/// newest periods per rule, plus the oldest when a rule has count left.
fn restic_keeps(times: &[DateTime<Utc>], zone: &Tz, rules: &[(usize, &str)]) -> BTreeSet<usize> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(times[i]));
    let mut keep = BTreeSet::new();
    for &(n, fmt) in rules {
        let period = |i: usize| {
            let t = times[i].with_timezone(zone);
            if fmt == "week" {
                format!("{}-{}", t.iso_week().year(), t.iso_week().week())
            } else {
                t.format(fmt).to_string()
            }
        };
        let mut seen: Vec<String> = Vec::new();
        for &i in &order {
            let p = period(i);
            if !seen.contains(&p) {
                seen.push(p);
                if seen.len() <= n {
                    keep.insert(i);
                }
            }
        }
        let oldest = order[order.len() - 1];
        let before: BTreeSet<String> = order[..order.len() - 1]
            .iter()
            .map(|&i| period(i))
            .collect();
        if before.len() < n {
            keep.insert(oldest);
        }
    }
    keep
}

#[test]
fn prune_keeps_exactly_what_restic_keeps() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let repo = repo.to_str().expect("utf-8");
    let start = Utc
        .with_ymd_and_hms(2026, 9, 1, 8, 0, 0)
        .single()
        .expect("t");
    let times: Vec<DateTime<Utc>> = (0..60).map(|d| start + TimeDelta::days(d)).collect();
    let mut ids = Vec::new();
    for t in &times {
        let id = sb.ok([
            "backup",
            "--repo",
            repo,
            "--name",
            "app",
            "-q",
            "--time",
            &t.to_rfc3339(),
            "--",
            "echo",
            "data",
        ]);
        ids.push(id.trim().to_owned());
    }
    let zone: Tz = "America/Chicago".parse().expect("zone");
    let want: BTreeSet<String> = restic_keeps(
        &times,
        &zone,
        &[(7, "%Y-%m-%d"), (4, "week"), (12, "%Y-%m")],
    )
    .into_iter()
    .map(|i| ids[i].clone())
    .collect();
    let policy = [
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "12",
        "--time-zone",
        "America/Chicago",
    ];
    let dry = sb.ok(["prune", "--repo", repo, "--dry-run", "--json"]
        .into_iter()
        .chain(policy));
    let dry: serde_json::Value = serde_json::from_str(&dry).expect("json");
    let decisions = dry["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 60);
    let kept: BTreeSet<String> = decisions
        .iter()
        .filter(|d| !d["keep"].as_array().expect("keep").is_empty())
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(kept, want);
    // The backups carry the --time given.
    let list: serde_json::Value =
        serde_json::from_str(&sb.ok(["list", "--repo", repo, "--json"])).expect("json");
    assert_eq!(list[0]["started_at"], "2026-09-01T08:00:00Z");
    // The text dry run names a rule per kept backup, and removes nothing.
    let text = sb.ok(["prune", "--repo", repo].into_iter().chain(policy));
    assert!(text.contains("keep (daily"), "{text}");
    assert!(text.contains("remove"), "{text}");
    assert_eq!(
        sb.ok(["list", "--repo", repo, "--json"])
            .matches("\"id\"")
            .count(),
        60
    );
    sb.ok(["prune", "--repo", repo, "--apply"]
        .into_iter()
        .chain(policy));
    let list: serde_json::Value =
        serde_json::from_str(&sb.ok(["list", "--repo", repo, "--json"])).expect("json");
    let left: BTreeSet<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(left, want);
    // Without a rule, prune refuses (exit 2) rather than keeping or removing everything.
    let out = sb.run(["prune", "--repo", repo]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_records_history_and_exits_1_on_failure() {
    let sb = Sandbox::new();
    let cfg = config(
        &sb,
        &format!(
            "{}[jobs.bad]\nsource = {{ command = [\"sh\", \"-c\", \"exit 4\"] }}\nrepository = \"main\"\n\
             key = \"ops\"\nschedule = \"@daily\"\n",
            job("good", "@daily")
        ),
    );
    sb.ok(["run", "good", "--config", &cfg]);
    let out = sb.run(["run", "bad", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    let history: serde_json::Value =
        serde_json::from_str(&sb.ok(["history", "--config", &cfg, "--json"])).expect("json");
    let runs = history.as_array().expect("array");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["job"], "good");
    assert_eq!(runs[0]["outcome"], "success");
    assert!(runs[0]["sizes"]["stored"].as_u64().unwrap_or(0) > 0);
    assert_eq!(runs[1]["outcome"], "failure");
    assert!(runs[1]["error"].as_str().unwrap_or("").contains('4'));
    let text = sb.ok(["history", "--config", &cfg, "--job", "bad"]);
    assert!(text.contains("failure"), "{text}");
    assert!(!text.contains("good"), "{text}");
}

//! PostgreSQL: up, version, connections by state against
//! `max_connections`, transactions, database sizes, cache hit ratio,
//! deadlocks, the longest running transaction, checkpoints, and the top
//! statements of `pg_stat_statements`.
//!
//! One connection is kept open between scrapes (and reopened when it
//! drops), so a scrape costs a few queries, not a TLS handshake and a
//! backend start. The SQL follows the server's version: PostgreSQL 13
//! renamed `pg_stat_statements.total_time` to `total_exec_time`, and 17
//! moved the checkpoint counters from `pg_stat_bgwriter` to
//! `pg_stat_checkpointer`.

use async_trait::async_trait;
use pg::PgTarget;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::collector::{CollectError, Collector};
use crate::model::{Family, Unit};

/// Collects from one PostgreSQL server.
#[derive(Debug)]
pub struct PostgresCollector {
    name: String,
    label: String,
    target: PgTarget,
    top_statements: u32,
    conn: Mutex<Option<Conn>>,
}

#[derive(Debug)]
struct Conn {
    client: Client,
    version_num: i32,
    version: String,
    max_connections: f64,
}

impl PostgresCollector {
    /// A collector for `target`, its samples labelled `server="{label}"`,
    /// reporting the `top_statements` statements with the most execution
    /// time (0 to skip `pg_stat_statements`).
    pub fn new(label: impl Into<String>, target: PgTarget, top_statements: u32) -> Self {
        let label = label.into();
        PostgresCollector {
            name: format!("postgres:{label}"),
            label,
            target,
            top_statements,
            conn: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Conn, CollectError> {
        let client = self
            .target
            .connect()
            .await
            .map_err(|e| CollectError::new(e.to_string()))?;
        let row = client
            .query_one(
                "select current_setting('server_version_num')::int, \
                 current_setting('server_version'), \
                 current_setting('max_connections')::float8",
                &[],
            )
            .await
            .map_err(|e| self.query_error("server settings", &e))?;
        Ok(Conn {
            version_num: row.get(0),
            version: row.get(1),
            max_connections: row.get(2),
            client,
        })
    }

    fn query_error(&self, what: &str, e: &tokio_postgres::Error) -> CollectError {
        CollectError::new(format!("{} ({what}): {}", self.target, pg::describe(e)))
    }
}

/// The checkpoint counters' query for a server version.
pub fn checkpoints_sql(version_num: i32) -> &'static str {
    if version_num >= 170_000 {
        "select num_timed::float8, num_requested::float8 from pg_stat_checkpointer"
    } else {
        "select checkpoints_timed::float8, checkpoints_req::float8 from pg_stat_bgwriter"
    }
}

/// The top-statements query for a server version (`$1` = how many).
pub fn statements_sql(version_num: i32) -> String {
    let time = if version_num >= 130_000 {
        "total_exec_time"
    } else {
        "total_time"
    };
    format!(
        "select s.queryid::text, coalesce(d.datname, ''), sum(s.calls)::float8, \
         sum(s.{time})::float8 / 1000, sum(s.rows)::float8, \
         left(regexp_replace(min(s.query), '\\s+', ' ', 'g'), 80) \
         from pg_stat_statements s left join pg_database d on d.oid = s.dbid \
         where s.queryid is not null \
         group by s.queryid, d.datname order by 4 desc limit $1"
    )
}

/// The all-statements totals query for a server version.
pub fn statement_totals_sql(version_num: i32) -> String {
    let time = if version_num >= 130_000 {
        "total_exec_time"
    } else {
        "total_time"
    };
    format!(
        "select coalesce(sum(calls), 0)::float8, coalesce(sum({time}), 0)::float8 / 1000 \
         from pg_stat_statements"
    )
}

#[async_trait]
impl Collector for PostgresCollector {
    fn name(&self) -> &str {
        &self.name
    }

    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        let server = self.label.as_str();
        let mut up = Family::gauge("shipshape_pg_up", "Whether the PostgreSQL server answered.");
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            match self.connect().await {
                Ok(c) => *guard = Some(c),
                Err(e) => {
                    *guard = None;
                    tracing::debug!(collector = %self.name, "cannot connect: {e}");
                    up.push(&[("server", server)], 0.0);
                    return Ok(vec![up]);
                }
            }
        }
        let Some(conn) = guard.as_ref() else {
            return Ok(vec![up]);
        };
        let result = self.collect_from(conn).await;
        if result.is_err() && conn.client.is_closed() {
            *guard = None;
        }
        let mut families = result?;
        up.push(&[("server", server)], 1.0);
        families.insert(0, up);
        Ok(families)
    }
}

impl PostgresCollector {
    async fn collect_from(&self, conn: &Conn) -> Result<Vec<Family>, CollectError> {
        let c = &conn.client;
        let server = self.label.as_str();
        let s = [("server", server)];
        let mut out = Vec::new();

        let mut info = Family::gauge(
            "shipshape_pg_server_info",
            "The server's version, as a label; the value is always 1.",
        );
        info.push(&[("server", server), ("version", &conn.version)], 1.0);
        out.push(info);
        let mut max = Family::gauge(
            "shipshape_pg_max_connections",
            "The max_connections setting.",
        );
        max.push(&s, conn.max_connections);
        out.push(max);

        // Independent queries, pipelined on the one connection.
        let (activity, databases, checkpoints, statements, archiver) = futures::join!(
            self.activity(conn),
            self.databases(c),
            self.checkpoints(conn),
            self.statements(conn),
            self.archiver(c),
        );
        out.extend(archiver?);
        out.extend(activity?);
        out.extend(databases?);
        out.extend(checkpoints?);
        out.extend(statements?);
        Ok(out)
    }

    async fn activity(&self, conn: &Conn) -> Result<Vec<Family>, CollectError> {
        let c = &conn.client;
        let server = self.label.as_str();
        let s = [("server", server)];
        let mut out = Vec::new();
        let (rows, longest) = futures::join!(
            c.query(
                "select coalesce(state, 'unknown'), count(*)::float8 from pg_stat_activity \
                 where backend_type = 'client backend' group by 1 order by 1",
                &[],
            ),
            c.query_one(
                "select coalesce(max(extract(epoch from clock_timestamp() - xact_start)), 0)::float8 \
                 from pg_stat_activity where backend_type = 'client backend' \
                 and xact_start is not null and pid <> pg_backend_pid()",
                &[],
            )
        );
        let rows = rows.map_err(|e| self.query_error("pg_stat_activity", &e))?;
        let longest: f64 = longest
            .map_err(|e| self.query_error("longest transaction", &e))?
            .get(0);
        let mut by_state =
            Family::gauge("shipshape_pg_connections", "Client connections by state.");
        let mut total = 0.0;
        for row in &rows {
            let state: String = row.get(0);
            let n: f64 = row.get(1);
            total += n;
            by_state.push(&[("server", server), ("state", &state)], n);
        }
        out.push(by_state);
        let mut used = Family::gauge(
            "shipshape_pg_connections_used",
            "Client connections as a share of max_connections.",
        )
        .with_unit(Unit::Ratio);
        used.push(
            &s,
            if conn.max_connections > 0.0 {
                total / conn.max_connections
            } else {
                0.0
            },
        );
        out.push(used);

        let mut f = Family::gauge(
            "shipshape_pg_longest_transaction",
            "Age of the oldest open transaction (0 when none is open).",
        )
        .with_unit(Unit::Seconds);
        f.push(&s, longest);
        out.push(f);

        Ok(out)
    }

    async fn checkpoints(&self, conn: &Conn) -> Result<Vec<Family>, CollectError> {
        let c = &conn.client;
        let server = self.label.as_str();
        let row = c
            .query_one(checkpoints_sql(conn.version_num), &[])
            .await
            .map_err(|e| self.query_error("checkpoints", &e))?;
        let mut f = Family::counter("shipshape_pg_checkpoints", "Checkpoints by trigger.");
        f.push(&[("server", server), ("trigger", "timed")], row.get(0));
        f.push(&[("server", server), ("trigger", "requested")], row.get(1));
        Ok(vec![f])
    }

    /// `pg_stat_archiver`: how WAL archiving (`archive_command`) goes.
    async fn archiver(&self, c: &Client) -> Result<Vec<Family>, CollectError> {
        let server = self.label.as_str();
        let s = [("server", server)];
        let row = c
            .query_one(
                "select archived_count::float8, failed_count::float8, \
                 extract(epoch from now() - last_archived_time)::float8, \
                 coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false), \
                 current_setting('archive_mode') <> 'off' \
                 from pg_stat_archiver",
                &[],
            )
            .await
            .map_err(|e| self.query_error("pg_stat_archiver", &e))?;
        let mut archived = Family::counter(
            "shipshape_pg_archiver_archived",
            "WAL files archive_command archived since the statistics were reset.",
        );
        archived.push(&s, row.get(0));
        let mut failed = Family::counter(
            "shipshape_pg_archiver_failed",
            "Failed archive_command runs since the statistics were reset.",
        );
        failed.push(&s, row.get(1));
        let mut failing = Family::gauge(
            "shipshape_pg_archiver_failing",
            "1 when the last archive_command run failed (archiving is stuck until it succeeds).",
        );
        failing.push(&s, if row.get::<_, bool>(3) { 1.0 } else { 0.0 });
        let mut out = vec![archived, failed, failing];
        if row.get::<_, bool>(4) {
            let mut age = Family::gauge(
                "shipshape_pg_archiver_last_archived_age",
                "Time since archive_command last archived a file (+Inf: never).",
            )
            .with_unit(Unit::Seconds);
            age.push(&s, row.get::<_, Option<f64>>(2).unwrap_or(f64::INFINITY));
            out.push(age);
        }
        Ok(out)
    }

    async fn databases(&self, c: &Client) -> Result<Vec<Family>, CollectError> {
        let server = self.label.as_str();
        let rows = c
            .query(
                "select d.datname, s.xact_commit::float8, s.xact_rollback::float8, \
                 s.blks_hit::float8, s.blks_read::float8, s.deadlocks::float8, \
                 case when has_database_privilege(d.datname, 'CONNECT') \
                   then pg_database_size(d.oid)::float8 end \
                 from pg_database d join pg_stat_database s on s.datid = d.oid \
                 where not d.datistemplate order by 1",
                &[],
            )
            .await
            .map_err(|e| self.query_error("pg_stat_database", &e))?;
        let mut commits = Family::counter(
            "shipshape_pg_transactions_committed",
            "Transactions committed per database.",
        );
        let mut rollbacks = Family::counter(
            "shipshape_pg_transactions_rolled_back",
            "Transactions rolled back per database.",
        );
        let mut deadlocks =
            Family::counter("shipshape_pg_deadlocks", "Deadlocks detected per database.");
        let mut hit = Family::gauge(
            "shipshape_pg_cache_hit",
            "Share of block reads served from shared buffers, since statistics were reset.",
        )
        .with_unit(Unit::Ratio);
        let mut size = Family::gauge("shipshape_pg_database_size", "Database size on disk.")
            .with_unit(Unit::Bytes);
        for row in &rows {
            let db: String = row.get(0);
            let labels = [("server", server), ("database", db.as_str())];
            commits.push(&labels, row.get(1));
            rollbacks.push(&labels, row.get(2));
            let (h, r): (f64, f64) = (row.get(3), row.get(4));
            hit.push(&labels, if h + r > 0.0 { h / (h + r) } else { 1.0 });
            deadlocks.push(&labels, row.get(5));
            if let Some(bytes) = row.get::<_, Option<f64>>(6) {
                size.push(&labels, bytes);
            }
        }
        Ok(vec![commits, rollbacks, deadlocks, hit, size])
    }

    async fn statements(&self, conn: &Conn) -> Result<Vec<Family>, CollectError> {
        if self.top_statements == 0 {
            return Ok(Vec::new());
        }
        let c = &conn.client;
        let server = self.label.as_str();
        let mut available = Family::gauge(
            "shipshape_pg_stat_statements_available",
            "Whether pg_stat_statements is loaded and installed in the monitored database.",
        );
        let totals = match c
            .query_one(&statement_totals_sql(conn.version_num), &[])
            .await
        {
            Ok(row) => row,
            Err(e) => {
                // Not installed, or not in shared_preload_libraries.
                tracing::debug!(collector = %self.name, "no pg_stat_statements: {e}");
                available.push(&[("server", server)], 0.0);
                return Ok(vec![available]);
            }
        };
        available.push(&[("server", server)], 1.0);
        let mut all_calls = Family::counter(
            "shipshape_pg_statements_calls",
            "Calls of all statements pg_stat_statements tracks.",
        );
        all_calls.push(&[("server", server)], totals.get(0));
        let mut all_time = Family::counter(
            "shipshape_pg_statements_exec",
            "Execution time of all statements pg_stat_statements tracks.",
        )
        .with_unit(Unit::Seconds);
        all_time.push(&[("server", server)], totals.get(1));

        let rows = c
            .query(
                &statements_sql(conn.version_num),
                &[&i64::from(self.top_statements)],
            )
            .await
            .map_err(|e| self.query_error("pg_stat_statements", &e))?;
        let mut calls = Family::counter(
            "shipshape_pg_statement_calls",
            "Calls of the statements with the most execution time (top N by queryid and database).",
        );
        let mut time = Family::counter(
            "shipshape_pg_statement_exec",
            "Execution time of the top N statements.",
        )
        .with_unit(Unit::Seconds);
        let mut rows_f = Family::counter(
            "shipshape_pg_statement_rows",
            "Rows returned or affected by the top N statements.",
        );
        for row in &rows {
            let queryid: String = row.get(0);
            let db: String = row.get(1);
            let query: String = row.get(5);
            let labels = [
                ("server", server),
                ("database", db.as_str()),
                ("queryid", queryid.as_str()),
                ("query", query.as_str()),
            ];
            calls.push(&labels, row.get(2));
            time.push(&labels, row.get(3));
            rows_f.push(&labels, row.get(4));
        }
        Ok(vec![available, all_calls, all_time, calls, time, rows_f])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_follows_the_server_version() {
        assert!(checkpoints_sql(160_004).contains("pg_stat_bgwriter"));
        assert!(checkpoints_sql(170_000).contains("pg_stat_checkpointer"));
        assert!(statements_sql(120_000).contains("total_time"));
        assert!(statements_sql(130_000).contains("total_exec_time"));
        assert!(statement_totals_sql(120_010).contains("sum(total_time)"));
    }
}

//! Turning the measured cells into the printed table and `BENCHMARKS.md`.

use crate::load::CellResult;
use crate::machine::Machine;
use crate::pg::PgInfo;
use std::fmt::Write as _;

/// Target (a): single mutations at 64 connections, per second.
pub const TARGET_MUTATIONS_PER_SECOND: f64 = 40_000.0;
/// Target (a): their p99 latency, in microseconds.
pub const TARGET_MUTATION_P99_US: u64 = 10_000;
/// Target (b): mutations per second through `POST /v1/batch`.
pub const TARGET_BATCH_MUTATIONS_PER_SECOND: f64 = 250_000.0;
/// Target (c): balance reads per second at 64 connections.
pub const TARGET_READS_PER_SECOND: f64 = 60_000.0;

/// Issue target: one prepaid instance on PostgreSQL at least this many times the plain
/// PostgreSQL baseline's single-mutation throughput at 64 connections.
pub const TARGET_PG1_OVER_BASELINE: f64 = 3.0;

/// A server thread busy this share of a window or more is the bottleneck.
const SERIAL_THREAD_CORES: f64 = 0.85;
/// The machine counts as saturated at this share of all its cores.
const SATURATED_SHARE: f64 = 0.9;

/// The store behind a measured prepaid column: SQLite has one writer, serial by
/// design; on PostgreSQL the engine's writers wait on the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Sqlite,
    Postgres,
}

/// One side of one row.
#[derive(Clone, Debug)]
pub enum Measure {
    Done(CellResult),
    /// Not measured, and why.
    NotRun(String),
    /// The workload has no counterpart on this side.
    NotApplicable,
}

impl Measure {
    pub fn done(&self) -> Option<&CellResult> {
        match self {
            Self::Done(r) => Some(r),
            _ => None,
        }
    }
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// (a) and (d): one debit per request, spread over many wallets.
    MutationsSpread,
    /// (a) and (d): one debit per request, all on one wallet.
    MutationsHot,
    /// (b): 8,000 debits per `POST /v1/batch`.
    Batch,
    /// (c): one balance read per request.
    Reads,
    /// One TMF654 `topupBalance` per request (its record and, with listeners, its event
    /// in the same unit), spread over wallets: what the dialect costs beside (a).
    TmfTopup,
    /// One TouchTopUp till sale per request (the debit and the sale's record in one
    /// unit), spread over customers.
    TouchTopUpSale,
    /// The load generator against a canned-answer server.
    Calibration,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Self::MutationsSpread => "(a) single mutation, spread over wallets",
            Self::MutationsHot => "(a) single mutation, one hot wallet",
            Self::Batch => "(b) `POST /v1/batch`, 8,000 mutations each",
            Self::Reads => "(c) balance read `GET /v1/wallets/{id}`",
            Self::TmfTopup => "TMF654 `POST …/topupBalance`, spread over wallets",
            Self::TouchTopUpSale => "TouchTopUp till sale `POST /v1/icrtouch/…/sales`",
            Self::Calibration => "load generator vs. canned answers (ceiling)",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::MutationsSpread
            | Self::MutationsHot
            | Self::Batch
            | Self::TmfTopup
            | Self::TouchTopUpSale => "mutations/s",
            Self::Reads => "reads/s",
            Self::Calibration => "requests/s",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub workload: Workload,
    pub connections: usize,
    /// prepaid on SQLite.
    pub prepaid: Measure,
    /// One prepaid instance on PostgreSQL.
    pub pg1: Measure,
    /// Three prepaid instances on one PostgreSQL schema.
    pub pg3: Measure,
    /// The plain PostgreSQL ledger baseline.
    pub postgres: Measure,
}

/// Everything the report shows.
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub seconds: u64,
    pub warmup_seconds: u64,
    pub wallets: usize,
    pub client_threads: usize,
    pub data_filesystem: String,
    pub server_binary: String,
    pub postgres: Result<PgInfo, String>,
    pub rows: Vec<Row>,
    /// CPU cores busy with other work just before the run.
    pub background_cores: f64,
    pub debug_build: bool,
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `ops/s`, `p50`, `p99` cells of one side.
fn side(measure: &Measure) -> [String; 3] {
    match measure {
        Measure::Done(r) => {
            let mut rate = thousands(r.ops_per_second());
            if r.ops_failed > 0 {
                let _ = write!(rate, " ({} failed)", thousands(r.ops_failed as f64));
            }
            [rate, ms(r.p50_us), ms(r.p99_us)]
        }
        Measure::NotRun(_) => ["not run".to_owned(), "–".to_owned(), "–".to_owned()],
        Measure::NotApplicable => ["–".to_owned(), "–".to_owned(), "–".to_owned()],
    }
}

fn ratio(a: &Measure, b: &Measure) -> String {
    match (a.done(), b.done()) {
        (Some(a), Some(b)) if b.ops_per_second() > 0.0 => {
            format!("{:.1}×", a.ops_per_second() / b.ops_per_second())
        }
        _ => "–".to_owned(),
    }
}

/// The verdict on one target, with the figures behind it.
struct Verdict {
    name: &'static str,
    target: String,
    measured: String,
    met: Option<bool>,
    cpu: Option<String>,
}

impl Report {
    /// Every column of a row with its name.
    fn systems(row: &Row) -> [(&'static str, &Measure); 4] {
        [
            ("prepaid (SQLite)", &row.prepaid),
            ("prepaid (PostgreSQL) ×1", &row.pg1),
            ("prepaid (PostgreSQL) ×3", &row.pg3),
            ("plain PostgreSQL", &row.postgres),
        ]
    }

    fn find(&self, workload: Workload, connections: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.workload == workload && r.connections == connections)
    }

    fn cpu_note(&self, r: &CellResult, store: Store) -> String {
        let cores = self.machine.cpus as f64;
        let busy = r.cpu.busy_cores();
        let busiest = r.cpu.busiest_server_thread_cores.unwrap_or(0.0);
        let writer_busy = r.writer.filter(|w| w.busy_share >= SERIAL_THREAD_CORES);
        let saturated = busy >= SATURATED_SHARE * cores;
        let state = if store == Store::Postgres && saturated {
            // prepaid's PostgreSQL writers spend their transactions waiting on the
            // database, so when the CPUs are full it is the CPUs, whatever the writers do.
            let per_transaction = r.writer.map_or(String::new(), |w| {
                format!(
                    " ({:.1} requests and {:.2} ms per store transaction on average)",
                    w.batch_size_mean, w.commit_ms_mean
                )
            });
            format!(
                "the machine's CPUs were saturated{per_transaction}, PostgreSQL's processes \
                 being counted under \"other\""
            )
        } else if let (Store::Postgres, Some(w)) = (store, writer_busy) {
            format!(
                "prepaid's writers were inside store transactions {:.0}% of the time (summed over \
                 the writers; {:.1} requests and {:.2} ms per transaction on average), so the limit \
                 is what each transaction waits on in PostgreSQL: round trips, its commit's WAL \
                 flush, and the row locks it meets (a wallet, or a system account slot another \
                 batch holds)",
                w.busy_share * 100.0,
                w.batch_size_mean,
                w.commit_ms_mean
            )
        } else if let Some(w) = writer_busy {
            format!(
                "prepaid's writer was inside store transactions {:.0}% of the time ({:.1} requests and \
                 {:.2} ms per transaction on average), so the serial group-commit writer is the limit",
                w.busy_share * 100.0,
                w.batch_size_mean,
                w.commit_ms_mean
            )
        } else if busiest >= SERIAL_THREAD_CORES {
            format!(
                "one server thread was busy {busiest:.2} of the time, so work serialised on that thread \
                 is the limit"
            )
        } else if saturated {
            "the machine's CPUs were saturated".to_owned()
        } else {
            "the CPUs were not saturated and neither the writer nor any server thread was, so the time \
             went to waiting (disk flushes, locks, round trips)"
                .to_owned()
        };
        format!(
            "CPU busy {busy:.2} of {cores:.0} cores (load generator {:.2}, server {:.2}, other {:.2}); {state}",
            r.cpu.load_generator_cores, r.cpu.server_cores, r.cpu.other_cores
        )
    }

    fn writer_table(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| Workload | Conns | System | ops/s | store transactions/s | requests per transaction | \
             time per transaction | writer busy |\n",
        );
        s.push_str("|---|---:|---|---:|---:|---:|---:|---:|\n");
        // The ×3 column has no figures here: each instance has its own writers.
        for (row, system, r) in self.rows.iter().flat_map(|row| {
            [
                (row, "prepaid (SQLite)", row.prepaid.done()),
                (row, "prepaid (PostgreSQL) ×1", row.pg1.done()),
            ]
        }) {
            let Some(r) = r else {
                continue;
            };
            // Reads never reach the writer.
            let Some(w) = r.writer.filter(|w| w.commits_per_second > 0.0) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {system} | {} | {} | {:.1} | {:.2} ms | {:.0}% |",
                row.workload.label(),
                row.connections,
                thousands(r.ops_per_second()),
                thousands(w.commits_per_second),
                w.batch_size_mean,
                w.commit_ms_mean,
                w.busy_share * 100.0
            );
        }
        s
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let mut out = Vec::new();
        let a = self
            .find(Workload::MutationsSpread, 64)
            .and_then(|r| r.prepaid.done());
        out.push(Verdict {
            name: "(a) single mutations, 64 connections",
            target: format!(
                "≥ {}/s with p99 < {}",
                thousands(TARGET_MUTATIONS_PER_SECOND),
                ms(TARGET_MUTATION_P99_US)
            ),
            measured: a.map_or("not run".to_owned(), |r| {
                format!("{}/s, p99 {}", thousands(r.ops_per_second()), ms(r.p99_us))
            }),
            met: a.map(|r| {
                r.ops_failed == 0
                    && r.ops_per_second() >= TARGET_MUTATIONS_PER_SECOND
                    && r.p99_us < TARGET_MUTATION_P99_US
            }),
            cpu: a.map(|r| self.cpu_note(r, Store::Sqlite)),
        });
        let b = self
            .rows
            .iter()
            .filter(|r| r.workload == Workload::Batch)
            .filter_map(|r| r.prepaid.done())
            .max_by(|x, y| x.ops_per_second().total_cmp(&y.ops_per_second()));
        out.push(Verdict {
            name: "(b) `POST /v1/batch`",
            target: format!(
                "≥ {} mutations/s",
                thousands(TARGET_BATCH_MUTATIONS_PER_SECOND)
            ),
            measured: b.map_or("not run".to_owned(), |r| {
                format!(
                    "{}/s (best, at {} connections)",
                    thousands(r.ops_per_second()),
                    r.connections
                )
            }),
            met: b.map(|r| {
                r.ops_failed == 0 && r.ops_per_second() >= TARGET_BATCH_MUTATIONS_PER_SECOND
            }),
            cpu: b.map(|r| self.cpu_note(r, Store::Sqlite)),
        });
        let row64 = self.find(Workload::MutationsSpread, 64);
        let pg1 = row64.and_then(|r| r.pg1.done());
        let plain = row64.and_then(|r| r.postgres.done());
        let both = pg1.zip(plain).filter(|(_, b)| b.ops_per_second() > 0.0);
        out.push(Verdict {
            name: "PostgreSQL backend: one prepaid instance vs. plain PostgreSQL, single mutations, 64 connections",
            target: format!("≥ {TARGET_PG1_OVER_BASELINE:.0}× the plain baseline"),
            measured: both.map_or("not run".to_owned(), |(a, b)| {
                format!(
                    "{}/s vs. {}/s = {:.2}×",
                    thousands(a.ops_per_second()),
                    thousands(b.ops_per_second()),
                    a.ops_per_second() / b.ops_per_second()
                )
            }),
            met: both.map(|(a, b)| {
                a.ops_failed == 0
                    && a.ops_per_second() >= TARGET_PG1_OVER_BASELINE * b.ops_per_second()
            }),
            cpu: pg1.map(|r| self.cpu_note(r, Store::Postgres)),
        });
        let c = self
            .find(Workload::Reads, 64)
            .and_then(|r| r.prepaid.done());
        out.push(Verdict {
            name: "(c) balance reads, 64 connections",
            target: format!("≥ {} reads/s", thousands(TARGET_READS_PER_SECOND)),
            measured: c.map_or("not run".to_owned(), |r| {
                format!("{}/s", thousands(r.ops_per_second()))
            }),
            met: c.map(|r| r.ops_failed == 0 && r.ops_per_second() >= TARGET_READS_PER_SECOND),
            cpu: c.map(|r| self.cpu_note(r, Store::Sqlite)),
        });
        out
    }

    /// The results table alone, for the terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| Workload | Conns | prepaid (SQLite) | p50 | p99 | prepaid (PostgreSQL) ×1 | p50 | p99 | \
             prepaid (PostgreSQL) ×3 | p50 | p99 | plain PostgreSQL | p50 | p99 | SQLite ÷ plain | \
             PostgreSQL ×1 ÷ plain |\n",
        );
        s.push_str(
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for row in &self.rows {
            let [pr, p50, p99] = side(&row.prepaid);
            let [ar, a50, a99] = side(&row.pg1);
            let [br, b50, b99] = side(&row.pg3);
            let [gr, g50, g99] = side(&row.postgres);
            let _ = writeln!(
                s,
                "| {} ({}) | {} | {pr} | {p50} | {p99} | {ar} | {a50} | {a99} | {br} | {b50} | {b99} | \
                 {gr} | {g50} | {g99} | {} | {} |",
                row.workload.label(),
                row.workload.unit(),
                row.connections,
                ratio(&row.prepaid, &row.postgres),
                ratio(&row.pg1, &row.postgres),
            );
        }
        s
    }

    fn cpu_table(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| Workload | Conns | System | ops/s | load generator (cores) | server (cores) | \
             other (cores) | idle (cores) | busiest server thread (cores) | server CPU per op | \
             load generator CPU per op |\n",
        );
        s.push_str("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for row in &self.rows {
            for (system, measure) in Self::systems(row) {
                let Some(r) = measure.done() else { continue };
                let calibration = row.workload == Workload::Calibration;
                let system = if calibration {
                    "canned answers"
                } else {
                    system
                };
                let idle = (self.machine.cpus as f64 - r.cpu.busy_cores()).max(0.0);
                let us = |v: Option<f64>| v.map_or("–".to_owned(), |us| format!("{us:.1} µs"));
                let server_per_op = if calibration {
                    "–".to_owned()
                } else {
                    us(r.us_per_op(r.cpu.server_cores))
                };
                let busiest = r
                    .cpu
                    .busiest_server_thread_cores
                    .map_or("–".to_owned(), |c| format!("{c:.2}"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {system} | {} | {:.2} | {:.2} | {:.2} | {idle:.2} | {busiest} | {server_per_op} | {} |",
                    row.workload.label(),
                    row.connections,
                    thousands(r.ops_per_second()),
                    r.cpu.load_generator_cores,
                    r.cpu.server_cores,
                    r.cpu.other_cores,
                    us(r.us_per_op(r.cpu.load_generator_cores)),
                );
            }
        }
        s
    }

    fn verdict_lines(&self) -> String {
        let mut s = String::new();
        for v in self.verdicts() {
            let verdict = match v.met {
                Some(true) => "**met**",
                Some(false) => "**not met**",
                None => "**not measured**",
            };
            let _ = writeln!(
                s,
                "- {}: target {}; measured {} → {verdict}.",
                v.name, v.target, v.measured
            );
            if v.met == Some(false)
                && let Some(cpu) = v.cpu
            {
                let _ = writeln!(s, "  - {cpu}.");
            }
        }
        s
    }

    fn errors(&self) -> String {
        let mut s = String::new();
        for row in &self.rows {
            for (system, measure) in Self::systems(row) {
                let label = format!(
                    "{} at {} connections, {system}",
                    row.workload.label(),
                    row.connections
                );
                match measure {
                    Measure::Done(r) => {
                        if let Some(e) = &r.first_error {
                            let _ = writeln!(
                                s,
                                "- {label}: {} failed; first error: `{}`",
                                r.ops_failed,
                                e.replace('`', "'")
                            );
                        }
                    }
                    Measure::NotRun(why) => {
                        let _ = writeln!(s, "- {label}: not run: {}", why.replace('`', "'"));
                    }
                    Measure::NotApplicable => {}
                }
            }
        }
        s
    }

    fn calibration_note(&self) -> String {
        let ceiling = self
            .rows
            .iter()
            .find(|r| r.workload == Workload::Calibration)
            .and_then(|r| r.prepaid.done());
        let prepaid = self
            .find(Workload::MutationsSpread, 64)
            .and_then(|r| r.prepaid.done());
        match (ceiling, prepaid) {
            (Some(c), Some(p)) => format!(
                "Against a canned-answer HTTP server inside the benchmark process, the load generator drove {} \
                 requests/s at {} connections (that figure includes the canned server's own CPU). Against prepaid \
                 at 64 connections it spent {} of CPU per mutation, {:.2} of {} cores.",
                thousands(c.ops_per_second()),
                c.connections,
                p.us_per_op(p.cpu.load_generator_cores)
                    .map_or("–".to_owned(), |us| format!("{us:.1} µs")),
                p.cpu.load_generator_cores,
                self.machine.cpus,
            ),
            _ => "The calibration cell did not run.".to_owned(),
        }
    }

    /// The whole `BENCHMARKS.md`.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        s.push_str("# prepaid benchmarks\n\n");
        s.push_str(
            "Generated by the `prepaid-bench` program; every run overwrites this file. The figures are from one \
             run on the machine below and say nothing about other hardware.\n\n",
        );
        s.push_str("## Machine\n\n");
        let _ = writeln!(s, "- CPUs: {} × {}", m.cpus, m.cpu_model);
        let _ = writeln!(s, "- Memory: {}", m.memory);
        let _ = writeln!(s, "- Kernel: {}", m.kernel);
        let _ = writeln!(s, "- Date: {}", m.date);
        let _ = writeln!(s, "- Compiler: {}", m.rustc);
        let _ = writeln!(
            s,
            "- Background CPU use just before the run: {:.2} cores",
            self.background_cores
        );
        let _ = writeln!(
            s,
            "- prepaid data directory (SQLite) on: {}",
            self.data_filesystem
        );
        match &self.postgres {
            Ok(pg) => {
                let _ = writeln!(
                    s,
                    "- PostgreSQL {} on 127.0.0.1:5432: synchronous_commit = {}, fsync = {}, wal_sync_method = {}, \
                     max_connections = {}",
                    pg.version,
                    pg.synchronous_commit,
                    pg.fsync,
                    pg.wal_sync_method,
                    pg.max_connections
                );
            }
            Err(e) => {
                let _ = writeln!(s, "- PostgreSQL baseline: **not run**: {e}");
            }
        }
        s.push_str("\n## Command\n\n");
        let _ = writeln!(s, "```sh\n{}\n```\n", self.command);
        let _ = writeln!(
            s,
            "Server: `{}`, started fresh by the program (`prepaid serve --listen 127.0.0.1:0` with a temporary \
             SQLite data directory). Each cell: {} s warm-up, then {} s measured; closed loop (each connection sends \
             its next request when the previous answer arrives); HTTP/1.1 keep-alive; {} spread wallets plus one \
             hot wallet; load generator on {} tokio worker threads.\n",
            self.server_binary,
            self.warmup_seconds,
            self.seconds,
            self.wallets,
            self.client_threads
        );
        s.push_str(
            "PostgreSQL columns: prepaid on its PostgreSQL store (`prepaid serve --database-url \
             postgres://...?options=-csearch_path%3D<schema>`) in a fresh schema of the same database as \
             the baseline, dropped afterwards: \"×1\" is one instance; \"×3\" is three instances on that \
             schema (reusing the wallets of the ×1 pass), client connections spread round-robin over \
             them. In the CPU table \"server\" is the prepaid process(es) only; PostgreSQL's own CPU is \
             under \"other\" for those rows.\n\n",
        );
        if self.debug_build {
            s.push_str(
                "**Warning: the load generator was built without optimisations; these figures are not \
                 representative. Run with `--release`.**\n\n",
            );
        }
        s.push_str("## Results\n\n");
        s.push_str(&self.table());
        s.push('\n');
        s.push_str(
            "Latencies are per request as the client sees them (for the batch rows: per 8,000-mutation request). \
             \"not run\" cells say why under *Errors and cells not run*.\n\n",
        );
        s.push_str("## Targets\n\n");
        s.push_str(&self.verdict_lines());
        s.push_str("\n## CPU use\n\n");
        s.push_str(
            "The load generator, the prepaid server and PostgreSQL run on the same machine and share its CPUs, so \
             on a small machine the load generator takes CPU the server could have used. Per cell, measured over \
             the measurement window from `/proc`: \"server\" is the prepaid process, or all `postgres` \
             processes for the baseline; \"other\" is the rest of the machine's busy time (other jobs, and \
             kernel work not charged to a process); \"busiest server thread\" is the server thread (for \
             PostgreSQL: the process) that used the most CPU, where a value near 1.00 means work serialised on \
             one thread is the limit.\n\n",
        );
        s.push_str(&self.cpu_table());
        s.push('\n');
        s.push_str(&self.calibration_note());
        s.push('\n');
        let writer = self.writer_table();
        if writer.lines().count() > 2 {
            s.push_str("\n## prepaid's group-commit writer\n\n");
            s.push_str(
                "From the server's own `/metrics` (`prepaid_commit_seconds`, `prepaid_commit_batch_size`), \
                 read before and after each measurement window. A store transaction is one durable commit \
                 shared by every request in it; \"writer busy\" is the time spent inside store transactions \
                 per second of wall time, summed over the engine's writers (on SQLite there is one, and 100% \
                 means it was never idle; on PostgreSQL several may be in flight at once, so it can pass 100%; \
                 a transaction counts when it ends, so one that straddles the window's start can push this a \
                 little higher).\n\n",
            );
            s.push_str(&writer);
        }
        s.push_str("\n## How each workload is made\n\n");
        s.push_str(
            "- (a) `POST /v1/wallets/{id}/mutations` with `{\"kind\":\"debit\",\"amount\":1}` and a unique \
             `Idempotency-Key` per request; prepaid answers only once the mutation is durable. \"Spread\": \
             connection *c* of *n* walks wallets *c*, *c+n*, … so connections never share a wallet. \"Hot\": every \
             request debits the same wallet.\n\
             - (b) `POST /v1/batch` with 8,000 debits of 1 spread over the wallets, each item with its own \
             `idempotency_key`; a row counts only items answered 201.\n\
             - (c) `GET /v1/wallets/{id}`, spread over the wallets.\n\
             - (d) PostgreSQL baseline, in a fresh schema dropped afterwards: one connection per client \
             (tokio-postgres), autocommit, `synchronous_commit = on`, one prepared statement per mutation: \
             `WITH debit AS (UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 RETURNING \
             id, balance) INSERT INTO ledger (account_id, amount, balance_after, idempotency_key) SELECT id, -$1, \
             balance, $3 FROM debit RETURNING id, balance_after`, with a unique idempotency key, a foreign key to \
             the account and an index on (account_id, id). Its read row is `SELECT balance FROM accounts WHERE id = \
             $1`. PostgreSQL has no counterpart of the batch endpoint here.\n",
        );
        let errors = self.errors();
        if !errors.is_empty() {
            s.push_str("\n## Errors and cells not run\n\n");
            s.push_str(&errors);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn ms_keeps_three_significant_digits() {
        assert_eq!(ms(420), "0.42 ms");
        assert_eq!(ms(12_340), "12.3 ms");
        assert_eq!(ms(123_400), "123 ms");
    }
}

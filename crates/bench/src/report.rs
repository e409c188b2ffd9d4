//! Turning the measured cells into the printed table and `BENCHMARKS.md`.

use crate::load::CellResult;
use crate::machine::Machine;
use crate::pg::PgInfo;
use crate::writer::{PHASES, WriterUse};
use std::fmt::Write as _;

/// Target: SQLite single mutations spread at 64 connections, at least this many times
/// the plain PostgreSQL baseline's.
pub const TARGET_SQLITE_OVER_BASELINE: f64 = 2.0;
/// Target: their p99 latency, in microseconds.
pub const TARGET_MUTATION_P99_US: u64 = 10_000;
/// Target: mutations per second through `POST /v1/batch`.
pub const TARGET_BATCH_MUTATIONS_PER_SECOND: f64 = 200_000.0;
/// Target: SQLite balance reads at least this many times the plain PostgreSQL read row.
pub const TARGET_READS_OVER_BASELINE: f64 = 1.0;
/// Target: one prepaid instance on PostgreSQL at least this many times the plain
/// PostgreSQL baseline's single-mutation throughput at 64 connections.
pub const TARGET_PG1_OVER_BASELINE: f64 = 1.0;
/// Target: three prepaid instances on one PostgreSQL schema at least this many times one.
pub const TARGET_PG3_OVER_PG1: f64 = 1.5;
/// Target: the SQLite hot-wallet row more than this many times the baseline's hot row.
pub const TARGET_HOT_OVER_BASELINE: f64 = 10.0;
/// Target: the large-store rows at least this share of the empty store's.
pub const TARGET_LARGE_OVER_EMPTY: f64 = 0.8;

/// How many prepaid instances share one PostgreSQL schema in each PostgreSQL column, in
/// column order.
pub const PG_INSTANCES: [usize; 3] = [1, 2, 3];

/// The connections of the rows the targets are about.
const TARGET_CONNECTIONS: usize = 64;

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
    /// [`Workload::MutationsSpread`] over every wallet of a store filled beforehand.
    LargeStoreMutations,
    /// [`Workload::MutationsSpread`] over wallets that each hold
    /// [`crate::workload::GRANTS_MANY`] live grants (the spread wallets hold one).
    MutationsManyGrants,
    /// [`Workload::Reads`] over every wallet of a store filled beforehand.
    LargeStoreReads,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Self::MutationsSpread | Self::LargeStoreMutations => {
                "(a) single mutation, spread over wallets"
            }
            Self::MutationsHot => "(a) single mutation, one hot wallet",
            Self::MutationsManyGrants => {
                "(a) single mutation, spread over wallets of 1,000 live grants each"
            }
            Self::Batch => "(b) `POST /v1/batch`, 8,000 mutations each",
            Self::Reads | Self::LargeStoreReads => "(c) balance read `GET /v1/wallets/{id}`",
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
            | Self::TouchTopUpSale
            | Self::LargeStoreMutations
            | Self::MutationsManyGrants => "mutations/s",
            Self::Reads | Self::LargeStoreReads => "reads/s",
            Self::Calibration => "requests/s",
        }
    }

    /// The row of the empty store that a large-store row compares with.
    pub fn empty_store_counterpart(self) -> Option<Self> {
        match self {
            Self::LargeStoreMutations => Some(Self::MutationsSpread),
            Self::LargeStoreReads => Some(Self::Reads),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub workload: Workload,
    pub connections: usize,
    /// prepaid on SQLite.
    pub prepaid: Measure,
    /// prepaid on PostgreSQL, one measure per entry of [`PG_INSTANCES`]: that many
    /// instances on one schema.
    pub pg: [Measure; PG_INSTANCES.len()],
    /// The plain PostgreSQL ledger baseline.
    pub postgres: Measure,
}

impl Row {
    /// A row whose PostgreSQL columns all start as `pg`.
    pub fn new(
        workload: Workload,
        connections: usize,
        prepaid: Measure,
        pg: &Measure,
        postgres: Measure,
    ) -> Self {
        Self {
            workload,
            connections,
            prepaid,
            pg: std::array::from_fn(|_| pg.clone()),
            postgres,
        }
    }

    /// The measure of `instances` prepaid instances on PostgreSQL.
    pub fn pg_at(&self, instances: usize) -> Option<&Measure> {
        let column = PG_INSTANCES.iter().position(|&n| n == instances)?;
        self.pg.get(column)
    }
}

/// The store filled beforehand for the large-store rows.
#[derive(Clone, Copy, Debug)]
pub struct LargeStore {
    pub wallets: usize,
    pub mutations: usize,
    /// How long filling took, when it ran.
    pub fill: Option<Fill>,
}

/// How long filling the large store took.
#[derive(Clone, Copy, Debug)]
pub struct Fill {
    /// Creating the customers and wallets and topping every wallet up.
    pub wallets_seconds: f64,
    /// Sending the mutations.
    pub mutations_seconds: f64,
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
    pub large_store: LargeStore,
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

/// How far a cell must go against the one it is compared with, as a factor of it.
#[derive(Clone, Copy, Debug)]
enum Reach {
    AtLeast(f64),
    MoreThan(f64),
}

/// How cell `a` compares with cell `b`: the measured text, and whether `a` reaches
/// `reach` of `b` without a failed operation; `None` when either did not run.
fn compare(a: Option<&CellResult>, b: Option<&CellResult>, reach: Reach) -> (String, Option<bool>) {
    match (a, b) {
        (Some(a), Some(b)) if b.ops_per_second() > 0.0 => {
            let r = a.ops_per_second() / b.ops_per_second();
            let reached = match reach {
                Reach::AtLeast(f) => r >= f,
                Reach::MoreThan(f) => r > f,
            };
            (
                format!(
                    "{}/s vs. {}/s = {r:.2}×",
                    thousands(a.ops_per_second()),
                    thousands(b.ops_per_second())
                ),
                Some(a.ops_failed == 0 && reached),
            )
        }
        (Some(_), Some(_)) => ("the reference measured nothing".to_owned(), None),
        _ => ("not run".to_owned(), None),
    }
}

/// The name of the column of `instances` prepaid instances on PostgreSQL.
fn pg_name(instances: usize) -> String {
    format!("prepaid (PostgreSQL) ×{instances}")
}

/// A time in microseconds, or "–" when there is none.
fn us(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |us| format!("{us:.1} µs"))
}

/// The writer's time per request in each phase, as a clause for a diagnosis line;
/// empty when the server exports no phase.
fn phase_clause(w: &WriterUse) -> String {
    let Some(total) = w.phase_total_us() else {
        return String::new();
    };
    let phases: Vec<String> = PHASES
        .iter()
        .zip(w.phase_us_per_request)
        .map(|(name, v)| format!("{name} {}", us(v)))
        .collect();
    format!(
        "; per request it spent {} (together {total:.1} µs)",
        phases.join(", ")
    )
}

impl Report {
    /// The names of the columns in order: SQLite, each PostgreSQL one, the baseline.
    fn column_names() -> Vec<String> {
        std::iter::once("prepaid (SQLite)".to_owned())
            .chain(PG_INSTANCES.iter().map(|&n| pg_name(n)))
            .chain(std::iter::once("plain PostgreSQL".to_owned()))
            .collect()
    }

    /// Every column of a row with its name.
    fn systems(row: &Row) -> Vec<(String, &Measure)> {
        let measures = std::iter::once(&row.prepaid)
            .chain(&row.pg)
            .chain(std::iter::once(&row.postgres));
        Self::column_names().into_iter().zip(measures).collect()
    }

    /// The prepaid columns of a row with their names: all but the baseline.
    fn prepaid_columns(row: &Row) -> Vec<(String, &Measure)> {
        let mut columns = Self::systems(row);
        columns.pop();
        columns
    }

    /// A row's workload as the tables name it, with the store's size on large-store rows.
    fn label(&self, row: &Row) -> String {
        let base = row.workload.label();
        if row.workload.empty_store_counterpart().is_some() {
            format!(
                "{base}, large store ({} wallets, {} mutations)",
                thousands(self.large_store.wallets as f64),
                thousands(self.large_store.mutations as f64)
            )
        } else {
            base.to_owned()
        }
    }

    fn find(&self, workload: Workload, connections: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.workload == workload && r.connections == connections)
    }

    /// The prepaid (SQLite) cell of a row that the targets use.
    fn sqlite_at(&self, workload: Workload) -> Option<&CellResult> {
        self.find(workload, TARGET_CONNECTIONS)
            .and_then(|r| r.prepaid.done())
    }

    /// The cell of `instances` prepaid instances on PostgreSQL of a row the targets use.
    fn pg_at(&self, workload: Workload, instances: usize) -> Option<&CellResult> {
        self.find(workload, TARGET_CONNECTIONS)
            .and_then(|r| r.pg_at(instances))
            .and_then(Measure::done)
    }

    /// The plain PostgreSQL cell of a row the targets use.
    fn baseline_at(&self, workload: Workload) -> Option<&CellResult> {
        self.find(workload, TARGET_CONNECTIONS)
            .and_then(|r| r.postgres.done())
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
                    " ({:.1} requests and {:.2} ms per store transaction on average{})",
                    w.batch_size_mean,
                    w.commit_ms_mean,
                    phase_clause(&w)
                )
            });
            format!(
                "the machine's CPUs were saturated{per_transaction}, PostgreSQL's processes \
                 being counted under \"other\""
            )
        } else if let (Store::Postgres, Some(w)) = (store, writer_busy) {
            format!(
                "prepaid's writers were inside store transactions {:.0}% of the time (summed over \
                 the writers; {:.1} requests and {:.2} ms per transaction on average{}), so the limit \
                 is what each transaction waits on in PostgreSQL: round trips, its commit's WAL \
                 flush, and the row locks it meets (a wallet, or a system account slot another \
                 batch holds)",
                w.busy_share * 100.0,
                w.batch_size_mean,
                w.commit_ms_mean,
                phase_clause(&w)
            )
        } else if let Some(w) = writer_busy {
            format!(
                "prepaid's writer was inside store transactions {:.0}% of the time ({:.1} requests and \
                 {:.2} ms per transaction on average{}), so the serial group-commit writer is the limit",
                w.busy_share * 100.0,
                w.batch_size_mean,
                w.commit_ms_mean,
                phase_clause(&w)
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

    /// Every prepaid cell whose writer committed something in its window, with the
    /// column's name; reads never reach the writer.
    fn writer_cells(&self) -> Vec<(&Row, String, &CellResult, WriterUse)> {
        let mut out = Vec::new();
        for row in &self.rows {
            for (system, measure) in Self::prepaid_columns(row) {
                let Some(r) = measure.done() else { continue };
                if let Some(w) = r.writer.filter(|w| w.commits_per_second > 0.0) {
                    out.push((row, system, r, w));
                }
            }
        }
        out
    }

    /// The first cells of a table line about one measured cell: workload, connections,
    /// system and its rate.
    fn cell_head(&self, row: &Row, system: &str, r: &CellResult) -> String {
        format!(
            "| {} | {} | {system} | {} |",
            self.label(row),
            row.connections,
            thousands(r.ops_per_second())
        )
    }

    fn writer_table(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "| Workload | Conns | System | ops/s | store transactions/s | requests per transaction | \
             time per transaction | writer busy |\n",
        );
        s.push_str("|---|---:|---|---:|---:|---:|---:|---:|\n");
        for (row, system, r, w) in self.writer_cells() {
            s.push_str(&self.cell_head(row, &system, r));
            let _ = writeln!(
                s,
                " {} | {:.1} | {:.2} ms | {:.0}% |",
                thousands(w.commits_per_second),
                w.batch_size_mean,
                w.commit_ms_mean,
                w.busy_share * 100.0
            );
        }
        s
    }

    /// The writer's time per request split into its phases.
    fn phase_table(&self) -> String {
        let mut s = String::new();
        s.push_str("| Workload | Conns | System | ops/s |");
        for phase in PHASES {
            let _ = write!(s, " {phase} |");
        }
        s.push_str(" phases together | whole transaction |\n|---|---:|---|---:|");
        s.push_str(&"---:|".repeat(PHASES.len() + 2));
        s.push('\n');
        for (row, system, r, w) in self.writer_cells() {
            s.push_str(&self.cell_head(row, &system, r));
            for v in w.phase_us_per_request {
                let _ = write!(s, " {} |", us(v));
            }
            let whole =
                (w.batch_size_mean > 0.0).then(|| w.commit_ms_mean * 1000.0 / w.batch_size_mean);
            let _ = writeln!(s, " {} | {} |", us(w.phase_total_us()), us(whole));
        }
        s
    }

    /// The SQLite and the plain PostgreSQL cells of a row the targets use.
    fn sqlite_and_baseline(
        &self,
        workload: Workload,
    ) -> (Option<&CellResult>, Option<&CellResult>) {
        (self.sqlite_at(workload), self.baseline_at(workload))
    }

    /// The verdict on a target that cell `a` reaches `reach` of cell `b`, with the
    /// diagnosis of `a` on the given store.
    fn versus(
        &self,
        name: &'static str,
        target: String,
        (a, b): (Option<&CellResult>, Option<&CellResult>),
        reach: Reach,
        store: Store,
    ) -> Verdict {
        let (measured, met) = compare(a, b, reach);
        Verdict {
            name,
            target,
            measured,
            met,
            cpu: a.map(|r| self.cpu_note(r, store)),
        }
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let spread = Workload::MutationsSpread;
        let sqlite_spread = self.sqlite_at(spread);
        let mut a = self.versus(
            "SQLite, single mutations spread over wallets, 64 connections",
            format!(
                "≥ {TARGET_SQLITE_OVER_BASELINE:.0}× the plain-PostgreSQL baseline and p99 < {}",
                ms(TARGET_MUTATION_P99_US)
            ),
            self.sqlite_and_baseline(spread),
            Reach::AtLeast(TARGET_SQLITE_OVER_BASELINE),
            Store::Sqlite,
        );
        if let (Some(met), Some(r)) = (a.met, sqlite_spread) {
            let _ = write!(a.measured, ", p99 {}", ms(r.p99_us));
            a.met = Some(met && r.p99_us < TARGET_MUTATION_P99_US);
        }

        let b = self
            .rows
            .iter()
            .filter(|r| r.workload == Workload::Batch)
            .filter_map(|r| r.prepaid.done())
            .max_by(|x, y| x.ops_per_second().total_cmp(&y.ops_per_second()));
        let batch = Verdict {
            name: "SQLite, `POST /v1/batch`",
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
        };

        let pg1 = self.pg_at(spread, 1);
        let large = |w: Workload| {
            let empty = w.empty_store_counterpart().and_then(|e| self.sqlite_at(e));
            (self.sqlite_at(w), empty)
        };
        let within = format!(
            "within {:.0}% of the empty store (≥ {TARGET_LARGE_OVER_EMPTY:.1}×)",
            (1.0 - TARGET_LARGE_OVER_EMPTY) * 100.0
        );
        vec![
            a,
            batch,
            self.versus(
                "SQLite, balance reads, 64 connections",
                "≥ the plain-PostgreSQL read row".to_owned(),
                self.sqlite_and_baseline(Workload::Reads),
                Reach::AtLeast(TARGET_READS_OVER_BASELINE),
                Store::Sqlite,
            ),
            self.versus(
                "PostgreSQL ×1 vs. plain PostgreSQL, single mutations spread, 64 connections",
                "≥ the plain baseline".to_owned(),
                (pg1, self.baseline_at(spread)),
                Reach::AtLeast(TARGET_PG1_OVER_BASELINE),
                Store::Postgres,
            ),
            self.versus(
                "PostgreSQL ×3 vs. ×1, single mutations spread, 64 connections",
                format!("≥ {TARGET_PG3_OVER_PG1:.1}× one instance"),
                (self.pg_at(spread, 3), pg1),
                Reach::AtLeast(TARGET_PG3_OVER_PG1),
                Store::Postgres,
            ),
            self.versus(
                "SQLite, one hot wallet, 64 connections",
                format!("> {TARGET_HOT_OVER_BASELINE:.0}× the plain baseline's hot row"),
                self.sqlite_and_baseline(Workload::MutationsHot),
                Reach::MoreThan(TARGET_HOT_OVER_BASELINE),
                Store::Sqlite,
            ),
            self.versus(
                "SQLite, large store vs. empty store, single mutations spread, 64 connections",
                within.clone(),
                large(Workload::LargeStoreMutations),
                Reach::AtLeast(TARGET_LARGE_OVER_EMPTY),
                Store::Sqlite,
            ),
            self.versus(
                "SQLite, large store vs. empty store, balance reads, 64 connections",
                within,
                large(Workload::LargeStoreReads),
                Reach::AtLeast(TARGET_LARGE_OVER_EMPTY),
                Store::Sqlite,
            ),
        ]
    }

    /// The results table alone, for the terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| Workload | Conns |");
        for system in Self::column_names() {
            let _ = write!(s, " {system} | p50 | p99 |");
        }
        s.push_str(" SQLite ÷ plain | PostgreSQL ×1 ÷ plain |\n|---|---:|");
        s.push_str(&"---:|".repeat(3 * (PG_INSTANCES.len() + 2) + 2));
        s.push('\n');
        let none = Measure::NotApplicable;
        for row in &self.rows {
            let _ = write!(
                s,
                "| {} ({}) | {} |",
                self.label(row),
                row.workload.unit(),
                row.connections
            );
            for (_, measure) in Self::systems(row) {
                let [rate, p50, p99] = side(measure);
                let _ = write!(s, " {rate} | {p50} | {p99} |");
            }
            let pg1 = row.pg_at(1).unwrap_or(&none);
            let _ = writeln!(
                s,
                " {} | {} |",
                ratio(&row.prepaid, &row.postgres),
                ratio(pg1, &row.postgres),
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
                    "canned answers".to_owned()
                } else {
                    system
                };
                let idle = (self.machine.cpus as f64 - r.cpu.busy_cores()).max(0.0);
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
                    self.label(row),
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
                    self.label(row),
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

    /// The large-store rows beside the empty store's, and how long the fill took.
    fn large_store_section(&self) -> String {
        let ls = &self.large_store;
        let mut s = format!(
            "prepaid (SQLite) on a fresh server whose store was filled first, through the API: {} \
             spread wallets (plus the hot wallet and {} TouchTopUp customers' wallets) created one \
             `POST` each and topped up in `POST /v1/batch` requests, then {} mutations (debits \
             and top-ups of 1 in turn, each with its own idempotency key, spread over the \
             wallets) in `POST /v1/batch` requests of up to {} items. ",
            thousands(ls.wallets as f64),
            crate::workload::CUSTOMERS,
            thousands(ls.mutations as f64),
            thousands(crate::workload::BATCH_ITEMS_MAX as f64),
        );
        match ls.fill {
            Some(f) => {
                let rate = if f.mutations_seconds > 0.0 {
                    format!(
                        ", {} mutations/s",
                        thousands(ls.mutations as f64 / f.mutations_seconds)
                    )
                } else {
                    String::new()
                };
                let _ = write!(
                    s,
                    "Filling took {:.0} s: {:.0} s for the wallets and {:.0} s for the \
                     mutations{rate}; it is no part of any measured window. ",
                    f.wallets_seconds + f.mutations_seconds,
                    f.wallets_seconds,
                    f.mutations_seconds,
                );
            }
            None => s.push_str("The fill did not run. "),
        }
        let _ = writeln!(
            s,
            "The large-store cells spread over all {} wallets; the empty store is the main \
             SQLite pass (a store that starts empty, over {} wallets).\n",
            thousands(ls.wallets as f64),
            thousands(self.wallets as f64),
        );
        s.push_str(
            "| Workload | Conns | empty store | p50 | p99 | large store | p50 | p99 | large ÷ empty |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for row in self
            .rows
            .iter()
            .filter(|r| r.workload.empty_store_counterpart().is_some())
        {
            let none = Measure::NotApplicable;
            let empty = row
                .workload
                .empty_store_counterpart()
                .and_then(|w| self.find(w, row.connections))
                .map_or(&none, |r| &r.prepaid);
            let [er, e50, e99] = side(empty);
            let [lr, l50, l99] = side(&row.prepaid);
            let _ = writeln!(
                s,
                "| {} ({}) | {} | {er} | {e50} | {e99} | {lr} | {l50} | {l99} | {} |",
                row.workload.label(),
                row.workload.unit(),
                row.connections,
                ratio(&row.prepaid, empty),
            );
        }
        s
    }

    /// Single debits on wallets of one grant (the spread cell: each spread wallet was
    /// topped up once) beside wallets of 1,000 live grants, on each store.
    fn grants_section(&self) -> String {
        let mut s = format!(
            "Single debits of 1, spread, at 64 connections: on the spread wallets, each holding one \
             grant (one top-up), and on {} wallets each holding {} live grants ({} top-ups each, made \
             before the run; a debit draws from the first in the spend order). What the second costs \
             more is reading and keeping a wallet's live grants.\n\n",
            crate::workload::GRANT_WALLETS,
            thousands(crate::workload::GRANTS_MANY as f64),
            thousands(crate::workload::GRANTS_MANY as f64),
        );
        s.push_str(
            "| System | 1 grant | p99 | 1,000 grants | p99 | 1,000 ÷ 1 |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        let none = Measure::NotApplicable;
        let one = self.find(Workload::MutationsSpread, 64);
        let many = self.find(Workload::MutationsManyGrants, 64);
        let mut systems: Vec<(String, &Measure, &Measure)> = vec![(
            "prepaid (SQLite)".to_owned(),
            one.map_or(&none, |r| &r.prepaid),
            many.map_or(&none, |r| &r.prepaid),
        )];
        for (i, n) in PG_INSTANCES.iter().enumerate() {
            systems.push((
                format!("prepaid (PostgreSQL) ×{n}"),
                one.map_or(&none, |r| &r.pg[i]),
                many.map_or(&none, |r| &r.pg[i]),
            ));
        }
        for (system, one, many) in systems {
            let [r1, _, p1] = side(one);
            let [rn, _, pn] = side(many);
            let _ = writeln!(
                s,
                "| {system} | {r1} | {p1} | {rn} | {pn} | {} |",
                ratio(many, one)
            );
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
        let counts: Vec<String> = PG_INSTANCES.iter().map(|n| format!("×{n}")).collect();
        let _ = write!(
            s,
            "PostgreSQL columns ({}): prepaid on its PostgreSQL store (`prepaid serve --database-url \
             postgres://...?options=-csearch_path%3D<schema>`) in a fresh schema of the same database as \
             the baseline, dropped afterwards: \"×n\" is n instances on that schema, client connections \
             spread round-robin over them; the passes run one after another, the first creates the \
             wallets and the later ones reuse them. In the CPU table \"server\" is the prepaid \
             process(es) only; PostgreSQL's own CPU is under \"other\" for those rows.\n\n",
            counts.join(", ")
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
        s.push_str("## Large store\n\n");
        s.push_str(&self.large_store_section());
        s.push_str("\n## Grants\n\n");
        s.push_str(&self.grants_section());
        s.push_str("\n## Targets\n\n");
        s.push_str(
            "Each target compares figures of this run, all at 64 connections except the batch \
             endpoint's (its best row). Under a target not met, the measured cell's CPU use and, \
             from the server's metrics, what its writer did.\n\n",
        );
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
                 read before and after each measurement window; with several instances, their figures are \
                 added up. A store transaction is one durable commit shared by every request in it; \
                 \"writer busy\" is the time spent inside store transactions per second of wall time, \
                 summed over the engine's writers (on SQLite there is one, and 100% means it was never idle; \
                 on PostgreSQL several may be in flight at once, and with several instances each has its \
                 own, so it can pass 100%; a transaction counts when it ends, so one that straddles the \
                 window's start can push this a little higher).\n\n",
            );
            s.push_str(&writer);
            s.push_str("\n### Where the writer's time goes\n\n");
            s.push_str(
                "From `prepaid_writer_phase_seconds{phase=…}`, which splits each store transaction into \
                 phases: the sum of each phase over the window divided by the requests the writer carried \
                 in it, so each figure is the writer's time per request, in µs. \"load\" reads the rows \
                 the ledger's rules need; \"execute\" is the pure ledger executor; \"write\" writes the \
                 changes; \"commit\" is the COMMIT statement; \"sync\" is a separate flush of the log to \
                 disk (the SQLite writer that pipelines its commits). \"phases together\" adds them up; \
                 \"whole transaction\" is the time inside store transactions per request, for comparison \
                 (what the phases leave out is the rest). \"–\": the server does not export that phase.\n\n",
            );
            s.push_str(&self.phase_table());
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

    fn cell(ops: u64, writer: Option<WriterUse>) -> Measure {
        Measure::Done(CellResult {
            connections: TARGET_CONNECTIONS,
            seconds: 1.0,
            ops_ok: ops,
            ops_failed: 0,
            p50_us: 1_000,
            p99_us: 2_000,
            cpu: crate::machine::CpuUse::default(),
            writer,
            first_error: None,
        })
    }

    fn report(rows: Vec<Row>) -> Report {
        Report {
            machine: Machine {
                cpus: 2,
                cpu_model: "test".to_owned(),
                memory: "1 GiB".to_owned(),
                kernel: "test".to_owned(),
                date: "today".to_owned(),
                rustc: "rustc".to_owned(),
            },
            command: "prepaid-bench".to_owned(),
            seconds: 1,
            warmup_seconds: 0,
            wallets: 1024,
            client_threads: 2,
            data_filesystem: "tmpfs".to_owned(),
            server_binary: "prepaid".to_owned(),
            postgres: Err("skipped".to_owned()),
            rows,
            large_store: LargeStore {
                wallets: 100_000,
                mutations: 5_000_000,
                fill: None,
            },
            background_cores: 0.0,
            debug_build: false,
        }
    }

    #[test]
    fn every_instance_count_has_a_column_and_missing_phases_show_a_dash() {
        let writer = WriterUse {
            commits_per_second: 100.0,
            batch_size_mean: 10.0,
            commit_ms_mean: 2.0,
            busy_share: 0.2,
            phase_us_per_request: [None, Some(12.5), None, None, None],
        };
        let mut row = Row::new(
            Workload::MutationsSpread,
            TARGET_CONNECTIONS,
            cell(1_000, None),
            &cell(600, Some(writer)),
            cell(500, None),
        );
        row.pg[1] = Measure::NotRun("down".to_owned());
        let large = Row::new(
            Workload::LargeStoreMutations,
            TARGET_CONNECTIONS,
            cell(900, None),
            &Measure::NotApplicable,
            Measure::NotApplicable,
        );
        let md = report(vec![row, large]).markdown();
        for n in PG_INSTANCES {
            assert!(
                md.contains(&format!("| prepaid (PostgreSQL) ×{n} | p50 | p99 |")),
                "{md}"
            );
        }
        assert!(
            md.contains("| – | 12.5 µs | – | – | – | 12.5 µs | 200.0 µs |"),
            "{md}"
        );
        assert!(
            md.contains("large store (100,000 wallets, 5,000,000 mutations)"),
            "{md}"
        );
        assert!(
            md.contains("| 1,000 | 1.00 ms | 2.00 ms | 900 | 1.00 ms | 2.00 ms | 0.9× |"),
            "{md}"
        );
        // 1,000/s against a 500/s baseline is 2×, and the p99 is under 10 ms.
        assert!(md.contains("= 2.00×, p99 2.00 ms → **met**"), "{md}");
        assert!(md.contains("not run: down"), "{md}");
    }

    #[test]
    fn ms_keeps_three_significant_digits() {
        assert_eq!(ms(420), "0.42 ms");
        assert_eq!(ms(12_340), "12.3 ms");
        assert_eq!(ms(123_400), "123 ms");
    }
}

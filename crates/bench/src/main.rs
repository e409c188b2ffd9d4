//! `prepaid-bench`: measures a fresh prepaid server over HTTP and, in the same run, the
//! same single-debit workload done directly against a local PostgreSQL the way a
//! typical PostgreSQL ledger does it, and writes the figures to `BENCHMARKS.md`.
//!
//! Run it with `cargo run --release -p prepaid-bench` (it builds the server first). It is
//! a measurement, not a test: nothing here asserts on timings.

mod calibrate;
mod http;
mod load;
mod machine;
mod pg;
mod report;
mod server;
mod workload;
mod writer;

use anyhow::{Context, bail};
use clap::Parser;
use load::{CellResult, Pick, Timing};
use report::{Fill, LargeStore, Measure, PG_INSTANCES, Report, Row, Workload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connection counts of the single-mutation rows.
const MUTATION_CONNECTIONS: [usize; 4] = [1, 16, 64, 256];
/// Connections of the hot-wallet row, the read row and the calibration row.
const WIDE_CONNECTIONS: usize = 64;
/// Connection counts of the batch rows: one client, and a few so the server can parse
/// one batch while it commits another.
const BATCH_CONNECTIONS: [usize; 2] = [1, 4];
/// The most seconds a cell may measure.
const SECONDS_MAX: u64 = 600;
/// The most spread wallets.
const WALLETS_MAX: u64 = 100_000;
/// The most wallets of the large store.
const LARGE_WALLETS_MAX: u64 = 1_000_000;
/// The most mutations filled into the large store.
const LARGE_MUTATIONS_MAX: u64 = 100_000_000;
/// The cells measured on the large store, in report order.
const LARGE_STORE_CELLS: [(Workload, usize); 2] = [
    (Workload::LargeStoreMutations, WIDE_CONNECTIONS),
    (Workload::LargeStoreReads, WIDE_CONNECTIONS),
];
/// The most worker threads of the load generator.
const CLIENT_THREADS_MAX: i64 = 256;
/// How long the machine's background CPU use is sampled before the run.
const BACKGROUND_SAMPLE: Duration = Duration::from_secs(2);
/// Background CPU use (in cores) above which the run warns that the machine is busy.
const BACKGROUND_BUSY_WARN_CORES: f64 = 0.2;
/// A pause between cells so the previous cell's tail does not overlap the next.
const SETTLE: Duration = Duration::from_millis(500);

/// Benchmarks prepaid against a plain PostgreSQL ledger on this machine.
#[derive(Parser, Debug)]
#[command(name = "prepaid-bench", version, args_override_self = true)]
struct Args {
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Measured seconds per cell.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=SECONDS_MAX))]
    seconds: u64,
    /// Warm-up seconds per cell, not measured.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=SECONDS_MAX))]
    warmup_seconds: u64,
    /// Spread wallets (and PostgreSQL accounts) the mutations are spread over.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=WALLETS_MAX))]
    wallets: u64,
    /// Wallets of the large store (its cells spread over all of them).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=LARGE_WALLETS_MAX))]
    large_wallets: u64,
    /// Mutations filled into the large store before its cells are measured.
    #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(0..=LARGE_MUTATIONS_MAX))]
    large_mutations: u64,
    /// The `prepaid` binary. Default: build it with cargo (when run by `cargo run`), or
    /// take the one next to this program.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Do not build the server; use the `prepaid` binary next to this program.
    #[arg(long)]
    no_build: bool,
    /// PostgreSQL connection string of the baseline; must point at this machine.
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    )]
    postgres: String,
    /// PostgreSQL URL prepaid's own PostgreSQL store runs on (in a fresh schema added as
    /// the connection's search path); same database as `--postgres`.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Measure prepaid only (a quick look at the server; the report marks the baseline
    /// column "not run").
    #[arg(long)]
    skip_postgres: bool,
    /// Measure only the cells whose name, `<workload>@<connections>` (workloads:
    /// `Calibration`, `MutationsSpread`, `MutationsHot`, `TmfTopup`, `TouchTopUpSale`,
    /// `Reads`, `Batch`, `LargeStoreMutations`, `LargeStoreReads`), contains one of these
    /// comma-separated texts, e.g. `MutationsSpread@64,LargeStore`: a quick look; the
    /// other cells are marked "not run". The large store is filled only when one of its
    /// cells is selected.
    #[arg(long)]
    only: Option<String>,
    /// Worker threads of the load generator (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=CLIENT_THREADS_MAX))]
    client_threads: Option<u16>,
}

/// The `--only` text, set once at start.
static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Whether the cell is to be measured (see `--only`).
fn selected(kind: Workload, connections: usize) -> bool {
    match ONLY.get() {
        Some(Some(only)) => only_matches(only, kind, connections),
        _ => true,
    }
}

/// Whether the cell's name contains one of the comma-separated texts of `only`.
fn only_matches(only: &str, kind: Workload, connections: usize) -> bool {
    let name = format!("{kind:?}@{connections}");
    only.split(',')
        .map(str::trim)
        .any(|part| !part.is_empty() && name.contains(part))
}

/// Why a cell left out by `--only` was not run.
fn not_selected() -> Measure {
    Measure::NotRun("not selected (--only)".to_owned())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ONLY.get_or_init(|| args.only.clone());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let client_threads = args.client_threads.map_or(cpus, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()?;
    runtime.block_on(run(args, client_threads))
}

/// The command line as a reader would type it again.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("CARGO").is_some() {
        let mut cmd = "cargo run --release -p prepaid-bench".to_owned();
        if !args.is_empty() {
            cmd.push_str(" -- ");
            cmd.push_str(&args.join(" "));
        }
        cmd
    } else {
        std::iter::once("target/release/prepaid-bench".to_owned())
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Finds (and when run by cargo, builds) the `prepaid` server binary.
fn server_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.server_bin {
        return Ok(path.clone());
    }
    if let (Some(cargo), false) = (std::env::var_os("CARGO"), args.no_build) {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        eprintln!("building the server: cargo build --release -p prepaid-server --bin prepaid");
        let output = std::process::Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "prepaid-server",
                "--bin",
                "prepaid",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .args(["--message-format", "json-render-diagnostics"])
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running cargo build")?;
        if !output.status.success() {
            bail!("building the prepaid server failed");
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if msg["reason"] == "compiler-artifact"
                && msg["target"]["name"] == "prepaid"
                && let Some(exe) = msg["executable"].as_str()
            {
                return Ok(PathBuf::from(exe));
            }
        }
        bail!("cargo build did not report the prepaid executable");
    }
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name("prepaid");
    if !sibling.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p prepaid-server`, or pass --server-bin",
            sibling.display()
        );
    }
    Ok(sibling)
}

/// Logs a finished cell on the terminal.
fn log_cell(name: &str, connections: usize, result: &Result<CellResult, anyhow::Error>) {
    match result {
        Ok(r) => {
            let writer = r.writer.map_or(String::new(), |w| {
                format!(
                    "  writer busy {:.0}% at {:.1}/txn",
                    w.busy_share * 100.0,
                    w.batch_size_mean
                )
            });
            eprintln!(
                "  {name:<32} {connections:>4} conns: {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  failed {}  \
                 cpu: gen {:.2} server {:.2} other {:.2}{writer}",
                r.ops_per_second(),
                r.p50_us as f64 / 1000.0,
                r.p99_us as f64 / 1000.0,
                r.ops_failed,
                r.cpu.load_generator_cores,
                r.cpu.server_cores,
                r.cpu.other_cores,
            )
        }
        Err(e) => eprintln!("  {name:<32} {connections:>4} conns: not run: {e:#}"),
    }
}

fn measure(result: anyhow::Result<CellResult>) -> Measure {
    match result {
        Ok(r) => Measure::Done(r),
        Err(e) => Measure::NotRun(format!("{e:#}")),
    }
}

async fn run(args: Args, client_threads: usize) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: prepaid-bench was built without optimisations; use `cargo run --release`"
        );
    }
    let wallet_count = usize::try_from(args.wallets)?;
    let timing = Timing {
        warmup: Duration::from_secs(args.warmup_seconds),
        measure: Duration::from_secs(args.seconds),
        ticks_per_second: machine::clock_ticks_per_second(),
    };
    let pg_config = pg::parse_config(&args.postgres)?;
    let postgres_url_prefix = "postgres://";
    if !args.postgres_url.starts_with(postgres_url_prefix) {
        bail!("--postgres-url must start with {postgres_url_prefix}");
    }
    let machine = machine::Machine::detect();
    let binary = server_binary(&args)?;
    let background_cores = background_cores(timing.ticks_per_second).await;

    let temp = tempfile::Builder::new()
        .prefix("prepaid-bench-")
        .tempdir()?;
    let data_dir = temp.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let data_filesystem = machine::filesystem_of(&data_dir);

    let mut rows = measure_prepaid(&binary, &data_dir, wallet_count, timing).await?;
    let mut large_store = LargeStore {
        wallets: usize::try_from(args.large_wallets)?,
        mutations: usize::try_from(args.large_mutations)?,
        fill: None,
    };
    let (large_rows, fill) =
        measure_large_store(&binary, &temp.path().join("large"), large_store, timing).await;
    large_store.fill = fill;
    rows.extend(large_rows);
    let prepaid_pg = if args.skip_postgres {
        Err("skipped (--skip-postgres)".to_owned())
    } else {
        measure_prepaid_postgres(
            &binary,
            temp.path(),
            &pg_config,
            &args.postgres_url,
            &mut rows,
            wallet_count,
            timing,
        )
        .await
    };
    if let Err(why) = &prepaid_pg {
        eprintln!("  prepaid on PostgreSQL: {why}; its columns are marked \"not run\"");
        for m in rows.iter_mut().flat_map(|r| r.pg.iter_mut()) {
            if matches!(m, Measure::NotRun(_)) {
                *m = Measure::NotRun(why.clone());
            }
        }
    }
    // The baseline runs after the server has stopped, so the two never compete.
    eprintln!("PostgreSQL baseline:");
    let postgres = if args.skip_postgres {
        Err("skipped (--skip-postgres)".to_owned())
    } else {
        measure_postgres(
            pg_config.clone(),
            &args.postgres,
            &mut rows,
            wallet_count,
            timing,
        )
        .await
    };
    if let Err(why) = &postgres {
        eprintln!("  {why}; the baseline column is marked \"not run\"");
        for row in rows
            .iter_mut()
            .filter(|r| matches!(r.postgres, Measure::NotRun(_)))
        {
            row.postgres = Measure::NotRun(why.clone());
        }
    }

    let report = Report {
        machine,
        command: command_line(),
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        wallets: wallet_count,
        client_threads,
        data_filesystem,
        server_binary: binary.display().to_string(),
        postgres,
        rows,
        large_store,
        background_cores,
        debug_build: cfg!(debug_assertions),
    };
    println!("\n{}", report.table());
    std::fs::write(&args.out, report.markdown())
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Measures how busy the machine is before the run: other work skews every figure, so
/// the report says how much there was.
async fn background_cores(ticks_per_second: f64) -> f64 {
    let before = machine::CpuSample::take(&machine::ServerProcs::None);
    tokio::time::sleep(BACKGROUND_SAMPLE).await;
    let after = machine::CpuSample::take(&machine::ServerProcs::None);
    let cores = machine::CpuUse::between(&before, &after, ticks_per_second).busy_cores();
    if cores > BACKGROUND_BUSY_WARN_CORES {
        eprintln!(
            "warning: the machine was already {cores:.2} cores busy before the run; figures will be low"
        );
    }
    cores
}

/// The prepaid cells after the calibration row, in report order.
fn prepaid_cells() -> Vec<(Workload, usize)> {
    let mut cells: Vec<(Workload, usize)> = MUTATION_CONNECTIONS
        .iter()
        .map(|&c| (Workload::MutationsSpread, c))
        .collect();
    cells.push((Workload::MutationsHot, WIDE_CONNECTIONS));
    cells.push((Workload::MutationsManyGrants, WIDE_CONNECTIONS));
    cells.push((Workload::TmfTopup, WIDE_CONNECTIONS));
    cells.push((Workload::TouchTopUpSale, WIDE_CONNECTIONS));
    cells.push((Workload::Reads, WIDE_CONNECTIONS));
    cells.extend(BATCH_CONNECTIONS.iter().map(|&c| (Workload::Batch, c)));
    cells
}

/// Opens `count` connections spread round-robin over `targets`.
async fn open_spread(targets: &[http::Target], count: usize) -> anyhow::Result<Vec<http::Conn>> {
    let mut conns = Vec::with_capacity(count);
    for (j, target) in targets.iter().enumerate() {
        let share = count / targets.len() + usize::from(j < count % targets.len());
        conns.extend(http::open_many(target, share).await?);
    }
    Ok(conns)
}

/// Runs `cells` against `servers`, client connections spread round-robin over them,
/// spread cells over `wallet_count` wallets; `tag` keeps idempotency keys apart between
/// runs on one database.
async fn run_prepaid_cells(
    servers: &mut [server::Server],
    targets: &[http::Target],
    wallets: &Arc<workload::Wallets>,
    wallet_count: usize,
    timing: Timing,
    tag: &str,
    cells: &[(Workload, usize)],
) -> Vec<(Workload, usize, Measure)> {
    let pids: Vec<u32> = servers.iter().filter_map(server::Server::pid).collect();
    let probes = load::Probes {
        procs: match pids.as_slice() {
            [] => machine::ServerProcs::None,
            [one] => machine::ServerProcs::Pid(*one),
            _ => machine::ServerProcs::Pids(pids.clone()),
        },
        // Several servers' metrics add up, so the figures cover every instance's writers.
        writer: Some(writer::WriterProbe::new(targets.to_vec())),
    };
    let mut out = Vec::new();
    for (index, &(kind, connections)) in cells.iter().enumerate() {
        if !selected(kind, connections) {
            out.push((kind, connections, not_selected()));
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let result = async {
            for server in servers.iter_mut() {
                server.check_alive()?;
            }
            let conns = open_spread(targets, connections).await?;
            let pick = match kind {
                Workload::MutationsHot => Pick::Hot,
                Workload::MutationsManyGrants => Pick::Spread {
                    connections,
                    rows: workload::GRANT_WALLETS,
                },
                _ => Pick::Spread {
                    connections,
                    rows: wallet_count,
                },
            };
            let cell = format!("{tag}{index}");
            Ok::<_, anyhow::Error>(
                run_kind(kind, conns, timing, probes.clone(), wallets, pick, cell).await,
            )
        }
        .await;
        log_cell(&format!("{kind:?}"), connections, &result);
        out.push((kind, connections, measure(result)));
    }
    out
}

/// Runs one prepaid cell of `kind` on already-open connections; `cell` names its
/// idempotency keys.
async fn run_kind(
    kind: Workload,
    conns: Vec<http::Conn>,
    timing: Timing,
    procs: load::Probes,
    wallets: &Arc<workload::Wallets>,
    pick: Pick,
    cell: String,
) -> CellResult {
    let w = wallets.clone();
    match kind {
        Workload::Reads | Workload::LargeStoreReads => {
            load::run_cell(conns, timing, procs, move |c, i, win| {
                workload::read_worker(c, i, win, w.clone(), pick)
            })
            .await
        }
        Workload::Batch => {
            load::run_cell(conns, timing, procs, move |c, i, win| {
                let items = workload::BATCH_ITEMS_MAX;
                workload::batch_worker(c, i, win, cell.clone(), w.clone(), items)
            })
            .await
        }
        Workload::TmfTopup => {
            load::run_cell(conns, timing, procs, move |c, i, win| {
                let shape = workload::Shape::TmfTopup;
                workload::mutation_worker(c, i, win, cell.clone(), w.clone(), pick, shape)
            })
            .await
        }
        Workload::TouchTopUpSale => {
            load::run_cell(conns, timing, procs, move |c, i, win| {
                let shape = workload::Shape::Sale;
                workload::mutation_worker(c, i, win, cell.clone(), w.clone(), pick, shape)
            })
            .await
        }
        Workload::MutationsManyGrants => {
            let w = wallets.many_grants();
            load::run_cell(conns, timing, procs, move |c, i, win| {
                workload::debit_worker(c, i, win, cell.clone(), w.clone(), pick)
            })
            .await
        }
        _ => {
            load::run_cell(conns, timing, procs, move |c, i, win| {
                workload::debit_worker(c, i, win, cell.clone(), w.clone(), pick)
            })
            .await
        }
    }
}

/// Starts `instances` servers (on `database_url`, or SQLite in `dir` when `None`).
async fn start_servers(
    binary: &Path,
    dir: &Path,
    database_url: Option<&str>,
    instances: usize,
) -> anyhow::Result<Vec<server::Server>> {
    let mut servers = Vec::with_capacity(instances);
    for i in 0..instances {
        let data_dir = dir.join(format!("instance-{i}"));
        match server::Server::start(binary, &data_dir, database_url).await {
            Ok(s) => servers.push(s),
            Err(e) => {
                for s in servers {
                    s.stop().await;
                }
                return Err(e);
            }
        }
    }
    Ok(servers)
}

async fn stop_servers(servers: Vec<server::Server>) {
    for mut server in servers {
        if let Err(e) = server.check_alive() {
            eprintln!("warning: {e:#}");
        }
        server.stop().await;
    }
}

/// Creates the API key, customers and wallets through `server`, with its log on failure.
async fn set_up_on(
    server: &mut server::Server,
    wallet_count: usize,
) -> anyhow::Result<(http::Target, Arc<workload::Wallets>)> {
    let admin = http::Target::new(server.addr, &server.admin_secret)?;
    eprintln!(
        "server on {}; creating {} wallets",
        server.addr,
        wallet_count + 1
    );
    workload::set_up(&admin, wallet_count).await.map_err(|e| {
        let e = match server.check_alive() {
            Ok(()) => e,
            Err(dead) => e.context(dead),
        };
        e.context("setting up customers and wallets")
    })
}

/// Starts a fresh SQLite server, sets up wallets, and runs the calibration cell and
/// every prepaid cell. The other columns are left "not run" for later passes to fill.
async fn measure_prepaid(
    binary: &Path,
    data_dir: &Path,
    wallet_count: usize,
    timing: Timing,
) -> anyhow::Result<Vec<Row>> {
    eprintln!(
        "starting {} (data in {})",
        binary.display(),
        data_dir.display()
    );
    let mut servers = start_servers(binary, data_dir, None, 1).await?;
    let (target, wallets) = match set_up_on(&mut servers[0], wallet_count).await {
        Ok(x) => x,
        Err(e) => {
            stop_servers(servers).await;
            return Err(e);
        }
    };
    eprintln!(
        "prepaid on SQLite (each cell {:?} + {:?} warm-up):",
        timing.measure, timing.warmup
    );
    let mut rows = vec![calibration_row(&wallets, wallet_count, timing).await];
    let cells = run_prepaid_cells(
        &mut servers,
        &[target],
        &wallets,
        wallet_count,
        timing,
        "c",
        &prepaid_cells(),
    )
    .await;
    stop_servers(servers).await;
    let not_run = Measure::NotRun("the PostgreSQL pass did not run".to_owned());
    for (kind, connections, prepaid) in cells {
        let postgres = match kind {
            Workload::Batch
            | Workload::TmfTopup
            | Workload::TouchTopUpSale
            | Workload::MutationsManyGrants => Measure::NotApplicable,
            _ => Measure::NotRun("the baseline did not run".to_owned()),
        };
        rows.push(Row::new(kind, connections, prepaid, &not_run, postgres));
    }
    Ok(rows)
}

/// Starts a fresh SQLite server, fills its store through the API (the wallets, then the
/// mutations in batches; neither is measured) and measures the large-store cells on it.
/// Returns their rows, and how long the fill took when it ran.
async fn measure_large_store(
    binary: &Path,
    dir: &Path,
    size: LargeStore,
    timing: Timing,
) -> (Vec<Row>, Option<Fill>) {
    let rows = |measures: Vec<Measure>| -> Vec<Row> {
        let none = Measure::NotApplicable;
        LARGE_STORE_CELLS
            .iter()
            .zip(measures)
            .map(|(&(kind, connections), m)| Row::new(kind, connections, m, &none, none.clone()))
            .collect()
    };
    if !LARGE_STORE_CELLS.iter().any(|&(k, c)| selected(k, c)) {
        return (rows(LARGE_STORE_CELLS.map(|_| not_selected()).into()), None);
    }
    eprintln!(
        "large store: a fresh server with {} wallets and {} mutations",
        size.wallets, size.mutations
    );
    let outcome = async {
        let mut servers = start_servers(binary, dir, None, 1).await?;
        let result = async {
            let started = Instant::now();
            let (target, wallets) = set_up_on(&mut servers[0], size.wallets).await?;
            let wallets_seconds = started.elapsed().as_secs_f64();
            let started = Instant::now();
            workload::fill(&target, &wallets, size.mutations)
                .await
                .map_err(|e| match servers[0].check_alive() {
                    Ok(()) => e,
                    Err(dead) => e.context(dead),
                })
                .context("filling the large store")?;
            let fill = Fill {
                wallets_seconds,
                mutations_seconds: started.elapsed().as_secs_f64(),
            };
            eprintln!(
                "  filled in {:.0} s (wallets {:.0} s, mutations {:.0} s)",
                fill.wallets_seconds + fill.mutations_seconds,
                fill.wallets_seconds,
                fill.mutations_seconds
            );
            let cells = run_prepaid_cells(
                &mut servers,
                &[target],
                &wallets,
                size.wallets,
                timing,
                "l",
                &LARGE_STORE_CELLS,
            )
            .await;
            Ok::<_, anyhow::Error>((fill, cells))
        }
        .await;
        stop_servers(servers).await;
        result
    }
    .await;
    // The filled store can take gigabytes; the run does not need it any more.
    if let Err(e) = std::fs::remove_dir_all(dir)
        && dir.exists()
    {
        eprintln!("warning: removing {}: {e}", dir.display());
    }
    match outcome {
        Ok((fill, cells)) => (
            rows(cells.into_iter().map(|(_, _, m)| m).collect()),
            Some(fill),
        ),
        Err(e) => {
            let why = format!("{e:#}");
            eprintln!("  large store not run: {why}");
            let measures = LARGE_STORE_CELLS.map(|_| Measure::NotRun(why.clone()));
            (rows(measures.into()), None)
        }
    }
}

/// Runs the prepaid cells on PostgreSQL, once for each of [`PG_INSTANCES`] instances on
/// the same fresh schema (the first pass creates the wallets, the later ones reuse
/// them), and drops the schema. Fails (with the reason for the report) only when the
/// schema cannot be made.
async fn measure_prepaid_postgres(
    binary: &Path,
    dir: &Path,
    config: &tokio_postgres::Config,
    base_url: &str,
    rows: &mut [Row],
    wallet_count: usize,
    timing: Timing,
) -> Result<(), String> {
    let schema = pg::PrepaidSchema::create(config)
        .await
        .map_err(|e| format!("creating prepaid's PostgreSQL schema: {e:#}"))?;
    let url = schema.url(base_url);
    eprintln!("prepaid on PostgreSQL, schema {}:", schema.name);
    // The API key and wallets of the first pass, which every later pass reuses.
    let mut set_up: Option<(http::Target, Arc<workload::Wallets>)> = None;
    for (column, &instances) in PG_INSTANCES.iter().enumerate() {
        let pass = async {
            let dir = dir.join(format!("pg{instances}"));
            let mut servers = start_servers(binary, &dir, Some(&url), instances).await?;
            let ready = match &set_up {
                Some(done) => Ok(done.clone()),
                None => set_up_on(&mut servers[0], wallet_count).await,
            };
            let targets = ready.and_then(|(target, wallets)| {
                let targets: anyhow::Result<Vec<_>> =
                    servers.iter().map(|s| target.at(s.addr)).collect();
                Ok((targets?, target, wallets))
            });
            let (targets, target, wallets) = match targets {
                Ok(t) => t,
                Err(e) => {
                    stop_servers(servers).await;
                    return Err(e);
                }
            };
            eprintln!("{instances} instance(s):");
            let tag = format!("g{instances}-");
            let cells = run_prepaid_cells(
                &mut servers,
                &targets,
                &wallets,
                wallet_count,
                timing,
                &tag,
                &prepaid_cells(),
            )
            .await;
            stop_servers(servers).await;
            Ok::<_, anyhow::Error>((target, wallets, cells))
        }
        .await;
        match pass {
            Ok((target, wallets, cells)) => {
                fill(rows, cells, |r| &mut r.pg[column]);
                set_up.get_or_insert((target, wallets));
            }
            Err(e) => {
                let why = format!("{e:#}");
                eprintln!("  {instances} instance(s) not run: {why}");
                // Without the first pass's wallets no later pass can run.
                let columns = if set_up.is_none() {
                    column..PG_INSTANCES.len()
                } else {
                    column..column + 1
                };
                for r in rows.iter_mut() {
                    for m in &mut r.pg[columns.clone()] {
                        *m = Measure::NotRun(why.clone());
                    }
                }
                if set_up.is_none() {
                    break;
                }
            }
        }
    }
    schema.drop_schema().await;
    Ok(())
}

/// Puts each cell's measure into the matching row's column.
fn fill(
    rows: &mut [Row],
    cells: Vec<(Workload, usize, Measure)>,
    column: impl Fn(&mut Row) -> &mut Measure,
) {
    for (kind, connections, m) in cells {
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.workload == kind && r.connections == connections)
        {
            *column(row) = m;
        }
    }
}

/// The load generator against canned answers: its ceiling on this machine.
async fn calibration_row(
    wallets: &Arc<workload::Wallets>,
    wallet_count: usize,
    timing: Timing,
) -> Row {
    if !selected(Workload::Calibration, WIDE_CONNECTIONS) {
        let none = Measure::NotApplicable;
        return Row::new(
            Workload::Calibration,
            WIDE_CONNECTIONS,
            not_selected(),
            &none,
            none.clone(),
        );
    }
    let result = async {
        let addr = calibrate::start().await?;
        let canned = http::Target::new(addr, "calibration")?;
        let conns = http::open_many(&canned, WIDE_CONNECTIONS).await?;
        let w = wallets.clone();
        let pick = Pick::Spread {
            connections: WIDE_CONNECTIONS,
            rows: wallet_count,
        };
        Ok(load::run_cell(
            conns,
            timing,
            load::Probes {
                procs: machine::ServerProcs::None,
                writer: None,
            },
            move |c, i, win| {
                workload::debit_worker(c, i, win, "calibration".to_owned(), w.clone(), pick)
            },
        )
        .await)
    }
    .await;
    log_cell(
        "load generator vs canned answers",
        WIDE_CONNECTIONS,
        &result,
    );
    let none = Measure::NotApplicable;
    Row::new(
        Workload::Calibration,
        WIDE_CONNECTIONS,
        measure(result),
        &none,
        none.clone(),
    )
}

/// Fills the baseline side of every row that has one. Fails (with the reason for the
/// report) only when PostgreSQL cannot be reached or set up.
async fn measure_postgres(
    config: tokio_postgres::Config,
    conn_str: &str,
    rows: &mut [Row],
    wallet_count: usize,
    timing: Timing,
) -> Result<pg::PgInfo, String> {
    let baseline = pg::Baseline::prepare(config, wallet_count)
        .await
        .map_err(|e| {
            format!("PostgreSQL at {conn_str} is unreachable or refused the setup: {e:#}")
        })?;
    let baseline = Arc::new(baseline);
    let procs = load::Probes {
        procs: machine::ServerProcs::Named("postgres"),
        writer: None,
    };
    for (index, row) in rows.iter_mut().enumerate() {
        if !matches!(row.postgres, Measure::NotRun(_)) {
            continue;
        }
        if !selected(row.workload, row.connections) {
            row.postgres = not_selected();
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let (kind, connections) = (row.workload, row.connections);
        let result = async {
            let free = baseline.connections_free().await?;
            if connections > free {
                let max = baseline.info.max_connections;
                bail!("needs {connections} connections, PostgreSQL accepts {free} more (max_connections = {max})");
            }
            let conns = baseline.open(connections).await?;
            let b = baseline.clone();
            let cell = format!("p{index}");
            let pick = match kind {
                Workload::MutationsHot => Pick::Hot,
                _ => Pick::Spread { connections, rows: wallet_count },
            };
            let procs = procs.clone();
            Ok(match kind {
                Workload::Reads => {
                    load::run_cell(conns, timing, procs, move |c, i, win| {
                        pg::read_worker(b.clone(), c, i, win, pick)
                    })
                    .await
                }
                _ => {
                    load::run_cell(conns, timing, procs, move |c, i, win| {
                        pg::debit_worker(b.clone(), c, i, win, cell.clone(), pick)
                    })
                    .await
                }
            })
        }
        .await;
        log_cell(&format!("{kind:?}"), connections, &result);
        row.postgres = measure(result);
    }
    baseline.drop_schema().await;
    Ok(baseline.info.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_takes_a_list_of_name_parts() {
        let only = "MutationsSpread@64, LargeStore,";
        assert!(only_matches(only, Workload::MutationsSpread, 64));
        assert!(!only_matches(only, Workload::MutationsSpread, 16));
        assert!(only_matches(only, Workload::LargeStoreReads, 64));
        assert!(!only_matches(only, Workload::Reads, 64));
        assert!(!only_matches(",", Workload::Reads, 64));
    }
}

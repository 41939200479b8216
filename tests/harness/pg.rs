//! A throw-away PostgreSQL cluster for the test process (Debian's `postgresql` package, installed
//! by scripts/setup.sh): `initdb` in a temp directory, the Unix socket in that directory, TCP on a
//! free loopback port, run as the unprivileged `postgres` user when the tests run as root (initdb
//! refuses root). Started once, on first use, and shared by all tests of the process; each test
//! gets its own database, copied from a migrated and seeded template (`CREATE DATABASE …
//! TEMPLATE`). A watchdog shell stops the cluster and removes the directory when the test
//! process exits (however it exits).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{free_port, in_ci, run_ok};

/// Which database a test's server-stub runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The cluster's superuser (trust authentication on loopback only).
pub const PG_USER: &str = "till";

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    /// Templates made so far (seed fixture → template database name).
    templates: Mutex<Vec<(PathBuf, String)>>,
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
pub fn pg_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// Is PostgreSQL installed? Without it a PostgreSQL test fails when `CI` is set and is skipped
/// (with a message) otherwise, like [`crate::need_tools`].
#[must_use]
pub fn need_postgres() -> bool {
    if pg_bin_dir().is_some() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("this test").to_string();
    let msg =
        format!("{test}: PostgreSQL (/usr/lib/postgresql/*/bin/initdb) not installed (scripts/setup.sh installs it)");
    if in_ci() {
        panic!("{msg}; CI is set, so a missing tool fails the test");
    }
    eprintln!("SKIPPED {msg}; CI is not set, so the test is skipped");
    false
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `cmd` run as the cluster's owner: the `postgres` user when we are root, else ourselves.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The test process's cluster (started on first call).
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start_cluster)
}

fn start_cluster() -> Cluster {
    let bin = pg_bin_dir().expect("PostgreSQL is installed (need_postgres)");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("till-pg-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        run_ok("chown the cluster dir", Command::new("chown").arg("postgres").arg(&dir));
    }
    let data = dir.join("data");
    run_ok(
        "initdb",
        as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .stdout(Stdio::null()),
    );
    let port = free_port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB",
        dir.display()
    );
    run_ok(
        "pg_ctl start",
        as_owner(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null()),
    );
    // The watchdog: when this test process is gone, stop the cluster (fast shutdown) and remove it.
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         kill -INT $(head -1 '{data}/postmaster.pid' 2>/dev/null) 2>/dev/null; \
         for i in $(seq 100); do [ -e '{data}/postmaster.pid' ] || break; sleep 0.1; done; rm -rf '{dir}'",
        pid = std::process::id(),
        data = data.display(),
        dir = dir.display()
    );
    // Deliberately not waited for: it outlives this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cluster watchdog");
    Cluster {
        port,
        dir,
        templates: Mutex::new(Vec::new()),
    }
}

static NEXT_DB: AtomicU32 = AtomicU32::new(1);

impl Cluster {
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!("host=127.0.0.1 port={} user={PG_USER} dbname={db}", self.port),
            postgres::NoTls,
        )
        .unwrap_or_else(|e| panic!("connect to the test cluster ({db}): {e}"))
    }

    /// A new empty database; returns its URL.
    pub fn new_db(&self) -> String {
        let name = format!("e2e_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(&name)
    }

    /// A new database migrated and seeded with `seed` (a copy of a template made once per seed).
    pub fn new_seeded_db(&self, seed: &Path) -> String {
        // One at a time: a template is copied only while nobody is connected to it.
        let mut t = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        let template = {
            match t.iter().find(|(s, _)| s == seed) {
                Some((_, name)) => name.clone(),
                None => {
                    let name = format!("tmpl_{}", t.len() + 1);
                    self.client("postgres")
                        .batch_execute(&format!("CREATE DATABASE {name}"))
                        .unwrap();
                    crate::seed_db(Path::new(&self.url(&name)), seed);
                    t.push((seed.to_path_buf(), name.clone()));
                    name
                }
            }
        };
        let name = format!("e2e_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .unwrap();
        self.url(&name)
    }
}

/// The database name of a cluster URL.
pub fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to answer /healthz. On Cassandra its start-up creates a fresh
/// keyspace, each table waiting for three datacenters to agree on the schema, which a loaded
/// 2-core machine has stretched past 30 s.
const START_LIMIT: Duration = Duration::from_secs(120);

const ALLOW_NETS: (&str, &str) = ("PIXELMILL_WEBHOOK_ALLOW_NETS", "127.0.0.0/8");

/// A `pixelmill serve` child process on a free loopback port. Killed when dropped.
pub struct Server {
    bin: PathBuf,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    child: Option<Child>,
}

impl Server {
    /// Starts `bin serve` with its data in `data_dir` and waits until `/healthz` answers.
    pub fn start(
        bin: impl AsRef<Path>,
        data_dir: impl AsRef<Path>,
        env: &[(&str, &str)],
    ) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = Server {
            bin: bin.as_ref().to_owned(),
            data_dir: data_dir.as_ref().to_owned(),
            env: Vec::new(),
            port,
            child: None,
        };
        server.set_env(env);
        server.spawn();
        server
    }

    /// Every test node knows `ADMIN_KEY` (a test may give another with `PIXELMILL_BOOTSTRAP_KEY`).
    /// Tests' webhook receivers listen on loopback, which the outbound guard refuses unless it is
    /// allowed; a test that sets the variable itself (to check the guard) keeps its own value.
    fn set_env(&mut self, env: &[(&str, &str)]) {
        let own = env.iter().any(|(k, _)| *k == ALLOW_NETS.0);
        self.env = [("PIXELMILL_BOOTSTRAP_KEY", crate::ADMIN_KEY)]
            .iter()
            .chain(env)
            .chain((!own).then_some(&ALLOW_NETS))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id while it runs, e.g. to read its `/proc/<pid>/status`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// SIGKILL, as a crash would: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `within` for the process to exit; `None` if it is still running
    /// (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts the process again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Like [`Server::restart`], with `env` instead of the environment it was started with.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.kill9();
        self.set_env(env);
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))
            .expect("server log file");
        let child = Command::new(&self.bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the pixelmill binary starts");
        self.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        let url = format!("{}/healthz", self.base_url());
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "pixelmill exited with {status} during start-up; log:\n{}",
                    self.log()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && probe::get_ok(&url)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "pixelmill did not become healthy in {} s; log:\n{}",
            START_LIMIT.as_secs(),
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A plain HTTP/1.1 GET over std so start-up checks need no runtime.
mod probe {
    use std::io::{Read, Write};

    pub fn get_ok(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut stream) = std::net::TcpStream::connect(host) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    }
}

//! A throw-away PKI and TLS-only PostgreSQL and Redis servers that a test starts on free ports
//! (never the shared ones), stopped when dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files in `dir`: `ca.pem` (signs the rest), `other-ca.pem` (signs nothing), `server.pem`
/// + `server.key` (for `localhost` only), `client.pem` + `client.key`.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        let (ca_key, ca) = authority("test CA");
        let (_, other) = authority("someone else's CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca");
        std::fs::write(dir.join("other-ca.pem"), other.pem()).expect("write other ca");
        let issuer = Issuer::new(ca_params("test CA"), ca_key);
        for (name, san) in [("server", "localhost"), ("client", "compozy")] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec![san.to_string()]).expect("params");
            params.distinguished_name.push(DnType::CommonName, san);
            let cert = params.signed_by(&key, &issuer).expect("sign");
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write cert");
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
        }
        Pki { dir: dir.to_path_buf() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

fn authority(name: &str) -> (KeyPair, rcgen::Certificate) {
    let key = KeyPair::generate().expect("key");
    let cert = ca_params(name).self_signed(&key).expect("self-signed");
    (key, cert)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A PostgreSQL cluster of its own (initdb), TLS only: `hostssl` lines, plain text rejected.
pub struct TlsPostgres {
    pub port: u16,
    data: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
}

impl TlsPostgres {
    /// `None` (with the reason) when Debian's PostgreSQL server binaries are not installed.
    pub fn start(dir: &Path, pki: &Pki) -> Result<TlsPostgres, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
            .ok_or("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")?;
        let as_postgres = is_root();
        let data = dir.join("pgdata");
        let port = free_port();
        let server = TlsPostgres { port, data: data.clone(), pg_ctl: bin.join("pg_ctl"), as_postgres };
        if as_postgres {
            // The server refuses to run as root; its files must belong to it.
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir))?;
        }
        let initdb = bin.join("initdb");
        run(server.command(&initdb).arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8"]))?;
        for (from, to) in [("server.pem", "server.crt"), ("server.key", "server.key")] {
            std::fs::copy(pki.path(from), data.join(to)).map_err(|e| e.to_string())?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data))?;
        }
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nssl = on\n\
             ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n",
            dir.display()
        );
        append(&data.join("postgresql.conf"), &conf)?;
        let hba = "hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n";
        std::fs::write(data.join("pg_hba.conf"), hba).map_err(|e| e.to_string())?;
        let log = dir.join("postgres.log");
        run(server.command(&server.pg_ctl).arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "start"]))?;
        wait_for_port(port, "postgres");
        Ok(server)
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// A URL with a password (trust auth ignores it) that must never show in an error.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres:hunter2-pg@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self.command(&self.pg_ctl.clone()).arg("-D").arg(&self.data).args(["-m", "immediate", "stop"]).output();
    }
}

/// A `redis-server` with a TLS port that requires a client certificate signed by the test CA,
/// and a plain-text port (`plain_port`) to show that a `rediss://` client refuses plain text.
/// The Redis server's password (a test value; it must never show in an error).
pub const PASSWORD: &str = "hunter2-redis";

pub struct TlsRedis {
    pub tls_port: u16,
    pub plain_port: u16,
    child: Child,
}

impl TlsRedis {
    pub fn start(dir: &Path, pki: &Pki) -> Result<TlsRedis, String> {
        let (tls_port, plain_port) = (free_port(), free_port());
        let path = |n: &str| pki.path(n).display().to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &plain_port.to_string(), "--tls-port", &tls_port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", PASSWORD])
            .args(["--tls-cert-file", &path("server.pem"), "--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.pem"), "--tls-auth-clients", "yes"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| format!("redis-server: {e}"))?;
        let server = TlsRedis { tls_port, plain_port, child };
        wait_for_port(tls_port, "redis (TLS)");
        wait_for_port(plain_port, "redis (plain)");
        Ok(server)
    }

    /// Whether this `redis-server` was built with TLS.
    pub fn supported() -> Result<(), String> {
        let out = Command::new("redis-server").arg("--help").output().map_err(|e| format!("redis-server: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        if text.contains("tls") || has_libssl() { Ok(()) } else { Err("redis-server was built without TLS".into()) }
    }
}

fn has_libssl() -> bool {
    Command::new("sh")
        .args(["-c", "ldd \"$(command -v redis-server)\" | grep -q libssl"])
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr))) }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| e.to_string())?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

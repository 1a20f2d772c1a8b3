//! Certificates for the secured exporter's tests, made with the `openssl`
//! command (which `cargo xtask setup test` installs): a CA, server
//! certificates for 127.0.0.1 and client certificates it signs. EC P-256
//! keys: quick to make, and taken by rustls, curl and Go alike.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::process::run_bounded;

const RUN: Duration = Duration::from_secs(30);

/// A certificate and its key, PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA in `dir`: `<name>.crt` and `<name>.key`.
#[derive(Debug, Clone)]
pub struct TestCa {
    pub files: CertFiles,
    dir: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let files = files(dir, name);
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            path(&files.key),
            "-out",
            path(&files.cert),
        ]);
        TestCa {
            files,
            dir: dir.to_owned(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, subject `CN=cn`,
    /// serial `serial`: `<cn>.crt`, `<cn>.key`.
    pub fn server(&self, cn: &str, serial: u32) -> CertFiles {
        self.sign(
            cn,
            serial,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A server certificate for the host `name` (its subject and only
    /// name): `<name>.crt`, `<name>.key`.
    pub fn server_for(&self, name: &str, serial: u32) -> CertFiles {
        self.sign(
            name,
            serial,
            &format!("subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n"),
        )
    }

    /// A client certificate, subject `CN=cn`.
    pub fn client(&self, cn: &str, serial: u32) -> CertFiles {
        self.sign(cn, serial, "extendedKeyUsage=clientAuth\n")
    }

    fn sign(&self, cn: &str, serial: u32, extensions: &str) -> CertFiles {
        let files = files(&self.dir, cn);
        let csr = self.dir.join(format!("{cn}.csr"));
        let ext = self.dir.join(format!("{cn}.ext"));
        std::fs::write(&ext, format!("basicConstraints=CA:FALSE\n{extensions}")).unwrap();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            path(&files.key),
            "-out",
            path(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&self.files.cert),
            "-CAkey",
            path(&self.files.key),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-extfile",
            path(&ext),
            "-out",
            path(&files.cert),
        ]);
        files
    }
}

fn files(dir: &Path, name: &str) -> CertFiles {
    CertFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn openssl(args: &[&str]) {
    let out = run_bounded(Command::new("openssl").args(args), RUN);
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Subject and serial (`subject=CN = x`, `serial=03E9`) of the certificate
/// that `addr` serves, read with `openssl s_client`.
pub fn served_certificate(addr: std::net::SocketAddr) -> String {
    let script = format!(
        "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -subject -serial"
    );
    let out = run_bounded(Command::new("sh").args(["-c", &script]), RUN);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

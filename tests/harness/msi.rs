//! The installer as built by `scripts/build-msi.sh`: building (optionally signed), reading its
//! tables back with `msiinfo`, a throw-away code-signing certificate (openssl) and Authenticode
//! verification (osslsigncode).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{repo_root, run_ok};

/// A throw-away self-signed code-signing certificate: `cert.pem` (the trust anchor for
/// `osslsigncode verify -CAfile`) and `cert.pfx` with `password`.
pub struct TestCert {
    pub pem: PathBuf,
    pub pfx: PathBuf,
    pub password: String,
}

impl TestCert {
    pub fn generate(dir: &Path, name: &str) -> TestCert {
        std::fs::create_dir_all(dir).unwrap();
        let (key, pem, pfx) = (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.pfx")),
        );
        run_ok(
            "openssl req -x509 (test signing certificate)",
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
                .args(["-subj", &format!("/CN={name}/O=Till Agent tests")])
                .args(["-addext", "extendedKeyUsage=codeSigning"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&pem),
        );
        let password = format!("pw-{name}-{}", std::process::id());
        run_ok(
            "openssl pkcs12 -export",
            Command::new("openssl")
                .args(["pkcs12", "-export", "-passout"])
                .arg(format!("pass:{password}"))
                .arg("-inkey")
                .arg(&key)
                .arg("-in")
                .arg(&pem)
                .arg("-out")
                .arg(&pfx),
        );
        TestCert { pem, pfx, password }
    }
}

/// `scripts/build-msi.sh --exe EXE --version V --out OUT` (signed with `cert` when given; the CLI exe
/// is the one beside EXE) → the MSI's path.
pub fn build_msi(exe: &Path, version: &str, out: &Path, cert: Option<&TestCert>) -> PathBuf {
    let mut cmd = Command::new(repo_root().join("scripts/build-msi.sh"));
    cmd.arg("--exe")
        .arg(exe)
        .arg("--version")
        .arg(version)
        .arg("--out")
        .arg(out)
        .env_remove("TILL_AGENT_SIGN_PFX")
        .env_remove("TILL_AGENT_SIGN_PASSWORD")
        .env_remove("TILL_AGENT_SIGN_COMMAND")
        .env_remove("TILL_AGENT_SIGN_TIMESTAMP");
    if let Some(c) = cert {
        cmd.env("TILL_AGENT_SIGN_PFX", &c.pfx)
            .env("TILL_AGENT_SIGN_PASSWORD", &c.password);
    }
    let o = run_ok("scripts/build-msi.sh", &mut cmd);
    let msi = PathBuf::from(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .expect("msi path")
            .trim(),
    );
    assert!(msi.exists(), "{} missing", msi.display());
    msi
}

/// `msiinfo export MSI TABLE` (CRLF → LF).
pub fn msiinfo_export(msi: &Path, table: &str) -> String {
    let o = run_ok(
        &format!("msiinfo export {table}"),
        Command::new("msiinfo").arg("export").arg(msi).arg(table),
    );
    String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n")
}

/// Rows of an exported table (the first three lines are column names, types and the key line).
pub fn rows(table_text: &str) -> Vec<Vec<String>> {
    table_text
        .lines()
        .skip(3)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// A table's rows as maps column name → value.
pub fn table(msi: &Path, name: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = msiinfo_export(msi, name);
    let columns: Vec<String> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(str::to_string)
        .collect();
    rows(&text)
        .into_iter()
        .map(|r| columns.iter().cloned().zip(r).collect())
        .collect()
}

/// `osslsigncode verify -CAfile CA -in FILE`: Ok(output) when the Authenticode signature verifies
/// against that trust anchor, Err(output) otherwise.
pub fn verify_signature(file: &Path, ca: &Path) -> Result<String, String> {
    let o = Command::new("osslsigncode")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() && text.contains("Signature verification: ok") {
        Ok(text)
    } else {
        Err(text)
    }
}

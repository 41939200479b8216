//! A serial card reader as a socat pseudo-terminal pair: the "scanner" writes to `a`, the agent
//! opens `b`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{wait_for, Proc};

pub struct Socat {
    proc: Proc,
    /// The scanner's end.
    pub a: PathBuf,
    /// The reader's end (the port the agent is configured with).
    pub b: PathBuf,
}

impl Socat {
    /// A pty pair linked as `dir/scanner` and `dir/ttyREADER`.
    pub fn start(dir: &Path) -> Socat {
        Socat::start_named(dir, "scanner", "ttyREADER")
    }

    /// A pty pair linked as `dir/a_name` (scanner) and `dir/b_name` (reader).
    pub fn start_named(dir: &Path, a_name: &str, b_name: &str) -> Socat {
        let (a, b) = (dir.join(a_name), dir.join(b_name));
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&b);
        let mut cmd = Command::new("socat");
        cmd.args([
            format!("pty,raw,echo=0,link={}", a.display()),
            format!("pty,raw,echo=0,link={}", b.display()),
        ])
        .stderr(Stdio::null());
        let proc = Proc::spawn("socat", &mut cmd);
        assert!(
            wait_for(Duration::from_secs(5), || (a.exists() && b.exists()).then_some(())).is_some(),
            "socat did not create the ptys"
        );
        Socat { proc, a, b }
    }

    /// The scanner sends `bytes`.
    pub fn write(&self, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new().write(true).open(&self.a).unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
    }

    /// Unplug: the pty pair disappears, and so do its links. A dangling link would come back to life
    /// when the kernel hands the same /dev/pts number to another test's socat, and a reader still
    /// retrying this path would then open that test's port and take its scans.
    pub fn unplug(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_file(&self.a);
        let _ = std::fs::remove_file(&self.b);
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        self.unplug();
    }
}

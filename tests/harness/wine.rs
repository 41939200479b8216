//! A throwaway Wine prefix (Debian's wine 8) with the ProcessPrng shim and a persistent
//! wineserver, and the cross-built `till-agent.exe` it runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin_dir, run_ok, Proc};

/// The cross-built agent.
pub fn windows_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("TILL_WINDOWS_EXE") {
        return PathBuf::from(p);
    }
    let target = bin_dir().parent().expect("target dir").to_path_buf();
    let exe = target
        .join("x86_64-pc-windows-gnu")
        .join("debug")
        .join("till-agent.exe");
    assert!(
        exe.exists(),
        "{} not found: build it with `cargo build -p till-agent --target x86_64-pc-windows-gnu` (scripts/test.sh does)",
        exe.display()
    );
    exe
}

/// A throwaway Wine prefix with the ProcessPrng shim and a persistent wineserver.
pub struct Wine {
    pub prefix: tempfile::TempDir,
    server: Option<Proc>,
    /// Our Xvfb: wine's desktop (explorer.exe) starts with the prefix, so the display is there from
    /// the start, as on a real till; headless runs and msiexec /qn simply open no window.
    pub display: String,
}

impl Wine {
    pub fn create(work: &Path, display: &str) -> Wine {
        let prefix = tempfile::Builder::new()
            .prefix("wineprefix-")
            .tempdir()
            .expect("prefix dir");
        let mut w = Wine {
            prefix,
            server: None,
            display: display.to_string(),
        };
        let t = Instant::now();
        run_ok("wineboot -i", w.cmd("wineboot").arg("-i"));
        w.wait_server();
        eprintln!("wine: prefix initialised in {:.1} s", t.elapsed().as_secs_f64());
        // Rust's std (1.78+) imports bcryptprimitives.dll!ProcessPrng, which wine 8 lacks: a tiny
        // mingw shim calling advapi32!SystemFunction036 (RtlGenRandom), in this prefix only.
        let src = work.join("bcryptprimitives.c");
        std::fs::write(
            &src,
            "#include <windows.h>\n\
             BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);\n\
             __declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {\n\
               while (len > 0) {\n\
                 ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;\n\
                 if (!SystemFunction036(data, chunk)) return FALSE;\n\
                 data += chunk; len -= chunk;\n\
               }\n\
               return TRUE;\n\
             }\n",
        )
        .unwrap();
        let dll = w.drive_c().join("windows/system32/bcryptprimitives.dll");
        run_ok(
            "x86_64-w64-mingw32-gcc (ProcessPrng shim)",
            Command::new("x86_64-w64-mingw32-gcc")
                .args(["-shared", "-O2", "-s", "-o"])
                .arg(&dll)
                .arg(&src)
                .arg("-ladvapi32"),
        );
        // wine 8 has no builtin bcryptprimitives, so the native DLL in system32 is used without an
        // override; say so explicitly anyway in case a later wine adds a builtin without ProcessPrng.
        run_ok(
            "reg add DllOverrides",
            w.cmd("reg").args([
                "add",
                r"HKCU\Software\Wine\DllOverrides",
                "/v",
                "bcryptprimitives",
                "/d",
                "native,builtin",
                "/f",
            ]),
        );
        // keep one wineserver (foreground child, persistent) for the whole test: every `wine` call
        // then starts in a fraction of a second
        w.wait_server();
        // its object dumps (a process killed mid-I/O) go to a log in the prefix, not the test output
        let log = std::fs::File::create(w.prefix.path().join("wineserver.log")).expect("wineserver.log");
        w.server = Some(Proc::spawn(
            "wineserver",
            w.server_cmd()
                .args(["-f", "-p"])
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        ));
        w
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("wine");
        c.arg(program)
            .env("WINEPREFIX", self.prefix.path())
            .env("WINEDEBUG", "-all")
            // no Mono/Gecko download prompts
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("DISPLAY", &self.display)
            .env_remove("WAYLAND_DISPLAY")
            // the installed agent must find its token in Credential Manager, not in the env
            .env_remove("TILL_AGENT_TOKEN")
            .stdin(Stdio::null());
        c
    }

    pub fn server_cmd(&self) -> Command {
        let mut c = Command::new("wineserver");
        c.env("WINEPREFIX", self.prefix.path());
        c
    }

    pub fn wait_server(&self) {
        let _ = self.server_cmd().arg("-w").status();
    }

    pub fn drive_c(&self) -> PathBuf {
        self.prefix.path().join("drive_c")
    }

    /// `reg query KEY /v NAME` → the value's data, None when the key or value is absent.
    pub fn reg_value(&self, key: &str, name: &str) -> Option<String> {
        let o = self
            .cmd("reg")
            .args(["query", key, "/v", name])
            .output()
            .expect("wine reg");
        if !o.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        text.lines().map(str::trim).find(|l| l.starts_with(name)).map(|l| {
            let rest = l[name.len()..].trim_start();
            let rest = rest.split_once(char::is_whitespace).map(|(_, r)| r).unwrap_or("");
            rest.trim().to_string()
        })
    }

    pub fn msiexec(&self, args: &[&str], msi: &Path) -> std::process::ExitStatus {
        let mut c = self.cmd("msiexec");
        c.args(&args[..1]).arg(win_path(msi)).args(&args[1..]);
        let st = c.status().expect("msiexec");
        self.wait_idle();
        st
    }

    /// Wait until no Windows process runs in the prefix (msiexec returns before its service exits).
    pub fn wait_idle(&self) {
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Installed agent, as started by the Run key (but headless).
    pub fn agent(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(r"C:\Program Files\TillAgent\till-agent.exe");
        c.args(args);
        c
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.server_cmd().arg("-k").status();
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
    }
}

/// Unix path → the path Wine's Z: drive shows for it.
pub fn win_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

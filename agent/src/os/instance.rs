//! One GUI instance per user session. The first instance listens on a local endpoint (a Unix
//! socket in `$XDG_RUNTIME_DIR` named after the X display; a named pipe per user and session on
//! Windows). A second start connects, sends `show`, waits for `ok` and exits; the first shows
//! its last popup.

use std::io::{BufRead, BufReader, Write};

pub enum Acquired {
    /// We are the first: serve activations with [`Instance::serve`].
    First(Instance),
    /// Another instance runs and has been asked to show itself.
    Signalled,
}

pub struct Instance {
    #[cfg(unix)]
    listener: std::os::unix::net::UnixListener,
    #[cfg(unix)]
    path: std::path::PathBuf,
    #[cfg(windows)]
    name: String,
}

#[cfg(unix)]
pub fn endpoint() -> std::path::PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("till-agent-{}", std::env::var("USER").unwrap_or_default()))
        });
    let display: String = std::env::var("DISPLAY")
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    dir.join(format!("till-agent-gui{display}.sock"))
}

#[cfg(windows)]
pub fn endpoint() -> String {
    let user: String = std::env::var("USERNAME")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let session: String = std::env::var("SESSIONNAME")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!(r"\\.\pipe\till-agent-gui-{user}-{session}")
}

/// Send `message` to a running instance; false if none runs.
pub fn signal(message: &str) -> anyhow::Result<bool> {
    Ok(send(message)?.is_some())
}

#[cfg(unix)]
fn send(message: &str) -> anyhow::Result<Option<String>> {
    let path = endpoint();
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(&path) else {
        return Ok(None);
    };
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut answer = String::new();
    // A connection that breaks here belongs to an instance that is just exiting (or was
    // killed): nobody will answer, so this start becomes the GUI.
    if let Err(e) = s
        .write_all(format!("{message}\n").as_bytes())
        .and_then(|_| BufReader::new(&s).read_line(&mut answer))
    {
        tracing::warn!(
            "{}: the other instance did not answer ({e}); starting the GUI here",
            path.display()
        );
        return Ok(None);
    }
    if answer.is_empty() {
        tracing::warn!(
            "{}: the other instance closed without answering; starting the GUI here",
            path.display()
        );
        return Ok(None);
    }
    if answer.trim() != "ok" {
        anyhow::bail!("{} answered {:?} instead of ok", path.display(), answer.trim());
    }
    Ok(Some(answer))
}

#[cfg(windows)]
fn send(message: &str) -> anyhow::Result<Option<String>> {
    let Ok(mut pipe) = std::fs::OpenOptions::new().read(true).write(true).open(endpoint()) else {
        return Ok(None);
    };
    pipe.write_all(format!("{message}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&pipe).read_line(&mut answer)?;
    Ok(Some(answer))
}

#[cfg(unix)]
pub fn acquire() -> anyhow::Result<Acquired> {
    use std::os::unix::net::UnixListener;
    let path = endpoint();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if send("show")?.is_some() {
        return Ok(Acquired::Signalled);
    }
    // Nobody answers: a stale socket from a crashed instance.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    Ok(Acquired::First(Instance { listener, path }))
}

#[cfg(windows)]
pub fn acquire() -> anyhow::Result<Acquired> {
    let name = endpoint();
    if send("show")?.is_some() {
        return Ok(Acquired::Signalled);
    }
    Ok(Acquired::First(Instance { name }))
}

impl Instance {
    /// Answer on a thread of its own: each line (`show`, `menu <id>`) goes to `on_message`.
    pub fn serve(self, on_message: impl Fn(&str) + Send + 'static) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            let Instance { listener, path } = self;
            std::thread::Builder::new().name("gui-instance".into()).spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut s) = stream else { continue };
                    let mut line = String::new();
                    if BufReader::new(&s).read_line(&mut line).is_ok() && !line.trim().is_empty() {
                        tracing::info!("another start of till-agent sent {:?}", line.trim());
                        on_message(line.trim());
                        let _ = s.write_all(b"ok\n");
                    }
                }
                let _ = std::fs::remove_file(&path);
            })?;
            Ok(())
        }
        #[cfg(windows)]
        {
            let name = self.name;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            // Create the first pipe instance now so a second start finds it immediately.
            let first = rt.block_on(async {
                tokio::net::windows::named_pipe::ServerOptions::new()
                    .first_pipe_instance(true)
                    .create(&name)
            })?;
            std::thread::Builder::new().name("gui-instance".into()).spawn(move || {
                use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                rt.block_on(async move {
                    let mut server = first;
                    loop {
                        if server.connect().await.is_err() {
                            continue;
                        }
                        let next = match tokio::net::windows::named_pipe::ServerOptions::new().create(&name) {
                            Ok(n) => n,
                            Err(e) => {
                                tracing::warn!("single-instance pipe {name}: {e}");
                                return;
                            }
                        };
                        let mut current = std::mem::replace(&mut server, next);
                        let mut line = String::new();
                        let mut reader = tokio::io::BufReader::new(&mut current);
                        if reader.read_line(&mut line).await.is_ok() && !line.trim().is_empty() {
                            on_message(line.trim());
                            let _ = current.write_all(b"ok\n").await;
                        }
                    }
                })
            })?;
            Ok(())
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// An instance that accepts the connection but dies before answering (killed, or exiting)
    /// must not stop the next start: `send` says "nobody answered" and the caller becomes the GUI.
    #[test]
    fn an_instance_that_closes_without_answering_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: tests in this module are the only ones reading these variables.
        unsafe {
            std::env::set_var("XDG_RUNTIME_DIR", dir.path());
            std::env::set_var("DISPLAY", ":instance-test");
        }
        let listener = std::os::unix::net::UnixListener::bind(endpoint()).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            drop(s); // no "ok"
        });
        assert_eq!(send("show").unwrap(), None);
        t.join().unwrap();
        // A stale socket file with nobody listening: also none, and `acquire` takes it over.
        assert_eq!(send("show").unwrap(), None);
        assert!(matches!(acquire().unwrap(), Acquired::First(_)));
    }
}

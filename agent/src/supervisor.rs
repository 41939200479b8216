//! Supervised background tasks (the watchexec way). Each task has a name and returns
//! `anyhow::Result<()>`; it runs under [`supervise`], which notices an early exit, an error or a
//! panic, writes it to the sync log (`till-agent log`), shows it in [`SyncStatus`] (the tray turns
//! red naming the task, `status` lists it) and starts the task again with backoff. A task that
//! ran cleanly for [`HEALTHY_AFTER`] after a restart clears its problem. Critical errors — the
//! configuration, the data folder's lock — are found before any task starts (`cli::run_agent`)
//! and stop the agent there with their message; nothing a task meets is worth stopping the till for.
//!
//! Fault injection for the tests: `TILL_AGENT_FAULT_TASK=<task>:<panic|fail>[:<times>]` makes the
//! named task panic or fail at its start, the first `<times>` runs (default 1).
//!
//! [`SyncStatus`]: crate::events::SyncStatus
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::context::Shared;
use crate::sync::replicator::Backoff;

/// A restarted task that runs this long without failing is healthy again.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// May a task end on its own? (The card input ends when no reader is configured.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOk {
    Restart,
    Finish,
}

/// The injected fault for `task`, if `TILL_AGENT_FAULT_TASK` names it: (panic?, times).
fn injected_fault(task: &str) -> Option<(bool, u32)> {
    let v = std::env::var("TILL_AGENT_FAULT_TASK").ok()?;
    let mut parts = v.split(':');
    if parts.next()? != task {
        return None;
    }
    let panic = match parts.next().unwrap_or("panic") {
        "panic" => true,
        "fail" => false,
        _ => return None,
    };
    let times = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    Some((panic, times))
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into()),
        Err(e) => e.to_string(),
    }
}

/// Run `make()` as task `name` until shutdown, restarting it as described above.
pub fn supervise<F, Fut>(sh: Arc<Shared>, name: &'static str, on_ok: OnOk, make: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let fault = injected_fault(name);
        let runs = AtomicU32::new(0);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        let mut shutdown = sh.shutdown_rx();
        loop {
            let run = runs.fetch_add(1, Ordering::Relaxed);
            let inject = fault.filter(|(_, times)| run < *times).map(|(panic, _)| panic);
            let fut = make();
            let started = tokio::time::Instant::now();
            let outcome = tokio::spawn(async move {
                match inject {
                    Some(true) => panic!("injected fault (TILL_AGENT_FAULT_TASK)"),
                    Some(false) => anyhow::bail!("injected fault (TILL_AGENT_FAULT_TASK)"),
                    None => fut.await,
                }
            });
            // While it runs: clear an earlier problem once it has been healthy long enough.
            let mut outcome = outcome;
            let result = loop {
                tokio::select! {
                    r = &mut outcome => break r,
                    _ = tokio::time::sleep(HEALTHY_AFTER), if sh.task_problem(name).is_some() => {
                        if started.elapsed() >= HEALTHY_AFTER {
                            sh.set_task_problem(name, None);
                            sh.publish_status();
                            sh.log.info("task", None, &format!("background task {name} runs again"));
                            backoff.reset();
                        }
                    }
                }
            };
            if sh.is_shutting_down() {
                return;
            }
            let what = match result {
                Ok(Ok(())) if on_ok == OnOk::Finish => return,
                Ok(Ok(())) => "stopped early".to_string(),
                Ok(Err(e)) => format!("failed: {e:#}"),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e)),
                Err(e) => format!("ended: {e}"),
            };
            let d = backoff.next_delay();
            let restarts = runs.load(Ordering::Relaxed);
            sh.log.error(
                "task",
                None,
                &format!(
                    "background task {name} {what}; restart {restarts} in {} ms",
                    d.as_millis()
                ),
            );
            sh.set_task_problem(name, Some(format!("{what} (restarted {restarts}×)")));
            sh.publish_status();
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_spec() {
        // SAFETY: only this test reads the variable in this test binary.
        unsafe { std::env::set_var("TILL_AGENT_FAULT_TASK", "replicator:fail:3") };
        assert_eq!(injected_fault("replicator"), Some((false, 3)));
        assert_eq!(injected_fault("watcher"), None);
        unsafe { std::env::set_var("TILL_AGENT_FAULT_TASK", "watcher") };
        assert_eq!(injected_fault("watcher"), Some((true, 1)));
        unsafe { std::env::remove_var("TILL_AGENT_FAULT_TASK") };
    }
}

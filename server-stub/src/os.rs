//! Platform code of the server (the only place with `cfg(unix|windows)`): the stop signal, and
//! the process's memory settings.

/// No transparent huge pages for this process (Linux; elsewhere nothing to do). mimalloc asks the
/// kernel for huge pages on each fresh 2 MiB region of its heap; the first touch of one then
/// zeroes all 2 MiB. The server's heap is small and made of short-lived request parts, so that
/// zeroing is pure cost: with it the ingest spent ≈ 13 % more CPU (67.5 vs 58.5 µs per receipt,
/// 15.5 k vs 16.6 k receipts/s, medians of six alternating runs of the ingest bench). Called
/// first thing in `main`; the kernel checks the flag at each page fault, so regions mapped
/// before it also get 4 KiB pages.
pub fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Resolves on Ctrl-C, and on SIGTERM where there is one (Unix).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::select! { _ = ctrl_c => {}, _ = terminate() => {} }
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await
}

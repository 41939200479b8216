//! End-to-end tests: server (filled by its issue).

//! End-to-end tests: faults (filled by its issue).

//! End-to-end tests: ui (filled by its issue).

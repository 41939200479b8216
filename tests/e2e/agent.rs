//! End-to-end tests: agent (filled by its issue).

//! End-to-end tests: input (filled by its issue).

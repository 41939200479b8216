//! End-to-end tests: wine (filled by its issue).

//! Integration tests of the `protocol` contract: wire round-trips, rules-engine properties and
//! the demo program fixture. One test binary, one module per area.

mod demo;
mod overflow;
mod props;
mod wire;

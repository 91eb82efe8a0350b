//! Code for `cargo test` only: a reference parser of the WHATWG event
//! stream ([`whatwg`]) that the core's output is checked against, and a
//! model-based test of streams, channels and the budget ([`model`]).

pub mod model;
pub mod whatwg;

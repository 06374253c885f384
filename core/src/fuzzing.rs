//! Crate-private parsers opened to the cargo-fuzz targets in `fuzz/` (feature `fuzzing`, never part of a
//! device build): the fuzzer runs exactly the parsers the runtime runs.

pub use crate::auth::lwa::{parse_code_pair, parse_tokens, CodePairAnswer, TokenAnswer};

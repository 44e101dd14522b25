//! Tests that read what authgate logs, each in this process of its own: a
//! subscriber set for one thread misses events when other tests' threads
//! register the same call sites at the same moment, so these do not share a
//! process with the rest.

#[path = "../it/common.rs"]
#[allow(dead_code, unused_macros, unused_imports)]
mod common;
mod documents;
mod floods;
mod redaction;

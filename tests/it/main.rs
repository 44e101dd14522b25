//! authgate's integration tests: each test starts its own dev issuer and
//! server on 127.0.0.1:0 and calls them over real HTTP and gRPC. One test
//! binary, so the suite links once (but for tests/logs, which read the logs).

mod authz;
mod cache;
mod cli;
mod client;
mod common;
mod config;
mod differential;
mod docs;
mod drain;
mod fuzz;
mod gate;
mod greeter;
mod issuers;
mod keys;
mod lifetimes;
mod limits;
mod metrics;
mod proxy;
mod refresh;
mod scopes;
mod seams;
mod server;
mod shapes;
mod streams;
mod traps;
mod web;

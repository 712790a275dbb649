//! The modules of `jobq-beanstalkd`: `parse` (framing and commands),
//! `conn` (one client), `server` (what connections share), `stats` (YAML), `pool`
//! (the threads that make the store's blocking calls).

pub mod conn;
pub mod parse;
pub mod pool;
pub mod server;
pub mod stats;

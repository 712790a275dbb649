//! The modules of `jobq-beanstalkd`: `parse` (framing and commands),
//! `conn` (one client), `server` (what connections share), `stats` (YAML).

pub mod conn;
pub mod parse;
pub mod server;
pub mod stats;

//! `jobq-beanstalkd`: a beanstalkd 1.12 protocol server over a jobq store
//! (a SQLite file or a PostgreSQL schema), so beanstalkd clients can put
//! and work jobq jobs. See docs/beanstalkd.md for the mapping and what
//! differs from beanstalkd.

mod beanstalkd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use jobq::{Config, Queue};
use tokio::net::TcpListener;

use beanstalkd::server::Server;

/// beanstalkd's largest -z.
const MAX_JOB_SIZE_LIMIT: u32 = 1 << 30;

/// Serve the beanstalkd protocol over a jobq store.
#[derive(Parser)]
#[command(name = "jobq-beanstalkd", version)]
struct Args {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:11300")]
    listen: String,
    /// The store's config JSON, as for jobq_open (docs/configuration.md).
    #[arg(long)]
    config: Option<String>,
    /// Largest job body in bytes (beanstalkd's -z); larger puts get JOB_TOO_BIG.
    #[arg(long, default_value_t = 65_535, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_JOB_SIZE_LIMIT)))]
    max_job_size: u32,
    /// A queue file path, or a postgresql:// URL.
    store: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = match Config::from_json(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jobq-beanstalkd: {e}");
            return ExitCode::from(2);
        }
    };
    // The store must take every body the protocol accepts.
    config.max_payload_bytes = config.max_payload_bytes.max(u64::from(args.max_job_size));
    // Opened before the runtime starts: the PostgreSQL store runs a runtime of its own.
    let queue = match Queue::open(&args.store, config) {
        Ok(queue) => queue,
        Err(e) => {
            eprintln!("jobq-beanstalkd: cannot open {}: {e}", jobq::printable_path(&args.store.to_string_lossy()));
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobq-beanstalkd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let srv = Arc::new(Server::new(queue.clone(), args.max_job_size));
    let code = runtime.block_on(run(srv.clone(), &args.listen));
    // Jobs still held go back to ready at once rather than when their TTR ends.
    for job in srv.take_held() {
        let _ = job.release(0);
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    if let Err(e) = queue.close() {
        eprintln!("jobq-beanstalkd: closing the store: {e}");
    }
    code
}

async fn run(srv: Arc<Server>, listen: &str) -> ExitCode {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("jobq-beanstalkd: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("jobq-beanstalkd listening on {addr}"),
        Err(_) => println!("jobq-beanstalkd listening on {listen}"),
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("jobq-beanstalkd: cannot watch SIGTERM: {e}");
            return ExitCode::from(1);
        }
    };
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    next_id += 1;
                    tokio::spawn(beanstalkd::conn::serve(srv.clone(), stream, next_id));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    eprintln!("jobq-beanstalkd: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = term.recv() => return ExitCode::SUCCESS,
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}

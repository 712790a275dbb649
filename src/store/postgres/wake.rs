//! The handle's session connection: it holds the handle's session advisory
//! lock (so other clients can tell this one is alive, see owner.rs), LISTENs
//! on the store's channel (unless `wakeups` is `poll`) and sends this
//! process's NOTIFYs. A NOTIFY takes a global lock at commit, so they are
//! rate-limited: at most one per queue per `RATE` from this handle, the
//! last one always sent. Any notification from another client bumps the
//! notifier. When the connection breaks it is made again (lock re-taken,
//! LISTEN again) and the notifier bumped, as notifications may have been
//! missed meanwhile.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client};

use super::pool::Settings;
use super::url::quote_ident;
use crate::error::Result;
use crate::notify::Notifier;

/// Shortest time between two NOTIFY rounds of one handle.
const RATE: Duration = Duration::from_millis(2);
/// Waits between attempts to make the session connection again.
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// What the rest of the store shares with the session task.
#[derive(Default)]
pub(crate) struct Wake {
    /// Queues to NOTIFY in the next round.
    pending: Mutex<BTreeSet<Arc<str>>>,
    signal: Notify,
    stop: AtomicBool,
    /// Whether the session connection is up (lock held, listening).
    up: AtomicBool,
}

impl Wake {
    /// NOTIFYs other clients that `queues` may have ready jobs (soon, rate-limited).
    pub(crate) fn send(&self, queues: impl IntoIterator<Item = Arc<str>>) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).extend(queues);
        self.signal.notify_one();
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, SeqCst);
        self.signal.notify_one();
    }

    /// Whether this handle is holding its lock and hearing other clients now.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(SeqCst)
    }
}

/// The session connection's settings.
pub(crate) struct Session {
    pub settings: Arc<Settings>,
    pub owner: i64,
    pub listen: bool,
    pub notifier: Arc<Notifier>,
    pub wake: Arc<Wake>,
}

/// The channel of a store: one per schema, the queue name as payload.
pub(crate) fn channel(schema: &str) -> String {
    format!("jobq_{:016x}", super::fnv64(schema.as_bytes()))
}

impl Session {
    /// Connects, takes the advisory lock, LISTENs.
    pub(crate) async fn establish(&self) -> Result<Client> {
        let (client, mut connection) = self.settings.connect_raw().await?;
        let my_pid = Arc::new(AtomicI32::new(0));
        let (notifier, wake, pid) = (self.notifier.clone(), self.wake.clone(), my_pid.clone());
        tokio::spawn(async move {
            std::future::poll_fn(|cx| loop {
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => {
                        if n.process_id() != pid.load(SeqCst) {
                            notifier.bump();
                        }
                    }
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            })
            .await;
            drop(connection);
            wake.up.store(false, SeqCst);
            wake.signal.notify_one();
        });
        let map = |e: tokio_postgres::Error| self.settings.map(&e);
        self.settings.setup(&client).await?;
        let pid: i32 = client.query_one("SELECT pg_catalog.pg_backend_pid()", &[]).await.map_err(map)?.get(0);
        my_pid.store(pid, SeqCst);
        client.execute("SELECT pg_catalog.pg_advisory_lock($1::int8)", &[&self.owner]).await.map_err(map)?;
        if self.listen {
            let chan = quote_ident(&channel(&self.settings.url.schema));
            client.batch_execute(&format!("LISTEN {chan}")).await.map_err(map)?;
        }
        self.wake.up.store(true, SeqCst);
        Ok(client)
    }

    /// The task: sends NOTIFYs, keeps the connection up, until stopped.
    /// Stopping sends what is still pending first (a put just before close
    /// must still wake the others), unless the connection is down then.
    /// Dropping the client at the end closes the session (and frees the lock).
    pub(crate) async fn run(self, mut client: Option<Client>) {
        let chan = channel(&self.settings.url.schema);
        let mut backoff = RECONNECT_MIN;
        loop {
            let stopping = self.wake.stop.load(SeqCst);
            let c = match client.take() {
                Some(c) if !c.is_closed() => c,
                _ if stopping => break,
                _ => {
                    self.wake.up.store(false, SeqCst);
                    match self.establish().await {
                        Ok(c) => {
                            backoff = RECONNECT_MIN;
                            // Notifications may have been missed meanwhile.
                            self.notifier.bump();
                            client = Some(c);
                        }
                        Err(_) => {
                            let _ = tokio::time::timeout(backoff, self.wake.signal.notified()).await;
                            backoff = (backoff * 2).min(RECONNECT_MAX);
                        }
                    }
                    continue;
                }
            };
            let queues: Vec<Arc<str>> =
                std::mem::take(&mut *self.wake.pending.lock().unwrap_or_else(PoisonError::into_inner))
                    .into_iter()
                    .collect();
            if queues.is_empty() {
                client = Some(c);
                if stopping {
                    break;
                }
                self.wake.signal.notified().await;
                continue;
            }
            let sends = queues.iter().map(|q| {
                let (c, chan) = (&c, &chan);
                async move { c.execute("SELECT pg_catalog.pg_notify($1::text, $2::text)", &[chan, &q.as_ref()]).await }
            });
            let results = futures_util::future::join_all(sends).await;
            if results.iter().any(|r| r.is_err()) {
                // Sent again once the connection is back.
                self.wake.pending.lock().unwrap_or_else(PoisonError::into_inner).extend(queues);
            }
            client = Some(c);
            if stopping {
                break;
            }
            tokio::time::sleep(RATE).await;
        }
        self.wake.up.store(false, SeqCst);
        drop(client);
    }
}

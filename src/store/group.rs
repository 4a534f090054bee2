//! Group commit of new jobs: requests that arrive while a commit is running share the next
//! one, so a burst of `POST /jobs` costs one transaction (one WAL flush, one SQLite `fsync`)
//! per batch instead of one per job. A lone request is written at once, without waiting.

use tokio::sync::{mpsc, oneshot};

use super::{DynStore, JobRow, StoreError};

/// Most jobs one commit takes.
const MAX_BATCH: usize = 512;

/// Requests waiting for the writer; senders wait when it is this far behind.
const QUEUE: usize = 4096;

/// One job waiting to be stored, and where its result goes.
struct Pending {
    row: JobRow,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle request handlers store new jobs through.
#[derive(Clone)]
pub struct JobWriter {
    tx: mpsc::Sender<Pending>,
}

impl JobWriter {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn spawn(store: DynStore) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        JobWriter { tx }
    }

    /// Stores one job, durably, once its batch commits.
    pub async fn insert(&self, row: JobRow) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { row, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the job writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the job writer has stopped".into()))?
    }
}

async fn run(store: DynStore, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (rows, replies): (Vec<JobRow>, Vec<_>) =
            batch.drain(..).map(|p| (p.row, p.reply)).unzip();
        match store.insert_jobs(&rows).await {
            Ok(()) => {
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
            // A batch fails as a whole; when the cause may be one row (a constraint, not the
            // database being away), each row is tried alone so the others are not failed
            // with it.
            Err(StoreError::Other(_)) if rows.len() > 1 => {
                for (row, reply) in rows.into_iter().zip(replies) {
                    let result = store.insert_jobs(std::slice::from_ref(&row)).await;
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

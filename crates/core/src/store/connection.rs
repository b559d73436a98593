//! One Redis connection handle of the store: a [`ConnectionManager`] (multiplexed, reconnecting)
//! that retries a command once when it could not even be sent.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A handle on a multiplexed connection. Cheap to clone; clones share the socket.
///
/// After Redis went away, the manager keeps the error of its last reconnection attempt and
/// hands it to the next command while it starts another attempt. That error is a refused
/// connection: the command never reached Redis, so sending it again, once, is safe even for a
/// write, and spares a caller a 503 once Redis is back. A command that failed any other way is
/// not repeated, since Redis may have run it.
#[derive(Clone)]
pub struct Connection(ConnectionManager);

impl Connection {
    pub(super) fn new(manager: ConnectionManager) -> Self {
        Self(manager)
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.0.req_packed_command(cmd).await {
                Err(e) if e.is_connection_refusal() => self.0.req_packed_command(cmd).await,
                result => result,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self.0.req_packed_commands(pipeline, offset, count).await {
                Err(e) if e.is_connection_refusal() => {
                    self.0.req_packed_commands(pipeline, offset, count).await
                }
                result => result,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

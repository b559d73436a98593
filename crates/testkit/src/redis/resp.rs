//! Just enough of RESP (the Redis protocol) to ask a fresh `redis-server` whether it is up and
//! whose it is, without pulling a Redis client into the test kit.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// The longest reply line accepted; a Redis never sends more for the commands asked here.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// The largest bulk reply accepted (`INFO server` is about 1.5 KiB).
const MAX_BULK_BYTES: usize = 1024 * 1024;

/// One reply, of the kinds `PING`, `INFO` and the `CLUSTER` commands asked here can give.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`, `+PONG`.
    Simple(String),
    /// `-ERR …`, `-LOADING …`, `-MOVED 3999 127.0.0.1:7002`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$<len>` followed by the bytes; `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
}

/// Sends one command to `addr` on a fresh connection and reads its reply, all within `limit`.
pub(crate) async fn ask(addr: SocketAddr, args: &[&str], limit: Duration) -> io::Result<Reply> {
    let mut replies = ask_in_turn(addr, &[args], limit).await?;
    replies
        .pop()
        .ok_or_else(|| invalid("no reply to the command"))
}

/// Sends `commands` to `addr` one after the other on one fresh connection (for those whose effect
/// is the connection's: `READONLY`, `WAIT` after a write) and reads their replies, all within
/// `limit`.
pub(crate) async fn ask_in_turn(
    addr: SocketAddr,
    commands: &[&[&str]],
    limit: Duration,
) -> io::Result<Vec<Reply>> {
    tokio::time::timeout(limit, ask_unbounded(addr, commands))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "Redis did not answer in time"))?
}

async fn ask_unbounded(addr: SocketAddr, commands: &[&[&str]]) -> io::Result<Vec<Reply>> {
    let mut stream = TcpStream::connect(addr).await?;
    let request: Vec<u8> = commands
        .iter()
        .flat_map(|args| encode_command(args))
        .collect();
    stream.write_all(&request).await?;
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::with_capacity(commands.len());
    for _ in commands {
        replies.push(read_reply(&mut reader).await?);
    }
    Ok(replies)
}

/// A command as a RESP array of bulk strings: `*1\r\n$4\r\nPING\r\n`.
pub(crate) fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_reply(reader: &mut BufReader<TcpStream>) -> io::Result<Reply> {
    let line = read_line(reader).await?;
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => rest
            .parse()
            .map(Reply::Integer)
            .map_err(|_| invalid(format!("bad integer {rest:?}"))),
        "$" => {
            let len: i64 = rest
                .parse()
                .map_err(|_| invalid(format!("bad bulk length {rest:?}")))?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let len = usize::try_from(len).map_err(|_| invalid("bulk length out of range"))?;
            if len > MAX_BULK_BYTES {
                return Err(invalid(format!("bulk reply of {len} bytes is too large")));
            }
            // The payload is followed by its own CRLF.
            let mut payload = vec![0; len + 2];
            reader.read_exact(&mut payload).await?;
            payload.truncate(len);
            Ok(Reply::Bulk(Some(payload)))
        }
        _ => Err(invalid(format!("unexpected reply {line:?}"))),
    }
}

async fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    let read = (&mut *reader)
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(invalid("reply line without CRLF"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| invalid("reply line is not UTF-8"))
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// The `process_id` field of an `INFO server` reply.
pub(crate) fn process_id_in_info(info: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(info)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_an_array_of_bulk_strings() {
        assert_eq!(encode_command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            encode_command(&["INFO", "server"]),
            b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
        );
    }

    #[test]
    fn the_process_id_is_read_from_info() {
        let info = b"# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\ntcp_port:6379\r\n";
        assert_eq!(process_id_in_info(info), Some(4242));
        assert_eq!(process_id_in_info(b"# Server\r\n"), None);
    }
}

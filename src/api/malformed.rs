//! The JSON error shape for requests too malformed to reach the router.
//!
//! hyper answers a request it cannot parse (a bad request line or header, too many or too
//! large headers, an over-long target) by itself, with an empty body and `connection: close`,
//! and offers no hook to change that answer. [`Answering`] wraps a connection's socket and
//! replaces exactly that canned answer, as it is written, with the same status carrying the
//! JSON error every other refusal has. Nothing else written passes through changed: the
//! router's answers always carry a body and a content type, the canned one never does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longer writes are never the canned answer (its head is about 120 bytes).
const MAX_CANNED: usize = 256;

/// The JSON answer that replaces hyper's empty one, or `None` if `head` is not that answer.
pub fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let head = rest.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status: StatusCode = lines.next()?.get(..3)?.parse().ok()?;
    let mut date = None;
    let mut close = false;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        match name {
            "connection" if value == "close" => close = true,
            "content-length" if value == "0" => empty = true,
            "date" => date = Some(value),
            // Any other header (a content type above all) means the router answered.
            _ => return None,
        }
    }
    if !(close && empty) {
        return None;
    }
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => (
            "malformed_request",
            "the request is not valid HTTP/1.1: its request line or a header could not be parsed",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            "the request has too many headers, or its head is too large",
        ),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request target is too long"),
        _ => return None,
    };
    let body = json!({ "error": { "code": code, "message": message } }).to_string();
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(date) = date {
        answer.push_str(&format!("date: {date}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    Some(answer.into_bytes())
}

/// A connection's socket, with hyper's canned answers to malformed requests replaced.
pub struct Answering<S> {
    inner: S,
    /// A replacement being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> Answering<S> {
    /// Wraps a socket.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> Answering<S> {
    /// Writes out the replacement in progress; ready once all of it is out.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = self.pending.as_mut() {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `replacement` in place of a canned answer `len` bytes long.
    fn answer(
        &mut self,
        cx: &mut Context<'_>,
        replacement: Vec<u8>,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        self.pending = Some((replacement, 0));
        // The caller retries the same bytes while this is pending; it is told they were
        // all written once the replacement is.
        self.drain(cx).map_ok(|()| len)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Answering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Answering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_some() {
            return self.drain(cx).map_ok(|()| buf.len());
        }
        if buf.len() <= MAX_CANNED
            && let Some(replacement) = replacement(buf)
        {
            return self.answer(cx, replacement, buf.len());
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.pending.is_some() {
            return self.drain(cx).map_ok(|()| len);
        }
        if len <= MAX_CANNED && bufs.first().is_some_and(|b| b.starts_with(b"HTTP/1.1 4")) {
            let whole: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if let Some(replacement) = replacement(&whole) {
                return self.answer(cx, replacement, len);
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Mon, 30 Nov 2026 14:54:31 GMT";

    fn canned(status: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
        )
        .into_bytes()
    }

    fn parse(answer: &[u8]) -> (u16, serde_json::Value, Vec<(String, String)>) {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        (status, serde_json::from_str(body).unwrap(), headers)
    }

    #[test]
    fn each_canned_answer_gets_the_json_error_shape() {
        for (status, code) in [
            ("400 Bad Request", "malformed_request"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
            ("414 URI Too Long", "uri_too_long"),
        ] {
            let answer = replacement(&canned(status)).expect(status);
            let (got, body, headers) = parse(&answer);
            assert_eq!(got.to_string(), status[..3]);
            assert_eq!(body["error"]["code"], code);
            let length = headers.iter().find(|(k, _)| k == "content-length").unwrap();
            let body_len =
                answer.len() - answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4;
            assert_eq!(length.1, body_len.to_string());
            assert!(headers.contains(&("date".into(), DATE.into())));
            assert!(headers.contains(&("connection".into(), "close".into())));
        }
    }

    #[test]
    fn answers_the_router_wrote_pass_unchanged() {
        // A JSON answer, an empty success, a status hyper never cans, a partial head.
        for head in [
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n",
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 12\r\n\r\n",
        ] {
            assert!(replacement(head.as_bytes()).is_none(), "{head:?}");
        }
    }

    #[tokio::test]
    async fn a_socket_that_takes_a_byte_at_a_time_gets_the_whole_replacement() {
        use tokio::io::AsyncWriteExt;
        // A pipe far smaller than the replacement: the replacement is written in pieces
        // while the writer retries, and the reader sees all of it.
        let (client, server) = tokio::io::duplex(7);
        let mut wrapped = Answering::new(server);
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut client = client;
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let canned = canned("400 Bad Request");
        wrapped.write_all(&canned).await.unwrap();
        wrapped.shutdown().await.unwrap();
        drop(wrapped);
        let got = reader.await.unwrap();
        assert_eq!(got, replacement(&canned).unwrap());
    }
}

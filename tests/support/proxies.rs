//! Loopback proxies between the client and the S3 server: cut uploads, altered requests.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

/// A loopback TCP proxy to the S3 server that drops every connection once the client has sent
/// more than `cut_after` bytes on it: a real upload dying mid-body. Small requests pass.
pub async fn cutting_proxy(upstream: &str, cut_after: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = tokio::io::split(server);
                let upload = async {
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if sent + n > cut_after {
                            let keep = cut_after.saturating_sub(sent);
                            let _ = server_write.write_all(&buf[..keep]).await;
                            return;
                        }
                        sent += n;
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let download = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                // Whichever side ends first ends the connection: a cut upload drops both.
                tokio::select! {
                    _ = upload => {},
                    _ = download => {},
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Whether `message` refuses a store behind a [`ProxyMode::StripConditions`] proxy: the probe
/// found the condition ignored, or the server refused the altered request outright (a server
/// that checks the signed headers of every request sees `If-None-Match` missing; SeaweedFS does
/// that at times). Either way nothing may be written, which the callers check.
pub fn refused_for_stripped_conditions(message: &str) -> bool {
    message.contains("a create-only write of an existing key") || message.contains("SignatureDoesNotMatch")
}

/// What [`http_proxy`] does to the requests it passes on.
#[derive(Debug, Clone, Copy)]
pub enum ProxyMode {
    /// Removes `If-Match` and `If-None-Match`: a server (or a proxy in front of one) that
    /// ignores conditions.
    StripConditions,
    /// Passes every `n`-th write (object PUT, CompleteMultipartUpload) on, waits until the server
    /// has answered it, and then drops the connection instead of the answer.
    LoseEveryNthWrite(u64),
    /// Answers `501 NotImplemented` to every copied part (`x-amz-copy-source`): a server
    /// without `UploadPartCopy`.
    RefuseCopies,
    /// Passes everything, counting the bytes each way.
    Count,
}

/// What [`http_proxy`] has done so far.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Requests passed on.
    pub requests: std::sync::atomic::AtomicU64,
    /// Conditions removed.
    pub stripped: std::sync::atomic::AtomicU64,
    /// Writes applied whose answer was dropped.
    pub lost: std::sync::atomic::AtomicU64,
    /// Copied parts refused.
    pub refused: std::sync::atomic::AtomicU64,
    /// Bytes from the client to the server (request heads and bodies).
    pub up: std::sync::atomic::AtomicU64,
    /// Bytes from the server to the client (answer heads and bodies).
    pub down: std::sync::atomic::AtomicU64,
}

/// A loopback HTTP/1.1 proxy to the S3 server that alters requests as `mode` says. Each
/// connection carries one request (the proxy asks for `Connection: close`), so the answer is
/// simply what the server sends until it closes. Returns the proxy's endpoint.
pub async fn http_proxy(upstream: &str, mode: ProxyMode) -> (String, Arc<ProxyCounts>) {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(ProxyCounts::default());
    let writes = Arc::new(AtomicU32::new(0));
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, counts, writes) = (upstream.clone(), shared.clone(), writes.clone());
            tokio::spawn(async move {
                // The request head, and whatever of the body came with it.
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let head_end = loop {
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
                let request_line = lines.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                for line in lines {
                    let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
                    let strip =
                        matches!(mode, ProxyMode::StripConditions) && (name == "if-match" || name == "if-none-match");
                    if strip {
                        counts.stripped.fetch_add(1, Relaxed);
                    } else if name != "connection" {
                        headers.push(line.to_string());
                    }
                }
                headers.push("Connection: close".to_string());
                if matches!(mode, ProxyMode::RefuseCopies)
                    && headers
                        .iter()
                        .any(|h| h.to_ascii_lowercase().starts_with("x-amz-copy-source:"))
                {
                    counts.refused.fetch_add(1, Relaxed);
                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code><Message>UploadPartCopy is not implemented here</Message></Error>";
                    let answer = format!(
                        "HTTP/1.1 501 Not Implemented\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                let mut parts = request_line.split(' ');
                let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let is_write = (method == "PUT" && !query.contains("tagging") && !query.contains("partNumber"))
                    || (method == "POST" && query.contains("uploadId"));
                let lose = match mode {
                    ProxyMode::LoseEveryNthWrite(n) if is_write => u64::from(writes.fetch_add(1, Relaxed) + 1) % n == 0,
                    _ => false,
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let new_head = format!("{request_line}\r\n{}\r\n\r\n", headers.join("\r\n"));
                counts.requests.fetch_add(1, Relaxed);
                counts.up.fetch_add(buf.len() as u64, Relaxed);
                if server.write_all(new_head.as_bytes()).await.is_err()
                    || server.write_all(&buf[head_end..]).await.is_err()
                {
                    return;
                }
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let upload = async {
                    let _ = counted_copy(&mut client_read, &mut server_write, &counts.up).await;
                    // The client keeps its side open for the answer: only the server ends this.
                    std::future::pending::<()>().await
                };
                let download = async {
                    if lose {
                        // Let the server finish the request, then hang up on the client.
                        let mut answer = Vec::new();
                        let _ = server_read.read_to_end(&mut answer).await;
                        counts.lost.fetch_add(1, Relaxed);
                    } else {
                        let _ = counted_copy(&mut server_read, &mut client_write, &counts.down).await;
                    }
                };
                // The request is over when the server has answered and closed.
                tokio::select! {
                    _ = upload => {},
                    _ = download => {},
                }
            });
        }
    });
    (format!("http://{addr}"), counts)
}

/// Copies until the reader ends, adding every byte to `count` as it goes.
async fn counted_copy(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    count: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        count.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        to.write_all(&buf[..n]).await?;
    }
}

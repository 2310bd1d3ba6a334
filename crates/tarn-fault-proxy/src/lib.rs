//! An HTTP proxy for tests, between an object store client and an S3-compatible server
//! (moto's, started by `scripts/with-s3.sh`), that injects faults into the requests its
//! rules match: errors, answers lost after the server applied the request, stalls, resets,
//! dropped conditions, refused credentials.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to a request that a rule matches.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answers 503 Slow Down without passing the request on.
    SlowDown,
    /// Passes the request on, then answers 503 instead of the server's answer: the server
    /// applied a request the client believes failed.
    ApplyThenSlowDown,
    /// Passes the request on and holds the answer back for this long.
    Stall(Duration),
    /// Reads half of the request body, then resets the connection.
    ResetMidBody,
    /// Passes the request on without its `If-None-Match` header, as a server that ignores
    /// conditional writes would.
    DropCondition,
    /// Answers 403 InvalidAccessKeyId, as S3 does to unknown credentials.
    WrongCredentials,
    /// Answers 403 AccessDenied, as S3 does to credentials that may not do this.
    Denied,
}

#[derive(Debug)]
struct Rule {
    method: &'static str,
    path_contains: &'static str,
    fault: Fault,
    remaining: usize,
}

/// An HTTP proxy between object_store and the S3 server that injects faults into the
/// requests its rules match. It asks the server to close each connection after one
/// request, so every request comes through a connection of its own.
pub struct FaultProxy {
    addr: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl FaultProxy {
    /// Starts the proxy in front of the server at `AWS_ENDPOINT`.
    pub async fn start() -> FaultProxy {
        let upstream = std::env::var("AWS_ENDPOINT")
            .expect("AWS_ENDPOINT is unset: run through scripts/with-s3.sh");
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("AWS_ENDPOINT is http://host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let shared = rules.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rules = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(client, upstream, rules).await;
                });
            }
        });
        FaultProxy { addr, rules }
    }

    /// Apply `fault` to the next `times` requests of `method` whose path contains
    /// `path_contains`.
    pub fn inject(
        &self,
        method: &'static str,
        path_contains: &'static str,
        fault: Fault,
        times: usize,
    ) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path_contains,
            fault,
            remaining: times,
        });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Faults not yet spent.
    pub fn pending(&self) -> usize {
        self.rules.lock().unwrap().iter().map(|r| r.remaining).sum()
    }

    /// The proxy's address, as an endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Store options (object_store's keys) that send a store through this proxy, with
    /// quick retries.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", self.endpoint()),
            ("max_retries", "3".into()),
            ("backoff_initial", "20ms".into()),
            ("backoff_max", "200ms".into()),
            ("retry_timeout", "20s".into()),
            ("timeout", "2s".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.method == method && path.contains(r.path_contains))
            .map(|r| {
                r.remaining -= 1;
                r.fault
            })
    };
    let mut body = buf[head_end..].to_vec();
    match fault {
        Some(Fault::ResetMidBody) => {
            read_body(&mut client, &mut body, length / 2).await?;
            // Linger zero: closing sends a reset, not an orderly end.
            #[allow(deprecated)]
            client.set_linger(Some(Duration::ZERO))?;
            return Ok(());
        }
        Some(Fault::SlowDown) => {
            read_body(&mut client, &mut body, length).await?;
            return reply(&mut client, 503, "Slow Down", "SlowDown").await;
        }
        Some(Fault::WrongCredentials) => {
            read_body(&mut client, &mut body, length).await?;
            return reply(&mut client, 403, "Forbidden", "InvalidAccessKeyId").await;
        }
        Some(Fault::Denied) => {
            read_body(&mut client, &mut body, length).await?;
            return reply(&mut client, 403, "Forbidden", "AccessDenied").await;
        }
        _ => {}
    }
    read_body(&mut client, &mut body, length).await?;
    // The request as the server gets it: one per connection, perhaps without its condition.
    let mut forwarded = format!("{request_line}\r\n");
    for h in &headers {
        let name = h
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let dropped = name == "connection"
            || (name == "if-none-match" && matches!(fault, Some(Fault::DropCondition)));
        if !dropped {
            forwarded.push_str(h);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(forwarded.as_bytes()).await?;
    server.write_all(&body).await?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await?;
    match fault {
        Some(Fault::ApplyThenSlowDown) => reply(&mut client, 503, "Slow Down", "SlowDown").await,
        Some(Fault::Stall(wait)) => {
            tokio::time::sleep(wait).await;
            let _ = client.write_all(&answer).await;
            Ok(())
        }
        _ => client.write_all(&answer).await,
    }
}

/// Reads from `client` until `body` holds `upto` bytes or the client stops sending.
async fn read_body(client: &mut TcpStream, body: &mut Vec<u8>, upto: usize) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < upto {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

async fn reply(
    client: &mut TcpStream,
    status: u16,
    reason: &str,
    code: &str,
) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message></Error>"
    );
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(text.as_bytes()).await?;
    client.shutdown().await
}

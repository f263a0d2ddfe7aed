//! The ingress against replicas that misbehave in ways real apps do: one that answers
//! (and closes) before reading a large or chunked request body, and one that closes a
//! kept-alive connection just as the next request goes out on it; and the ingress's
//! drain, which waits for an open upgraded connection and ends the drivers of its idle
//! ones. Real sockets, a fake replica written on raw TCP, both of the ingress's HTTP/1.1
//! paths.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use swell_dataplane::{
    Dataplane, RevisionConfig, RevisionKey, RouteKey, RoutingTable, Split, TrafficGroup,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, timeout};
use tokio_util::sync::CancellationToken;

const HOST: &str = "hello.test";

/// Every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(20);

/// An ingress serving `HOST` from one Revision whose only replica is at `replica`;
/// its address, what stops it, and its task.
async fn ingress(
    replica: SocketAddr,
) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let dp = Arc::new(Dataplane::default());
    dp.routes.publish(
        RouteKey {
            namespace: "default".into(),
            name: "hello".into(),
        },
        &RoutingTable {
            groups: vec![TrafficGroup {
                tag: None,
                public_host: Some(HOST.into()),
                local_hosts: vec![],
                splits: vec![Split {
                    revision: "hello-00001".into(),
                    percent: 100,
                }],
            }],
            tag_header_routing: false,
        },
    );
    let key = RevisionKey {
        namespace: "default".into(),
        name: "hello-00001".into(),
    };
    dp.revisions.configure(&key, RevisionConfig::default());
    dp.revisions.set_replicas(&key, &[replica]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(swell_dataplane::ingress::serve(
        listener,
        dp,
        stop.clone(),
        swell_dataplane::ingress::Peers::Loopback,
    ));
    (addr, stop, serving)
}

/// Reads until a request or response head ends; returns it (the bytes after it stay in
/// `buf`), or `None` at EOF.
async fn read_head(s: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads one response (with a `Content-Length` body): its status and body.
async fn read_response(s: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> (u16, String) {
    let head = read_head(s, buf).await.expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("a Content-Length");
    while buf.len() < length {
        let mut chunk = [0; 4096];
        let n = s.read(&mut chunk).await.expect("the body");
        assert!(n > 0, "the body ended early");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[..length]).to_string();
    buf.drain(..length);
    (status, body)
}

/// A fake replica on loopback that serves each connection it accepts with `serve`.
async fn replica<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s));
        }
    });
    addr
}

/// A replica that answers `early` as soon as it has a request's head, without reading
/// the body, and closes the connection (its unread body makes the close a reset).
async fn early_answering_replica() -> SocketAddr {
    replica(|mut s| async move {
        let mut buf = Vec::new();
        if read_head(&mut s, &mut buf).await.is_some() {
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nearly",
                )
                .await;
        }
    })
    .await
}

/// Sends a request whose body is `body_len` bytes (chunked, 64 KiB a chunk, when
/// `chunked`) on a new connection to the ingress, writing the body while reading the
/// response; returns the response.
async fn send_body(ingress: SocketAddr, body_len: usize, chunked: bool) -> (u16, String) {
    let s = TcpStream::connect(ingress).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let framing = if chunked {
            "transfer-encoding: chunked".to_string()
        } else {
            format!("content-length: {body_len}")
        };
        let head = format!("POST /upload HTTP/1.1\r\nhost: {HOST}\r\n{framing}\r\n\r\n");
        wr.write_all(head.as_bytes()).await?;
        let piece = vec![b'x'; 64 * 1024];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(piece.len());
            if chunked {
                wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                wr.write_all(&piece[..n]).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(&piece[..n]).await?;
            }
            left -= n;
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(wr)
    });
    let response = read_response(&mut rd, &mut Vec::new()).await;
    // After an early answer the connection may close (HTTP allows it, hyper-based
    // servers do it) or read the rest: either way the client is not left hanging.
    let _ = timeout(PATIENCE, writer)
        .await
        .expect("the client is not left hanging");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_a_large_or_chunked_body_is_read_is_relayed() {
    let replica = early_answering_replica().await;
    let (ingress, stop, _) = ingress(replica).await;
    // 8 KiB takes the ingress's own path; the others, hyper's.
    for (len, chunked) in [
        (8 * 1024, false),
        (20 * 1024, false),
        (1024 * 1024, false),
        (20 * 1024, true),
        (1024 * 1024, true),
    ] {
        for _ in 0..20 {
            let got = timeout(PATIENCE, send_body(ingress, len, chunked))
                .await
                .expect("the exchange ends");
            assert_eq!(
                got,
                (200, "early".to_string()),
                "a {len}-byte body, chunked: {chunked}"
            );
        }
    }
    stop.cancel();
}

/// A replica that answers the first request of each connection (keeping it alive) and
/// closes the connection when the next request arrives on it, as one whose idle
/// timeout fires just then does. Counts the requests it got.
async fn closing_replica(seen: Arc<AtomicUsize>) -> SocketAddr {
    replica(move |mut s| {
        let seen = seen.clone();
        async move {
            let mut buf = Vec::new();
            if read_head(&mut s, &mut buf).await.is_none() {
                return;
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            if read_head(&mut s, &mut buf).await.is_some() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_on_a_connection_the_replica_just_closed_goes_again() {
    let seen = Arc::new(AtomicUsize::new(0));
    let replica = closing_replica(seen.clone()).await;
    let (ingress, stop, _) = ingress(replica).await;
    // The ingress's own path (origin-form), then hyper's (an absolute-form target).
    for target in ["/", &format!("http://{HOST}/")] {
        let mut s = TcpStream::connect(ingress).await.unwrap();
        let mut buf = Vec::new();
        for method in ["GET", "GET", "DELETE", "OPTIONS", "PUT", "GET"] {
            let req = format!("{method} {target} HTTP/1.1\r\nhost: {HOST}\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let got = timeout(PATIENCE, read_response(&mut s, &mut buf))
                .await
                .unwrap();
            assert_eq!(got, (200, "ok".to_string()), "{method} {target}");
        }
        // A POST is not repeated: it fails with the connection closed under it.
        let before = seen.load(Ordering::SeqCst);
        let post = format!("POST {target} HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: 0\r\n\r\n");
        // The previous request left a kept-alive connection to the replica.
        s.write_all(post.as_bytes()).await.unwrap();
        let (status, _) = timeout(PATIENCE, read_response(&mut s, &mut buf))
            .await
            .unwrap();
        assert_eq!(status, 502, "POST {target}");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            before + 1,
            "POST {target} went once"
        );
    }
    stop.cancel();
}

/// A replica that answers each request `ok` on a kept-alive connection, and an upgrade
/// request with 101, then echoes what it reads until the other side closes.
async fn upgrading_replica() -> SocketAddr {
    replica(|mut s| async move {
        let mut buf = Vec::new();
        while let Some(head) = read_head(&mut s, &mut buf).await {
            if !head.to_ascii_lowercase().contains("upgrade: websocket") {
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if s.write_all(ok).await.is_err() {
                    return;
                }
                continue;
            }
            let switched = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
            if s.write_all(switched).await.is_err() {
                return;
            }
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            return;
        }
    })
    .await
}

/// Sends `word` on an upgraded connection and reads it back.
async fn echo(ws: &mut TcpStream, word: &[u8]) {
    ws.write_all(word).await.unwrap();
    let mut back = vec![0; word.len()];
    timeout(PATIENCE, ws.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, word);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_an_open_upgrade_and_ends_idle_connections() {
    let (ingress, stop, serving) = ingress(upgrading_replica().await).await;
    let mut ws = TcpStream::connect(ingress).await.unwrap();
    let upgrade = format!(
        "GET / HTTP/1.1\r\nhost: {HOST}\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    );
    ws.write_all(upgrade.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head = timeout(PATIENCE, read_head(&mut ws, &mut buf))
        .await
        .unwrap();
    assert!(head.unwrap().starts_with("HTTP/1.1 101"));
    echo(&mut ws, b"ping").await;

    // An HTTP/1.0 request goes through hyper, on a new connection to the replica (the
    // first one is the upgraded one now) that stays open, kept alive, with a driver
    // task: the drain must close it, not wait for it.
    let mut plain = TcpStream::connect(ingress).await.unwrap();
    let mut buf = Vec::new();
    let get = format!("GET / HTTP/1.0\r\nhost: {HOST}\r\n\r\n");
    plain.write_all(get.as_bytes()).await.unwrap();
    let got = timeout(PATIENCE, read_response(&mut plain, &mut buf)).await;
    assert_eq!(got.unwrap(), (200, "ok".to_string()));
    drop(plain);

    // Stopping: the open upgraded connection holds the drain, and still works.
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !serving.is_finished(),
        "the drain waits for the open upgrade"
    );
    echo(&mut ws, b"pong").await;
    // Once it closes, the drain ends (the idle connection's driver ended with it).
    drop(ws);
    timeout(PATIENCE, serving)
        .await
        .expect("the drain ends once the upgrade has closed")
        .unwrap();
}

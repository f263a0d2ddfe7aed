//! Replica networks with the real CNI plugins: each replica gets its own namespace and
//! address on the bridge, reachable from the host; detaching releases everything, and a
//! restarted server cleans up what a crashed one left. Needs root (CI runs as root),
//! iproute2 and containernetworking-plugins (`.ci/run` installs them).

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

use std::io::Read;
use std::net::{IpAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use swell_runtime::runc::network::Network;

fn network(state: &std::path::Path) -> Network {
    Network {
        bridge: format!("swt{}", std::process::id() % 100_000),
        subnet: "10.87.0.0/24".into(),
        prefix: format!("swelltest-{}-", std::process::id()),
        ..Network::new(state)
    }
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

#[tokio::test]
async fn replicas_get_their_own_address_and_leave_nothing_behind() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED replicas_get_their_own_address_and_leave_nothing_behind: needs root (CI runs every test as root)"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let net = network(t.path());
    let a = net.attach("a").await.expect("attach a");
    let b = net.attach("b").await.expect("attach b");
    assert_ne!(a.ip, b.ip);
    for ip in [a.ip, b.ip] {
        assert!(
            matches!(ip, IpAddr::V4(v) if v.octets()[..3] == [10, 87, 0]),
            "{ip}"
        );
    }
    assert!(exists(&a.name) && exists(&b.name));

    // Something listening inside a's namespace answers at a's address from the host.
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.name,
            "busybox",
            "sh",
            "-c",
            "echo hello | busybox nc -l -p 8080",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("busybox-static is installed");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = String::new();
    loop {
        if let Ok(mut s) = TcpStream::connect_timeout(&(a.ip, 8080).into(), Duration::from_secs(1))
        {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.read_to_string(&mut got);
            if !got.is_empty() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nothing answered at {}:8080",
            a.ip
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.trim(), "hello");
    let _ = server.kill();
    let _ = server.wait();

    net.detach(&a).await;
    assert!(!exists(&a.name));
    // The address is free again.
    let c = net.attach("c").await.expect("attach c");
    // A restarted server finds what was left and removes it.
    assert_eq!(network(t.path()).clean_leftovers().await, 2);
    assert!(!exists(&b.name) && !exists(&c.name));
    let leases = std::fs::read_dir(t.path().join("ipam/swell"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leases, 0, "addresses still leased");
    let _ = Command::new("ip")
        .args(["link", "delete", &net.bridge])
        .status();
}

//! `swell image` end to end with real tools: images built by `umoci` from Debian's
//! static busybox and converted by `skopeo` into a `docker save` archive and an OCI
//! archive are imported, listed, unpacked and removed; hostile archives are refused
//! without writing anything outside the store; images pushed by `skopeo` to Debian's
//! `docker-registry` are pulled.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait and run commands on their own threads; the ban keeps blocking calls off the server's"
)]

mod common;

use common::oci::{busybox_layout, registry, run};
use std::path::Path;
use std::process::{Command, Output};

fn swell(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swell"))
        .arg("image")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("swell runs")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = swell(data, args);
    assert!(
        out.status.success(),
        "swell image {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn images_from_umoci_and_skopeo_import_list_unpack_and_remove() {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    busybox_layout(&work);
    run(
        "skopeo",
        &[
            "copy",
            "oci:L:latest",
            "docker-archive:bb-docker.tar:busybox:1.36",
        ],
        &work,
    );
    run(
        "skopeo",
        &["copy", "oci:L:latest", "oci-archive:bb-oci.tar"],
        &work,
    );
    let data = t.path().join("data");

    let out = ok(
        &data,
        &[
            "import",
            &work.join("L").display().to_string(),
            "--name",
            "busybox",
        ],
    );
    assert!(out.starts_with("Imported busybox:latest (sha256:"), "{out}");
    let out = ok(
        &data,
        &["import", &work.join("bb-docker.tar").display().to_string()],
    );
    assert!(out.contains("docker.io/library/busybox:1.36"), "{out}");
    ok(
        &data,
        &[
            "import",
            &work.join("bb-oci.tar").display().to_string(),
            "--name",
            "bb:oci",
        ],
    );

    let listed = ok(&data, &["ls"]);
    for r in ["busybox:latest", "docker.io/library/busybox:1.36", "bb:oci"] {
        assert!(listed.contains(r), "{r} missing from:\n{listed}");
    }
    // The layout and its OCI archive are the same image: one root filesystem.
    let rootfs: Vec<_> = std::fs::read_dir(data.join("images/rootfs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(rootfs.len(), 2, "{rootfs:?}");
    for r in &rootfs {
        assert_eq!(
            std::fs::read(r.join("bin/busybox")).unwrap(),
            std::fs::read("/usr/bin/busybox").unwrap()
        );
        assert_eq!(
            std::fs::read_link(r.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
    }

    ok(&data, &["rm", "busybox:latest"]);
    assert_eq!(
        std::fs::read_dir(data.join("images/rootfs"))
            .unwrap()
            .count(),
        2,
        "bb:oci keeps it"
    );
    ok(&data, &["rm", "bb:oci", "docker.io/library/busybox:1.36"]);
    assert_eq!(
        std::fs::read_dir(data.join("images/rootfs"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(data.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    let out = swell(&data, &["rm", "busybox"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: no such image: busybox"
    );
}

/// One raw layer entry: name, type, link target.
type Entry<'a> = (&'a str, tar::EntryType, &'a str);

/// A `docker save` archive whose one layer has the given raw entries (names unchecked,
/// as an attacker writes them).
fn hostile_archive(path: &Path, entries: &[Entry<'_>]) {
    let mut layer = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(if *kind == tar::EntryType::Regular {
            4
        } else {
            0
        });
        h.set_cksum();
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"evil"
        } else {
            b""
        };
        layer.append(&h, data).unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let config =
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let manifest = r#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]"#;
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("c.json", config.as_bytes()),
        ("l/layer.tar", &layer[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[test]
fn hostile_layers_are_refused_and_nothing_is_written_outside_the_store() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out_abs = outside.display().to_string();
    let up = "../../../../../../../../../..".to_string() + &out_abs;
    use tar::EntryType::{Char, Link, Regular, Symlink};
    let cases: Vec<(&str, Vec<Entry<'_>>)> = vec![
        ("path traversal", vec![(up.as_str(), Regular, "")]),
        ("absolute path", vec![("/etc/swell-evil", Regular, "")]),
        ("hard link out", vec![("h", Link, up.as_str())]),
        ("device node", vec![("dev/sda", Char, "")]),
        (
            "whiteout escape",
            vec![
                ("esc", Symlink, out_abs.as_str()),
                ("esc/.wh..", Regular, ""),
            ],
        ),
    ];
    for (what, entries) in &cases {
        let archive = t.path().join("evil.tar");
        hostile_archive(&archive, entries);
        let out = swell(&data, &["import", &archive.display().to_string()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: imported");
        assert!(stderr.contains("refused"), "{what}: {stderr}");
        assert_eq!(
            ok(&data, &["ls"]).lines().count(),
            1,
            "{what}: something was stored"
        );
    }
    // A symlink that points outside stays a symlink inside the root: writing through
    // it lands inside the store.
    let archive = t.path().join("contained.tar");
    hostile_archive(
        &archive,
        &[
            ("esc", Symlink, out_abs.as_str()),
            ("esc/owned", Regular, ""),
        ],
    );
    ok(&data, &["import", &archive.display().to_string()]);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "written outside the store"
    );
    assert!(!Path::new("/etc/swell-evil").exists());
}

fn digest_of(out: &str) -> String {
    out.split_once("(")
        .and_then(|(_, d)| d.split_once(')'))
        .map(|(d, _)| d.to_string())
        .unwrap_or_else(|| panic!("no digest in {out:?}"))
}

#[test]
fn pulls_from_a_real_registry_follow_the_tag_and_keep_digests() {
    if !common::can_run(&[common::Needs::Registry]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    busybox_layout(&work);
    let reg = registry();
    let dest = format!("docker://{}/busybox:1", reg.addr);
    run(
        "skopeo",
        &["copy", "--dest-tls-verify=false", "oci:L:latest", &dest],
        &work,
    );
    let data = t.path().join("data");
    let reference = format!("{}/busybox:1", reg.addr);

    // In a pipe, the result alone: no progress bar, no terminal codes.
    let piped = swell(&data, &["pull", &reference]);
    let first = String::from_utf8(piped.stdout).unwrap();
    assert!(
        first.starts_with(&format!("Pulled {reference} (sha256:")),
        "{first}"
    );
    assert!(piped.stderr.is_empty(), "{:?}", piped.stderr);
    // On a terminal (a pty from `script`), a progress bar redrawn in place.
    let again = format!("{}/busybox@{}", reg.addr, digest_of(&first));
    let tty = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} image --data-dir {} pull {again}",
            env!("CARGO_BIN_EXE_swell"),
            t.path().join("tty-data").display()
        ))
        .arg("/dev/null")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        tty.status.success() && screen.contains("\r\x1b[2K") && screen.contains("[####"),
        "{screen:?}"
    );
    let d1 = digest_of(&first);
    assert!(ok(&data, &["ls"]).contains(&reference));

    // The tag moves in the registry: a new pull follows it; the old digest stays
    // reachable by digest.
    std::fs::write(work.join("bundle/rootfs/v2"), "2").unwrap();
    run("umoci", &["repack", "--image", "L:latest", "bundle"], &work);
    run(
        "skopeo",
        &["copy", "--dest-tls-verify=false", "oci:L:latest", &dest],
        &work,
    );
    let d2 = digest_of(&ok(&data, &["pull", &reference]));
    assert_ne!(d1, d2);
    let by_digest = format!("{}/busybox@{d1}", reg.addr);
    assert_eq!(digest_of(&ok(&data, &["pull", &by_digest])), d1);
    let listed = ok(&data, &["ls"]);
    assert!(listed.contains(&by_digest), "{listed}");
    let hex2 = d2.trim_start_matches("sha256:");
    assert_eq!(
        std::fs::read_to_string(data.join("images/rootfs").join(hex2).join("v2")).unwrap(),
        "2"
    );

    let out = swell(&data, &["pull", &format!("{}/nothere:1", reg.addr)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("manifest unknown"), "{stderr}");
}

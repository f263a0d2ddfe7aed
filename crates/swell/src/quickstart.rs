//! `swell quickstart`: starts a server in this process, deploys a sample Service (the
//! testapp's `helloworld`, run as a local process or, under runc, as an image built
//! from this binary), waits until it answers, prints its URL and keeps serving.

use crate::cli::{ClientArgs, wait};
use crate::server::{self, BackendKind, ServerArgs};
use anyhow::Context;
use k8s_openapi::api::core::v1::Container;
use kube::Api;
use kube::api::PostParams;
use std::path::{Path, PathBuf};
use std::time::Duration;
use swell_api::Service;

/// The sample Service's name.
const SAMPLE: &str = "hello";
/// The sample image's reference in the local image store (no registry: never pulled).
const SAMPLE_IMAGE: &str = "swell/helloworld";

/// Options of `swell quickstart`: the server's.
#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `swell quickstart` until SIGTERM or Ctrl-C.
pub async fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    let data_dir = args.server.data_dir.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut server = tokio::spawn(server::serve(args.server, Some(tx)));
    let started = tokio::select! {
        started = rx => started,
        ended = &mut server => {
            ended.context("the server panicked")??;
            anyhow::bail!("the server stopped before it started");
        }
    };
    let Ok(started) = started else {
        return server.await.context("the server panicked")?;
    };
    let deploy = deploy(&data_dir, &started.kubeconfig, started.backend);
    tokio::select! {
        deployed = deploy => deployed?,
        ended = &mut server => return ended.context("the server panicked")?,
    }
    server.await.context("the server panicked")?
}

async fn deploy(data_dir: &Path, kubeconfig: &Path, backend: BackendKind) -> anyhow::Result<()> {
    let mut container = Container {
        name: "user-container".into(),
        ..Default::default()
    };
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    match backend {
        BackendKind::Runc => {
            println!(
                "\nBuilding the sample image {SAMPLE_IMAGE} from {} ...",
                exe.display()
            );
            let store = crate::image::store(data_dir)?;
            let recipe = sample_recipe(&exe).await?;
            tokio::task::spawn_blocking(move || {
                swell_runtime::image::build::build(&store, SAMPLE_IMAGE, &recipe)
            })
            .await??;
            container.image = Some(SAMPLE_IMAGE.into());
        }
        _ => {
            container.image = Some(SAMPLE_IMAGE.into());
            container.command = Some(vec![exe.display().to_string()]);
            container.args = Some(vec!["testapp".into(), "helloworld".into()]);
        }
    }
    let session = ClientArgs {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
        namespace: None,
    }
    .connect()
    .await?;
    let api: Api<Service> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut svc = api.get_opt(SAMPLE).await?.unwrap_or_default();
    svc.metadata.name = Some(SAMPLE.into());
    svc.spec.template = Default::default();
    svc.spec.traffic = Vec::new();
    svc.spec.template.spec.pod_spec.containers = vec![container];
    println!(
        "\nDeploying the sample Service '{SAMPLE}' in namespace '{}':\n",
        session.namespace
    );
    let written = match svc.metadata.resource_version {
        Some(_) => api.replace(SAMPLE, &PostParams::default(), &svc).await?,
        None => api.create(&PostParams::default(), &svc).await?,
    };
    let ready = wait::until_ready(
        &session.client,
        &session.namespace,
        SAMPLE,
        written.metadata.generation.unwrap_or(1),
        Duration::from_secs(300),
    )
    .await?;
    let url = ready.status.and_then(|s| s.route.url).unwrap_or_default();
    println!(
        "\nService '{SAMPLE}' is available at URL:\n{url}\n\nTry it:\n  curl {url}\n\n\
         Swell keeps serving until Ctrl-C. In another terminal:\n  \
         export KUBECONFIG={}\n  swell service list\n  swell service describe {SAMPLE}",
        kubeconfig.display()
    );
    Ok(())
}

/// This binary and the shared libraries it loads, run as `swell testapp helloworld` by
/// an unprivileged user.
async fn sample_recipe(exe: &Path) -> anyhow::Result<swell_runtime::image::build::Recipe> {
    let mut files = vec![(exe.to_path_buf(), "/ko-app/swell".to_string())];
    for lib in shared_libraries(exe).await? {
        let inside = lib.display().to_string();
        files.push((lib, inside));
    }
    Ok(swell_runtime::image::build::Recipe {
        files,
        symlinks: Vec::new(),
        entrypoint: vec![
            "/ko-app/swell".into(),
            "testapp".into(),
            "helloworld".into(),
        ],
        user: Some("65532".into()),
        working_dir: Some("/".into()),
    })
}

/// What `ldd` says `exe` loads (absolute paths, the dynamic loader included).
async fn shared_libraries(exe: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = tokio::process::Command::new("ldd")
        .arg(exe)
        .output()
        .await
        .context("cannot run ldd to find the sample's libraries")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("not a dynamic executable") {
        anyhow::bail!(
            "ldd {} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => l.split_whitespace().next(),
            }?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

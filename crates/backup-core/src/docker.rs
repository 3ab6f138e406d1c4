//! Docker volumes as a backup source and a restore target, read and
//! written through the Docker Engine API (`GET`/`PUT
//! /containers/{id}/archive`) of a helper container that mounts the volume
//! and never runs — no bind mount of the engine's storage on the host.
//!
//! The stored plaintext is the engine's tar archive of the volume, entries
//! under `volume/`, so stock tools restore it into a directory:
//! `age -d -i KEY OBJECT | zstd -d | tar -x` gives `volume/...`.
//!
//! Containers carrying a configured label can be stopped while the volume
//! is read (a consistent copy of a database's files) and are started again
//! afterwards, also when the backup fails.

use std::collections::HashMap;
use std::io::Write;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions, ListImagesOptions,
    RemoveContainerOptions, StartContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::manifest::SourceInfo;
use crate::sink::Sink;

/// Where the helper container mounts the volume.
const MOUNT: &str = "/volume";

/// Reads `volume` into `out` through a helper container of
/// `helper_image` (default: the image of a container using the volume,
/// else any local image), stopping the running containers with
/// `stop_label` meanwhile and starting them again after, also on failure.
/// Called on a pipeline thread inside the runtime.
pub(crate) fn read(
    volume: &str,
    stop_label: Option<&str>,
    helper_image: Option<&str>,
    out: &mut dyn Sink,
) -> Result<SourceInfo> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime {
        what: "a Docker volume backup",
    })?;
    rt.block_on(async {
        let docker = connect().await?;
        volume_exists(&docker, volume).await?;
        let stopped = stop_labelled(&docker, stop_label).await?;
        let read = async {
            let helper = Helper::create(&docker, volume, helper_image, true).await?;
            let mut stream = Box::pin(docker.download_from_container(
                &helper.id,
                Some(DownloadFromContainerOptions {
                    path: MOUNT.to_owned(),
                }),
            ));
            let copied = async {
                while let Some(chunk) =
                    stream.try_next().await.map_err(engine("read the volume"))?
                {
                    out.write_all(&chunk).map_err(|e| {
                        Error::Interrupted(format!("writing the volume's archive: {e}"))
                    })?;
                }
                Ok::<(), Error>(())
            }
            .await;
            helper.remove(&docker).await;
            copied
        }
        .await;
        let restarted = start_again(&docker, &stopped).await;
        read?;
        restarted?;
        Ok(SourceInfo::DockerVolume {
            volume: volume.to_owned(),
        })
    })
}

pub(crate) fn engine(operation: &str) -> impl Fn(bollard::errors::Error) -> Error + '_ {
    move |e| Error::Docker {
        operation: operation.to_owned(),
        problem: e.to_string(),
    }
}

pub(crate) async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults().map_err(engine("connect"))?;
    docker
        .negotiate_version()
        .await
        .map_err(engine("negotiate the API version"))
}

async fn volume_exists(docker: &Docker, volume: &str) -> Result<()> {
    docker
        .inspect_volume(volume)
        .await
        .map(|_| ())
        .map_err(|e| match &e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => Error::VolumeNotFound {
                volume: volume.to_owned(),
            },
            _ => engine("inspect the volume")(e),
        })
}

/// Stops the running containers with `label`; returns their ids.
async fn stop_labelled(docker: &Docker, label: Option<&str>) -> Result<Vec<String>> {
    let Some(label) = label else {
        return Ok(Vec::new());
    };
    let filters = HashMap::from([
        ("label".to_owned(), vec![label.to_owned()]),
        ("status".to_owned(), vec!["running".to_owned()]),
    ]);
    let running = docker
        .list_containers(Some(ListContainersOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(engine("list containers to stop"))?;
    let mut stopped = Vec::new();
    for c in running.into_iter().filter_map(|c| c.id) {
        if let Err(e) = docker
            .stop_container(&c, None::<StopContainerOptions>)
            .await
        {
            // Start what was stopped before giving up.
            let _ = start_again(docker, &stopped).await;
            return Err(engine("stop a labelled container")(e));
        }
        stopped.push(c);
    }
    Ok(stopped)
}

async fn start_again(docker: &Docker, ids: &[String]) -> Result<()> {
    let mut failed = Vec::new();
    for id in ids {
        if let Err(e) = docker
            .start_container(id, None::<StartContainerOptions>)
            .await
        {
            failed.push(format!("{id}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Docker {
            operation: "start again the containers stopped for the backup".into(),
            problem: failed.join("; "),
        })
    }
}

/// A created, never started container that mounts the volume.
struct Helper {
    id: String,
}

impl Helper {
    async fn create(
        docker: &Docker,
        volume: &str,
        image: Option<&str>,
        read_only: bool,
    ) -> Result<Helper> {
        let image = match image {
            Some(i) => i.to_owned(),
            None => any_image(docker, volume).await?,
        };
        let bind = format!("{volume}:{MOUNT}{}", if read_only { ":ro" } else { "" });
        let created = docker
            .create_container(
                None::<CreateContainerOptions>,
                ContainerCreateBody {
                    image: Some(image),
                    cmd: Some(vec!["true".to_owned()]),
                    labels: Some(HashMap::from([(
                        "org.shipshape.helper".to_owned(),
                        "volume".to_owned(),
                    )])),
                    host_config: Some(HostConfig {
                        binds: Some(vec![bind]),
                        network_mode: Some("none".to_owned()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine("create the helper container"))?;
        Ok(Helper { id: created.id })
    }

    async fn remove(self, docker: &Docker) {
        let _ = docker
            .remove_container(
                &self.id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
}

/// The image of a container that mounts the volume, else any local image.
async fn any_image(docker: &Docker, volume: &str) -> Result<String> {
    let filters = HashMap::from([("volume".to_owned(), vec![volume.to_owned()])]);
    let users = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(engine("list the volume's containers"))?;
    if let Some(image) = users.into_iter().find_map(|c| c.image_id.or(c.image)) {
        return Ok(image);
    }
    let images = docker
        .list_images(None::<ListImagesOptions>)
        .await
        .map_err(engine("list images"))?;
    images
        .into_iter()
        .next()
        .map(|i| i.id)
        .ok_or_else(|| Error::Docker {
            operation: "choose an image for the helper container".into(),
            problem: "the engine has no image; name one (helper_image)".into(),
        })
}

/// Writes a volume backup's plaintext (the engine's tar archive, entries
/// under `volume/`) into `volume`, created when missing. Refuses a volume
/// that holds anything unless `force`.
async fn upload_volume(
    volume: &str,
    force: bool,
    archive: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Result<()> {
    let docker = connect().await?;
    if docker.inspect_volume(volume).await.is_err() {
        docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(volume.to_owned()),
                ..Default::default()
            })
            .await
            .map_err(engine("create the volume"))?;
    }
    let helper = Helper::create(&docker, volume, None, false).await?;
    let result = async {
        if !force {
            let mut listing = Box::pin(docker.download_from_container(
                &helper.id,
                Some(DownloadFromContainerOptions {
                    path: format!("{MOUNT}/."),
                }),
            ));
            let mut tar = Vec::new();
            while let Some(chunk) = listing
                .try_next()
                .await
                .map_err(engine("read the volume"))?
            {
                tar.extend_from_slice(&chunk);
                if tar.len() > 64 * 1024 {
                    break;
                }
            }
            let entries = tar::Archive::new(tar.as_slice())
                .entries()
                .map(|e| e.filter_map(|x| x.ok()).count())
                .unwrap_or(0);
            if entries > 1 {
                return Err(Error::TargetNotEmpty {
                    target: format!("Docker volume `{volume}`"),
                    holds: "is not empty".into(),
                });
            }
        }
        let body = bollard::body_try_stream(archive);
        docker
            .upload_to_container(
                &helper.id,
                Some(UploadToContainerOptions {
                    path: "/".to_owned(),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(engine("write the volume"))
    }
    .await;
    helper.remove(&docker).await;
    result
}

/// A `Write` that hands what is written to an async stream, with a
/// bounded queue (back-pressure: at most `depth` chunks in flight).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the volume upload ended")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Restores a Docker volume backup into `volume`; see
/// [`Repository::restore_volume`](crate::Repository::restore_volume).
pub(crate) async fn restore(
    store: &dyn crate::Store,
    manifest: &crate::Manifest,
    identities: &crate::Identities,
    volume: &str,
    opts: &crate::RestoreOptions,
) -> Result<crate::RestoreReport> {
    if !matches!(manifest.source, SourceInfo::DockerVolume { .. }) {
        return Err(Error::WrongKind {
            id: manifest.id.to_string(),
            problem: "is not of a Docker volume; restore it to a path".into(),
        });
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let failed = tx.clone();
    let archive = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let upload = upload_volume(volume, opts.force, archive);
    let restore = async {
        let target = crate::RestoreTarget::Writer(Box::new(ChannelWriter { tx }));
        let restored =
            crate::ops::restore::restore(store, manifest, identities, target, opts).await;
        if restored.is_err() {
            // Abort the upload rather than let the engine keep a
            // truncated archive.
            let _ = failed
                .send(Err(std::io::Error::other("the restore failed")))
                .await;
        }
        drop(failed);
        restored
    };
    let (uploaded, restored) = futures::join!(upload, restore);
    uploaded?;
    restored
}

//! "Load the inputs, run the engine": a job's image and every image its pipeline references,
//! then the engine on the blocking pool. The output's key is the content address of that work.

use crate::failure::JobFailure;
use bytes::Bytes;
use pixelmill_blob::BlobStore;
use pixelmill_core::{sha256_hex, BlobKey, ImageId, ImageRecord, JobSpec, OutputSpec, TenantId};
use pixelmill_engine::{Limits, Pipeline, Rendered};
use pixelmill_meta::MetaStore;
use std::time::Duration;

/// An image record of `tenant` and its original's bytes.
pub async fn load_image(
    meta: &dyn MetaStore,
    blob: &dyn BlobStore,
    tenant: &TenantId,
    id: &ImageId,
) -> Result<(ImageRecord, Bytes), JobFailure> {
    let image = meta
        .get_image(tenant, id)
        .await
        .map_err(|e| JobFailure::meta(&format!("reading image {id}"), e))?
        .ok_or_else(|| {
            JobFailure::final_(format!(
                "image {id} no longer exists; upload it again and submit a new job"
            ))
        })?;
    let bytes = blob
        .get(&image.blob_key)
        .await
        .map_err(|e| JobFailure::blob(&format!("reading the original of image {id}"), e))?;
    Ok((image, bytes))
}

/// What a pipeline reads: its input and the images it references (a watermark's overlay).
pub struct Inputs {
    pub image: ImageRecord,
    pub bytes: Bytes,
    pub referenced: Vec<(ImageRecord, Bytes)>,
}

impl Inputs {
    /// Loads image `id` of `tenant` and, once each, every image `pipeline` references.
    pub async fn load(
        meta: &dyn MetaStore,
        blob: &dyn BlobStore,
        tenant: &TenantId,
        id: &ImageId,
        pipeline: &Pipeline,
    ) -> Result<Self, JobFailure> {
        let (image, bytes) = load_image(meta, blob, tenant, id).await?;
        let mut referenced = Vec::new();
        for reference in pipeline.referenced_images() {
            let id = ImageId::from_string(reference.id);
            referenced.push(load_image(meta, blob, tenant, &id).await?);
        }
        Ok(Self {
            image,
            bytes,
            referenced,
        })
    }

    /// The key of what `spec` makes of these inputs: the same work always lands on one key, so
    /// an attempt run twice (in one region or two) writes the same blob.
    pub fn output_key(&self, spec: &JobSpec) -> BlobKey {
        // Overlays are part of the work: their content goes into the address.
        let referenced: String = self
            .referenced
            .iter()
            .map(|(image, _)| format!("\n{}={}", image.id, image.sha256))
            .collect();
        let work = format!(
            "{}\n{}{referenced}",
            self.image.sha256,
            spec.canonical_work()
        );
        BlobKey::output(&sha256_hex(work.as_bytes()))
    }

    /// Runs `pipeline` over these inputs into `output`, on the blocking pool, for at most
    /// `timeout`. Past it the attempt fails for good: the same work would run as long again. The
    /// engine cannot be interrupted, so its thread finishes in the background and its result is
    /// dropped; the job is already failed by then and its worker free.
    pub async fn render(
        self,
        mut pipeline: Pipeline,
        output: OutputSpec,
        limits: Limits,
        timeout: Duration,
    ) -> Result<Rendered, JobFailure> {
        let work = tokio::task::spawn_blocking(move || {
            for (image, bytes) in &self.referenced {
                pipeline.attach_image(image.id.as_str(), bytes, &limits)?;
            }
            pixelmill_engine::process(&self.bytes, &pipeline, &output, &limits)
        });
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| {
                JobFailure::final_(format!(
                    "the attempt ran past this server's limit of {} per job attempt; use a \
                     smaller image or output size, or fewer or cheaper steps",
                    humantime::format_duration(timeout)
                ))
            })?
            .map_err(|e| JobFailure::final_(format!("the engine crashed on this image: {e}")))?
            .map_err(|e| JobFailure::final_(e.to_string()))
    }
}

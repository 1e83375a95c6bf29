//! `thumbnail`: resized variants of an image.
//!
//! Input: `{"source": {"key": "inputs/…"}, "widths": [64, 256, …]}`. Reads
//! the image from S3 (bounded by `MAX_THUMBNAIL_SOURCE_BYTES`: a decoder
//! needs the whole image), and writes one PNG per width,
//! `thumb_<width>.png`, keeping the aspect ratio and never upscaling.
//! Decoding and resizing run on the blocking pool; progress per variant.

use async_trait::async_trait;
use bytes::Bytes;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::input::{check_input_key, field_error};
use super::{JobContext, TypedJob};
use crate::api::FieldError;
use crate::record::{codes, JobError, ResultObject};

const MAX_VARIANTS: usize = 8;
const MAX_WIDTH: u32 = 4096;

/// The `thumbnail` job type.
pub struct ThumbnailJob {
    max_source_bytes: u64,
}

impl ThumbnailJob {
    /// Refuses source images larger than `max_source_bytes`.
    pub fn new(max_source_bytes: u64) -> Self {
        ThumbnailJob { max_source_bytes }
    }
}

/// The input of a `thumbnail` job (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailInput {
    source: KeySource,
    widths: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySource {
    key: String,
}

#[async_trait]
impl TypedJob for ThumbnailJob {
    type Input = ThumbnailInput;

    fn job_type(&self) -> &'static str {
        "thumbnail"
    }

    fn check(&self, input: &ThumbnailInput) -> Result<(), Vec<FieldError>> {
        let mut errors: Vec<FieldError> = check_input_key("input.source.key", &input.source.key)
            .err()
            .into_iter()
            .collect();
        if input.widths.is_empty() || input.widths.len() > MAX_VARIANTS {
            errors.push(field_error(
                "input.widths",
                format!("give between 1 and {MAX_VARIANTS} widths"),
            ));
        }
        if input.widths.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
            errors.push(field_error(
                "input.widths",
                format!("widths must be between 1 and {MAX_WIDTH}"),
            ));
        }
        let mut unique = input.widths.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != input.widths.len() {
            errors.push(field_error("input.widths", "widths must not repeat"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    async fn run(&self, ctx: &JobContext, input: ThumbnailInput) -> Result<Vec<ResultObject>, JobError> {
        let object = ctx.open_input(&input.source.key).await?;
        let too_large = || {
            JobError::permanent(
                "source_too_large",
                format!("the image is larger than {} bytes", self.max_source_bytes),
            )
        };
        if object.size.is_some_and(|s| s > self.max_source_bytes) {
            return Err(too_large());
        }
        let mut source = Vec::with_capacity(object.size.unwrap_or(0) as usize);
        object
            .body
            .take(self.max_source_bytes + 1)
            .read_to_end(&mut source)
            .await
            .map_err(|e| JobError::retryable(codes::STORAGE, e.to_string()))?;
        if source.len() as u64 > self.max_source_bytes {
            return Err(too_large());
        }
        ctx.progress(5, "decoding").await?;
        let image = tokio::task::spawn_blocking(move || image::load_from_memory(&source))
            .await
            .map_err(|e| JobError::permanent("internal", e.to_string()))?
            .map_err(|e| JobError::permanent("invalid_image", e.to_string()))?;
        let image = std::sync::Arc::new(image);

        let mut results = Vec::with_capacity(input.widths.len());
        let total = input.widths.len();
        for (done, &width) in input.widths.iter().enumerate() {
            let source = image.clone();
            let png = tokio::task::spawn_blocking(move || resize_png(&source, width))
                .await
                .map_err(|e| JobError::permanent("internal", e.to_string()))??;
            results.push(
                ctx.put_result(&format!("thumb_{width}.png"), Bytes::from(png), "image/png")
                    .await?,
            );
            let percent = 5 + (done + 1) * 94 / total;
            ctx.progress(percent as u8, format!("{} of {total} variants", done + 1))
                .await?;
        }
        Ok(results)
    }
}

/// The image scaled to `width` (or its own width, if smaller), as PNG bytes.
fn resize_png(image: &DynamicImage, width: u32) -> Result<Vec<u8>, JobError> {
    let target = width.min(image.width());
    let height = ((u64::from(image.height()) * u64::from(target)) / u64::from(image.width().max(1))).max(1) as u32;
    let resized = image.resize_exact(target, height, FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    resized
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| JobError::permanent("internal", e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    // Through `JobHandler`, from JSON, as submit and the worker call it.
    use bytes::Bytes;
    use image::{DynamicImage, ImageFormat};
    use serde_json::json;

    use super::ThumbnailJob;
    use crate::job_types::testing::harness;
    use crate::job_types::JobHandler;
    use crate::ports::ObjectStore;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn validation_rejects_bad_widths_and_keys() {
        let job = ThumbnailJob::new(1000);
        assert!(job
            .validate(&json!({"source": {"key": "inputs/a.png"}, "widths": [32, 64]}))
            .is_ok());
        assert!(job
            .validate(&json!({"source": {"key": "inputs/a.png"}, "widths": []}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": "inputs/a.png"}, "widths": [0]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": "inputs/a.png"}, "widths": [5000]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": "inputs/a.png"}, "widths": [8, 8]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": "other/a.png"}, "widths": [8]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": "inputs/a.png"}, "widths": [-1]}))
            .is_err());
    }

    #[tokio::test]
    async fn writes_one_png_per_width_keeping_aspect_and_never_upscaling() {
        let input = json!({"source": {"key": "inputs/pic.png"}, "widths": [40, 10, 500]});
        let h = harness(input.clone(), None).await;
        h.objects
            .put("inputs/pic.png", Bytes::from(png(200, 100)), "image/png")
            .await
            .unwrap();
        let results = ThumbnailJob::new(1 << 20).run(&h.ctx, &input).await.unwrap();
        let dims: Vec<(String, (u32, u32))> = results
            .iter()
            .map(|r| {
                let bytes = h.objects.object(&r.key).unwrap().0;
                let image = image::load_from_memory(&bytes).unwrap();
                (r.name.clone(), (image.width(), image.height()))
            })
            .collect();
        assert_eq!(
            dims,
            [
                ("thumb_40.png".to_owned(), (40, 20)),
                ("thumb_10.png".to_owned(), (10, 5)),
                ("thumb_500.png".to_owned(), (200, 100)),
            ]
        );
    }

    #[tokio::test]
    async fn undecodable_or_oversized_sources_fail_permanently() {
        let input = json!({"source": {"key": "inputs/pic.png"}, "widths": [10]});
        let h = harness(input.clone(), None).await;
        h.objects
            .put("inputs/pic.png", Bytes::from_static(b"not an image"), "image/png")
            .await
            .unwrap();
        let err = ThumbnailJob::new(1 << 20).run(&h.ctx, &input).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("invalid_image", false));

        h.objects
            .put("inputs/pic.png", Bytes::from(png(50, 50)), "image/png")
            .await
            .unwrap();
        let err = ThumbnailJob::new(10).run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "source_too_large");
    }
}

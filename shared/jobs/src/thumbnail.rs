//! `thumbnail`: resized variants of an image.
//!
//! Input: `{"source": {"key": "inputs/…"}, "widths": [64, 256, …]}`. Reads
//! the image from S3 (bounded by `MAX_THUMBNAIL_SOURCE_BYTES`: a decoder
//! needs the whole image), and writes one PNG per width,
//! `thumb_<width>.png`, keeping the aspect ratio and never upscaling.
//! Decoding and resizing run on the blocking pool; progress per variant.
//!
//! Before decoding, the memory the decoded image and its largest resize
//! would take is worked out from the size and pixel format the image
//! declares in its header and the requested widths; above
//! `MAX_IMAGE_MEMORY_BYTES` the job fails (`image_too_large`) without
//! decoding. The decoder itself runs under `image`'s [`Limits`] too.

use async_trait::async_trait;
use bytes::Bytes;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use longrun_core::api::FieldError;
use longrun_core::config::{Config, ConfigError};
use longrun_core::job_types::{check_input_key, field_error};
use longrun_core::job_types::{JobContext, JobResultExt, TypedJob};
use longrun_core::record::{codes, JobError, ResultObject};

const MAX_VARIANTS: usize = 8;
const MAX_WIDTH: u32 = 4096;

/// Error code: decoding and resizing the image would take more than
/// `MAX_IMAGE_MEMORY_BYTES` (permanent).
const IMAGE_TOO_LARGE: &str = "image_too_large";
/// Bytes per pixel of the intermediate image a resize samples into (RGBA, `f32`).
const RESIZE_SAMPLE_BYTES_PER_PIXEL: u64 = 16;

/// How large an image the `thumbnail` job takes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThumbnailLimits {
    /// The largest source file read, in bytes (`MAX_THUMBNAIL_SOURCE_BYTES`).
    pub max_source_bytes: u64,
    /// The most memory the decoded image and its largest resize may take
    /// together, in bytes (`MAX_IMAGE_MEMORY_BYTES`).
    pub max_image_memory_bytes: u64,
}

impl ThumbnailLimits {
    /// The limits the environment sets: `MAX_THUMBNAIL_SOURCE_BYTES`
    /// (default 40 MiB) and `MAX_IMAGE_MEMORY_BYTES` (default 256 MiB, at
    /// least 1).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(ThumbnailLimits {
            max_source_bytes: config.settings.number("MAX_THUMBNAIL_SOURCE_BYTES", 40 * 1024 * 1024)?,
            max_image_memory_bytes: config.settings.positive("MAX_IMAGE_MEMORY_BYTES", 256 * 1024 * 1024)?,
        })
    }
}

/// The `thumbnail` job type.
pub struct ThumbnailJob {
    limits: ThumbnailLimits,
}

impl ThumbnailJob {
    /// Refuses sources and images beyond `limits`.
    pub fn new(limits: ThumbnailLimits) -> Self {
        ThumbnailJob { limits }
    }
}

/// The input of a `thumbnail` job (see the module docs).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailInput {
    /// The uploaded image.
    source: KeySource,
    /// The widths to resize to, in pixels.
    widths: Vec<u32>,
}

/// An uploaded object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeySource {
    /// Its key under the caller's `inputs/` prefix (`POST /uploads`).
    key: String,
}

#[async_trait]
impl TypedJob for ThumbnailJob {
    type Input = ThumbnailInput;
    type Checkpoint = ();

    fn job_type(&self) -> &'static str {
        "thumbnail"
    }

    fn input_keys(&self, input: &ThumbnailInput) -> Vec<(&'static str, String)> {
        vec![("input.source.key", input.source.key.clone())]
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

    async fn run(&self, ctx: &JobContext, input: ThumbnailInput, _: Option<()>) -> Result<Vec<ResultObject>, JobError> {
        let object = ctx.open_input(&input.source.key).await?;
        let too_large = || {
            JobError::permanent(
                "source_too_large",
                format!("the image is larger than {} bytes", self.limits.max_source_bytes),
            )
        };
        if object.size.is_some_and(|s| s > self.limits.max_source_bytes) {
            return Err(too_large());
        }
        let mut source = Vec::with_capacity(object.size.unwrap_or(0) as usize);
        object
            .body
            .take(self.limits.max_source_bytes + 1)
            .read_to_end(&mut source)
            .await
            .retryable(codes::STORAGE)?;
        if source.len() as u64 > self.limits.max_source_bytes {
            return Err(too_large());
        }
        ctx.progress(5, "decoding").await?;
        let widths = input.widths.clone();
        let max_memory = self.limits.max_image_memory_bytes;
        let image = tokio::task::spawn_blocking(move || decode_within(&source, &widths, max_memory))
            .await
            .permanent(codes::INTERNAL)??;
        let image = std::sync::Arc::new(image);

        let mut results = Vec::with_capacity(input.widths.len());
        let total = input.widths.len();
        for (done, &width) in input.widths.iter().enumerate() {
            let source = image.clone();
            let png = tokio::task::spawn_blocking(move || resize_png(&source, width))
                .await
                .permanent(codes::INTERNAL)??;
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

/// The size of the thumbnail of a `width` × `height` image asked for at
/// `requested_width`: that width (or the image's own, if smaller) and the
/// height that keeps the aspect ratio.
fn thumbnail_size(width: u32, height: u32, requested_width: u32) -> (u32, u32) {
    let target = requested_width.min(width);
    let target_height = ((u64::from(height) * u64::from(target)) / u64::from(width.max(1))).max(1) as u32;
    (target, target_height)
}

/// The memory a thumbnail job needs for one image, worked out from its
/// header: the decoded image, held throughout, and the largest of its
/// resizes, one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemoryPlan {
    /// Bytes of the decoded image.
    decoded: u64,
    /// Bytes the largest resize takes at its peak.
    largest_resize: u64,
    /// The requested width of that resize.
    largest_resize_width: Option<u32>,
}

impl MemoryPlan {
    /// The plan for a `width` × `height` image of `bytes_per_pixel` resized
    /// to `requested_widths`. A resize takes its intermediate samples (the
    /// source's width × the thumbnail's height, RGBA `f32`) plus the
    /// thumbnail and its PNG encoding (counted at the thumbnail's raw size);
    /// a width the image already has is a copy instead.
    fn new(width: u32, height: u32, bytes_per_pixel: u8, requested_widths: &[u32]) -> Self {
        let bytes_per_pixel = u64::from(bytes_per_pixel);
        let area = |w: u32, h: u32| u64::from(w).saturating_mul(u64::from(h));
        let (largest_resize, largest_resize_width) = requested_widths
            .iter()
            .map(|&requested| {
                let (target, target_height) = thumbnail_size(width, height, requested);
                let thumbnail = area(target, target_height).saturating_mul(bytes_per_pixel);
                let samples = if (target, target_height) == (width, height) {
                    0
                } else {
                    area(width, target_height).saturating_mul(RESIZE_SAMPLE_BYTES_PER_PIXEL)
                };
                (samples.saturating_add(thumbnail.saturating_mul(2)), Some(requested))
            })
            .max()
            .unwrap_or((0, None));
        MemoryPlan {
            decoded: area(width, height).saturating_mul(bytes_per_pixel),
            largest_resize,
            largest_resize_width,
        }
    }

    /// Bytes at the peak: the decoded image and its largest resize.
    fn peak(&self) -> u64 {
        self.decoded.saturating_add(self.largest_resize)
    }
}

/// Decodes `source` if the image it declares, and its resizes to
/// `requested_widths`, fit in `max_memory` bytes; refuses it from its header
/// alone otherwise.
fn decode_within(source: &[u8], requested_widths: &[u32], max_memory: u64) -> Result<DynamicImage, JobError> {
    let invalid = |e: ImageError| JobError::permanent("invalid_image", e.to_string());
    let too_large = |message: String| JobError::permanent(IMAGE_TOO_LARGE, message);
    let limit_error = |e: ImageError| match e {
        ImageError::Limits(limit) => too_large(format!(
            "the image is beyond MAX_IMAGE_MEMORY_BYTES ({max_memory} bytes): {limit}"
        )),
        other => invalid(other),
    };
    // A side longer than the budget could not fit even at one byte a pixel.
    let max_side = u32::try_from(max_memory).unwrap_or(u32::MAX);
    let limits = |max_alloc: u64| {
        let mut limits = Limits::default();
        limits.max_image_width = Some(max_side);
        limits.max_image_height = Some(max_side);
        limits.max_alloc = Some(max_alloc);
        limits
    };
    let reader = |max_alloc: u64| {
        let mut reader = ImageReader::new(std::io::Cursor::new(source))
            .with_guessed_format()
            .permanent("invalid_image")?;
        reader.limits(limits(max_alloc));
        Ok::<_, JobError>(reader)
    };

    // The header: size and pixel format, nothing decoded yet.
    let header = reader(max_memory)?.into_decoder().map_err(limit_error)?;
    let (width, height) = header.dimensions();
    let plan = MemoryPlan::new(width, height, header.color_type().bytes_per_pixel(), requested_widths);
    drop(header);
    if plan.peak() > max_memory {
        let resize = plan
            .largest_resize_width
            .map_or(String::new(), |w| format!(" and resizing it to width {w}"));
        return Err(too_large(format!(
            "decoding this {width}×{height} image{resize} needs about {} bytes, more than \
             MAX_IMAGE_MEMORY_BYTES ({max_memory})",
            plan.peak()
        )));
    }

    // The decode, under what the resizes leave of the budget.
    reader(max_memory - plan.largest_resize)?.decode().map_err(limit_error)
}

/// The image scaled to `width` (or its own width, if smaller), as PNG bytes.
fn resize_png(image: &DynamicImage, width: u32) -> Result<Vec<u8>, JobError> {
    let (target, height) = thumbnail_size(image.width(), image.height(), width);
    let resized = image.resize_exact(target, height, FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    resized
        .write_to(&mut out, ImageFormat::Png)
        .permanent(codes::INTERNAL)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    // Through `JobHandler`, from JSON, as submit and the worker call it.
    use bytes::Bytes;
    use image::{DynamicImage, ImageFormat};
    use serde_json::json;

    use super::{ThumbnailJob, ThumbnailLimits};
    use longrun_core::job_types::testing::{harness, input_key};
    use longrun_core::job_types::JobHandler;
    use longrun_core::ports::ObjectStore;

    /// A thumbnail job reading sources up to `max_source_bytes`, with the
    /// default image memory budget.
    fn thumbnails(max_source_bytes: u64) -> ThumbnailJob {
        ThumbnailJob::new(ThumbnailLimits {
            max_source_bytes,
            ..ThumbnailLimits::from_config(&longrun_core::fixtures::config(&[])).unwrap()
        })
    }

    /// A thumbnail job with the limits of a configuration with `overrides`.
    fn thumbnails_with(overrides: &[(&str, &str)]) -> ThumbnailJob {
        ThumbnailJob::new(ThumbnailLimits::from_config(&longrun_core::fixtures::config(overrides)).unwrap())
    }

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
        let job = thumbnails(1000);
        assert!(job
            .validate(&json!({"source": {"key": input_key("a.png")}, "widths": [32, 64]}))
            .is_ok());
        assert!(job
            .validate(&json!({"source": {"key": input_key("a.png")}, "widths": []}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": input_key("a.png")}, "widths": [0]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": input_key("a.png")}, "widths": [5000]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": input_key("a.png")}, "widths": [8, 8]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": "other/a.png"}, "widths": [8]}))
            .is_err());
        assert!(job
            .validate(&json!({"source": {"key": input_key("a.png")}, "widths": [-1]}))
            .is_err());
    }

    #[tokio::test]
    async fn writes_one_png_per_width_keeping_aspect_and_never_upscaling() {
        let input = json!({"source": {"key": input_key("pic.png")}, "widths": [40, 10, 500]});
        let h = harness(input.clone(), None).await;
        h.objects
            .put(&input_key("pic.png"), Bytes::from(png(200, 100)), "image/png")
            .await
            .unwrap();
        let results = thumbnails(1 << 20).run(&h.ctx, &input).await.unwrap();
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
        let input = json!({"source": {"key": input_key("pic.png")}, "widths": [10]});
        let h = harness(input.clone(), None).await;
        h.objects
            .put(&input_key("pic.png"), Bytes::from_static(b"not an image"), "image/png")
            .await
            .unwrap();
        let err = thumbnails(1 << 20).run(&h.ctx, &input).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("invalid_image", false));

        h.objects
            .put(&input_key("pic.png"), Bytes::from(png(50, 50)), "image/png")
            .await
            .unwrap();
        let err = thumbnails(10).run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "source_too_large");
    }

    #[tokio::test]
    async fn an_image_declaring_more_pixels_than_the_budget_is_refused_before_decoding() {
        let input = json!({"source": {"key": input_key("bomb.png")}, "widths": [64]});
        let h = harness(input.clone(), None).await;

        // 1000 × 1000 RGBA is 4 MB decoded: over a 1 MiB budget, though well
        // within what `image` refuses by default. Refused from the header:
        // decoding the junk pixel data would have been `invalid_image`.
        h.objects
            .put(
                &input_key("bomb.png"),
                Bytes::from(longrun_core::fixtures::png_declaring(1000, 1000)),
                "image/png",
            )
            .await
            .unwrap();
        let err = thumbnails_with(&[("MAX_IMAGE_MEMORY_BYTES", "1048576")])
            .run(&h.ctx, &input)
            .await
            .unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("image_too_large", false));
        assert!(err.message.contains("1000×1000"), "{}", err.message);

        // A 60-byte file declaring 100 000 × 100 000 (40 GB) under the defaults.
        h.objects
            .put(
                &input_key("bomb.png"),
                Bytes::from(longrun_core::fixtures::png_declaring(100_000, 100_000)),
                "image/png",
            )
            .await
            .unwrap();
        let err = thumbnails(1 << 20).run(&h.ctx, &input).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("image_too_large", false));
    }

    #[tokio::test]
    async fn the_requested_widths_count_towards_the_image_budget() {
        // 200 × 100 RGB: 60 000 bytes decoded. At width 500 it is copied
        // (2 × 60 000 more); at width 100 its resize samples 200 × 50 pixels
        // of 16 bytes (160 000) and writes 2 × 15 000: 250 000 in all.
        let h = harness(json!({}), None).await;
        h.objects
            .put(&input_key("pic.png"), Bytes::from(png(200, 100)), "image/png")
            .await
            .unwrap();
        let job = thumbnails_with(&[("MAX_IMAGE_MEMORY_BYTES", "200000")]);
        let copy = json!({"source": {"key": input_key("pic.png")}, "widths": [500]});
        job.run(&h.ctx, &copy).await.unwrap();

        let resize = json!({"source": {"key": input_key("pic.png")}, "widths": [500, 100]});
        let err = job.run(&h.ctx, &resize).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("image_too_large", false));
        assert!(err.message.contains("width 100"), "{}", err.message);
        assert!(err.message.contains("250000"), "{}", err.message);

        thumbnails_with(&[("MAX_IMAGE_MEMORY_BYTES", "250000")])
            .run(&h.ctx, &resize)
            .await
            .unwrap();
    }
}

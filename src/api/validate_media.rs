//! Local validation of image and speech requests, run before any upstream call. Each problem is
//! one [`Violation`] naming the proto field, so a caller sees every mistake at once.
//!
//! The image rules are the per-model restrictions of OpenAI's Images API (the README's "Image rules" table,
//! from OpenAI's `CreateImageRequest` reference). They apply to the models the gateway knows; any other
//! model gets only the model-independent checks (prompt present, `n` at least 1, compression
//! 0-100, `partial_images` 0-3), because OpenAI adds image models often and each new one should
//! work the day it ships.

use super::call::Checked;
use crate::{
    error::Violation,
    pb::{CreateImageRequest, CreateSpeechRequest},
};

/// The image model families whose rules the gateway knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImageModel {
    /// `dall-e-2` (OpenAI's default when no model and no GPT-image-only field is given).
    DallE2,
    /// `dall-e-3`.
    DallE3,
    /// A GPT image model (`gpt-image-*`, `chatgpt-image-*`). `custom_sizes`: gpt-image-2 and
    /// later snapshots of it also accept any `WxH` within limits.
    GptImage {
        /// Whether sizes other than the presets are allowed (gpt-image-2).
        custom_sizes: bool,
    },
    /// A model the gateway does not know: only model-independent checks.
    Unknown,
}

impl ImageModel {
    /// The family of the request's model. Without a model OpenAI picks `dall-e-2`, unless a
    /// GPT-image-only field is set, which implies a GPT image model.
    pub(super) fn of(req: &CreateImageRequest) -> Self {
        match req.model.as_deref() {
            Some(m) => Self::named(m),
            None if gpt_only_field_set(req) => Self::GptImage {
                custom_sizes: false,
            },
            None => Self::DallE2,
        }
    }

    /// The family of a model id.
    pub(super) fn named(model: &str) -> Self {
        if model.starts_with("dall-e-2") {
            Self::DallE2
        } else if model.starts_with("dall-e-3") {
            Self::DallE3
        } else if model.starts_with("gpt-image-2") {
            Self::GptImage { custom_sizes: true }
        } else if model.starts_with("gpt-image-") || model.starts_with("chatgpt-image-") {
            Self::GptImage {
                custom_sizes: false,
            }
        } else {
            Self::Unknown
        }
    }

    fn name(self, req: &CreateImageRequest) -> String {
        match (req.model.as_deref(), self) {
            (Some(m), _) => m.to_owned(),
            (None, Self::DallE2) => "dall-e-2 (the default model when none is set)".into(),
            (None, _) => {
                "a GPT image model (implied by a GPT-image-only field; set model explicitly)".into()
            }
        }
    }

    fn is_gpt(self) -> bool {
        matches!(self, Self::GptImage { .. })
    }

    fn is_dalle(self) -> bool {
        matches!(self, Self::DallE2 | Self::DallE3)
    }

    /// Longest prompt in characters, if known.
    fn max_prompt(self) -> Option<usize> {
        match self {
            Self::DallE2 => Some(1_000),
            Self::DallE3 => Some(4_000),
            Self::GptImage { .. } => Some(32_000),
            Self::Unknown => None,
        }
    }

    /// The fixed sizes, if known.
    fn sizes(self) -> &'static [&'static str] {
        match self {
            Self::DallE2 => &["256x256", "512x512", "1024x1024"],
            Self::DallE3 => &["1024x1024", "1792x1024", "1024x1792"],
            Self::GptImage { .. } => &["1024x1024", "1536x1024", "1024x1536", "auto"],
            Self::Unknown => &[],
        }
    }

    /// The qualities, if known.
    fn qualities(self) -> &'static [&'static str] {
        match self {
            // `auto` is OpenAI's default quality for every model.
            Self::DallE2 => &["standard", "auto"],
            Self::DallE3 => &["standard", "hd", "auto"],
            Self::GptImage { .. } => &["low", "medium", "high", "auto"],
            Self::Unknown => &[],
        }
    }
}

fn gpt_only_field_set(req: &CreateImageRequest) -> bool {
    req.output_format.is_some()
        || req.output_compression.is_some()
        || req.background.is_some()
        || req.moderation.is_some()
        || req.partial_images.is_some()
}

/// gpt-image-2 limits for free-form sizes (OpenAI's `CreateImageRequest.size` description).
const GPT_IMAGE_2_MAX_SIDE: u32 = 3840;
const GPT_IMAGE_2_MAX_PIXELS: u64 = 3840 * 2160;
const GPT_IMAGE_2_MAX_RATIO: u32 = 3;
const GPT_IMAGE_2_STEP: u32 = 16;

/// Why a free-form gpt-image-2 size is not allowed, if it is not.
fn custom_size_problem(size: &str) -> Option<String> {
    let parsed = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
    let Some((w, h)) = parsed else {
        return Some("is not WIDTHxHEIGHT (e.g. \"2048x1152\") or \"auto\"".into());
    };
    if w == 0 || h == 0 || w % GPT_IMAGE_2_STEP != 0 || h % GPT_IMAGE_2_STEP != 0 {
        return Some(format!(
            "both sides must be positive multiples of {GPT_IMAGE_2_STEP}"
        ));
    }
    if w.max(h) > GPT_IMAGE_2_MAX_SIDE {
        return Some(format!(
            "the long side must be at most {GPT_IMAGE_2_MAX_SIDE}"
        ));
    }
    if w.max(h) > GPT_IMAGE_2_MAX_RATIO * w.min(h) {
        return Some("the aspect ratio must be between 1:3 and 3:1".into());
    }
    if u64::from(w) * u64::from(h) > GPT_IMAGE_2_MAX_PIXELS {
        return Some(format!(
            "at most {GPT_IMAGE_2_MAX_PIXELS} pixels (3840x2160) are allowed"
        ));
    }
    None
}

fn one_of(value: &str, allowed: &[&str]) -> bool {
    allowed.contains(&value)
}

fn list(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a `CreateImageRequest`; an empty result means it may be sent.
impl Checked for CreateImageRequest {
    fn model(&self) -> &str {
        self.model.as_deref().unwrap_or_default()
    }

    fn violations(&self) -> Vec<Violation> {
        create_image(self)
    }
}

fn create_image(req: &CreateImageRequest) -> Vec<Violation> {
    let mut v = Vec::new();
    let family = ImageModel::of(req);
    let model = family.name(req);
    let known = family != ImageModel::Unknown;

    // prompt
    if req.prompt.trim().is_empty() {
        v.push(Violation::new(
            "prompt",
            "required: a text description of the image, e.g. \"A minimalist poster of a mountain at sunrise\"",
        ));
    } else if let Some(max) = family.max_prompt() {
        let chars = req.prompt.chars().count();
        if chars > max {
            v.push(Violation::new(
                "prompt",
                format!("{chars} characters is too long for {model}: at most {max}"),
            ));
        }
    }

    // model
    if req.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        v.push(Violation::new(
            "model",
            "must not be empty when set, e.g. \"gpt-image-1\", \"dall-e-3\" or \"dall-e-2\"",
        ));
    }

    // n
    let partials = req.partial_images.unwrap_or(0);
    if let Some(n) = req.n {
        if n < 1 {
            v.push(Violation::new("n", format!("{n} must be at least 1")));
        } else if family == ImageModel::DallE3 && n != 1 {
            v.push(Violation::new(
                "n",
                format!("{model} generates exactly 1 image per request, not {n}"),
            ));
        } else if known && n > 10 {
            v.push(Violation::new(
                "n",
                format!("{n} is outside 1-10 for {model}"),
            ));
        } else if family.is_gpt() && partials > 0 && n != 1 {
            v.push(Violation::new(
                "n",
                format!(
                    "must be 1 with partial_images > 0: OpenAI streams images only with n = 1 (got {n})"
                ),
            ));
        }
    }

    // partial_images
    if let Some(p) = req.partial_images {
        if !(0..=3).contains(&p) {
            v.push(Violation::new(
                "partial_images",
                format!("{p} is outside 0-3"),
            ));
        } else if family.is_dalle() {
            v.push(Violation::new(
                "partial_images",
                format!("streamed previews are for GPT image models only, not {model}"),
            ));
        }
    }

    // size
    if let Some(size) = &req.size
        && known
        && !one_of(size, family.sizes())
    {
        let custom = matches!(family, ImageModel::GptImage { custom_sizes: true });
        match (custom, custom.then(|| custom_size_problem(size)).flatten()) {
            (true, None) => {}
            (true, Some(problem)) => v.push(Violation::new(
                "size",
                format!(
                    "{size:?} is not a size of {model}: use one of {} or a custom WIDTHxHEIGHT ({problem})",
                    list(family.sizes())
                ),
            )),
            (false, _) => v.push(Violation::new(
                "size",
                format!(
                    "{size:?} is not a size of {model}: use one of {}",
                    list(family.sizes())
                ),
            )),
        }
    }

    // quality
    if let Some(quality) = &req.quality
        && known
        && !one_of(quality, family.qualities())
    {
        let hint = if family == ImageModel::DallE2 {
            " (dall-e-2 has a single, standard quality: leave quality unset)"
        } else {
            ""
        };
        v.push(Violation::new(
            "quality",
            format!(
                "{quality:?} is not a quality of {model}: use one of {}{hint}",
                list(family.qualities())
            ),
        ));
    }

    // style: dall-e-3 only
    if let Some(style) = &req.style
        && known
    {
        if family != ImageModel::DallE3 {
            v.push(Violation::new(
                "style",
                format!("style is for dall-e-3 only, not {model}"),
            ));
        } else if !one_of(style, &["vivid", "natural"]) {
            v.push(Violation::new(
                "style",
                format!("{style:?} is not one of \"vivid\", \"natural\""),
            ));
        }
    }

    // response_format: dall-e only
    if let Some(format) = &req.response_format
        && known
    {
        if !family.is_dalle() {
            v.push(Violation::new(
                "response_format",
                format!(
                    "response_format is for dall-e-2 and dall-e-3 only; {model} always returns the image bytes"
                ),
            ));
        } else if !one_of(format, &["url", "b64_json"]) {
            v.push(Violation::new(
                "response_format",
                format!("{format:?} is not one of \"url\", \"b64_json\""),
            ));
        }
    }

    // GPT-image-only fields.
    let gpt_only = |v: &mut Vec<Violation>, field: &str| {
        v.push(Violation::new(
            field,
            format!("{field} is for GPT image models only, not {model}"),
        ));
    };
    if let Some(format) = &req.output_format
        && known
    {
        if !family.is_gpt() {
            gpt_only(&mut v, "output_format");
        } else if !one_of(format, &["png", "jpeg", "webp"]) {
            v.push(Violation::new(
                "output_format",
                format!("{format:?} is not one of \"png\", \"jpeg\", \"webp\""),
            ));
        }
    }
    let output_format = req.output_format.as_deref().unwrap_or("png");
    if let Some(c) = req.output_compression {
        if !(0..=100).contains(&c) {
            v.push(Violation::new(
                "output_compression",
                format!("{c} is outside 0-100"),
            ));
        } else if known && !family.is_gpt() {
            gpt_only(&mut v, "output_compression");
        } else if known && !one_of(output_format, &["jpeg", "webp"]) {
            v.push(Violation::new(
                "output_compression",
                format!(
                    "compression applies only to output_format \"jpeg\" or \"webp\", not {output_format:?}"
                ),
            ));
        }
    }
    if let Some(background) = &req.background
        && known
    {
        if !family.is_gpt() {
            gpt_only(&mut v, "background");
        } else if !one_of(background, &["auto", "opaque", "transparent"]) {
            v.push(Violation::new(
                "background",
                format!("{background:?} is not one of \"auto\", \"opaque\", \"transparent\""),
            ));
        } else if background == "transparent" && !one_of(output_format, &["png", "webp"]) {
            v.push(Violation::new(
                "background",
                format!(
                    "a transparent background needs output_format \"png\" or \"webp\", not {output_format:?}"
                ),
            ));
        }
    }
    if let Some(moderation) = &req.moderation
        && known
    {
        if !family.is_gpt() {
            gpt_only(&mut v, "moderation");
        } else if !one_of(moderation, &["auto", "low"]) {
            v.push(Violation::new(
                "moderation",
                format!("{moderation:?} is not one of \"auto\", \"low\""),
            ));
        }
    }
    extra_body_reserves(&mut v, req.extra_body.as_ref(), "stream", "partial_images");
    v
}

/// `extra_body` must not set `key`, which the gateway sets itself (it decides how to read the
/// answer); `instead` is what the caller uses.
fn extra_body_reserves(
    v: &mut Vec<Violation>,
    extra: Option<&prost_types::Struct>,
    key: &str,
    instead: &str,
) {
    if extra.is_some_and(|e| e.fields.contains_key(key)) {
        v.push(Violation::new(
            "extra_body",
            format!("must not set {key:?}: the gateway sets it (use {instead})"),
        ));
    }
}

/// The most characters OpenAI accepts in `input` and in `instructions`.
pub(super) const SPEECH_MAX_CHARS: usize = 4096;

/// The audio formats of the speech API.
pub(super) const SPEECH_FORMATS: [&str; 6] = ["mp3", "opus", "aac", "flac", "wav", "pcm"];

/// Whether `model` is one of the original TTS models (`tts-1`, `tts-1-hd` and their snapshots),
/// which support neither `instructions` nor `stream_format: sse`.
pub(super) fn is_classic_tts(model: &str) -> bool {
    model.starts_with("tts-1")
}

/// Checks a `CreateSpeechRequest`; an empty result means it may be sent.
impl Checked for CreateSpeechRequest {
    fn model(&self) -> &str {
        &self.model
    }

    fn violations(&self) -> Vec<Violation> {
        create_speech(self)
    }
}

fn create_speech(req: &CreateSpeechRequest) -> Vec<Violation> {
    let mut v = Vec::new();
    if req.input.trim().is_empty() {
        v.push(Violation::new(
            "input",
            "required: the text to speak, e.g. \"Welcome to our app!\"",
        ));
    } else {
        let chars = req.input.chars().count();
        if chars > SPEECH_MAX_CHARS {
            v.push(Violation::new(
                "input",
                format!("{chars} characters is too long: at most {SPEECH_MAX_CHARS}"),
            ));
        }
    }
    if req.model.trim().is_empty() {
        v.push(Violation::new(
            "model",
            "required: the speech model, e.g. \"tts-1\", \"tts-1-hd\" or \"gpt-4o-mini-tts\"",
        ));
    }
    if req.voice.trim().is_empty() {
        v.push(Violation::new(
            "voice",
            "required: a voice such as \"alloy\", \"coral\" or \"nova\", or a custom voice id \"voice_...\"",
        ));
    }
    if let Some(format) = &req.response_format
        && !SPEECH_FORMATS.contains(&format.as_str())
    {
        v.push(Violation::new(
            "response_format",
            format!("{format:?} is not one of {}", list(&SPEECH_FORMATS)),
        ));
    }
    if let Some(speed) = req.speed
        && !(0.25..=4.0).contains(&speed)
    {
        v.push(Violation::new(
            "speed",
            format!("{speed} is outside 0.25-4.0"),
        ));
    }
    extra_body_reserves(
        &mut v,
        req.extra_body.as_ref(),
        "stream_format",
        "the model: the gateway streams whenever it can",
    );
    if let Some(instructions) = &req.instructions {
        let chars = instructions.chars().count();
        if is_classic_tts(&req.model) {
            v.push(Violation::new(
                "instructions",
                format!(
                    "{} does not support instructions: leave them unset or use a model such as \"gpt-4o-mini-tts\"",
                    req.model
                ),
            ));
        } else if chars > SPEECH_MAX_CHARS {
            v.push(Violation::new(
                "instructions",
                format!("{chars} characters is too long: at most {SPEECH_MAX_CHARS}"),
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(model: Option<&str>) -> CreateImageRequest {
        CreateImageRequest {
            prompt: "a cat".into(),
            model: model.map(Into::into),
            ..Default::default()
        }
    }

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn families() {
        assert_eq!(ImageModel::named("dall-e-2"), ImageModel::DallE2);
        assert_eq!(ImageModel::named("dall-e-3"), ImageModel::DallE3);
        assert_eq!(
            ImageModel::named("gpt-image-2-2026-04-21"),
            ImageModel::GptImage { custom_sizes: true }
        );
        assert_eq!(
            ImageModel::named("chatgpt-image-latest"),
            ImageModel::GptImage {
                custom_sizes: false
            }
        );
        assert_eq!(ImageModel::named("flux-pro"), ImageModel::Unknown);
        assert_eq!(ImageModel::of(&image(None)), ImageModel::DallE2);
        let mut r = image(None);
        r.background = Some("opaque".into());
        assert!(ImageModel::of(&r).is_gpt());
    }

    #[test]
    fn gpt_image_2_custom_sizes() {
        for ok in ["2048x1152", "3840x2160", "1024x3072", "16x48", "auto"] {
            let mut r = image(Some("gpt-image-2"));
            r.size = Some(ok.into());
            assert!(create_image(&r).is_empty(), "{ok}");
        }
        for bad in [
            "1000x1000",
            "3856x1024",
            "3840x1024",
            "3840x3840",
            "big",
            "0x0",
        ] {
            let mut r = image(Some("gpt-image-2"));
            r.size = Some(bad.into());
            assert_eq!(fields(&create_image(&r)), ["size"], "{bad}");
        }
    }

    #[test]
    fn defaults_are_valid_for_every_family() {
        for model in [
            None,
            Some("dall-e-2"),
            Some("dall-e-3"),
            Some("gpt-image-1"),
            Some("x"),
        ] {
            assert!(create_image(&image(model)).is_empty(), "{model:?}");
        }
        let speech = CreateSpeechRequest {
            input: "hi".into(),
            model: "tts-1".into(),
            voice: "alloy".into(),
            ..Default::default()
        };
        assert!(create_speech(&speech).is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let r = CreateImageRequest {
            prompt: String::new(),
            model: Some("dall-e-3".into()),
            n: Some(2),
            size: Some("256x256".into()),
            quality: Some("high".into()),
            output_format: Some("png".into()),
            ..Default::default()
        };
        assert_eq!(
            fields(&create_image(&r)),
            ["prompt", "n", "size", "quality", "output_format"]
        );
    }
}

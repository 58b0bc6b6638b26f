//! One typed usage value: the model and token counts of one finished response, as OpenAI
//! reported them. The conversions in [`crate::convert`] produce it; telemetry (and quotas)
//! consume it, so nothing matches token kinds by string.

/// The token usage of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// The model that produced it (the resolved snapshot id where OpenAI reports one, else the
    /// requested model).
    pub model: String,
    /// Input (prompt) tokens.
    pub input_tokens: i64,
    /// Output tokens (reasoning included).
    pub output_tokens: i64,
    /// Input tokens served from the prompt cache, where reported.
    pub cached_input_tokens: Option<i64>,
    /// Output tokens spent on reasoning, where reported.
    pub reasoning_tokens: Option<i64>,
}

impl Usage {
    /// Input plus output tokens: what a tokens-per-minute limit counts.
    pub fn total(&self) -> i64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Every reported count with its OpenTelemetry `gen_ai.token.type` name (`input`,
    /// `output`) or the gateway's finer kinds (`cached_input`, `reasoning`).
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, i64)> {
        [
            ("input", Some(self.input_tokens)),
            ("output", Some(self.output_tokens)),
            ("cached_input", self.cached_input_tokens),
            ("reasoning", self.reasoning_tokens),
        ]
        .into_iter()
        .filter_map(|(kind, n)| Some((kind, n?)))
    }
}

//! Demo mode (`--demo`): the built-in fake OpenAI ([`crate::fake`]) starts on loopback and
//! answers for every upstream of the configuration, so the gateway runs with no key and no
//! network. Profiles keep their keys and headers, so profile routing can be tried too.

use crate::{
    config::{Config, StartupError},
    fake::FakeOpenAi,
    openai::UpstreamConfig,
};

/// Starts the fake and points every upstream of `config` at it. Keep the returned handle alive
/// for as long as the gateway serves: dropping it stops the fake.
pub async fn start(config: &mut Config) -> Result<FakeOpenAi, StartupError> {
    let fake = FakeOpenAi::start()
        .await
        .map_err(|e| StartupError::runtime(format!("cannot start the demo upstream: {e}")))?;
    let url = UpstreamConfig::new(&fake.base_url())
        .map_err(StartupError::runtime)?
        .base_url;
    for upstream in config.upstreams_mut() {
        upstream.base_url = url.clone();
    }
    Ok(fake)
}

#!/usr/bin/env bash
# The peer comparison of BENCHMARKS.md ("Against LiteLLM"): LiteLLM's proxy and this gateway in
# front of the same fake OpenAI, unary calls through each beside the same call direct, in one
# run. Optional and not part of `cargo test`: it installs LiteLLM from PyPI into a virtual
# environment under target/ (the first run takes a few minutes).
#
#   scripts/peer-litellm.sh            # full counts; add --quick for a short run
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/target/peer"
venv="$root/litellm-venv"
mkdir -p "$root"
if [ ! -x "$venv/bin/litellm" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'litellm[proxy]'
fi
"$venv/bin/pip" show litellm | sed -n 's/^Version: /LiteLLM /p'
# The model routes to the fake's Responses API; PEER_UPSTREAM and PEER_PORT come from the
# benchmark (benches/gateway/peer.rs). The key is the fake's (it accepts any); the master key is
# what the benchmark sends to the proxy.
cat > "$root/litellm.yaml.in" <<'YAML'
model_list:
  - model_name: gpt-4.1-mini
    litellm_params:
      model: openai/gpt-4.1-mini
      api_base: UPSTREAM
      api_key: sk-bench-0123456789abcdef
general_settings:
  master_key: sk-peer-bench
litellm_settings:
  drop_params: true
YAML
cmd="sed \"s#UPSTREAM#\$PEER_UPSTREAM#\" '$root/litellm.yaml.in' > '$root/litellm.yaml' && \
exec '$venv/bin/litellm' --config '$root/litellm.yaml' --host 127.0.0.1 --port \"\$PEER_PORT\" --num_workers 1"
exec cargo bench --bench gateway -- "$@" --peer-cmd "$cmd"

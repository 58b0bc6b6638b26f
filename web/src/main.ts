// The gateway's built-in page: the Create response, Create image and Create speech
// forms, calling the gateway with gRPC-Web (Connect's transport, code generated from proto/).
// Built into web/dist/ by scripts/build-web.sh.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ImagesService } from "../gen/openai_gateway/v1/images_pb";
import {
  type CreateResponseRequestSchema,
  type Response as ModelResponse,
  ResponsesService,
} from "../gen/openai_gateway/v1/responses_pb";
import { SpeechService } from "../gen/openai_gateway/v1/speech_pb";
import { type Explained, explain } from "./explain";
import { Assembly, imageType } from "./media";

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from index.html`);
  return found as T;
}
const value = (id: string) => el<HTMLInputElement>(id).value.trim();

// --- Connection -------------------------------------------------------------------------------

// `?gateway=http://host:port` points the page at another gateway (which must then allow this
// page's origin with --cors-allow-origin).
const preset = new URLSearchParams(location.search).get("gateway");
if (preset) el<HTMLInputElement>("gateway").value = preset;
el("connection-form").addEventListener("submit", (e) => e.preventDefault());

function transport(): Transport {
  return createGrpcWebTransport({ baseUrl: value("gateway") || location.origin, useBinaryFormat: true });
}

/** The call's metadata: the caller token and the profile, when given. */
function callHeaders(): Record<string, string> {
  const headers: Record<string, string> = {};
  if (value("token")) headers["authorization"] = `Bearer ${value("token")}`;
  if (value("profile")) headers["x-openai-profile"] = value("profile");
  return headers;
}

// --- Tabs -------------------------------------------------------------------------------------

const tabs = ["text", "image", "speech"];
for (const name of tabs) {
  el(`tab-${name}`).addEventListener("click", () => {
    for (const other of tabs) {
      el(`tab-${other}`).setAttribute("aria-selected", String(other === name));
      el(`panel-${other}`).hidden = other !== name;
    }
  });
}

// --- One call per panel: Send / Cancel, status line, errors -----------------------------------

interface Panel {
  send: HTMLButtonElement;
  cancel: HTMLButtonElement;
  status: HTMLElement;
  error: HTMLElement;
  /** Carries `data-state`: idle, running, done, error, cancelled. */
  output: HTMLElement;
  controller?: AbortController;
}

function panel(prefix: string, output: string): Panel {
  const p: Panel = {
    send: el(`${prefix}send`),
    cancel: el(`${prefix}cancel`),
    status: el(`${prefix === "" ? "text-" : prefix}status`),
    error: el(`${prefix === "" ? "text-" : prefix}error`),
    output: el(output),
  };
  p.cancel.addEventListener("click", () => p.controller?.abort());
  return p;
}

const textPanel = panel("", "output");
const imagePanel = panel("image-", "image-output");
const speechPanel = panel("speech-", "speech-output");

/** Runs `call` as the panel's one call: buttons, state, and what a failure means. */
async function run(p: Panel, model: string, call: (signal: AbortSignal) => Promise<string>) {
  p.controller?.abort();
  const controller = new AbortController();
  p.controller = controller;
  p.send.disabled = true;
  p.cancel.disabled = false;
  p.error.hidden = true;
  p.error.replaceChildren();
  p.output.dataset.state = "running";
  p.status.textContent = "Waiting for the gateway…";
  try {
    p.status.textContent = await call(controller.signal);
    p.output.dataset.state = "done";
  } catch (e) {
    if (controller.signal.aborted || ConnectError.from(e).code === Code.Canceled) {
      p.output.dataset.state = "cancelled";
      p.status.textContent = "Cancelled: the gateway closed the upstream request.";
    } else {
      p.output.dataset.state = "error";
      p.status.textContent = "";
      showError(p.error, explain(e, model));
    }
  } finally {
    if (p.controller === controller) {
      p.controller = undefined;
      p.send.disabled = false;
      p.cancel.disabled = true;
    }
  }
}

function showError(box: HTMLElement, x: Explained) {
  box.dataset.code = x.code;
  box.dataset.reason = x.reason;
  const title = document.createElement("strong");
  title.textContent = x.title;
  const advice = document.createElement("p");
  advice.textContent = x.advice;
  box.replaceChildren(title, advice);
  for (const v of x.violations) {
    const line = document.createElement("p");
    line.textContent = `• ${v}`;
    box.append(line);
  }
  const facts = document.createElement("p");
  facts.className = "status";
  facts.textContent = [
    `gRPC ${x.code}`,
    x.reason && `reason ${x.reason}`,
    x.retryAfterSeconds !== undefined && `retry after ${x.retryAfterSeconds} s`,
    x.requestId && `OpenAI request ${x.requestId}`,
  ]
    .filter(Boolean)
    .join(" · ");
  const message = document.createElement("p");
  message.className = "status";
  message.textContent = x.message;
  box.append(facts, message);
  box.hidden = false;
}

/** "request req_… · 120 ms at OpenAI", from the response metadata. */
function describeHeaders(h: Headers | undefined): string {
  if (!h) return "";
  const parts = [];
  if (h.get("x-request-id")) parts.push(`OpenAI request ${h.get("x-request-id")}`);
  if (h.get("openai-processing-ms")) parts.push(`${h.get("openai-processing-ms")} ms at OpenAI`);
  if (h.get("x-ratelimit-remaining-requests")) {
    parts.push(`${h.get("x-ratelimit-remaining-requests")} requests left this minute`);
  }
  return parts.length ? ` · ${parts.join(" · ")}` : "";
}

// --- Text: Create response --------------------------------------------------------------------

const outputText = el("output-text");
const outputNotes = el("output-notes");

function note(title: string, body: string) {
  const box = document.createElement("div");
  box.className = "note";
  const t = document.createElement("strong");
  t.textContent = title;
  const code = document.createElement("code");
  code.textContent = body;
  box.append(t, document.createElement("br"), code);
  outputNotes.append(box);
}

/**
 * Shows what a finished response holds besides text: tool calls, refusals, a cut-off.
 * `explained`: a note already says why there is no text (a refusal shown as it streamed).
 */
function showNonText(response: ModelResponse | undefined, hadText: boolean, explained = false) {
  if (!response) return;
  for (const item of response.output) {
    const it = item.item;
    if (it.case === "functionCall") {
      note(
        `Tool call: ${it.value.name ?? "?"}`,
        `${it.value.arguments ?? ""}\nThe model asked to call a tool instead of answering with text: run it and send its result back.`,
      );
      explained = true;
    } else if (it.case === "message") {
      for (const part of it.value.content) {
        if (part.part.case === "refusal") {
          note("Refusal", part.part.value.refusal ?? "");
          explained = true;
        }
      }
    } else if (it.case && it.case !== "reasoning" && !hadText) {
      note(`Output item: ${it.case}`, "This response has no text; this item is what it produced.");
      explained = true;
    }
  }
  if (response.incompleteDetails?.reason) {
    note(
      `Incomplete: ${response.incompleteDetails.reason}`,
      "The answer was cut off; raise Max output tokens to get more.",
    );
  } else if (!hadText && !explained) {
    note("No text", "The response finished without any output text.");
  }
}

el("text-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const model = value("model");
  const stream = el<HTMLInputElement>("stream").checked;
  const maxTokens = value("max-output-tokens");
  const temperature = value("temperature");
  const request: MessageInitShape<typeof CreateResponseRequestSchema> = {
    model,
    inputText: el<HTMLTextAreaElement>("input").value,
    instructions: value("instructions") || undefined,
    maxOutputTokens: maxTokens ? BigInt(Math.trunc(Number(maxTokens))) : undefined,
    temperature: temperature ? Number(temperature) : undefined,
    stream,
  };
  outputText.textContent = "";
  outputNotes.replaceChildren();
  void run(textPanel, model, async (signal) => {
    const client = createClient(ResponsesService, transport());
    let headers: Headers | undefined;
    let response: ModelResponse | undefined;
    let refusal: HTMLElement | undefined;
    const calls = client.createResponse(request, {
      signal,
      headers: callHeaders(),
      onHeader: (h) => (headers = h),
    });
    textPanel.status.textContent = stream ? "Streaming…" : "Waiting for the whole response…";
    for await (const message of calls) {
      const event = message.event;
      switch (event.case) {
        case "outputTextDelta":
          // Each piece of text is appended as it arrives.
          outputText.append(event.value.delta ?? "");
          break;
        case "refusalDelta":
          if (!refusal) {
            note("Refusal", "");
            refusal = outputNotes.lastElementChild?.querySelector("code") ?? undefined;
          }
          refusal?.append(event.value.delta ?? "");
          break;
        case "completed":
        case "incomplete":
        case "failed":
          response = event.value.response;
          break;
      }
    }
    if (!stream && response) {
      // One result: its output_text, in one render.
      outputText.textContent = response.outputText;
    }
    if (refusal) {
      // Already shown as it streamed.
      response = response && { ...response, output: response.output.filter((i) => i.item.case !== "message") };
    }
    showNonText(response, (outputText.textContent ?? "") !== "", refusal !== undefined);
    const usage = response?.usage;
    const tokens = usage ? ` · ${usage.inputTokens ?? 0} in / ${usage.outputTokens ?? 0} out tokens` : "";
    return `Done${tokens}${describeHeaders(headers)}`;
  });
});

// --- Image: Create image ----------------------------------------------------------------------

const imageList = el("image-list");

/** The <figure> showing image `index` (created on first use). */
function figure(index: number): { img: HTMLImageElement; caption: HTMLElement } {
  let fig = imageList.querySelector<HTMLElement>(`figure[data-index="${index}"]`);
  if (!fig) {
    fig = document.createElement("figure");
    fig.dataset.index = String(index);
    const img = document.createElement("img");
    img.alt = `Generated image ${index + 1}`;
    fig.append(img, document.createElement("figcaption"));
    imageList.append(fig);
  }
  return { img: fig.querySelector("img")!, caption: fig.querySelector("figcaption")! };
}

function showImage(index: number, bytes: Uint8Array, caption: string, final: boolean) {
  const { img, caption: cap } = figure(index);
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(new Blob([bytes], { type: imageType(bytes) }));
  img.dataset.final = String(final);
  cap.textContent = caption;
}

el("image-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const model = value("image-model");
  const partials = Number(value("image-partials"));
  imageList.replaceChildren();
  void run(imagePanel, model, async (signal) => {
    const client = createClient(ImagesService, transport());
    let headers: Headers | undefined;
    const images = new Map<number, Assembly>();
    const previews = new Map<number, Assembly>();
    let summary = "";
    for await (const message of client.createImage(
      {
        prompt: el<HTMLTextAreaElement>("image-prompt").value,
        model: model || undefined,
        size: value("image-size") || undefined,
        partialImages: partials > 0 ? partials : undefined,
      },
      { signal, headers: callHeaders(), onHeader: (h) => (headers = h) },
    )) {
      const event = message.event;
      switch (event.case) {
        case "partialImage": {
          const c = event.value;
          const key = c.partialImageIndex;
          const a = previews.get(key) ?? new Assembly();
          previews.set(key, a);
          a.add(Number(c.offset), c.data);
          // A preview shows only until the final image has started arriving.
          if (c.last && !images.has(c.imageIndex)) {
            showImage(c.imageIndex, a.bytes(Number(c.totalBytes)), `Preview ${key + 1}…`, false);
          }
          break;
        }
        case "imageChunk": {
          const c = event.value;
          const a = images.get(c.imageIndex) ?? new Assembly();
          images.set(c.imageIndex, a);
          a.add(Number(c.offset), c.data);
          if (c.last) {
            showImage(c.imageIndex, a.bytes(Number(c.totalBytes)), c.revisedPrompt ?? "", true);
          }
          break;
        }
        case "imageUrl": {
          const { img, caption } = figure(event.value.imageIndex);
          img.src = event.value.url;
          img.dataset.final = "true";
          caption.textContent = event.value.revisedPrompt ?? "";
          break;
        }
        case "result": {
          const r = event.value;
          summary = [r.size, r.quality, r.outputFormat].filter(Boolean).join(", ");
          break;
        }
      }
    }
    return `Done${summary ? ` · ${summary}` : ""}${describeHeaders(headers)}`;
  });
});

// --- Speech: Create speech --------------------------------------------------------------------

const audio = el<HTMLAudioElement>("speech-audio");

el("speech-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const model = value("speech-model");
  if (audio.src.startsWith("blob:")) URL.revokeObjectURL(audio.src);
  audio.removeAttribute("src");
  void run(speechPanel, model, async (signal) => {
    const client = createClient(SpeechService, transport());
    let headers: Headers | undefined;
    let contentType = "";
    const sound = new Assembly();
    for await (const message of client.createSpeech(
      {
        input: el<HTMLTextAreaElement>("speech-input").value,
        model,
        voice: value("speech-voice"),
        responseFormat: value("speech-format") || undefined,
      },
      { signal, headers: callHeaders(), onHeader: (h) => (headers = h) },
    )) {
      const event = message.event;
      if (event.case === "start") {
        contentType = event.value.contentType;
      } else if (event.case === "audio") {
        sound.add(Number(event.value.offset), event.value.data);
      }
    }
    const bytes = sound.bytes();
    if (contentType === "audio/pcm") {
      return `Done · ${bytes.length} bytes of raw PCM (no container: a browser cannot play it; choose wav)`;
    }
    audio.src = URL.createObjectURL(new Blob([bytes], { type: contentType }));
    audio.play().catch(() => {
      // Autoplay can be refused; the controls still play it.
    });
    return `Done · ${bytes.length} bytes of ${contentType}${describeHeaders(headers)}`;
  });
});

// Drives the gateway's page in Debian's headless Chromium for tests/browser.rs, with
// playwright-core (which downloads no browser: it starts /usr/bin/chromium).
//
//   node web/test/browser.mjs TOOLS_DIR SCREENSHOT_DIR
//
// Reads one JSON command per line on stdin and answers each with one JSON line on stdout
// ({"ok": ...} or {"error": "..."}); {"event": ...} lines may come before an answer (e.g. the
// moment Cancel was clicked). Every wait is on a condition, bounded by WAIT_MS.

import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [toolsDir, screenshotDir] = process.argv.slice(2);
const require = createRequire(join(toolsDir, "package.json"));
const { chromium } = require("playwright-core");

const WAIT_MS = 20_000;
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const userDataDir = mkdtempSync(join(tmpdir(), "gateway-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1100, height: 900 },
});
let page;
const consoleErrors = [];

/** Opens `url` in a fresh page and starts recording renders of the Output region. */
async function open({ url }) {
  if (page) await page.close();
  page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(url);
  // Every DOM change of the output text, as the page makes it: its length then, and whether
  // the call was still running. Image sources are recorded the same way (previews, then final).
  await page.evaluate(() => {
    const text = document.getElementById("output-text");
    const region = document.getElementById("output");
    window.__renders = [];
    new MutationObserver(() => {
      window.__renders.push({ len: text.textContent.length, state: region.dataset.state });
    }).observe(text, { childList: true, characterData: true, subtree: true });
    window.__images = [];
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === "attributes" && r.attributeName === "src" && r.target.src) {
          window.__images.push({ final: r.target.dataset.final === "true" });
        }
      }
    }).observe(document.getElementById("image-list"), { attributes: true, subtree: true, childList: true });
  });
  return { title: await page.title() };
}

async function shot(name) {
  if (name) await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
}

async function settled(outputId) {
  await page.waitForFunction(
    (id) => ["done", "error", "cancelled"].includes(document.getElementById(id).dataset.state),
    outputId,
    { timeout: WAIT_MS },
  );
  return page.evaluate(() => null);
}

async function errorOf(panel) {
  const alert = page.locator(`#${panel}-error`);
  if (await alert.isHidden()) return null;
  return {
    code: await alert.getAttribute("data-code"),
    reason: await alert.getAttribute("data-reason"),
    text: await alert.innerText(),
  };
}

async function connection({ gateway = "", token = "", profile = "" }) {
  await page.locator("#connection summary").click();
  await page.getByLabel("Gateway", { exact: true }).fill(gateway);
  await page.getByLabel("Caller token", { exact: true }).fill(token);
  await page.getByLabel("Profile", { exact: true }).fill(profile);
  await page.locator("#connection summary").click();
  return {};
}

/** The Text tab: fill the form as a person would, press Send, wait for the end. */
async function text(cmd) {
  await page.getByRole("tab", { name: "Text" }).click();
  const form = page.locator("#panel-text");
  await form.getByLabel("Input", { exact: true }).fill(cmd.input);
  await form.getByLabel("Model", { exact: true }).fill(cmd.model ?? "gpt-4.1");
  await form.getByLabel("Instructions", { exact: true }).fill(cmd.instructions ?? "");
  await form.getByLabel("Max output tokens", { exact: true }).fill(cmd.maxOutputTokens ?? "");
  await form.getByLabel("Temperature", { exact: true }).fill(cmd.temperature ?? "");
  await form.getByRole("switch", { name: "Stream response" }).setChecked(cmd.stream !== false);
  await page.evaluate(() => (window.__renders = []));
  await page.getByRole("button", { name: "Send", exact: true }).click();
  if (cmd.cancelAfterRenders) {
    await page.waitForFunction(
      (n) => window.__renders.filter((r) => r.len > 0).length >= n,
      cmd.cancelAfterRenders,
      { timeout: WAIT_MS },
    );
    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    say({ event: "cancel_clicked" });
  }
  await settled("output");
  const output = page.getByRole("region", { name: "Output" });
  const result = {
    state: await output.getAttribute("data-state"),
    text: await page.locator("#output-text").textContent(),
    notes: await page.locator("#output-notes").innerText(),
    status: await page.locator("#text-status").innerText(),
    renders: await page.evaluate(() => window.__renders),
    error: await errorOf("text"),
  };
  await shot(cmd.screenshot);
  return result;
}

/** The Image tab: prompt, model, size, previews; wait until the final image has loaded. */
async function image(cmd) {
  await page.getByRole("tab", { name: "Image" }).click();
  const form = page.locator("#panel-image");
  await form.getByLabel("Prompt", { exact: true }).fill(cmd.prompt);
  await form.getByLabel("Model", { exact: true }).fill(cmd.model);
  await form.getByLabel("Size", { exact: true }).selectOption(cmd.size);
  await form.getByLabel("Previews", { exact: true }).selectOption(String(cmd.partials ?? 0));
  await page.evaluate(() => (window.__images = []));
  await page.getByRole("button", { name: "Create image" }).click();
  await settled("image-output");
  const final = page.locator('#image-list img[data-final="true"]').first();
  let size = null;
  if ((await final.count()) > 0) {
    await page.waitForFunction(
      () => {
        const img = document.querySelector('#image-list img[data-final="true"]');
        return img && img.complete;
      },
      null,
      { timeout: WAIT_MS },
    );
    size = await final.evaluate((img) => ({ width: img.naturalWidth, height: img.naturalHeight }));
  }
  const result = {
    state: await page.locator("#image-output").getAttribute("data-state"),
    size,
    sources: await page.evaluate(() => window.__images),
    error: await errorOf("image"),
  };
  await shot(cmd.screenshot);
  return result;
}

/** The Speech tab: text, model, voice, format; wait until the audio element has loaded it. */
async function speech(cmd) {
  await page.getByRole("tab", { name: "Speech" }).click();
  const form = page.locator("#panel-speech");
  await form.getByLabel("Text", { exact: true }).fill(cmd.input);
  await form.getByLabel("Model", { exact: true }).fill(cmd.model);
  await form.getByLabel("Voice", { exact: true }).fill(cmd.voice);
  await form.getByLabel("Format", { exact: true }).selectOption(cmd.format);
  await page.getByRole("button", { name: "Speak" }).click();
  await settled("speech-output");
  let duration = null;
  if (await page.locator("#speech-audio").evaluate((a) => Boolean(a.src))) {
    await page.waitForFunction(
      () => {
        const a = document.getElementById("speech-audio");
        return a.readyState >= 1 || a.error;
      },
      null,
      { timeout: WAIT_MS },
    );
    duration = await page.locator("#speech-audio").evaluate((a) => (a.error ? -1 : a.duration));
  }
  const result = {
    state: await page.locator("#speech-output").getAttribute("data-state"),
    duration,
    status: await page.locator("#speech-status").innerText(),
    error: await errorOf("speech"),
  };
  await shot(cmd.screenshot);
  return result;
}

const ops = { open, connection, text, image, speech };
say({ ok: { ready: true } });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  if (cmd.op === "quit") break;
  try {
    const ok = await ops[cmd.op](cmd);
    say({ ok, consoleErrors: consoleErrors.splice(0) });
  } catch (e) {
    say({ error: String(e && e.stack ? e.stack : e), consoleErrors: consoleErrors.splice(0) });
  }
}
await context.close();
rmSync(userDataDir, { recursive: true, force: true });
// stdin may still hold the event loop open.
process.exit(0);

// Drives the chat page of a live `moe serve` in headless Chromium with
// Playwright: loads it, types a message, presses Enter, waits for the
// streamed answer, and prints what the page shows as JSON:
// {messages: [{class, text}], speed, hits, model}. Saves a screenshot.
// Usage: node browser.js BASE_URL MESSAGE SCREENSHOT_PNG
// CHROMIUM names the browser (default /usr/bin/chromium).
"use strict";
const { chromium } = require("playwright-core");
const [base, message, screenshot] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // This machine's network is closed: without these, Chromium's own
    // background connections fail over and over while the test runs.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
    await page.goto(base + "/");
    await page.waitForFunction(() => document.getElementById("model").textContent !== "model: …");
    await page.fill("#input", message);
    await page.press("#input", "Enter");
    // Done when the button is back and the answer (or an error) is shown.
    await page.waitForFunction(() => {
      const log = document.getElementById("log").children;
      return !document.getElementById("send").disabled && log.length >= 2
        && (log[1].textContent !== "" || log[1].className.includes("error"));
    }, null, { timeout: 120000 });
    // The stats refresh that follows an answer: a rate, not the page
    // load's "– (dense model or no reads yet)" (the model is a MoE).
    await page.waitForFunction(() => /\d%$/.test(document.getElementById("hits").textContent), null, { timeout: 20000 });
    const shown = await page.evaluate(() => ({
      messages: [...document.getElementById("log").children].map((m) => ({ class: m.className, text: m.textContent })),
      speed: document.getElementById("speed").textContent,
      hits: document.getElementById("hits").textContent,
      model: document.getElementById("model").textContent,
    }));
    shown.problems = problems;
    if (screenshot) await page.screenshot({ path: screenshot });
    console.log(JSON.stringify(shown));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });

// Runs the chat page's script (src/server/chat_page.html) in Node against a
// live `moe serve`, with a minimal stand-in for the DOM: types a message,
// submits the form, waits for the answer, and prints what the page shows
// as JSON: {messages: [{class, text}], speed, hits, model}.
// Usage: node drive.js PAGE_HTML BASE_URL MESSAGE
"use strict";
const fs = require("fs");
const [html, base, message] = process.argv.slice(2);
const script = fs.readFileSync(html, "utf8").match(/<script>([\s\S]*)<\/script>/)[1];

class Element {
  constructor(id) { this.id = id; this.children = []; this.listeners = {}; this.textContent = ""; this.value = ""; this.className = ""; this.disabled = false; this.scrollTop = 0; this.scrollHeight = 0; }
  addEventListener(kind, f) { this.listeners[kind] = f; }
  appendChild(child) { this.children.push(child); return child; }
  requestSubmit() { this.listeners.submit({ preventDefault() {} }); }
}
const elements = {};
global.document = {
  getElementById: (id) => (elements[id] = elements[id] || new Element(id)),
  createElement: () => new Element(""),
};
const store = {};
global.localStorage = { getItem: (k) => store[k] ?? null, setItem: (k, v) => { store[k] = v; } };
const realFetch = fetch;
global.fetch = (path, opts) => realFetch(base + path, opts);

new Function(script)();
const $ = global.document.getElementById;
$("input").value = message;
$("form").requestSubmit();
const t0 = Date.now();
const poll = setInterval(() => {
  const log = $("log").children;
  const done = !$("send").disabled && log.length >= 2 && (log[1].textContent !== "" || log[1].className.includes("error"));
  if (done || Date.now() - t0 > 120000) {
    clearInterval(poll);
    // Let the stats refresh that follows an answer land.
    setTimeout(() => {
      console.log(JSON.stringify({
        messages: log.map((m) => ({ class: m.className, text: m.textContent })),
        speed: $("speed").textContent, hits: $("hits").textContent, model: $("model").textContent,
      }));
    }, 500);
  }
}, 50);

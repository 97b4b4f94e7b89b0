"""The Python `openai` package against `moe serve` (run by tests/serve_openai.rs).

Reads a JSON object on stdin: the server's base URL, API key and model id,
a question and a prompt, and the greedy texts `moe run` gives for them.
Exits non-zero (an AssertionError or the client's exception) on any
difference; prints "ok" at the end.
"""
import json
import sys

import openai

cfg = json.load(sys.stdin)
client = openai.OpenAI(base_url=cfg["base"] + "/v1", api_key=cfg["key"], max_retries=0, timeout=120)
model = cfg["model"]
messages = [{"role": "user", "content": cfg["question"]}]

ids = [m.id for m in client.models.list().data]
assert ids == [model], ids

r = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=16)
assert r.choices[0].message.content == cfg["chat"], (r.choices[0].message.content, cfg["chat"])
assert r.choices[0].message.role == "assistant"
assert r.choices[0].finish_reason == "length", r.choices[0].finish_reason
assert r.usage.completion_tokens == 16 and r.usage.prompt_tokens > 0, r.usage
assert r.usage.total_tokens == r.usage.prompt_tokens + 16

text, usage, finish = "", None, None
for chunk in client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=16, stream=True, stream_options={"include_usage": True}):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
assert text == cfg["chat"], (text, cfg["chat"])
assert finish == "length" and usage is not None and usage.completion_tokens == 16, (finish, usage)

r = client.completions.create(model=model, prompt=cfg["prompt"], temperature=0, max_tokens=12)
assert r.choices[0].text == cfg["completion"], (r.choices[0].text, cfg["completion"])
text = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt=cfg["prompt"], temperature=0, max_tokens=12, stream=True) if c.choices)
assert text == cfg["completion"], (text, cfg["completion"])

# A stop string ends the answer before it (its second word, or from its
# fourth character).
words = cfg["chat"].split()
stop = words[1] if len(words) > 1 else cfg["chat"][3:]
if stop:
    r = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=16, stop=[stop])
    assert r.choices[0].message.content == cfg["chat"][: cfg["chat"].index(stop)], (r.choices[0].message.content, stop)
    assert r.choices[0].finish_reason == "stop"

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404 and e.body["code"] == "model_not_found", e.body
try:
    client.chat.completions.create(model=model, messages=messages, presence_penalty=2.5)
    raise AssertionError("presence_penalty 2.5 was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "presence_penalty", e.body
try:
    client.chat.completions.create(model=model, messages=messages, logprobs=True)
    raise AssertionError("logprobs was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "logprobs", e.body
try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 3000}])
    raise AssertionError("a prompt past the context was accepted")
except openai.BadRequestError as e:
    assert e.body["code"] == "context_length_exceeded", e.body
try:
    openai.OpenAI(base_url=cfg["base"] + "/v1", api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401

print("ok")

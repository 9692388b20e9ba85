#!/usr/bin/env python3
"""A client written against llama.cpp's router API (llama.cpp's server README, "router mode"
section), used unchanged against hangar: list the models, load one, chat with it by name,
unload it. Standard library only.

Usage: llama_router_api.py BASE_URL MODEL_ID [API_KEY]
Exits 0 and prints "router api: ok" when every step behaved as the README describes.
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE, MODEL = sys.argv[1].rstrip("/"), sys.argv[2]
API_KEY = sys.argv[3] if len(sys.argv) > 3 else None


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if API_KEY:
        req.add_header("Authorization", "Bearer " + API_KEY)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def fail(msg):
    print("router api: FAILED: " + msg)
    sys.exit(1)


def status_of(model_id):
    code, listing = call("GET", "/models")
    if code != 200:
        fail(f"GET /models answered {code}")
    for m in listing["data"]:
        if m["id"] == model_id:
            return m["status"]["value"]
    fail(f"model {model_id} is not in GET /models")


def wait_for(model_id, wanted, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if status_of(model_id) == wanted:
            return
        time.sleep(0.1)
    fail(f"model {model_id} did not reach status {wanted}")


# List: every entry has id, path and status.value.
code, listing = call("GET", "/models")
if code != 200 or "data" not in listing:
    fail(f"GET /models: {code} {listing}")
for m in listing["data"]:
    for key in ("id", "path", "status"):
        if key not in m:
            fail(f"GET /models entry without '{key}': {m}")
    if m["status"]["value"] not in ("unloaded", "loading", "loaded", "sleeping", "downloading"):
        fail(f"unexpected status value {m['status']}")
if MODEL not in [m["id"] for m in listing["data"]]:
    fail(f"{MODEL} not listed")

# Load.
code, body = call("POST", "/models/load", {"model": MODEL})
if code != 200 or body != {"success": True}:
    fail(f"POST /models/load: {code} {body}")
wait_for(MODEL, "loaded")

# Props of the model through the router (GET routed by ?model=).
code, props = call("GET", "/props?model=" + urllib.parse.quote(MODEL, safe=""))
if code != 200:
    fail(f"GET /props?model=: {code} {props}")

# Chat by model name.
code, chat = call("POST", "/v1/chat/completions", {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 4,
})
if code != 200 or chat["choices"][0]["message"]["role"] != "assistant":
    fail(f"POST /v1/chat/completions: {code} {chat}")

# An unknown model is an OpenAI-shaped error.
code, err = call("POST", "/v1/chat/completions", {
    "model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})
if code != 400 or "error" not in err:
    fail(f"unknown model: {code} {err}")

# Unload.
code, body = call("POST", "/models/unload", {"model": MODEL})
if code != 200 or body != {"success": True}:
    fail(f"POST /models/unload: {code} {body}")
wait_for(MODEL, "unloaded")

print("router api: ok")

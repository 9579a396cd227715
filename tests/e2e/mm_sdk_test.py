#!/usr/bin/env python3
"""The openai SDK (npm, v6) against `k2serve serve` of tiny-k25-vision: an image_url data:
URL chat and a file:// URL chat return the golden greedy tokens (temperature 0,
return_tokens_as_token_ids), with a text-only chat in flight alongside; then the same again
under another cache_salt (the prefix cache cannot serve the images), where /metrics shows
every image of the round found in the encoder cache.

Usage: mm_sdk_test.py K2SERVE DATA_DIR NODE NPM_DIR
"""
import json
import subprocess
import sys
from pathlib import Path

from mm_serve_test import comparable_prefix, data_url, messages_for
from k2_server import Checks, Server

HERE = Path(__file__).resolve().parent


def sdk_round(node, npm_dir, server, cases):
    spec = {"base_url": server.base_url, "model": server.model, "cases": cases}
    out = subprocess.run([node, str(HERE / "mm_sdk_chat.mjs"), npm_dir], input=json.dumps(spec),
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"node exited {out.returncode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def main():
    k2serve, data, node, npm_dir = sys.argv[1], Path(sys.argv[2]).resolve(), sys.argv[3], sys.argv[4]
    model = data / "models" / "tiny-k25-vision"
    golden = json.loads((model / "golden.json").read_text())
    media = {m["name"]: m for m in golden["media"]}
    prompts = {p["name"]: p for p in golden["prompts"]}
    files = lambda name: [model / media[m]["files"][0] for m in prompts[name]["media"]]  # noqa: E731
    # (label, prompt, urls): a data: URL chat with two images, a file:// URL chat, text only.
    plan = [("two_images data URL", "two_images", [data_url(f) for f in files("two_images")]),
            ("image_a file URL", "image_a", ["file://" + str(f) for f in files("image_a")]),
            ("text_only", "text_only", [])]
    images = sum(len(urls) for _, _, urls in plan)
    c = Checks()
    server = Server(k2serve, model, ["--dtype", "float32", "--chat-template", str(HERE / "k25_vision_test.jinja"),
                                     "--allowed-local-media-path", str(model / "images")], kv_cache_memory=64 << 20)
    try:
        hits_before = 0
        for salt in ("sdk-first", "sdk-second"):
            cases = [{"label": label, "messages": messages_for(prompts[name], urls),
                      "extra": {"return_tokens_as_token_ids": True, "ignore_eos": True, "cache_salt": salt}}
                     for label, name, urls in plan]
            for (label, name, _), got in zip(plan, sdk_round(node, npm_dir, server, cases)):
                want = comparable_prefix(prompts[name]["greedy"], prompts[name]["top2_gap_decode"])
                ids = got.get("ids")
                c.check(got.get("object") == "chat.completion" and ids is not None and len(ids) == 8 and
                        ids[:len(want)] == want,
                        f"{salt} {label}: got {ids} {got.get('error', '')}, want prefix {want}")
                c.check(got.get("prompt_tokens") == prompts[name]["n_tokens"],
                        f"{salt} {label}: usage.prompt_tokens {got.get('prompt_tokens')}, want {prompts[name]['n_tokens']}")
                print(f"{salt} {label}: got {ids}, comparable golden prefix {len(want)}/8", flush=True)
            hits = server.metrics().get("vllm:mm_cache_hits_total", 0)
            if salt == "sdk-second":
                c.check(hits - hits_before >= images,
                        f"second round: {hits - hits_before} encoder-cache hits, want >= {images}")
            hits_before = hits
    finally:
        server.stop()
        if c.failures:
            print(server.log_text()[-6000:])
    return c.exit_code()


if __name__ == "__main__":
    sys.exit(main())

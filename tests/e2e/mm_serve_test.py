#!/usr/bin/env python3
"""End-to-end checks of multimodal chat through `k2serve serve` on tiny-k25-vision, over
loopback HTTP only.

1. /tokenize of every golden prompt's chat (images as data: URLs) returns the golden expanded ids.
2. Every golden image prompt (and text_only), as a chat with image_url parts (data: URLs, one as a
   file:// URL under --allowed-local-media-path), temperature 0, max_tokens 8, logprobs with
   return_tokens_as_token_ids, returns the golden greedy tokens (as far as the golden top-2 gaps
   allow a comparison) and usage.prompt_tokens equal to the golden n_tokens.
3. The same again with another cache_salt (so the prefix cache cannot serve the images), in flight
   together with text-only requests: the same tokens, and /metrics shows encoder-cache hits.
4. A video_url (tests/data/video/k25_frames.mkv, the golden video frames at 2 fps) as a data:
   URL, through /tokenize and chat: the golden expanded ids and greedy tokens of the video prompt.
5. Bad media are a 400 for that request alone: truncated file, wrong content type, private
   address, an http(s) URL on loopback (a real server, refused by the default fetch policy),
   path escape, a corrupt video, a 1x1 image is fine, --limit-mm-per-prompt.
6. Chunked prefill without caches; the video again as a file:// URL.

Usage: mm_serve_test.py K2SERVE DATA_DIR
"""
import base64
import functools
import http.server
import json
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from k2_server import Checks, Server  # noqa: E402

TOL = 1e-3
MARK = "<|media_begin|>image<|media_content|><|media_pad|><|media_end|>"
HEAD = "<|im_user|>user<|im_middle|>"
TAIL = "<|im_end|><|im_assistant|>assistant<|im_middle|>"
PROMPTS = ["text_only", "image_a", "image_e_large", "two_images", "image_g_then_d"]
VIDEO_PROMPT = "video_two_chunks"
MEDIA_END = "<|media_end|>"


def comparable_prefix(golden_tokens, gaps):
    n = 0
    while n < len(golden_tokens) and gaps[n] > 2 * TOL:
        n += 1
    return golden_tokens[:n]


def data_url(path):
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def messages_for(prompt, urls):
    text = prompt["text"]
    assert text.startswith(HEAD) and text.endswith(TAIL), prompt["name"]
    pieces = text[len(HEAD):-len(TAIL)].split(MARK)
    assert len(pieces) == len(urls) + 1, prompt["name"]
    parts = []
    for i, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if i < len(urls):
            parts.append({"type": "image_url", "image_url": {"url": urls[i]}})
    if not urls:
        return [{"role": "user", "content": pieces[0]}]
    return [{"role": "user", "content": parts}]


def video_messages(prompt, url):
    """The golden video prompt as a chat: its chunk prompts are what the server makes of one
    video_url part; the text after the last chunk is a text part."""
    text = prompt["text"]
    assert text.startswith(HEAD) and text.endswith(TAIL), prompt["name"]
    inner = text[len(HEAD):-len(TAIL)]
    cut = inner.rfind(MEDIA_END) + len(MEDIA_END)
    parts = [{"type": "video_url", "video_url": {"url": url}}]
    if inner[cut:]:
        parts.append({"type": "text", "text": inner[cut:]})
    return [{"role": "user", "content": parts}]


def serve_directory(directory):
    """A python http.server on loopback serving `directory`; returns (server, port, requests),
    `requests` a list of the paths it was asked for."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, httpd.server_address[1], requests


def post_status(server, path, body, timeout=300):
    req = urllib.request.Request(server.url(path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def chat(server, messages, salt=None):
    body = {"model": server.model, "messages": messages, "max_tokens": 8, "temperature": 0, "logprobs": True,
            "top_logprobs": 1, "return_tokens_as_token_ids": True, "ignore_eos": True}
    if salt:
        body["cache_salt"] = salt
    status, resp = post_status(server, "/v1/chat/completions", body)
    if status != 200:
        return None, None, f"HTTP {status}: {json.dumps(resp)[:300]}"
    ids = [int(t["token"].split(":")[1]) for t in resp["choices"][0]["logprobs"]["content"]]
    return ids, resp["usage"]["prompt_tokens"], ""


def main():
    k2serve, data = sys.argv[1], Path(sys.argv[2]).resolve()
    model = data / "models" / "tiny-k25-vision"
    golden = json.loads((model / "golden.json").read_text())
    media = {m["name"]: m for m in golden["media"]}
    prompts = {p["name"]: p for p in golden["prompts"]}
    template = Path(__file__).resolve().parent / "k25_vision_test.jinja"
    video = data / "video" / "k25_frames.mkv"
    video_url = "data:video/x-matroska;base64," + base64.b64encode(video.read_bytes()).decode()
    video_prompt = prompts[VIDEO_PROMPT]
    video_want = comparable_prefix(video_prompt["greedy"], video_prompt["top2_gap_decode"])
    c = Checks()
    server = Server(k2serve, model, ["--dtype", "float32", "--chat-template", str(template),
                                     "--allowed-local-media-path", str(model / "images"),
                                     "--limit-mm-per-prompt", '{"image": 2}'], kv_cache_memory=64 << 20)
    try:
        def urls_of(name, file_url=False):
            files = [model / media[m]["files"][0] for m in prompts[name]["media"]]
            return [("file://" + str(f)) if file_url else data_url(f) for f in files]

        # 1. /tokenize counts the expanded placeholders.
        for name in PROMPTS:
            status, resp = post_status(server, "/tokenize", {"model": server.model, "messages": messages_for(prompts[name], urls_of(name))})
            c.check(status == 200 and resp.get("count") == prompts[name]["n_tokens"] and
                    resp.get("tokens") == prompts[name]["input_ids"],
                    f"/tokenize {name}: HTTP {status}, count {resp.get('count')}, want {prompts[name]['n_tokens']}")

        def run(name, salt=None, file_url=False):
            want = comparable_prefix(prompts[name]["greedy"], prompts[name]["top2_gap_decode"])
            ids, prompt_tokens, err = chat(server, messages_for(prompts[name], urls_of(name, file_url)), salt)
            label = f"{name}{' (file://)' if file_url else ''}{' salt ' + salt if salt else ''}"
            c.check(ids is not None and ids[:len(want)] == want and len(ids) == 8,
                    f"{label}: got {ids} {err}, want prefix {want} (golden {prompts[name]['greedy']})")
            c.check(prompt_tokens == prompts[name]["n_tokens"],
                    f"{label}: usage.prompt_tokens {prompt_tokens}, want {prompts[name]['n_tokens']}")
            print(f"{label}: got {ids}, comparable golden prefix {len(want)}/8 matched={ids is not None and ids[:len(want)] == want}", flush=True)

        # 2. Alone, first time.
        for name in PROMPTS:
            run(name)
        run("image_a", file_url=True)
        before = server.metrics()
        print("after round 1: mm_cache_queries", before.get("vllm:mm_cache_queries_total"),
              "hits", before.get("vllm:mm_cache_hits_total"), flush=True)
        # Each image was encoded once; the file:// repeat of image_a found its image in the prefix
        # cache (same content hash, same cache_salt), so it did not even ask the encoder cache.
        images = sum(len(prompts[n]["media"]) for n in PROMPTS)
        c.check(before.get("vllm:mm_cache_queries_total", 0) == images,
                f"round 1: {before.get('vllm:mm_cache_queries_total')} encoder-cache queries, want {images}")

        # 3. Again under another cache_salt, with text-only requests in flight alongside.
        threads = [threading.Thread(target=run, args=(name, "round2")) for name in PROMPTS if name != "text_only"]
        threads += [threading.Thread(target=run, args=("text_only",)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = server.metrics()
        hits = after.get("vllm:mm_cache_hits_total", 0) - before.get("vllm:mm_cache_hits_total", 0)
        print("after round 2: mm_cache_queries", after.get("vllm:mm_cache_queries_total"),
              "hits", after.get("vllm:mm_cache_hits_total"), flush=True)
        c.check(hits >= images, f"round 2: {hits} encoder-cache hits, want >= {images}")

        # 4. A video_url: /tokenize and chat give the golden ids and tokens.
        status, resp = post_status(server, "/tokenize", {"model": server.model, "messages": video_messages(video_prompt, video_url)})
        c.check(status == 200 and resp.get("tokens") == video_prompt["input_ids"],
                f"/tokenize video: HTTP {status}, count {resp.get('count')}, want {video_prompt['n_tokens']} {json.dumps(resp)[:300]}")
        for salt in (None, "video-again"):
            ids, prompt_tokens, err = chat(server, video_messages(video_prompt, video_url), salt)
            c.check(ids is not None and ids[:len(video_want)] == video_want and prompt_tokens == video_prompt["n_tokens"],
                    f"video data URL (salt {salt}): got {ids} prompt_tokens {prompt_tokens} {err}, want prefix {video_want}")
            print(f"video data URL (salt {salt}): got {ids}, comparable golden prefix {len(video_want)}/8", flush=True)

        # 5. Bad media: a 400 each, the server keeps serving.
        png = (model / "images" / "a_32x48.png").read_bytes()
        httpd, http_port, http_requests = serve_directory(model / "images")
        one_px = data_url(model / "images" / "d_1x1.png")
        bad = {
            "truncated": "data:image/png;base64," + base64.b64encode(png[:len(png) // 2]).decode(),
            "wrong content type": "data:image/jpeg;base64," + base64.b64encode(png).decode(),
            "private address": "http://10.1.2.3/a.png",
            "loopback": "http://127.0.0.1:1/a.png",
            "path escape": "file://" + str(model / "images") + "/../config.json",
            "outside the allowed dir": "file://" + str(model / "config.json"),
            "not base64": "data:image/png;base64,!!!!",
            "http on loopback by name": f"http://localhost:{http_port}/a_32x48.png",
            "http on loopback": f"http://127.0.0.1:{http_port}/a_32x48.png",
        }
        for what, url in bad.items():
            status, resp = post_status(server, "/v1/chat/completions",
                                       {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}], "max_tokens": 1})
            c.check(status == 400, f"bad media '{what}': HTTP {status} {json.dumps(resp)[:200]}")
        status, _ = post_status(server, "/v1/chat/completions",
                                {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": one_px}}]}], "max_tokens": 1})
        c.check(status == 200, f"1x1 image: HTTP {status}")
        # The default fetch policy refused the loopback URLs before connecting.
        c.check(not http_requests, f"the loopback media server was reached: {http_requests}")
        httpd.shutdown()
        mkv = video.read_bytes()
        bad_videos = {
            "truncated video": "data:video/x-matroska;base64," + base64.b64encode(mkv[:len(mkv) // 2]).decode(),
            "not a video": "data:video/mp4;base64," + base64.b64encode(png).decode(),
            "video as an image type": "data:image/png;base64," + base64.b64encode(mkv).decode(),
        }
        for what, url in bad_videos.items():
            status, resp = post_status(server, "/v1/chat/completions",
                                       {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}]}], "max_tokens": 1})
            c.check(status == 400, f"bad video '{what}': HTTP {status} {json.dumps(resp)[:200]}")
        three = [{"type": "image_url", "image_url": {"url": one_px}}] * 3
        status, resp = post_status(server, "/v1/chat/completions", {"messages": [{"role": "user", "content": three}], "max_tokens": 1})
        c.check(status == 400 and "limit-mm-per-prompt" in json.dumps(resp), f"3 images over the limit: HTTP {status}")
        run("text_only")
        c.check(server.health() == 200, "the server is not healthy after the bad requests")
    finally:
        server.stop()
        if c.failures:
            print(server.log_text()[-6000:])

    # 6. Chunked prefill through the images (16-token steps) without the prefix cache, the
    # encoder cache off: every request encodes its images again and the tokens stay golden.
    # The video (63 tokens) comes as a file:// URL under --allowed-local-media-path.
    # --max-model-len 72 (the 63-token video plus 8 generated tokens fit) counts the expanded
    # placeholders: image_e_large (83 tokens expanded, 44 before) is refused.
    server = Server(k2serve, model, ["--dtype", "float32", "--chat-template", str(template),
                                     "--max-num-batched-tokens", "16", "--no-enable-prefix-caching",
                                     "--mm-processor-cache-gb", "0", "--max-model-len", "72",
                                     "--allowed-local-media-path", str(video.parent)], kv_cache_memory=64 << 20)
    try:
        large = prompts["image_e_large"]
        ids, _, err = chat(server, messages_for(large, [data_url(model / media[large["media"][0]]["files"][0])]))
        c.check(ids is None and "HTTP 400" in err and str(large["n_tokens"]) in err,
                f"max_model_len 72 vs. image_e_large: {err or ids}")
        for name in [n for n in PROMPTS if n != "image_e_large"]:
            want = comparable_prefix(prompts[name]["greedy"], prompts[name]["top2_gap_decode"])
            urls = [data_url(model / media[m]["files"][0]) for m in prompts[name]["media"]]
            ids, prompt_tokens, err = chat(server, messages_for(prompts[name], urls))
            c.check(ids is not None and ids[:len(want)] == want, f"chunked {name}: got {ids} {err}, want prefix {want}")
            print(f"chunked {name}: got {ids}, matched={ids is not None and ids[:len(want)] == want}", flush=True)
        ids, prompt_tokens, err = chat(server, video_messages(video_prompt, "file://" + str(video)))
        c.check(ids is not None and ids[:len(video_want)] == video_want and prompt_tokens == video_prompt["n_tokens"],
                f"chunked video file URL: got {ids} prompt_tokens {prompt_tokens} {err}, want prefix {video_want}")
        print(f"chunked video file URL: got {ids}", flush=True)
        m = server.metrics()
        c.check(m.get("vllm:mm_cache_hits_total", -1) == 0, f"cache off: {m.get('vllm:mm_cache_hits_total')} hits")
    finally:
        server.stop()
        if c.failures:
            print(server.log_text()[-6000:])
    print(f"mm_serve_test: {c.passed} checks passed, {len(c.failures)} failed", flush=True)
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""vireo-server driven by real clients on the loopback interface: the official `openai` Python
client (completions and chat, streaming and not) and raw HTTP (urllib / http.client) for the
error paths.

Cross-checks, not self-checks: greedy text is compared between streaming and non-streaming
responses AND with vireo-generate's output for the same prompt (a separate program with its
own plain decode loop), prompt token counts with vireo-generate's, stop strings with
vireo-generate --stop. A client that goes away mid-stream must cancel its request (seen in
/metrics), a full queue answers 429, --request-timeout ends a request with finish_reason
"deadline", and SIGTERM shuts the server down with exit code 0.

Requests that are compared run one at a time: a request's greedy tokens equal its run alone
only when the batch it shares does not change the arithmetic (see include/vireo/scheduler.hpp).

usage: test_server.py VIREO_SERVER VIREO_GENERATE MODEL.gguf
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

import openai

SERVER, GENERATE, MODEL = (sys.argv[1:4] + [None] * 3)[:3] if __name__ == "__main__" else (None, None, None)
THREADS = "2"
PROMPT = "The capital of France is"
QUESTION = "What is the capital of France?"


class Server:
    """A vireo-server process on a free port (--port 0; the port is read from its banner)."""

    def __init__(self, *extra):
        self.proc = subprocess.Popen([SERVER, "-m", MODEL, "-t", THREADS, "--device", "cpu", "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"vireo-server did not start: {line!r} {self.proc.stderr.read()}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.base = f"http://{self.host}:{self.port}"
        self.client = openai.OpenAI(base_url=self.base + "/v1", api_key="unused", max_retries=0, timeout=120)

    def raw(self, method, path, body=None, headers=None):
        """(status, headers, body bytes) of one raw HTTP request."""
        data = body if isinstance(body, (bytes, type(None))) else body.encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers or {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def metrics(self):
        status, _, body = self.raw("GET", "/metrics")
        assert status == 200
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self):
        """SIGTERM; returns (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def generate(*args):
    """vireo-generate's (stdout, prompt token count) for greedy decoding."""
    r = subprocess.run([GENERATE, "-m", MODEL, "-t", THREADS, "--temp", "0", "--device", "cpu", *args],
                       capture_output=True, text=True, timeout=300, check=True)
    m = re.search(r"prompt (\d+) tokens", r.stderr)
    return r.stdout, int(m.group(1))


def wait_for(pred, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


class Completions(unittest.TestCase):
    srv = None

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--max-body-bytes", "65536")

    @classmethod
    def tearDownClass(cls):
        code, err = cls.srv.stop()
        assert code == 0, f"vireo-server exited with {code}: {err}"
        assert "stopped" in err, err

    def test_health_and_models(self):
        status, _, body = self.srv.raw("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["status"], "ok")
        ids = [m.id for m in self.srv.client.models.list().data]
        self.assertEqual(ids, [os.path.basename(MODEL)[:-len(".gguf")]])

    def test_completion_greedy_equals_vireo_generate_streaming_or_not(self):
        c = self.srv.client.completions.create(model=self.model_id(), prompt=PROMPT, max_tokens=24, temperature=0)
        text, reason = c.choices[0].text, c.choices[0].finish_reason
        self.assertIn(reason, ("stop", "length"))
        self.assertGreater(len(text.strip()), 0)
        chunks = list(self.srv.client.completions.create(model=self.model_id(), prompt=PROMPT, max_tokens=24,
                                                         temperature=0, stream=True,
                                                         stream_options={"include_usage": True}))
        streamed = "".join(ch.choices[0].text for ch in chunks if ch.choices)
        self.assertEqual(streamed, text)
        self.assertEqual([ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason],
                         [reason])
        self.assertEqual(chunks[-1].usage.completion_tokens, c.usage.completion_tokens)
        out, n_prompt = generate("-n", "24", "-p", PROMPT)
        self.assertEqual(out, PROMPT + text + "\n")
        self.assertEqual(c.usage.prompt_tokens, n_prompt)
        self.assertEqual(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens)
        if reason == "length":
            self.assertEqual(c.usage.completion_tokens, 24)

    def test_chat_greedy_equals_vireo_generate_streaming_or_not(self):
        msgs = [{"role": "user", "content": QUESTION}]
        c = self.srv.client.chat.completions.create(model=self.model_id(), messages=msgs, max_tokens=40,
                                                    temperature=0)
        text = c.choices[0].message.content
        self.assertEqual(c.choices[0].message.role, "assistant")
        self.assertIn("Paris", text)
        chunks = list(self.srv.client.chat.completions.create(model=self.model_id(), messages=msgs, max_tokens=40,
                                                              temperature=0, stream=True))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        self.assertEqual("".join(ch.choices[0].delta.content or "" for ch in chunks), text)
        self.assertEqual(chunks[-1].choices[0].finish_reason, c.choices[0].finish_reason)
        out, n_prompt = generate("--chat", "-n", "40", "-p", QUESTION)
        self.assertEqual(out, text + "\n")
        self.assertEqual(c.usage.prompt_tokens, n_prompt)

    def test_stop_strings(self):
        full = self.srv.client.completions.create(prompt=PROMPT, max_tokens=24, temperature=0,
                                                  model=self.model_id()).choices[0].text
        self.assertGreater(len(full), 12)
        stop = full[6:10]  # a piece from the middle: usually spans a token boundary
        want = full[:full.find(stop)]
        for stream in (False, True):
            with self.subTest(stream=stream):
                kw = dict(model=self.model_id(), prompt=PROMPT, max_tokens=24, temperature=0,
                          stop=["never appears", stop])
                if stream:
                    chunks = list(self.srv.client.completions.create(stream=True, **kw))
                    text = "".join(ch.choices[0].text for ch in chunks)
                    reason = chunks[-1].choices[0].finish_reason
                else:
                    c = self.srv.client.completions.create(**kw)
                    text, reason = c.choices[0].text, c.choices[0].finish_reason
                self.assertEqual(text, want)
                self.assertEqual(reason, "stop")
                self.assertNotIn(stop, text)
        out, _ = generate("-n", "24", "-p", PROMPT, "--stop", stop)
        self.assertEqual(out, PROMPT + want + "\n")

    def test_max_tokens_and_seeded_sampling(self):
        c = self.srv.client.completions.create(model=self.model_id(), prompt="Once upon a time", max_tokens=3,
                                               temperature=0)
        self.assertEqual(c.usage.completion_tokens, 3)
        self.assertEqual(c.choices[0].finish_reason, "length")
        kw = dict(model=self.model_id(), prompt="Once upon a time", max_tokens=12, temperature=0.9, top_p=0.95)
        a = self.srv.client.completions.create(seed=7, **kw).choices[0].text
        b = self.srv.client.completions.create(seed=7, **kw).choices[0].text
        self.assertEqual(a, b)

    def test_logit_bias(self):
        # " capital" is token 3575 in SmolLM2's vocabulary ("The capital of France is" is
        # 504 3575 282 4649 314); a +100 bias makes greedy decoding pick it every time.
        c = self.srv.client.completions.create(model=self.model_id(), prompt="Once upon a time", max_tokens=4,
                                               temperature=0, logit_bias={"3575": 100})
        self.assertEqual(c.choices[0].text, " capital" * 4)
        status, _, raw = self.srv.raw("POST", "/v1/completions",
                                      json.dumps({"prompt": "x", "logit_bias": {"999999": 5}}))
        self.assertEqual((status, json.loads(raw)["error"]["param"]), (400, "logit_bias"))

    def test_errors_through_the_openai_client(self):
        with self.assertRaises(openai.NotFoundError) as e:
            self.srv.client.completions.create(model="gpt-4o", prompt="x", max_tokens=1)
        self.assertEqual(e.exception.code, "model_not_found")
        with self.assertRaises(openai.BadRequestError) as e:
            self.srv.client.completions.create(model=self.model_id(), prompt="x", temperature=5)
        self.assertEqual(e.exception.param, "temperature")
        with self.assertRaises(openai.BadRequestError):
            self.srv.client.chat.completions.create(model=self.model_id(), messages=[{"role": "pilot", "content": "x"}])

    def test_errors_over_raw_http(self):
        def post(path, body):
            status, _, raw = self.srv.raw("POST", path, body)
            return status, json.loads(raw)["error"]

        status, err = post("/v1/completions", '{"prompt": "x", ')
        self.assertEqual(status, 400)
        self.assertIn("malformed JSON", err["message"])
        self.assertEqual(err["type"], "invalid_request_error")
        for body, param in [('{"prompt": 5}', "prompt"), ('{"prompt": "x", "max_tokens": "ten"}', "max_tokens"),
                            ('{"prompt": "x", "stop": [1]}', "stop"), ('{"prompt": "x", "stream": "yes"}', "stream"),
                            ('{"prompt": "x", "max_tokens": 0}', "max_tokens"), ('[1, 2]', None),
                            ('{"prompt": "x", "n": 3}', "n")]:
            with self.subTest(body=body):
                status, err = post("/v1/completions", body)
                self.assertEqual(status, 400)
                self.assertEqual(err["param"], param)
                self.assertTrue(err["message"])
        status, err = post("/v1/chat/completions", '{"messages": "hi"}')
        self.assertEqual((status, err["param"]), (400, "messages"))
        status, err = post("/v1/chat/completions", '{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}')
        self.assertEqual(status, 400)
        status, err = post("/v1/completions", '{"model": "nope", "prompt": "x"}')
        self.assertEqual((status, err["code"]), (404, "model_not_found"))
        # A prompt longer than the context: the scheduler's refusal, as a 400.
        status, err = post("/v1/completions", json.dumps({"prompt": list(range(1, 9000)), "max_tokens": 1}))
        self.assertEqual(status, 400)
        self.assertIn("context", err["message"])
        status, err = post("/v1/completions", json.dumps({"prompt": "a" * 70000}))
        self.assertEqual(status, 413)
        status, _, raw = self.srv.raw("GET", "/v2/nothing")
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(raw))
        status, _, _ = self.srv.raw("GET", "/health")  # still alive after all of it
        self.assertEqual(status, 200)

    def test_metrics_are_prometheus_text(self):
        status, headers, body = self.srv.raw("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? '
                            r'(-?[0-9.e+-]+|NaN|\+Inf|-Inf)$')
        lines = body.decode().splitlines()
        for line in lines:
            if not line.startswith("#"):
                self.assertRegex(line, sample)
        m = self.srv.metrics()
        self.assertIn("vireo_requests_total", m)
        self.assertIn("vireo_time_to_first_token_seconds_count", m)

    def test_zz_client_disconnect_cancels_its_request(self):
        before = self.srv.metrics()
        stream = self.srv.client.completions.create(model=self.model_id(), prompt="Once upon a time",
                                                    max_tokens=3000, temperature=0.7, seed=1, stream=True)
        got = 0
        for _ in stream:
            got += 1
            if got == 3:
                break
        stream.close()  # the client goes away mid-stream

        def cancelled():
            m = self.srv.metrics()
            return (m["vireo_requests_cancelled_total"] > before["vireo_requests_cancelled_total"] and
                    m["vireo_client_disconnects_total"] > before["vireo_client_disconnects_total"])

        self.assertTrue(wait_for(cancelled), "the disconnected request was not cancelled")
        after = self.srv.metrics()
        self.assertEqual(after["vireo_requests_finished_length_total"], before["vireo_requests_finished_length_total"])
        self.assertTrue(wait_for(lambda: self.srv.metrics()["vireo_kv_blocks_used"] == 0))

    def model_id(self):
        return os.path.basename(MODEL)[:-len(".gguf")]


class Timeout(unittest.TestCase):
    def test_request_timeout_ends_a_request_with_its_partial_output(self):
        srv = Server("--request-timeout", "1")
        try:
            t0 = time.time()
            c = srv.client.completions.create(model=os.path.basename(MODEL)[:-len(".gguf")], prompt="Once upon a time",
                                              max_tokens=4000, temperature=0.7, seed=3)
            self.assertLess(time.time() - t0, 30)
            self.assertEqual(c.choices[0].finish_reason, "deadline")
            self.assertLess(c.usage.completion_tokens, 4000)
            self.assertEqual(srv.metrics()["vireo_requests_deadline_total"], 1)
        finally:
            code, err = srv.stop()
            self.assertEqual(code, 0, err)


class Overload(unittest.TestCase):
    def test_full_queue_answers_429_and_shutdown_ends_live_streams(self):
        srv = Server("--max-running", "1", "--max-waiting", "1")
        try:
            results = []

            def one():
                conn = http.client.HTTPConnection(srv.host, srv.port, timeout=120)
                conn.request("POST", "/v1/completions", json.dumps(
                    {"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0.7, "stream": True}),
                    {"Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read().decode(errors="replace")
                results.append((r.status, r.getheader("Retry-After"), body))
                conn.close()

            # One runs, one waits (started one after the other, so the order is known), and
            # the next three are refused at once.
            threads = [threading.Thread(target=one) for _ in range(5)]
            for i, t in enumerate(threads):
                t.start()
                if i < 2:
                    self.assertTrue(wait_for(lambda: srv.metrics()["vireo_requests_accepted_total"] == i + 1))
            self.assertTrue(wait_for(lambda: len(results) >= 3, timeout=60))
            refused = [(s, ra, b) for s, ra, b in results if s == 429]
            for _, retry_after, body in refused:
                self.assertEqual(retry_after, "1")
                err = json.loads(body)["error"]
                self.assertEqual(err["code"], "queue_full")
                self.assertIn("max_waiting 1", err["message"])
            self.assertEqual(srv.metrics()["vireo_requests_rejected_overloaded_total"], 3)
            # SIGTERM while two streams are live: both end (cancelled), the server exits 0.
            t0 = time.time()
            code, err = srv.stop()
            for t in threads:
                t.join(timeout=30)
            self.assertEqual(code, 0, err)
            self.assertLess(time.time() - t0, 30)
            streams = [b for s, _, b in results if s == 200]
            self.assertEqual(len(streams), 2)
            for body in streams:
                self.assertIn('"finish_reason":"cancelled"', body.replace(" ", ""))
                self.assertTrue(body.rstrip().endswith("data: [DONE]"))
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()


if __name__ == "__main__":
    if None in (SERVER, GENERATE, MODEL):
        sys.exit(__doc__)
    unittest.main(argv=[sys.argv[0], "-v"])

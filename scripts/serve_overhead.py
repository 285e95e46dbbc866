"""The HTTP overhead of `bench.py serve`: client-side TTFT/TPOT over loopback against the
server's own, for the same requests.

Starts `bench.py serve -c CANDIDATE` (or uses --url), sends untimed warm-up requests, then one
streamed request per demo ASR clip. Per request the client takes TTFT from just before sending
(audio already base64-encoded) to the first chunk with choices (the role chunk, sent with the
first token), and TPOT from the token chunks' arrival times; the server's own TTFT/TPOT (from
handing the waveform to the candidate, as in `bench.py run`) come in the `lalm_bench` block of
the finish chunk. Prints the medians and the median per-request differences.

    python scripts/serve_overhead.py -c whisper-tiny-hf --clips 10
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.serve.launch import served  # noqa: E402
from harness.suites import SUITES  # noqa: E402


def one_request(client: httpx.Client, model: str, clip: Path) -> dict:
    suite = SUITES["asr"]
    body = {"model": model, "stream": True, "max_tokens": suite.max_new_tokens, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": suite.prompt},
                {"type": "input_audio", "input_audio": {"data": base64.b64encode(clip.read_bytes()).decode(),
                                                        "format": clip.suffix[1:]}}]}]}
    token_times, server, usage, text = [], {}, {}, ""
    t0 = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            now = time.perf_counter()
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            if not chunk["choices"]:
                continue
            choice = chunk["choices"][0]
            if choice["finish_reason"] is not None:
                server = chunk["lalm_bench"]
            elif choice["delta"].get("content"):
                text += choice["delta"]["content"]
            else:
                token_times.append(now)  # the role chunk and the empty per-token chunks
    n = usage["completion_tokens"]
    tpot = (token_times[-1] - token_times[0]) / (n - 1) * 1000 if n > 1 else None
    return {"clip": clip.name, "text": text, "tokens": n, "client_ttft_ms": (token_times[0] - t0) * 1000,
            "client_tpot_ms": tpot, "server_ttft_ms": server["server_ttft_ms"], "server_tpot_ms": server["server_tpot_ms"],
            "parse_ms": server["parse_ms"], "queue_ms": server["queue_ms"]}


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows if r[key] is not None)


def measure(url: str, model: str, clips: list[Path], warmup_clip: Path, warmup: int) -> list[dict]:
    with httpx.Client(base_url=url, timeout=300) as client:
        for _ in range(warmup):
            one_request(client, model, warmup_clip)
        return [one_request(client, model, clip) for clip in clips]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--candidate", default="whisper-tiny-hf")
    parser.add_argument("--clips", type=int, default=10, help="demo ASR clips measured")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests, on a clip that is not measured")
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--json", action="store_true", help="print every request as JSON too")
    args = parser.parse_args()
    speech = sorted((REPO / "harness" / "data" / "demo_data" / "speech").glob("*.flac"))
    clips, warmup_clip = speech[: args.clips], speech[-1]
    if args.url:
        rows = measure(args.url, args.candidate, clips, warmup_clip, args.warmup)
    else:
        with served("-c", args.candidate) as server:
            rows = measure(server.url, args.candidate, clips, warmup_clip, args.warmup)
    for row in rows:
        row["ttft_overhead_ms"] = row["client_ttft_ms"] - row["server_ttft_ms"]
        both = row["client_tpot_ms"] is not None and row["server_tpot_ms"] is not None
        row["tpot_overhead_ms"] = row["client_tpot_ms"] - row["server_tpot_ms"] if both else None
    if args.json:
        print(json.dumps(rows, indent=1))
    print(f"{args.candidate}: {len(rows)} streamed requests over loopback, medians")
    for what in ("ttft", "tpot"):
        print(f"  {what.upper()}: client {median(rows, f'client_{what}_ms'):.2f} ms, server {median(rows, f'server_{what}_ms'):.2f} ms, "
              f"overhead (median of per-request differences) {median(rows, f'{what}_overhead_ms'):.2f} ms")
    print(f"  of the TTFT overhead, on the server: request read + JSON + audio decoding {median(rows, 'parse_ms'):.2f} ms, "
          f"hand-over to the model thread {median(rows, 'queue_ms'):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

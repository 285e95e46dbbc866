"""`bench.py serve`: any registered candidate behind an OpenAI-compatible HTTP API.

The modules, one job each:
- `config`: the server's settings and limits (`ServeConfig`).
- `errors`: `ApiError`, the OpenAI-style JSON error every 4xx/5xx answer carries.
- `audio`: the request's audio part (input_audio, data: URI, file:// in an allowed folder) -> waveform.
- `chat`: a `/v1/chat/completions` body -> `ChatRequest` (validated, limits applied).
- `engine`: the candidate in its own model process, one request at a time, token events to the loop.
- `metrics`: the Prometheus counters and histograms behind `/metrics`.
- `app`: the FastAPI routes (SSE streaming, JSON, models, health, metrics, auth).
- `server`: loopback check, thread pinning, model load, uvicorn, graceful shutdown.

FastAPI, uvicorn and prometheus-client are the `serve` extra: only `server`, `app` and `metrics`
import them, and `bench.py` imports this package only inside the `serve` command.
"""

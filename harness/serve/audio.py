"""The one audio part of a chat request -> a 16 kHz mono waveform.

Accepted: `{"type": "input_audio", "input_audio": {"data": BASE64, "format": "wav"}}` and
`{"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,..."}}`; a `file://` URL only
when the server was started with `--allow-local-audio DIR`, and only for a file that lies inside
DIR once symlinks are resolved. Remote (http/https) URLs are never fetched.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from harness.data.audio import load_audio_bytes
from harness.data.errors import AudioError
from harness.serve.errors import ApiError
from harness.types import SAMPLE_RATE

FORMATS = ("wav", "flac", "ogg", "mp3")  # libsndfile reads them (mp3 with libsndfile >= 1.1)


def decode_audio_part(part: dict[str, Any], local_root: Path | None, max_bytes: int, max_audio_s: float) -> np.ndarray:
    """The waveform of one content part, after every limit; raises ApiError (4xx) otherwise."""
    if part["type"] == "input_audio":
        data, label = _input_audio(part.get("input_audio"))
    else:
        data, label = _audio_url(part.get("audio_url"), local_root, max_bytes)
    try:
        audio, _ = load_audio_bytes(data, label)
    except AudioError as err:
        raise ApiError(400, f"{err}; send wav, flac or ogg audio that libsndfile can read", "invalid_audio") from None
    seconds = len(audio) / SAMPLE_RATE
    if seconds > max_audio_s:
        raise ApiError(400, f"the audio lasts {seconds:.1f} s, over this server's limit of {max_audio_s:g} s "
                       "(--max-audio-s); send a shorter clip", "audio_too_long")
    return audio


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise ApiError(400, f"{what} must be a non-empty base64 string", "invalid_audio")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ApiError(400, f"{what} is not valid base64: {err}", "invalid_audio") from None


def _input_audio(body: Any) -> tuple[bytes, str]:
    if not isinstance(body, dict):
        raise ApiError(400, 'an input_audio part needs {"data": BASE64, "format": "wav"}', "invalid_audio", "input_audio")
    fmt = body.get("format")
    if fmt not in FORMATS:
        raise ApiError(400, f"input_audio.format must be one of {', '.join(FORMATS)} (got {fmt!r})",
                       "invalid_audio", "input_audio.format")
    return _b64(body.get("data"), "input_audio.data"), f"(input_audio, {fmt})"


def _audio_url(body: Any, local_root: Path | None, max_bytes: int) -> tuple[bytes, str]:
    url = body.get("url") if isinstance(body, dict) else body
    if not isinstance(url, str) or not url:
        raise ApiError(400, 'an audio_url part needs {"url": "data:audio/wav;base64,..."}', "invalid_audio", "audio_url")
    if url.startswith("data:"):
        return _data_uri(url)
    if url.startswith("file:"):
        return _local_file(url, local_root, max_bytes)
    scheme = url.split(":", 1)[0] if ":" in url else url[:20]
    raise ApiError(400, f"audio_url scheme {scheme!r} is not fetched by this server; send the audio as a data: URI "
                   "or an input_audio part", "unsupported_audio_url", "audio_url.url")


def _data_uri(url: str) -> tuple[bytes, str]:
    header, sep, payload = url.partition(",")
    mime = header[len("data:"):].split(";")[0]
    if not sep or ";base64" not in header:
        raise ApiError(400, "audio_url data URIs must be base64: data:audio/wav;base64,...", "invalid_audio", "audio_url.url")
    if not (mime.startswith("audio/") or mime in ("", "application/octet-stream")):
        raise ApiError(400, f"audio_url data URI has media type {mime!r}; use audio/wav, audio/flac or audio/ogg",
                       "invalid_audio", "audio_url.url")
    return _b64(payload, "the audio_url data URI"), f"(audio_url, {mime or 'data URI'})"


def _local_file(url: str, local_root: Path | None, max_bytes: int) -> tuple[bytes, str]:
    if local_root is None:
        raise ApiError(403, "file:// audio URLs are refused; start the server with --allow-local-audio DIR to read "
                       "files inside DIR, or send the audio as a data: URI", "local_audio_disabled", "audio_url.url")
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ApiError(400, f"file:// URL names host {parsed.netloc!r}; only local files are read", "invalid_audio", "audio_url.url")
    root = local_root.resolve()
    try:
        path = Path(unquote(parsed.path)).resolve(strict=True)  # symlinks resolved before the check
    except (FileNotFoundError, NotADirectoryError):
        raise ApiError(400, f"audio file not found: {unquote(parsed.path)}", "audio_not_found", "audio_url.url") from None
    if not path.is_relative_to(root):
        raise ApiError(403, f"{unquote(parsed.path)} is outside the folder this server may read ({root}, "
                       "--allow-local-audio)", "local_audio_forbidden", "audio_url.url")
    if not path.is_file():
        raise ApiError(400, f"{path} is not a file", "audio_not_found", "audio_url.url")
    if path.stat().st_size > max_bytes:
        raise ApiError(413, f"{path} is larger than the request size limit ({max_bytes} bytes, --max-body-mb)",
                       "audio_too_large", "audio_url.url")
    return path.read_bytes(), str(path)

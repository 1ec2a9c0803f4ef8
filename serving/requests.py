"""The HTTP API's request contract, shaped like OpenAI's images API
(`POST /v1/images/generations`): parsing and validation without Ray, so every malformed
request gets a 4xx JSON error naming the field, never a 500.

Body: `prompt` (non-empty string, required), `n` (images, 1..MAX_IMAGES, default 1), `size`
(`WIDTHxHEIGHT`; a backend that renders images serves only its models' profiled size, which is
also what an absent `size` gets: `check_size`), `response_format` (`b64_json`, the only one
served: no image store exists), and the t2isim extension `prompt_id` (the bundle prompt the
emulated backend looks the scores up for; without it the prompt text is looked up in the
bundle; with it the text must be that prompt's, so a response never renders one prompt under
another's name). OpenAI's `model` and `user` are accepted and not used: the plan picks the
models, and nothing is kept per user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from simulator.errors import one_line

GENERATIONS = "/v1/images/generations"
STATE = "/v1/t2isim/state"
EPOCH = "/v1/t2isim/epoch"  # POST: a replay starts now (the controller restarts its clock)
MAX_IMAGES = 10
MAX_SIDE = 65_536  # pixels: a size beyond it is not a size any model renders
RESPONSE_FORMATS = ("b64_json",)
KNOWN_FIELDS = {"prompt", "n", "size", "response_format", "prompt_id", "model", "user"}
MAX_BODY_BYTES = 1 << 20
# what a served batch reports with each of its answers, in the order the answer's `batches`
# list (the t2isim extension of a response) gives it after the worker slot and model
SERVED_BATCH_KEYS = ("start_s", "done_s", "batch_size", "judged", "cpu_s", "preemptions")


class RequestError(ValueError):
    """A request the API refuses: HTTP `status` and a one-line message."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param

    def body(self) -> dict:
        """OpenAI's error shape."""
        return {
            "error": {
                "message": one_line(str(self)),
                "type": "invalid_request_error",
                "param": self.param,
                "code": None,
            }
        }


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    n: int
    size: str | None  # None: not given (the served size)
    prompt_id: int | None


def parse_request(raw: bytes, n_prompts: int) -> ImageRequest:
    """The request in `raw` (a JSON body) or RequestError (400, or 413 when too large)."""
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(f"body of {len(raw)} bytes exceeds {MAX_BODY_BYTES}", 413)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"body is not JSON: {exc}") from None
    except RecursionError:  # arrays or objects nested thousands deep
        raise RequestError("body is not JSON this API reads: it nests too deeply") from None
    if not isinstance(body, dict):
        raise RequestError(f"body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise RequestError(
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(KNOWN_FIELDS))}",
            param=unknown[0],
        )
    if "prompt" not in body:
        raise RequestError("prompt: missing (a non-empty string is required)", param="prompt")
    prompt = body["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(f"prompt: {prompt!r} must be a non-empty string", param="prompt")
    n = _integer(body, "n", 1, 1, MAX_IMAGES)
    size = body.get("size")
    if size is not None and not _is_size(size):
        raise RequestError(
            f"size: {size!r:.40} must be WIDTHxHEIGHT in pixels, each 1 to {MAX_SIDE}",
            param="size",
        )
    fmt = body.get("response_format", "b64_json")
    if fmt not in RESPONSE_FORMATS:
        raise RequestError(
            f"response_format: {fmt!r} must be one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
        )
    prompt_id = None
    if "prompt_id" in body:
        prompt_id = _integer(body, "prompt_id", None, 0, n_prompts - 1)
    return ImageRequest(prompt=prompt, n=n, size=size, prompt_id=prompt_id)


def _is_size(size) -> bool:
    if not isinstance(size, str) or not re.fullmatch(r"[0-9]{1,5}x[0-9]{1,5}", size):
        return False
    return all(1 <= int(side) <= MAX_SIDE for side in size.split("x"))


def check_size(req: ImageRequest, served: tuple[str, ...]) -> None:
    """RequestError (422) unless the backend serves `req.size`: `served` is the sizes its
    models render at (their profiled resolutions; empty where no image is rendered, as on the
    emulated backend, which takes any size). An image comes at its final model's size, so
    with models of several sizes only a request without `size` can be kept."""
    if req.size is None or not served or (len(served) == 1 and req.size == served[0]):
        return
    if len(served) == 1:
        why = f"the models render {served[0]} (their profiled resolution)"
    else:
        why = (
            f"the models render {', '.join(served)} (their profiled resolutions) and an image "
            "comes at its final model's; leave size out"
        )
    raise RequestError(f"size: {req.size!r} is not served: {why}", 422, "size")


def bundle_prompt_id(req: ImageRequest, texts, id_of_text: dict[str, int]) -> int:
    """The bundle prompt `req` asks for: its `prompt_id`, whose text (`texts[prompt_id]`) must be
    `req.prompt`, or the first bundle prompt with that text; else RequestError (422)."""
    if req.prompt_id is None:
        if req.prompt not in id_of_text:
            raise RequestError(
                "prompt: not one of the bundle's prompts (the serving path serves those; "
                "give its text or prompt_id)",
                422,
                "prompt",
            )
        return id_of_text[req.prompt]
    if texts[req.prompt_id] != req.prompt:
        raise RequestError(
            f"prompt_id: {req.prompt_id} is the bundle's prompt {texts[req.prompt_id]!r:.80}, "
            "not the given prompt (give the two together, or the text alone)",
            422,
            "prompt_id",
        )
    return req.prompt_id


def _integer(body: dict, name: str, default: int | None, lo: int, hi: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestError(f"{name}: {value!r} must be an integer in [{lo}, {hi}]", param=name)
    return value

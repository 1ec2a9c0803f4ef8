"""Property tests of the HTTP request contract (`serving.requests`): whatever bytes or JSON a
client sends, parsing gives a request that keeps the API's limits or a 4xx `RequestError` whose
body is OpenAI's error shape with a one-line message; never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.requests import (
    KNOWN_FIELDS,
    MAX_IMAGES,
    RESPONSE_FORMATS,
    ImageRequest,
    RequestError,
    bundle_prompt_id,
    check_size,
    parse_request,
)
from simulator.errors import MAX_ERROR_CHARS

N_PROMPTS = 7
TEXTS = [f"prompt {k}" for k in range(N_PROMPTS - 1)] + ["prompt 0"]  # a repeated text
ID_OF_TEXT = {}
for _k, _text in enumerate(TEXTS):
    ID_OF_TEXT.setdefault(_text, _k)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["512x512", "32x32", "0x1", "1x99999", "b64_json", "url", *TEXTS]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
fields = st.sampled_from(sorted(KNOWN_FIELDS | {"colour", "", "Prompt"}))
bodies = st.dictionaries(fields, json_values, max_size=6) | json_values


def _checked(raw: bytes) -> ImageRequest | RequestError:
    try:
        req = parse_request(raw, N_PROMPTS)
    except RequestError as exc:
        assert 400 <= exc.status < 500
        body = exc.body()["error"]
        assert json.loads(json.dumps(body)) == body  # serialisable as the HTTP answer
        message = body["message"]
        assert message and "\n" not in message and len(message) <= MAX_ERROR_CHARS + 60
        # the field at fault: a known one, or the unknown one the client sent
        assert body["param"] is None or body["param"] in KNOWN_FIELDS | set(json.loads(raw))
        return exc
    assert isinstance(req.prompt, str) and req.prompt.strip()
    assert isinstance(req.n, int) and not isinstance(req.n, bool) and 1 <= req.n <= MAX_IMAGES
    assert req.prompt_id is None or 0 <= req.prompt_id < N_PROMPTS
    return req


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_any_json_body_is_a_request_or_a_4xx(body):
    outcome = _checked(json.dumps(body).encode())
    if isinstance(outcome, ImageRequest):
        assert json.loads(json.dumps(body)).get("response_format", "b64_json") in RESPONSE_FORMATS
        for served in ((), ("32x32",), ("32x32", "64x64")):  # the size checks keep the contract
            try:
                check_size(outcome, served)
            except RequestError as exc:
                assert exc.status == 422 and exc.param == "size"
        try:
            prompt_id = bundle_prompt_id(outcome, TEXTS, ID_OF_TEXT)
        except RequestError as exc:
            assert exc.status == 422 and exc.param in ("prompt", "prompt_id")
        else:
            assert TEXTS[prompt_id] == outcome.prompt


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_a_request_or_a_4xx(raw):
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        with pytest.raises(RequestError) as caught:
            parse_request(raw, N_PROMPTS)
        assert caught.value.status == 400 and caught.value.param is None
    else:
        _checked(raw)

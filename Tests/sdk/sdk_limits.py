"""google-genai against a gateway client held to its limits (issue 24).

Run by Tests/GatewayServerTests/ClientLimitsSDKTests.swift with the venv scripts/test builds:

    GATEWAY_URL=... GATEWAY_TOKEN=... .venv-sdk/bin/python Tests/sdk/sdk_limits.py MODE

MODE:
  rpm N          N calls succeed, the next is refused with the SDK's 429 naming the rpm limit
  model M        a call to gemini-2.5-flash succeeds, one to M is refused 403 naming M
  budget         one call succeeds, the next is refused 429 naming the daily budget
  refused LIMIT  the first call is refused 429 naming LIMIT
  expired        the first call is refused 401
Prints 'sdk_limits: ok' and exits 0 when the SDK saw exactly that; exits 1 otherwise.
"""

import os
import sys

URL = os.environ["GATEWAY_URL"].rstrip("/")
TOKEN = os.environ["GATEWAY_TOKEN"]


def client():
    from google import genai
    from google.genai import types

    return genai.Client(
        vertexai=False,
        api_key=TOKEN,
        http_options=types.HttpOptions(
            base_url=URL, timeout=30_000, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


def call(c, model="gemini-2.5-flash"):
    return c.models.generate_content(model=model, contents="Say hello.")


def refused(c, code, status, words, model="gemini-2.5-flash"):
    from google.genai import errors

    try:
        call(c, model)
    except errors.APIError as error:
        message = error.message or ""
        print(f"sdk_limits: refused {error.code} {error.status}: {message}")
        if error.code != code or error.status != status:
            raise AssertionError(f"expected {code} {status}, got {error.code} {error.status}")
        for word in words:
            if word not in message:
                raise AssertionError(f"{word!r} not in the message {message!r}")
        return
    raise AssertionError("the call was not refused")


def main():
    mode = sys.argv[1]
    c = client()
    if mode == "rpm":
        for _ in range(int(sys.argv[2])):
            call(c)
        refused(c, 429, "RESOURCE_EXHAUSTED", ["requests per minute", "(rpm)"])
    elif mode == "model":
        call(c)
        refused(c, 403, "PERMISSION_DENIED", [sys.argv[2]], model=sys.argv[2])
    elif mode == "budget":
        call(c)
        refused(c, 429, "RESOURCE_EXHAUSTED", ["daily budget", "(daily-budget)"])
    elif mode == "refused":
        refused(c, 429, "RESOURCE_EXHAUSTED", [f"({sys.argv[2]})"])
    elif mode == "expired":
        refused(c, 401, "UNAUTHENTICATED", ["expired"])
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("sdk_limits: ok")


if __name__ == "__main__":
    main()

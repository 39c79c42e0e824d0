"""google-genai's file upload through a running gateway with several keys and upstreams.

Run by Tests/GatewayServerTests/SDKTests.swift (uploadsThroughTheSDK) with the venv of
Tests/sdk/requirements.txt:

    GATEWAY_URL=http://127.0.0.1:PORT GATEWAY_TOKEN=... .venv-sdk/bin/python Tests/sdk/sdk_files.py

Uploads a small file with the resumable protocol (files.upload), reads it back (files.get), asks
about it (generate_content with the file), lists nothing else, and deletes it. The fake upstream
refuses every key but the one that created the file, so each step passes only if the gateway
keeps the file's calls on that key. Prints the file's name on success; exits 1 on a failure.
"""

import io
import os
import sys

URL = os.environ.get("GATEWAY_URL", "").rstrip("/")
TOKEN = os.environ.get("GATEWAY_TOKEN", "")
MODEL = os.environ.get("FAKE_MODEL", "gemini-2.5-flash")
CONTENT = b"The gateway keeps a file with the key that made it.\n" * 64


def main():
    from google import genai
    from google.genai import types

    client = genai.Client(
        vertexai=False,
        api_key=TOKEN,
        http_options=types.HttpOptions(
            base_url=URL, api_version="v1beta", timeout=30_000,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )
    uploaded = client.files.upload(
        file=io.BytesIO(CONTENT), config=types.UploadFileConfig(mime_type="text/plain", display_name="notes")
    )
    assert uploaded.name and uploaded.name.startswith("files/"), uploaded
    assert int(uploaded.size_bytes) == len(CONTENT), uploaded.size_bytes
    for _ in range(4):
        again = client.files.get(name=uploaded.name)
        assert again.name == uploaded.name, again
    for _ in range(3):
        answer = client.models.generate_content(model=MODEL, contents=[uploaded, "Sum it up."])
        assert answer.text, answer
    client.files.delete(name=uploaded.name)
    print(f"sdk_files: ok {uploaded.name} {len(CONTENT)} bytes", flush=True)
    return 0


if __name__ == "__main__":
    if not URL or not TOKEN:
        print("sdk_files: GATEWAY_URL and GATEWAY_TOKEN must be set", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())

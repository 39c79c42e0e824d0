"""The official SDKs against a running gateway in front of the fake Gemini upstream.

Run by Tests/GatewayServerTests/SDKTests.swift (which starts the gateway and the fake) with the
venv that scripts/test builds from Tests/sdk/requirements.txt:

    GATEWAY_URL=http://127.0.0.1:PORT GATEWAY_TOKEN=... .venv-sdk/bin/python Tests/sdk/sdk_check.py

Every check calls one SDK method through the gateway and asserts on what the fake answers by
default (Sources/FakeGemini/DefaultAnswers.swift); the FAKE_* variables carry the fake's settings
(the defaults below are FakeGemini.Settings()'s). Prints one line per check and a summary
line; exits 1 if any check failed, 2 if the environment is incomplete.
Retries are off in both SDKs, so a failure shows as the first error.
"""

import os
import sys
import traceback

URL = os.environ.get("GATEWAY_URL", "").rstrip("/")
TOKEN = os.environ.get("GATEWAY_TOKEN", "")
MODEL = os.environ.get("FAKE_MODEL", "gemini-2.5-flash")
EMBEDDING_MODEL = os.environ.get("FAKE_EMBEDDING_MODEL", "gemini-embedding-001")
STREAM_EVENTS = int(os.environ.get("FAKE_STREAM_EVENTS", "3"))
PROMPT_TOKENS = int(os.environ.get("FAKE_PROMPT_TOKENS", "11"))
CANDIDATES_TOKENS = int(os.environ.get("FAKE_CANDIDATES_TOKENS", "7"))
THOUGHTS_TOKENS = int(os.environ.get("FAKE_THOUGHTS_TOKENS", "5"))
EMBEDDING_DIMENSIONS = int(os.environ.get("FAKE_EMBEDDING_DIMENSIONS", "8"))
MODELS = [m for m in os.environ.get(
    "FAKE_MODELS", "gemini-2.5-flash,gemini-2.5-pro,gemini-2.5-flash-lite,gemini-embedding-001"
).split(",") if m]

FAKE_TEXT = "Hello from the fake Gemini."


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_equal(actual, expected, what):
    expect(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


def fake_embedding(dimensions, seed=0):
    """The fake's embedding values: ((i + seed) % 97 + 1) / 128."""
    return [((i + seed) % 97 + 1) / 128.0 for i in range(dimensions)]


# MARK: - google-genai

def genai_client(api_version=None):
    """A client as users make one; api_version None: the SDK's default (v1 for google-genai 3.x)."""
    from google import genai
    from google.genai import types

    return genai.Client(
        vertexai=False,
        api_key=TOKEN,
        http_options=types.HttpOptions(
            base_url=URL,
            api_version=api_version,
            timeout=30_000,  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),  # one attempt: no retries, implicit or not
        ),
    )


def genai_api_version(client):
    return client._api_client._http_options.api_version


def check_generate_content(client):
    response = client.models.generate_content(model=MODEL, contents="Say hello.")
    expect_equal(response.text, FAKE_TEXT, "text")
    expect_equal(response.candidates[0].finish_reason.name, "STOP", "finish reason")
    usage = response.usage_metadata
    expect_equal(usage.prompt_token_count, PROMPT_TOKENS, "promptTokenCount")
    expect_equal(usage.candidates_token_count, CANDIDATES_TOKENS, "candidatesTokenCount")
    expect_equal(usage.total_token_count, PROMPT_TOKENS + CANDIDATES_TOKENS + THOUGHTS_TOKENS, "totalTokenCount")
    expect_equal(response.model_version, MODEL, "modelVersion")
    return f"text {response.text!r}, {usage.total_token_count} tokens"


def check_generate_content_stream(client):
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Count to three."))
    texts = [chunk.text for chunk in chunks]
    expected = [f"chunk {i + 1} " for i in range(STREAM_EVENTS)]
    # One SDK chunk per SSE event: the text really arrives in pieces, none lost or merged.
    expect_equal(texts, expected, "chunk texts")
    expect(len(chunks) > 1 or STREAM_EVENTS <= 1, f"expected text in several chunks, got {len(chunks)}")
    last = chunks[-1]
    expect_equal(last.candidates[0].finish_reason.name, "STOP", "last chunk's finish reason")
    # usageMetadata is a running total: the last event's is the whole answer's.
    expect_equal(
        last.usage_metadata.total_token_count,
        PROMPT_TOKENS + CANDIDATES_TOKENS * STREAM_EVENTS + THOUGHTS_TOKENS,
        "last chunk's totalTokenCount",
    )
    return f"{len(chunks)} chunks {''.join(texts)!r}, {last.usage_metadata.total_token_count} tokens"


def check_count_tokens(client):
    response = client.models.count_tokens(model=MODEL, contents="How many tokens is this?")
    expect_equal(response.total_tokens, PROMPT_TOKENS, "totalTokens")
    return f"totalTokens {response.total_tokens}"


def check_embed_content(client):
    # On the Gemini API the SDK sends this as :batchEmbedContents.
    response = client.models.embed_content(model=EMBEDDING_MODEL, contents=["first text", "second text"])
    expect_equal(len(response.embeddings), 2, "number of embeddings")
    for i, embedding in enumerate(response.embeddings):
        expect_equal(len(embedding.values), EMBEDDING_DIMENSIONS, f"embedding {i} length")
        expect(
            all(abs(a - b) < 1e-9 for a, b in zip(embedding.values, fake_embedding(EMBEDDING_DIMENSIONS, seed=i))),
            f"embedding {i} values: got {embedding.values}",
        )
    return f"{len(response.embeddings)} embeddings of {EMBEDDING_DIMENSIONS} values"


def check_models_list(client):
    models = list(client.models.list())
    names = [model.name for model in models]
    expect_equal(names, [f"models/{m}" for m in MODELS], "model names")
    flash = next(model for model in models if model.name == f"models/{MODEL}")
    expect("generateContent" in (flash.supported_actions or []), f"supported actions of {MODEL}: {flash.supported_actions}")
    return f"{len(names)} models: {', '.join(names)}"


def check_models_get(client):
    model = client.models.get(model=MODEL)
    expect_equal(model.name, f"models/{MODEL}", "name")
    expect_equal(model.input_token_limit, 1_048_576, "inputTokenLimit")
    return f"{model.name} ({model.display_name})"


# MARK: - openai against /v1beta/openai/

def openai_client():
    import openai

    return openai.OpenAI(base_url=URL + "/v1beta/openai/", api_key=TOKEN, max_retries=0, timeout=30.0)


def check_openai_chat(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}]
    )
    expect_equal(completion.object, "chat.completion", "object")
    expect_equal(completion.model, MODEL, "model")
    expect_equal(completion.choices[0].message.content, FAKE_TEXT, "message content")
    expect_equal(completion.choices[0].finish_reason, "stop", "finish_reason")
    expect_equal(completion.usage.total_tokens, PROMPT_TOKENS + CANDIDATES_TOKENS, "usage.total_tokens")
    return f"content {completion.choices[0].message.content!r}, {completion.usage.total_tokens} tokens"


def check_openai_chat_stream(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count to three."}], stream=True
    )
    chunks = list(stream)
    texts = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices]
    expect_equal(texts, [f"chunk {i + 1} " for i in range(max(STREAM_EVENTS, 1))], "delta contents")
    expect_equal(chunks[-1].choices[0].finish_reason, "stop", "last chunk's finish_reason")
    expect(chunks[-1].usage is not None, "last chunk carries no usage")
    expect_equal(chunks[-1].usage.total_tokens, PROMPT_TOKENS + CANDIDATES_TOKENS, "last chunk's usage.total_tokens")
    return f"{len(chunks)} chunks {''.join(texts)!r}"


def check_openai_embeddings(client):
    response = client.embeddings.create(model=EMBEDDING_MODEL, input=["first text", "second text"])
    expect_equal(len(response.data), 2, "number of embeddings")
    for i, item in enumerate(response.data):
        expect_equal(item.index, i, f"embedding {i} index")
        expect_equal(len(item.embedding), EMBEDDING_DIMENSIONS, f"embedding {i} length")
    return f"{len(response.data)} embeddings of {EMBEDDING_DIMENSIONS} values"


# MARK: - Main

def main():
    if not URL or not TOKEN:
        print("sdk_check: GATEWAY_URL and GATEWAY_TOKEN must be set", file=sys.stderr)
        return 2
    try:
        import google.genai
        import openai
    except ImportError as error:
        print(f"sdk_check: {error} (install Tests/sdk/requirements.txt)", file=sys.stderr)
        return 2
    print(f"sdk_check: google-genai {google.genai.__version__}, openai {openai.__version__}, "
          f"python {sys.version.split()[0]}, gateway {URL}", flush=True)

    genai = genai_client()
    genai_beta = genai_client(api_version="v1beta")
    oai = openai_client()
    # SDKTests.swift reads this line to know which paths the SDK calls.
    print(f"sdk_check: genai api version {genai_api_version(genai)}", flush=True)
    checks = [
        ("genai generate_content", lambda: check_generate_content(genai)),
        ("genai generate_content v1beta", lambda: check_generate_content(genai_beta)),
        ("genai generate_content_stream", lambda: check_generate_content_stream(genai)),
        ("genai count_tokens", lambda: check_count_tokens(genai)),
        ("genai embed_content", lambda: check_embed_content(genai)),
        ("genai models.list", lambda: check_models_list(genai)),
        ("genai models.get", lambda: check_models_get(genai)),
        ("openai chat.completions.create", lambda: check_openai_chat(oai)),
        ("openai chat.completions.create stream", lambda: check_openai_chat_stream(oai)),
        ("openai embeddings.create", lambda: check_openai_embeddings(oai)),
    ]
    passed = failed = 0
    for name, check in checks:
        try:
            detail = check()
        except Exception as error:  # noqa: BLE001 - every failure is reported, then the next check runs
            failed += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
            traceback.print_exc(file=sys.stderr)
        else:
            passed += 1
            print(f"ok   {name}: {detail}", flush=True)
    print(f"sdk_check: {passed} of {len(checks)} checks passed" + (f", {failed} FAILED" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

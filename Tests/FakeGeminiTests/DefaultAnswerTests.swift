import AsyncHTTPClient
import FakeGemini
import Foundation
import Testing

@Suite("FakeGemini default answers", .timeLimit(.minutes(2)))
struct DefaultAnswerTests {
    @Test("generateContent answers candidates and a consistent usageMetadata", arguments: ["v1beta", "v1"])
    func generateContent(version: String) async throws {
        try await withFake { fake in
            let answer = try await send(fake, "/\(version)/models/gemini-2.5-flash:generateContent")
            #expect(answer.status == 200)
            #expect(answer.header("content-type")?.hasPrefix("application/json") == true)
            #expect(answer.header("x-fake-key") == String(testKey.suffix(4)))
            let json = try answer.json()
            let candidates = try #require(json["candidates"] as? [[String: Any]])
            let content = try #require(candidates.first?["content"] as? [String: Any])
            let parts = try #require(content["parts"] as? [[String: Any]])
            #expect(parts.first?["text"] is String)
            #expect(candidates.first?["finishReason"] as? String == "STOP")
            let usage = try #require(json["usageMetadata"] as? [String: Any])
            let prompt = try #require(usage["promptTokenCount"] as? Int)
            let output = try #require(usage["candidatesTokenCount"] as? Int)
            let thoughts = try #require(usage["thoughtsTokenCount"] as? Int)
            let total = try #require(usage["totalTokenCount"] as? Int)
            #expect(prompt == fake.settings.promptTokenCount)
            #expect(total == prompt + output + thoughts)
            #expect(json["modelVersion"] as? String == "gemini-2.5-flash")
        }
    }

    @Test("streamGenerateContent?alt=sse answers N CRLF-framed events with a running usage total")
    func sseDefault() async throws {
        var settings = FakeGemini.Settings()
        settings.streamEventCount = 4
        try await withFake(settings: settings) { fake in
            let answer = try await send(fake, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
            #expect(answer.status == 200)
            #expect(answer.header("content-type") == "text/event-stream")
            #expect(answer.text.hasPrefix("data: {"))
            #expect(answer.text.hasSuffix("}\r\n\r\n"))
            let events = sseEvents(answer.text)
            #expect(events.count == 4)
            var lastTotal = 0
            for (i, event) in events.enumerated() {
                let json = try parseJSON(event)
                let usage = try #require(json["usageMetadata"] as? [String: Any])
                let total = try #require(usage["totalTokenCount"] as? Int)
                #expect(total > lastTotal, "usageMetadata is a running total")
                lastTotal = total
                let candidate = try #require((json["candidates"] as? [[String: Any]])?.first)
                #expect((candidate["finishReason"] as? String == "STOP") == (i == events.count - 1))
            }
            let log = fake.eventLog()
            #expect(log.map(\.eventIndex) == [0, 1, 2, 3])
        }
    }

    @Test("SSE framing can be LF")
    func sseLF() async throws {
        var settings = FakeGemini.Settings()
        settings.sseFraming = .lf
        try await withFake(settings: settings) { fake in
            let answer = try await send(fake, "/v1beta/models/m:streamGenerateContent?alt=sse")
            #expect(!answer.text.contains("\r"))
            let events = sseEvents(answer.text, terminator: "\n\n")
            #expect(events.count == 3)
            for event in events { _ = try parseJSON(event) }
        }
    }

    @Test("streamGenerateContent without alt=sse answers a JSON array")
    func jsonArrayStream() async throws {
        try await withFake { fake in
            let answer = try await send(fake, "/v1beta/models/gemini-2.5-pro:streamGenerateContent")
            #expect(answer.status == 200)
            #expect(answer.header("content-type")?.hasPrefix("application/json") == true)
            let array = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [[String: Any]])
            #expect(array.count == 3)
            #expect(array.allSatisfy { $0["usageMetadata"] != nil && $0["candidates"] != nil })
            #expect(fake.eventLog().count == 3)
        }
    }

    @Test("countTokens, embedContent and batchEmbedContents")
    func countAndEmbed() async throws {
        try await withFake { fake in
            let count = try await send(fake, "/v1beta/models/gemini-2.5-flash:countTokens").json()
            #expect(count["totalTokens"] as? Int == fake.settings.promptTokenCount)

            let embed = try await send(fake, "/v1beta/models/gemini-embedding-001:embedContent").json()
            let values = try #require((embed["embedding"] as? [String: Any])?["values"] as? [Double])
            #expect(values.count == fake.settings.embeddingDimensions)

            let batchBody = #"{"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"a"}]}},{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"b"}]}}]}"#
            let batch = try await send(fake, "/v1/models/gemini-embedding-001:batchEmbedContents", body: batchBody).json()
            let embeddings = try #require(batch["embeddings"] as? [[String: Any]])
            #expect(embeddings.count == 2)
            #expect(embeddings.allSatisfy { ($0["values"] as? [Double])?.count == fake.settings.embeddingDimensions })
        }
    }

    @Test("models list and get; an unknown model is a 404 NOT_FOUND envelope")
    func models() async throws {
        try await withFake { fake in
            let list = try await send(fake, "/v1beta/models", method: "GET").json()
            let models = try #require(list["models"] as? [[String: Any]])
            #expect(models.compactMap { $0["name"] as? String }.contains("models/gemini-2.5-flash"))

            let get = try await send(fake, "/v1/models/gemini-2.5-pro", method: "GET").json()
            #expect(get["name"] as? String == "models/gemini-2.5-pro")
            #expect(get["inputTokenLimit"] is Int)

            let missing = try await send(fake, "/v1beta/models/no-such-model", method: "GET")
            #expect(missing.status == 404)
            let error = try #require(try missing.json()["error"] as? [String: Any])
            #expect(error["code"] as? Int == 404)
            #expect(error["status"] as? String == "NOT_FOUND")
        }
    }

    @Test("unknown paths answer a Google NOT_FOUND envelope")
    func unknownPath() async throws {
        try await withFake { fake in
            for path in ["/v1beta/nothing", "/v2/models", "/", "/v1beta/models/m:noSuchMethod"] {
                let answer = try await send(fake, path)
                #expect(answer.status == 404, "\(path)")
                let error = try #require(try answer.json()["error"] as? [String: Any])
                #expect(error["status"] as? String == "NOT_FOUND")
            }
        }
    }

    @Test("OpenAI-compatible chat completion with usage, Bearer key")
    func openAIChat() async throws {
        try await withFake { fake in
            let body = #"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#
            let answer = try await send(
                fake, "/v1beta/openai/chat/completions", key: nil,
                headers: [("Authorization", "Bearer \(testKey)")], body: body
            )
            #expect(answer.status == 200)
            #expect(answer.header("x-fake-key") == String(testKey.suffix(4)))
            let json = try answer.json()
            #expect(json["object"] as? String == "chat.completion")
            #expect(json["model"] as? String == "gemini-2.5-flash")
            let message = try #require(((json["choices"] as? [[String: Any]])?.first)?["message"] as? [String: Any])
            #expect(message["role"] as? String == "assistant")
            let usage = try #require(json["usage"] as? [String: Any])
            let prompt = try #require(usage["prompt_tokens"] as? Int)
            let completion = try #require(usage["completion_tokens"] as? Int)
            #expect(usage["total_tokens"] as? Int == prompt + completion)

            let received = try #require(fake.received().last)
            #expect(received.key == testKey)
            #expect(received.keySource == .bearer)
            #expect(received.model == "gemini-2.5-flash")
        }
    }

    @Test("OpenAI-compatible streaming ends with data: [DONE]")
    func openAIStream() async throws {
        try await withFake { fake in
            let body = #"{"model":"models/gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
            let answer = try await send(
                fake, "/v1beta/openai/chat/completions", key: nil,
                headers: [("Authorization", "Bearer \(testKey)")], body: body
            )
            #expect(answer.status == 200)
            #expect(answer.header("content-type") == "text/event-stream")
            let events = sseEvents(answer.text, terminator: "\n\n")
            #expect(events.last == "[DONE]")
            let chunks = try events.dropLast().map(parseJSON)
            #expect(chunks.count == 3)
            #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
            #expect(chunks.last?["usage"] is [String: Any])
        }
    }

    @Test("OpenAI-compatible embeddings, one per input")
    func openAIEmbeddings() async throws {
        try await withFake { fake in
            let answer = try await send(
                fake, "/v1beta/openai/embeddings", key: nil,
                headers: [("Authorization", "Bearer \(testKey)")],
                body: #"{"model":"gemini-embedding-001","input":["a","b","c"]}"#
            )
            #expect(answer.status == 200)
            let data = try #require(try answer.json()["data"] as? [[String: Any]])
            #expect(data.count == 3)
            #expect(data.allSatisfy { ($0["embedding"] as? [Double])?.count == fake.settings.embeddingDimensions })
        }
    }

    @Test("OpenAI-compatible models list")
    func openAIModels() async throws {
        try await withFake { fake in
            let answer = try await send(
                fake, "/v1beta/openai/models", method: "GET", key: nil,
                headers: [("Authorization", "Bearer \(testKey)")]
            )
            let json = try answer.json()
            #expect(json["object"] as? String == "list")
            let data = try #require(json["data"] as? [[String: Any]])
            #expect(data.contains { $0["id"] as? String == "models/gemini-2.5-flash" })
        }
    }
}

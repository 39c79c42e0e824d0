import AsyncHTTPClient
import FakeGemini
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite("FakeGemini streaming", .timeLimit(.minutes(2)))
struct StreamTests {
    @Test("SSE events arrive one by one: the client has event 0 before the fake sends the last event")
    func incrementalByTimestamps() async throws {
        try await withFake { fake in
            let events = FakeGemini.defaultStreamEvents(count: 3)
            // Events 1 and 2 wait for the client to have event 0 (however busy the machine).
            let gate = FakeGemini.StreamGate(permits: 1)
            fake.setRules([.init(reply: .sse(events: events, interval: .milliseconds(10), gate: gate))])
            let request = makeRequest(fake, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
            let read = try await readStream(request) { index in
                if index == 0 { gate.open() }
            }
            #expect(read.status == 200)
            #expect(read.failure == nil)
            #expect(read.events == events)

            let index = try #require(fake.received().first?.index)
            let log = fake.eventLog(request: index)
            #expect(log.map(\.eventIndex) == [0, 1, 2])
            // Same process, same clock: the client held event 0 before the fake wrote event 2.
            #expect(read.arrivals[0] < log[2].instant)
            // And every event was written before the client saw it.
            for i in 0..<3 { #expect(log[i].instant <= read.arrivals[i]) }
        }
    }

    @Test("a gate holds the stream: the client reads event 0 while the fake has sent nothing more")
    func incrementalByGate() async throws {
        try await withFake { fake in
            let gate = FakeGemini.StreamGate(permits: 1)
            let events = FakeGemini.defaultStreamEvents(count: 3)
            fake.setRules([.init(reply: .sse(events: events, interval: .zero, gate: gate))])
            let request = makeRequest(fake, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
            let sentWhenFirstArrived = Mutex<Int?>(nil)
            let read = try await readStream(request) { index in
                if index == 0 {
                    sentWhenFirstArrived.withLock { $0 = fake.eventLog().count }
                    gate.open()
                }
            }
            #expect(sentWhenFirstArrived.withLock { $0 } == 1)
            #expect(read.events == events)
            #expect(read.failure == nil)
            #expect(fake.eventLog().count == 3)
        }
    }

    @Test("gate.allow lets events through one at a time")
    func gateAllow() async throws {
        try await withFake { fake in
            let gate = FakeGemini.StreamGate()
            fake.setRules([.init(reply: .sse(events: ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"], interval: .zero, gate: gate))])
            let request = makeRequest(fake, "/v1beta/models/m:streamGenerateContent?alt=sse")
            let reader = Task { try await readStream(request) }
            for expected in 1...3 {
                #expect(await fake.wait { _ in fake.received().count == 1 })
                #expect(fake.eventLog().count == expected - 1)
                gate.allow()
                #expect(await fake.wait { $0.eventLog().count == expected })
            }
            let read = try await withTimeout { try await reader.value }
            #expect(read.events == ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"])
        }
    }

    @Test("failAfter: n sends n events, then the client's body stream fails")
    func sseFailAfter() async throws {
        try await withFake { fake in
            let events = FakeGemini.defaultStreamEvents(count: 5)
            fake.setRules([.init(times: 1, reply: .sse(events: events, interval: .milliseconds(100), failAfter: 2))])
            let request = makeRequest(fake, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
            let read = try await readStream(request)
            #expect(read.status == 200)
            #expect(read.failure != nil, "the body must end in an error, not a clean end")
            // The fake wrote exactly 2 events. The client normally reads both, but AsyncHTTPClient drops
            // body bytes it had not yet handed over when the connection ends, so a starved reader may
            // see fewer: only a prefix is guaranteed.
            #expect(fake.eventLog().map(\.eventIndex) == [0, 1])
            #expect(read.events.count <= 2)
            #expect(read.events == Array(events.prefix(read.events.count)))
            // The fake keeps serving.
            let status1 = try await send(fake, "/v1beta/models/m:generateContent").status
            #expect(status1 == 200)
        }
    }

    @Test("failAfter equal to the event count still never ends the body cleanly")
    func sseFailAfterAll() async throws {
        try await withFake { fake in
            fake.setRules([.init(reply: .sse(events: ["{\"a\":1}"], interval: .milliseconds(50), failAfter: 1))])
            let read = try await readStream(makeRequest(fake, "/v1beta/models/m:streamGenerateContent?alt=sse"))
            #expect(read.failure != nil)
            #expect(fake.eventLog().count == 1)
            #expect(read.events.count <= 1)
        }
    }

    @Test("an in-stream error event is just an event")
    func inStreamError() async throws {
        try await withFake { fake in
            let error = FakeGemini.errorEnvelope(code: 503, message: "The model is overloaded.", status: "UNAVAILABLE")
            let events = Array(FakeGemini.defaultStreamEvents(count: 2).prefix(1)) + [error]
            fake.setRules([.init(reply: .sse(events: events, interval: .zero, framing: .lf))])
            let answer = try await send(fake, "/v1beta/models/m:streamGenerateContent?alt=sse")
            #expect(answer.status == 200)
            #expect(sseEvents(answer.text, terminator: "\n\n") == events)
        }
    }

    @Test("jsonStream streams a JSON array element by element; failAfter truncates it")
    func jsonStream() async throws {
        try await withFake { fake in
            let elements = FakeGemini.defaultStreamEvents(count: 3)
            fake.setRules([
                .init(times: 1, reply: .jsonStream(elements: elements, interval: .milliseconds(5))),
                .init(times: 1, reply: .jsonStream(elements: elements, interval: .milliseconds(5), failAfter: 1)),
            ])
            let whole = try await send(fake, "/v1beta/models/m:streamGenerateContent")
            let array = try #require(try JSONSerialization.jsonObject(with: Data(whole.body)) as? [Any])
            #expect(array.count == 3)

            let read = try await readStream(makeRequest(fake, "/v1beta/models/m:streamGenerateContent"), terminator: "\u{0}")
            #expect(read.failure != nil)
            let first = try #require(fake.received().last?.index)
            #expect(fake.eventLog(request: first).count == 1)
        }
    }

    @Test("stop() aborts a stream in progress and returns")
    func stopDuringStream() async throws {
        let fake = try await withTimeout { try await FakeGemini.start() }
        let gate = FakeGemini.StreamGate(permits: 1)
        fake.setRules([.init(reply: .sse(events: ["{}", "{}"], interval: .zero, gate: gate))])
        let reader = Task { try await readStream(makeRequest(fake, "/v1beta/models/m:streamGenerateContent?alt=sse")) }
        #expect(await fake.wait { $0.eventLog().count == 1 })
        try await withTimeout { await fake.stop() }
        let read = try await withTimeout { try await reader.value }
        #expect(read.events == ["{}"])
        #expect(read.failure != nil)
    }
}

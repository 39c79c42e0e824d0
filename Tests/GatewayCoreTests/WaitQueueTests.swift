import Foundation
import Testing
@testable import GatewayCore

/// The line of requests waiting for a key: arrival order per model, the bound, deadlines, and a
/// key that comes back serving waiters turn by turn rather than all at once.
@Suite("WaitQueue")
struct WaitQueueTests {
    typealias Queue = WaitQueue<String>

    /// Enqueues `names` for `model`, in order, each woken at `wakeAt` and due by `deadline`.
    private func line(_ queue: inout Queue, _ names: [String], model: String = "m", wakeAt: Double = 10, deadline: Double = 100) {
        for name in names {
            let ticket = queue.issueTicket()
            #expect(queue.enqueue(name, ticket: ticket, model: model, wakeAt: wakeAt, deadline: deadline) == true)
        }
    }

    @Test func nobodyIsWokenBeforeTheKeyComesBackThenTheFirstToArriveIs() {
        var queue = Queue(capacity: 10)
        line(&queue, ["a", "b", "c"])
        #expect(queue.nextEvent == 10)
        #expect(queue.due(now: 9.9).released.isEmpty)
        #expect(queue.due(now: 10).released == ["a"])
        #expect(queue.count == 2)
    }

    @Test func aTurnThatWasServedLetsTwoMoreGoAndAThrottledOneNone() {
        var queue = Queue(capacity: 10)
        line(&queue, ["a", "b", "c", "d", "e"])
        #expect(queue.due(now: 10).released == ["a"])
        // a was served: the key takes more.
        #expect(queue.turnEnded(model: "m", throttled: false, now: 10.1) == ["b", "c"])
        // b was served, c's key answered 429: one success lets two go, the 429 nobody.
        #expect(queue.turnEnded(model: "m", throttled: false, now: 10.2) == ["d", "e"])
        #expect(queue.turnEnded(model: "m", throttled: true, now: 10.3).isEmpty)
        #expect(queue.count == 0)
    }

    @Test func aWaiterSentBackAfterA429IsFirstInLineAgain() {
        var queue = Queue(capacity: 10)
        let first = queue.issueTicket()
        #expect(queue.enqueue("a", ticket: first, model: "m", wakeAt: 10, deadline: 100) == true)
        line(&queue, ["b", "c"])
        #expect(queue.due(now: 10).released == ["a"])
        // a's key answered 429 again: a goes back with its ticket, until the key's next return.
        #expect(queue.turnEnded(model: "m", throttled: true, now: 10.1).isEmpty)
        #expect(queue.enqueue("a", ticket: first, model: "m", wakeAt: 40, deadline: 100) == true)
        #expect(queue.due(now: 20).released.isEmpty)
        #expect(queue.due(now: 40).released == ["a"])
    }

    @Test func modelsHaveLinesOfTheirOwn() {
        var queue = Queue(capacity: 10)
        line(&queue, ["flash-1", "flash-2"], model: "flash", wakeAt: 10)
        line(&queue, ["pro-1"], model: "pro", wakeAt: 5)
        #expect(queue.nextEvent == 5)
        #expect(queue.due(now: 5).released == ["pro-1"])
        #expect(queue.waiting(model: "flash") == 2)
        #expect(queue.due(now: 10).released == ["flash-1"])
    }

    @Test func overTheCapacityNobodyIsAdded() {
        var queue = Queue(capacity: 2)
        line(&queue, ["a", "b"])
        #expect(queue.enqueue("c", ticket: queue.issueTicket(), model: "other", wakeAt: 1, deadline: 2) == false)
        #expect(queue.count == 2)
        #expect(queue.remove(ticket: Queue.Ticket(value: 1), model: "m") == "a")
        #expect(queue.enqueue("c", ticket: queue.issueTicket(), model: "other", wakeAt: 1, deadline: 2) == true)
    }

    @Test func aWaiterThatLeavesIsGoneAtOnce() {
        var queue = Queue(capacity: 10)
        line(&queue, ["a", "b"])
        #expect(queue.remove(ticket: Queue.Ticket(value: 1), model: "m") == "a")
        #expect(queue.remove(ticket: Queue.Ticket(value: 1), model: "m") == nil)
        #expect(queue.count == 1)
        #expect(queue.due(now: 10).released == ["b"])
    }

    @Test func aDeadlineBeforeTheWakeExpiresTheWaiter() {
        var queue = Queue(capacity: 10)
        let ticket = queue.issueTicket()
        #expect(queue.enqueue("late", ticket: ticket, model: "m", wakeAt: 30, deadline: 20) == true)
        line(&queue, ["b"], wakeAt: 30, deadline: 100)
        #expect(queue.nextEvent == 20)
        let due = queue.due(now: 20)
        #expect(due.expired == ["late"])
        #expect(due.released.isEmpty)
        #expect(queue.count == 1)
        #expect(queue.nextEvent == 30)
    }

    @Test func aLongTurnLetsOneMoreGoAfterTheGrace() {
        var queue = Queue(capacity: 10, turnGrace: 1)
        line(&queue, ["a", "b", "c"])
        #expect(queue.due(now: 10).released == ["a"])
        #expect(queue.nextEvent == 11)
        #expect(queue.due(now: 10.5).released.isEmpty)
        #expect(queue.due(now: 11).released == ["b"])
        #expect(queue.nextEvent == 12)
    }

    @Test func anEmptyQueueHasNoEvent() {
        var queue = Queue(capacity: 10)
        #expect(queue.nextEvent == nil)
        line(&queue, ["a"])
        _ = queue.due(now: 10)
        #expect(queue.nextEvent == nil)
        #expect(queue.turnEnded(model: "m", throttled: false, now: 11).isEmpty)
        #expect(queue.lines.isEmpty)
    }
}

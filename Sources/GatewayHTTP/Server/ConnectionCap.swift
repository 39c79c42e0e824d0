import Logging
import NIOCore
import Synchronization

/// `--max-connections`: at the cap a new client is not left waiting while connections sit idle.
///
/// - Under the cap, every connection is accepted.
/// - At the cap, accepting goes on while some connection is idle (between requests, or open for
///   ``IdleConnections/silentGrace`` without a byte of a request): each connection accepted over
///   the cap closes the one idle the longest, so the new client is served at once instead of
///   after a keep-alive timeout.
/// - At the cap with every connection busy, accepting stops (new clients wait in the listen
///   backlog, no CPU is spent on them), and a connection that finishes its answer meanwhile is
///   closed instead of kept alive, to let one of them in.
///
/// A request being read or answered is never cut for a new client. It sits in the listening
/// socket's pipeline, where each accepted connection passes as it is read, and holds the
/// socket's reads back while nothing may be accepted.
public final class ConnectionCap: ChannelDuplexHandler {
    public typealias InboundIn = any Channel
    public typealias InboundOut = any Channel
    public typealias OutboundIn = Never
    public typealias OutboundOut = Never

    let maximum: Int
    let connections: IdleConnections
    private var count = 0
    /// A read was held back at the cap: the next connection to close lets it go.
    private var readHeld = false

    public init(_ maximum: Int, connections: IdleConnections) {
        self.maximum = maximum
        self.connections = connections
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let channel = unwrapInboundIn(data)
        count += 1
        if count > maximum { connections.closeLongestIdle() }
        let loopBound = NIOLoopBound((cap: self, context: context), eventLoop: context.eventLoop)
        channel.closeFuture.hop(to: context.eventLoop).assumeIsolated().whenComplete { _ in
            let (cap, context) = loopBound.value
            cap.count -= 1
            if cap.readHeld, cap.isAccepting() {
                cap.readHeld = false
                context.read()
            }
        }
        context.fireChannelRead(data)
    }

    public func read(context: ChannelHandlerContext) {
        guard isAccepting() else {
            readHeld = true
            return
        }
        context.read()
    }

    private func isAccepting() -> Bool {
        let accepting = count < maximum || connections.hasIdle()
        connections.setFull(!accepting)
        return accepting
    }
}

/// The open client connections and since when each has been idle, for ``ConnectionCap``. Each
/// connection's ``ClientTimeouts`` keeps its ``Slot``: registered once per connection (under a
/// lock), marked idle or busy per request with a relaxed atomic store.
public final class IdleConnections: Sendable {
    /// One connection's standing.
    final class Slot: Sendable {
        /// 0 while a request is being read or answered; otherwise the uptime in nanoseconds
        /// from which the connection counts as idle (for a new connection, in the future).
        let idleSince = Atomic<UInt64>(0)
        /// Closes the connection on its event loop if it is still idle since that value.
        let close: @Sendable (UInt64) -> Void

        init(close: @escaping @Sendable (UInt64) -> Void) {
            self.close = close
        }
    }

    /// How long a new connection may stay silent before it counts as idle: a client sends its
    /// request as soon as it has connected, and one whose bytes are still on their way (or not
    /// yet read on a busy machine) must not be closed for the next.
    static let silentGrace = TimeAmount.seconds(10)

    public init() {}

    private let slots = Mutex<[ObjectIdentifier: Slot]>([:])
    /// At the cap with no idle connection: accepting has stopped.
    private let full = Atomic<Bool>(false)

    func add(_ slot: Slot) {
        _ = slots.withLock { $0.updateValue(slot, forKey: ObjectIdentifier(slot)) }
    }

    func remove(_ slot: Slot) {
        _ = slots.withLock { $0.removeValue(forKey: ObjectIdentifier(slot)) }
    }

    /// Whether accepting has stopped for want of a connection to close: a connection that
    /// becomes idle now is closed (``ClientTimeouts``).
    var isFull: Bool { full.load(ordering: .relaxed) }

    func setFull(_ value: Bool) {
        if full.load(ordering: .relaxed) != value { full.store(value, ordering: .relaxed) }
    }

    func hasIdle() -> Bool {
        longestIdle() != nil
    }

    /// Closes the connection idle the longest, if there is one.
    func closeLongestIdle() {
        if let longest = longestIdle() { longest.slot.close(longest.since) }
    }

    /// The connection idle the longest now, with the value it has been idle since.
    private func longestIdle() -> (slot: Slot, since: UInt64)? {
        let now = NIODeadline.now().uptimeNanoseconds
        return slots.withLock { slots in
            var longest: (slot: Slot, since: UInt64)?
            for slot in slots.values {
                let since = slot.idleSince.load(ordering: .relaxed)
                if since != 0, since <= now, since < longest?.since ?? .max { longest = (slot, since) }
            }
            return longest
        }
    }
}

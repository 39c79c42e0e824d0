import NIOCore

extension NIOHTTP1Transport {
    /// One event loop's idle connections by endpoint, and the endpoints of the base URLs it has
    /// seen. Touched only on its loop.
    ///
    /// Each endpoint gets a slot the first time one of its base URLs is seen, and its idle
    /// connections wait in that slot: a request looks up its base URL once, and takes and puts
    /// back a connection without hashing the endpoint's strings.
    final class LoopPool: @unchecked Sendable {
        let loop: any EventLoop
        /// Idle connections by endpoint slot.
        private var idle: [[Connection]] = []
        private var endpoints: [String: Endpoint] = [:]
        private var slots: [Endpoint: Int] = [:]

        init(loop: any EventLoop) {
            self.loop = loop
        }

        /// The endpoint of `baseURL`, with its slot in this pool.
        func endpoint(for baseURL: String) throws -> Endpoint {
            loop.assertInEventLoop()
            if let known = endpoints[baseURL] { return known }
            var endpoint = try NIOHTTP1Transport.parse(baseURL)
            if let slot = slots[endpoint] {
                endpoint.slot = slot  // another base URL of the same endpoint
            } else {
                endpoint.slot = idle.count
                slots[endpoint] = idle.count
                idle.append([])
            }
            endpoints[baseURL] = endpoint
            return endpoint
        }

        func take(_ endpoint: Endpoint) -> Connection? {
            loop.assertInEventLoop()
            while let connection = idle[endpoint.slot].popLast() {
                if connection.channel.isActive { return connection }
            }
            return nil
        }

        /// Keeps `connection` unless `limit` connections to its endpoint wait already.
        func put(_ connection: Connection, endpoint: Endpoint, limit: Int) -> Bool {
            loop.assertInEventLoop()
            guard idle[endpoint.slot].count < limit else { return false }
            idle[endpoint.slot].append(connection)
            return true
        }

        func remove(_ channel: any Channel, endpoint: Endpoint) {
            loop.assertInEventLoop()
            idle[endpoint.slot].removeAll { $0.channel === channel }
        }

        func takeAll() -> [Connection] {
            loop.assertInEventLoop()
            defer { idle = idle.map { _ in [] } }
            return idle.flatMap { $0 }
        }
    }
}

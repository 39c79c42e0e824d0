// MARK: - Milliseconds

extension Duration {
    /// The duration in milliseconds, with its fraction: how the request log stores latencies.
    @inlinable
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

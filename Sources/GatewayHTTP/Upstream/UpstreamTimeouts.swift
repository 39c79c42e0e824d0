/// How long the upstream client waits, each a `serve` option (`GatewayConfiguration` holds one:
/// these are the defaults an operator gets).
public struct UpstreamTimeouts: Sendable {
    /// To connect to an upstream.
    public var connectTimeout: Duration = .seconds(10)
    /// For a response head: a non-streaming generateContent on a thinking model can take minutes
    /// before its first byte.
    public var responseHeadTimeout: Duration = .seconds(600)
    /// The longest silence between two chunks of an upstream body before the upstream is given
    /// up; also how long an idle pooled connection is watched for.
    public var readIdleTimeout: Duration = .seconds(300)

    public init() {}
}

import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import NIOCore
import NIOHTTP1

// MARK: - Project-bound resources

extension ProxyHandler {
    /// A request bound to the key (and for an upload session the upstream) that created a resource.
    struct ResourcePin {
        var name: String
        var owner: ResourceOwner
        /// Only an upload session is bound to its upstream; the other resources live at Google,
        /// which every upstream reaches.
        var upstream: Int64? { name.hasPrefix(ProjectResource.uploadPrefix) ? owner.upstreamID : nil }
    }

    /// The resource the request names in its path, or else in its body (file URIs, a cached
    /// content), if the gateway knows who created it. Resources of two different keys in one
    /// request cannot be served by any key: that is the client's error.
    func resourcePin(_ request: ProxyRequest, target: ForwardedTarget, body: ByteBuffer) async -> Result<ResourcePin?, GeminiErrorResponse> {
        guard !owners.isEmpty else { return .success(nil) }
        if let name = ProjectResource.named(inPath: target.path) {
            return .success(await owners.lookUp(name).map { ResourcePin(name: name, owner: $0) })
        }
        guard request.method == .POST, body.readableBytes > 0 else { return .success(nil) }
        var owned: [ResourcePin] = []
        for name in body.withUnsafeReadableBytes({ ProjectResource.referenced(inBody: $0) }) {
            if let owner = await owners.lookUp(name) { owned.append(ResourcePin(name: name, owner: owner)) }
        }
        guard let first = owned.first else { return .success(nil) }
        if let other = owned.first(where: { $0.owner.keyID != first.owner.keyID }) {
            return .failure(.resourcesOfDifferentKeys(first.name, other.name))
        }
        return .success(first)
    }

    static let uploadURLHeaders = ["x-goog-upload-url", "x-goog-upload-control-url"]

    /// Remembers what a creating call made (from its answer, and the upload session its
    /// `x-goog-upload-url` opens), and points that URL at the gateway: the client's next chunks
    /// come here and go on to the same upstream with the same key.
    func rememberCreated(
        _ body: ByteBuffer, headers: inout HTTPHeaders, owner: ResourceOwner, upstream: PoolUpstream, request: ProxyRequest
    ) async {
        var names = ProjectResource.created(inAnswer: body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? [])
        for name in Self.uploadURLHeaders {
            guard let url = headers.first(name: name) else { continue }
            if let id = ProjectResource.uploadID(inURL: url), !names.contains(ProjectResource.uploadPrefix + id) {
                names.append(ProjectResource.uploadPrefix + id)
            }
            headers.replaceOrAdd(
                name: name, value: ProjectResource.rewrite(uploadURL: url, upstreamBase: upstream.baseURL, publicBase: publicBase(of: request)) ?? url
            )
        }
        await owners.remember(names, owner: owner)
    }

    /// How clients reach the gateway: `--public-url`, else the scheme of `X-Forwarded-Proto`
    /// (http without it) and the host of `X-Forwarded-Host` or of the request itself.
    private func publicBase(of request: ProxyRequest) -> String {
        if let url = configuration.publicURL { return url }
        let scheme = request.headers.first(name: "x-forwarded-proto").flatMap { $0.split(separator: ",").first }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "http"
        let host = request.headers.first(name: "x-forwarded-host").flatMap { $0.split(separator: ",").first }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            ?? request.headers.first(name: "host") ?? "\(configuration.host):\(configuration.port)"
        return "\(scheme)://\(host)"
    }
}

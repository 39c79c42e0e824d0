import Foundation
import GatewayCore
import GatewayHTTP
import NIOCore
import NIOHTTP1
import Synchronization

/// Guards the operator's pages (`/metrics`, `/status`) with the admin token, which is separate
/// from every client token: a client token never opens these pages, and the admin token is never
/// accepted by the proxy (`ClientAuthenticator` does not know it).
///
/// The token is accepted as `Authorization: Bearer TOKEN` (Prometheus' `authorization` setting,
/// curl) or as the password of `Authorization: Basic` with any user name, which a browser asks for
/// by itself and then repeats on every refresh of the status page.
///
/// Both the token and whether `/metrics` is public can change while serving (SIGHUP).
public final class AdminAuthenticator: Sendable {
    private let state: Mutex<(token: String?, metricsPublic: Bool)>

    init(token: String?, metricsPublic: Bool) {
        state = Mutex((token.flatMap { $0.isEmpty ? nil : $0 }, metricsPublic))
    }

    /// Replaces the token and the openness of `/metrics`.
    func update(token: String?, metricsPublic: Bool) {
        state.withLock { $0 = (token.flatMap { $0.isEmpty ? nil : $0 }, metricsPublic) }
    }

    /// Whether `/metrics` is served without the token.
    var metricsPublic: Bool { state.withLock { $0.metricsPublic } }

    enum Decision: Equatable {
        case allowed
        /// No credentials or wrong ones: 401 with a Basic challenge, so a browser prompts.
        case unauthorized
        /// No admin token is configured: the pages are off.
        case disabled
    }

    func check(_ headers: HTTPHeaders) -> Decision {
        guard let token = state.withLock({ $0.token }) else { return .disabled }
        guard let presented = Self.presentedToken(headers), Secret.constantTimeEquals(presented, token) else {
            return .unauthorized
        }
        return .allowed
    }

    /// The token in `Authorization: Bearer …` or the password in `Authorization: Basic …`.
    static func presentedToken(_ headers: HTTPHeaders) -> String? {
        guard let value = headers.first(name: "authorization") else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        let scheme = parts[0].lowercased()
        let credentials = parts[1].trimmingCharacters(in: .whitespaces)
        if scheme == "bearer" { return credentials }
        guard scheme == "basic", let data = Data(base64Encoded: credentials),
              let decoded = String(data: data, encoding: .utf8), let colon = decoded.firstIndex(of: ":") else { return nil }
        return String(decoded[decoded.index(after: colon)...])
    }

    /// The answer for a request that was not allowed.
    static func refusal(_ decision: Decision) -> LocalAnswer {
        switch decision {
        case .disabled:
            return GeminiErrorResponse(
                .forbidden, "PERMISSION_DENIED",
                "The operator pages are off: start serve with --admin-token (or GEMINI_GATEWAY_ADMIN_TOKEN)."
            ).localAnswer
        case .unauthorized, .allowed:
            return GeminiErrorResponse(
                .unauthorized, "UNAUTHENTICATED",
                "This page needs the admin token: Authorization: Bearer TOKEN, or Basic with the token as password.",
                headers: ["WWW-Authenticate": #"Basic realm="gemini-gateway admin", charset="UTF-8""#]
            ).localAnswer
        }
    }
}

import GatewayCore
import Testing

/// Which targets are proxied, and which could climb out of a relay's path prefix once the relay
/// resolves them (`https://relay/gemini` + `/v1beta/../../admin` is the relay's `/admin`).
@Suite struct ProxiedTargetTests {
    @Test(arguments: [
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        "/v1/models",
        "/v1alpha/models/x:generateContent",
        "/v1beta/openai/chat/completions",
        "/upload/v1beta/files?upload_id=abc&upload_protocol=resumable",
        "/upload/v1/files",
        "/download/v1beta/files/abc:download?alt=media",
        "/download/v1/files/abc:download",
        "/v1beta/files/abc.def",              // a dot inside a segment is a name, not a step
        "/v1beta/models/x:generateContent?next=../a",  // the query is not a path
        "/v1beta/cachedContents/...",         // three dots are a name
    ])
    func proxied(_ target: String) {
        #expect(ProxiedTarget.isProxied(target))
    }

    @Test(arguments: [
        // Not a proxied prefix: the local routes and unknown paths.
        "/healthz", "/readyz", "/metrics", "/status", "/", "", "/v1", "/v1beta", "/v2/models", "/V1BETA/models",
        "/uploadv1beta/files", "v1beta/models",
        // Climbing out of a relay's prefix, however written.
        "/v1beta/../../admin",
        "/v1beta/models/..",
        "/v1beta/./models",
        "/v1beta/%2e%2e/admin",
        "/v1beta/%2E%2e/admin",
        "/v1beta/.%2e/admin",
        "/v1beta/..;/admin",
        "/v1beta/.;x/admin",
        "/v1beta/models%2fx",
        "/v1beta/models%2Fx",
        "/v1beta/models%5cx",
        "/v1beta/models\\x",
        "/v1beta/models/x#fragment",
        "/v1beta/models/x?a=1#fragment",
        "/v1beta/..?alt=sse",
    ])
    func notProxied(_ target: String) {
        #expect(!ProxiedTarget.isProxied(target))
    }
}

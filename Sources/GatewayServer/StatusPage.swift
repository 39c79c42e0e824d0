import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

// MARK: - /status: the operator's page

/// `GET /status`: one server-rendered HTML page (no script, inline CSS and SVG) with the keys,
/// upstreams, the last hour's traffic and the log writer, refreshed by the browser every
/// `refreshSeconds`. The admin token guards it (``LocalRoutes``); keys appear by fingerprint
/// and tail only, and every string from the database or a client is HTML-escaped.
///
/// The figures come from a few indexed queries in one read transaction
/// (`AppDatabase.statusPageData`), which runs beside the log writer and never on the proxy path.
/// Their result is reused for `cacheSeconds`, so open tabs (each reloading every
/// `refreshSeconds`) cost one read between them, however busy the request log is.
public struct StatusPage: Sendable {
    let database: any ServingStore
    let logWriter: RequestLogWriter
    let logger: Logger
    /// The requests waiting for a key, shown live.
    var waits: WaitingRoom?
    private let cache = Cache()

    /// How long one read of the database serves every request for the page.
    static let cacheSeconds: TimeInterval = 5

    /// The last figures read, and when.
    private final class Cache: Sendable {
        let last = Mutex<(at: Date, data: StatusPageData)?>(nil)
    }

    /// How often the page reloads itself.
    static let refreshSeconds = 10

    public init(database: any ServingStore, logWriter: RequestLogWriter, logger: Logger) {
        self.database = database
        self.logWriter = logWriter
        self.logger = logger
    }

    /// The log writer's figures, and the waits for a key, shown beside the database's.
    struct LogFigures {
        var queueDepth: Int
        var droppedRows: Int
        /// Requests waiting for a key now, and waits that ran out since the start.
        var waiting = 0
        var waitsExpired = 0
    }

    /// The answer to an admitted request.
    func answer(method: HTTPMethod) async -> LocalAnswer {
        guard method == .GET else {
            return Self.html(.methodNotAllowed, Self.message("Only GET is served here."), extra: ["Allow": "GET"])
        }
        do {
            let data = try await cachedData()
            let log = LogFigures(
                queueDepth: logWriter.queueDepth, droppedRows: logWriter.droppedRows,
                waiting: waits?.waiting ?? 0, waitsExpired: waits?.expired ?? 0)
            return Self.html(.ok, Self.render(data, log: log))
        } catch {
            logger.error("status page: database read failed", metadata: ["error": "\(error)"])
            return Self.html(.internalServerError, Self.message("The database could not be read: \(error)"))
        }
    }

    private func cachedData() async throws -> StatusPageData {
        func fresh() -> StatusPageData? {
            cache.last.withLock { last in last.flatMap { -$0.at.timeIntervalSinceNow < Self.cacheSeconds ? $0.data : nil } }
        }
        if let data = fresh() { return data }
        let data = try await database.statusPageData(now: Date())
        cache.last.withLock { $0 = (Date(), data) }
        return data
    }

    static func html(_ status: HTTPResponseStatus, _ text: String, extra: HTTPHeaders = [:]) -> LocalAnswer {
        var headers: HTTPHeaders = [
            "Cache-Control": "no-store",
            // No script, no frames, nothing loaded from elsewhere: only the inline style.
            "Content-Security-Policy":
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        ]
        headers.add(contentsOf: extra)
        return LocalAnswer(status, contentType: "text/html; charset=utf-8", body: ByteBuffer(string: text), headers: headers)
    }

    /// A short page that says one thing.
    static func message(_ text: String) -> String {
        page(title: "gemini-gateway status", refresh: false, body: "<h1>gemini-gateway</h1><p>\(HTMLText.escape(text))</p>")
    }

    static func page(title: String, refresh: Bool, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        \(refresh ? #"<meta http-equiv="refresh" content="\#(refreshSeconds)">"# : "")
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(HTMLText.escape(title))</title>
        <style>\(style)</style>
        </head><body>
        \(body)
        </body></html>

        """
    }

    // MARK: - The page

    static func render(_ data: StatusPageData, log: LogFigures) -> String {
        var body = """
            <header><h1>gemini-gateway</h1>
            <p class="muted">\(StatusFormat.time(data.now)) UTC · the last hour is since \(StatusFormat.clock(data.windowStart)) UTC · \
            this page reloads every \(refreshSeconds) s</p></header>
            """
        body += totals(data, log: log)
        body += traffic(data)
        body += models(data)
        body += spend(data)
        body += upstreams(data)
        body += keys(data)
        body += """
            <footer class="muted">Times are UTC. Keys are shown by fingerprint and last 4 characters only. \
            The same figures: <code>gemini-gateway status</code>, <code>keys list</code>, <code>upstreams list</code>, \
            <code>report health</code>.</footer>
            """
        return page(title: "gemini-gateway status", refresh: true, body: body)
    }

    static func totals(_ data: StatusPageData, log: LogFigures) -> String {
        let enabled = data.upstreams.filter { $0.record.state == .active }
        let healthy = enabled.filter { cooling($0.record, now: data.now) == nil }.count
        let rate = data.total.requests > 0 ? " (\(StatusFormat.percent(data.total.errors, of: data.total.requests)))" : ""
        let tiles: [(id: String, label: String, value: String, tone: String)] = [
            ("keys-active", "active keys", StatusFormat.count(data.keyCounts.active), data.keyCounts.active - data.keyCounts.cooling > 0 ? "" : "bad"),
            ("keys-cooling", "active keys cooling", StatusFormat.count(data.keyCounts.cooling), data.keyCounts.cooling > 0 ? "warn" : ""),
            ("keys-disabled", "disabled keys", StatusFormat.count(data.keyCounts.disabled), ""),
            ("keys-deleted", "deleted keys", StatusFormat.count(data.keyCounts.deleted), data.keyCounts.deleted > 0 ? "warn" : ""),
            ("upstreams-healthy", "healthy / enabled upstreams", "\(healthy) / \(enabled.count)", healthy == 0 ? "bad" : healthy < enabled.count ? "warn" : ""),
            ("requests", "requests, last hour", StatusFormat.count(data.total.requests), ""),
            ("errors", "errors, last hour\(rate)", StatusFormat.count(data.total.errors), data.total.errors > 0 ? "warn" : ""),
            ("tokens", "tokens, last hour", StatusFormat.count(data.total.tokens), ""),
            ("queued", "requests waiting for a key", StatusFormat.count(log.waiting), log.waiting > 0 ? "warn" : ""),
            ("queue-expired", "waits for a key run out", StatusFormat.count(log.waitsExpired), log.waitsExpired > 0 ? "warn" : ""),
            ("log-queue", "log rows waiting", StatusFormat.count(log.queueDepth), ""),
            ("log-dropped", "log rows dropped", StatusFormat.count(log.droppedRows), log.droppedRows > 0 ? "bad" : ""),
        ]
        return #"<dl class="tiles">"# + tiles.map { tile in
            #"<div class="tile \#(tile.tone)"><dt>\#(HTMLText.escape(tile.label))</dt><dd id="\#(tile.id)">\#(HTMLText.escape(tile.value))</dd></div>"#
        }.joined() + "</dl>"
    }

    static func traffic(_ data: StatusPageData) -> String {
        let minutes = data.bucketSeconds / 60
        let unit = minutes == 1 ? "minute" : "\(minutes) minutes"
        var requests: [StatusChart.Column] = []
        var tokens: [StatusChart.Column] = []
        var labels: [(Int, String)] = []
        for (index, bucket) in data.buckets.enumerated() {
            let clock = StatusFormat.clock(data.bucketStart(index))
            requests.append(.init(
                value: bucket.requests, alarm: bucket.errors,
                tooltip: "\(clock) UTC: \(StatusFormat.count(bucket.requests)) requests, \(StatusFormat.count(bucket.errors)) errors"
            ))
            tokens.append(.init(value: bucket.tokens, tooltip: "\(clock) UTC: \(StatusFormat.count(bucket.tokens)) tokens"))
            if index % max(1, data.buckets.count / 6) == 0 { labels.append((index, clock)) }
        }
        return """
            <h2>Requests per \(unit), last hour <span class="legend"><i class="bar"></i>successful <i class="alarm"></i>errors</span></h2>
            \(StatusChart.columns(requests, labels: labels, caption: "Requests and errors per \(unit) over the last hour"))
            <h2>Tokens per \(unit), last hour</h2>
            \(StatusChart.columns(tokens, labels: labels, caption: "Tokens per \(unit) over the last hour"))
            """
    }

    static func models(_ data: StatusPageData) -> String {
        var html = "<h2>Models, last hour</h2>"
        guard !data.models.isEmpty else { return html + #"<p class="muted">No requests in the last hour.</p>"# }
        let byTokens = data.models.sorted { ($0.traffic.tokens, $1.model) > ($1.traffic.tokens, $0.model) }
        html += StatusChart.bars(
            byTokens.map { .init(label: $0.model, value: $0.traffic.tokens, tooltip: "\($0.model): \(StatusFormat.count($0.traffic.tokens)) tokens") },
            caption: "Tokens per model over the last hour"
        )
        html += #"<table><thead><tr><th>model</th><th class="n">requests</th><th class="n">errors</th><th class="n">error rate</th><th class="n">tokens</th></tr></thead><tbody>"#
        for (index, model) in data.models.enumerated() {
            let t = model.traffic
            html += #"<tr id="model-\#(index + 1)"><td><code>\#(HTMLText.escape(model.model))</code></td>"#
                + #"<td class="n">\#(StatusFormat.count(t.requests))</td><td class="n">\#(StatusFormat.count(t.errors))</td>"#
                + #"<td class="n">\#(StatusFormat.percent(t.errors, of: t.requests))</td><td class="n">\#(StatusFormat.count(t.tokens))</td></tr>"#
        }
        html += "</tbody></table>"
        if data.modelsNotShown > 0 {
            html += #"<p class="muted">\#(data.modelsNotShown) quieter models not listed (counted in the totals above).</p>"#
        }
        return html
    }

    /// One chart per client (the biggest spenders): US dollars per UTC day over the last 30 days,
    /// drawn in micro-dollars, the tooltips in dollars.
    static func spend(_ data: StatusPageData) -> String {
        var html = "<h2>Spend per client, last \(StatusPageData.spendDays) days (US dollars, UTC days)</h2>"
        guard !data.spend.isEmpty else { return html + #"<p class="muted">Nothing spent in the last 30 days (see <code>gemini-gateway prices list</code>).</p>"# }
        for client in data.spend {
            let columns = zip(client.days, client.costMicros).map { day, cost in
                StatusChart.Column(value: Int(cost), tooltip: "\(client.client), \(day): $\(Micros.dollars(cost))")
            }
            let labels = client.days.enumerated().filter { $0.offset % 5 == 0 }.map { ($0.offset, String($0.element.dropFirst(5))) }
            html += "<h3>\(HTMLText.escape(client.client)): $\(Micros.dollars(client.total))</h3>"
            html += StatusChart.columns(columns, labels: labels, caption: "Spend of \(client.client) per day over the last 30 days, in micro-dollars")
        }
        return html
    }

    static func upstreams(_ data: StatusPageData) -> String {
        var html = "<h2>Upstreams</h2>"
        guard !data.upstreams.isEmpty else {
            return html + #"<p class="muted">No upstream: <code>gemini-gateway upstreams add URL</code>.</p>"#
        }
        html += "<table><thead><tr><th>id</th><th>base URL</th><th>state</th><th>cooldown</th>"
            + #"<th class="n">failure streak</th><th>last failure</th><th class="n">tries, last hour</th><th class="n">failed</th><th>last used</th></tr></thead><tbody>"#
        for row in data.upstreams {
            let upstream = row.record, id = upstream.id ?? 0
            let until = cooling(upstream, now: data.now)
            let condition = upstream.state == .disabled ? "disabled" : until == nil ? "usable" : "cooling"
            let cooldown = until.map { until in
                "until \(StatusFormat.time(until)) (\(StatusFormat.remaining(until, now: data.now)))"
            } ?? "-"
            let failure = upstream.lastFailureReason.map { "\($0) at \(StatusFormat.time(upstream.lastFailureAt))" } ?? "-"
            html += #"<tr id="upstream-\#(id)"><td>\#(id)</td><td><code>\#(HTMLText.escape(StatusFormat.withoutUserInfo(upstream.baseUrl)))</code></td>"#
                + #"<td class="nw">\#(badge(upstream.state == .active ? "enabled" : "disabled", tone: condition))</td><td>\#(HTMLText.escape(cooldown))</td>"#
                + #"<td class="n">\#(upstream.failureStreak)</td><td>\#(HTMLText.escape(failure))</td>"#
                + #"<td class="n">\#(StatusFormat.count(row.attempts))</td><td class="n">\#(StatusFormat.count(row.failures))</td>"#
                + #"<td class="nw">\#(StatusFormat.time(upstream.lastUsedAt))</td></tr>"#
        }
        return html + "</tbody></table>"
    }

    /// The end of an upstream's failure cooldown, if one is in force.
    static func cooling(_ upstream: UpstreamRecord, now: Date) -> Date? {
        upstream.cooldownUntil.flatMap { $0 > now ? $0 : nil }
    }

    static func keys(_ data: StatusPageData) -> String {
        var html = "<h2>Keys</h2>"
        guard !data.keys.isEmpty else {
            return html + #"<p class="muted">No key: <code>gemini-gateway import --keys api_keys.txt</code>.</p>"#
        }
        html += "<table><thead><tr><th>fingerprint</th><th>tail</th><th>project</th><th>state</th>"
            + "<th>cooldowns in force</th><th>last used</th><th>last throttled</th><th>note</th></tr></thead><tbody>"
        for key in data.keys {
            let condition = key.state != .active ? key.state.rawValue : key.cooldowns.isEmpty ? "usable" : "cooling"
            let cooldowns = key.cooldowns.isEmpty ? "-" : key.cooldowns.map { cooldown in
                var line = "<code>\(HTMLText.escape(cooldown.model))</code> until \(StatusFormat.time(cooldown.until)) "
                    + "(\(StatusFormat.remaining(cooldown.until, now: data.now))): \(HTMLText.escape(cooldown.reason))"
                if let project = cooldown.project { line += " <span class=\"muted\">via project \(HTMLText.escape(project))</span>" }
                return line
            }.joined(separator: "<br>")
            let note: String = switch key.state {
            case .deleted: "\(key.deletedReason ?? "deleted") at \(StatusFormat.time(key.since))"
            case .disabled: "disabled by operator at \(StatusFormat.time(key.since))"
            case .active: ""
            }
            html += #"<tr id="key-\#(HTMLText.escape(key.fingerprint))"><td class="nw"><code>\#(HTMLText.escape(key.fingerprint))</code></td>"#
                + #"<td class="nw"><code>…\#(HTMLText.escape(key.tail))</code></td><td>\#(HTMLText.escape(key.project ?? "-"))</td>"#
                + #"<td class="nw">\#(badge(condition, tone: condition))</td><td>\#(cooldowns)</td>"#
                + #"<td class="nw">\#(StatusFormat.time(key.lastUsedAt))</td><td class="nw">\#(StatusFormat.time(key.lastThrottledAt))</td>"#
                + "<td>\(HTMLText.escape(note))</td></tr>"
        }
        html += "</tbody></table>"
        if data.keysNotShown > 0 {
            html += #"<p class="muted">\#(StatusFormat.count(data.keysNotShown)) more keys not listed (cooling, disabled and deleted keys come first); "#
                + "<code>gemini-gateway keys list</code> shows every key.</p>"
        }
        return html
    }

    static func badge(_ text: String, tone: String) -> String {
        #"<span class="badge \#(HTMLText.escape(tone))">\#(HTMLText.escape(text))</span>"#
    }

    static let style = """
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;background:#fff;\
        max-width:1200px;margin:0 auto;padding:16px 24px}
        h1{font-size:20px;margin:0}h2{font-size:15px;margin:28px 0 8px}
        .muted,footer{color:#5b6672}footer{margin:32px 0 8px;font-size:12px}
        .tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;margin:16px 0}
        .tile{background:#f5f7f9;border:1px solid #dde3e8;border-left:4px solid #3b6fb6;border-radius:6px;padding:6px 12px}
        .tile.warn{border-left-color:#c27c0e}.tile.bad{border-left-color:#b3261e}
        .tile dt{color:#5b6672;font-size:12px}.tile dd{margin:0;font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
        table{border-collapse:collapse;width:100%;font-size:13px}
        th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #dde3e8;vertical-align:top}
        th{font-size:12px;color:#5b6672;font-weight:600}.n{text-align:right;font-variant-numeric:tabular-nums}.nw{white-space:nowrap}
        code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
        .badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;background:#e3f3e8;color:#2f7d4f}
        .badge.cooling{background:#fdf0dc;color:#8a5200}.badge.disabled{background:#e8eaed;color:#5b6672}
        .badge.deleted{background:#fbe4e2;color:#b3261e}
        .chart{width:100%;height:auto;display:block}.chart text{font-size:11px;fill:#5b6672}
        .chart .grid{stroke:#dde3e8}.bar{fill:#3b6fb6}.alarm{fill:#c0392b}
        .legend{font-weight:normal;font-size:12px;color:#5b6672;margin-left:12px}
        .legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:-1px}
        .legend i.bar{background:#3b6fb6}.legend i.alarm{background:#c0392b}
        """
}

// MARK: - Text

/// HTML escaping: every string put into the page goes through `escape`, in text and in
/// attribute values alike.
enum HTMLText {
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}

/// How the page writes numbers, times and URLs.
enum StatusFormat {
    /// `1,234,567`.
    static func count(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(digit)
        }
        return value < 0 ? "-" + grouped : grouped
    }

    /// `12.5%`.
    static func percent(_ part: Int, of whole: Int) -> String {
        guard whole > 0 else { return "-" }
        return String(format: "%.1f%%", 100 * Double(part) / Double(whole))
    }

    /// `2026-11-27 17:32:40` (UTC), or `-`.
    static func time(_ date: Date?) -> String {
        guard let date else { return "-" }
        let t = utc(date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    }

    /// `17:32` (UTC).
    static func clock(_ date: Date) -> String {
        let t = utc(date)
        return String(format: "%02d:%02d", t.tm_hour, t.tm_min)
    }

    private static func utc(_ date: Date) -> tm {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return parts
    }

    /// `in 42 s`, `in 3 min 20 s`, `in 5 h 02 min`, `in 2 d 4 h`.
    static func remaining(_ until: Date, now: Date) -> String {
        let seconds = max(0, Int(until.timeIntervalSince(now).rounded(.up)))
        switch seconds {
        case ..<60: return "in \(seconds) s"
        case ..<3_600: return "in \(seconds / 60) min \(String(format: "%02d", seconds % 60)) s"
        case ..<86_400: return "in \(seconds / 3_600) h \(String(format: "%02d", seconds % 3_600 / 60)) min"
        default: return "in \(seconds / 86_400) d \(seconds % 86_400 / 3_600) h"
        }
    }

    /// `text` cut to `limit` characters with an ellipsis.
    static func shortened(_ text: String, to limit: Int) -> String {
        text.count > limit ? String(text.prefix(limit - 1)) + "…" : text
    }

    /// A URL without `user:password@` (imports refuse credentials, but a row may predate that).
    static func withoutUserInfo(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex { "/?#".contains($0) } ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<scheme.upperBound]) + String(rest[rest.index(after: at)...])
    }
}

import Foundation

// MARK: - What a request cost

/// The price of one model, per kind of token, in micro-dollars per 1,000,000 tokens (an integer:
/// $0.30 per 1M tokens is 300,000), as `etc/prices.csv` and the `prices` table hold it.
public struct ModelPrice: Sendable, Equatable, Codable {
    /// A model name, or a glob ending in `*` (`gemini-2.5-flash-preview-*`).
    public var model: String
    /// Prompt tokens not served from a cache (and tool-use prompt tokens).
    public var input: Int64
    /// Prompt tokens served from a context cache (`cachedContentTokenCount`).
    public var cachedInput: Int64
    /// Candidates tokens.
    public var output: Int64
    /// Thinking tokens (`thoughtsTokenCount`; Google prices them as output).
    public var thinking: Int64
    /// Prompts of more tokens than this are priced at the `*Long` prices (nil: one tier).
    public var longContextThreshold: Int?
    public var inputLong: Int64?
    public var cachedInputLong: Int64?
    public var outputLong: Int64?
    public var thinkingLong: Int64?
    /// The prompt's audio tokens not served from a cache (``UsageMetadata/audio``; nil: the
    /// `input` price). Google prices audio input apart on the Flash models ($1.00 against $0.30
    /// per 1M on 2.5 Flash); a cached token is priced as `cachedInput` whatever its modality.
    public var audioInput: Int64?
    /// Where and when the figures were read.
    public var source: String?
    public var takenOn: String?

    public init(
        model: String, input: Int64, cachedInput: Int64, output: Int64, thinking: Int64,
        longContextThreshold: Int? = nil, inputLong: Int64? = nil, cachedInputLong: Int64? = nil,
        outputLong: Int64? = nil, thinkingLong: Int64? = nil, audioInput: Int64? = nil, source: String? = nil,
        takenOn: String? = nil
    ) {
        self.model = model
        self.input = input
        self.cachedInput = cachedInput
        self.output = output
        self.thinking = thinking
        self.longContextThreshold = longContextThreshold
        self.inputLong = inputLong
        self.cachedInputLong = cachedInputLong
        self.outputLong = outputLong
        self.thinkingLong = thinkingLong
        self.audioInput = audioInput
        self.source = source
        self.takenOn = takenOn
    }

    /// The list price of `usage`, in micro-dollars, rounded to the nearest (half up): every kind
    /// of token times its price, added up in millionths of a micro-dollar, divided once. A prompt
    /// over ``longContextThreshold`` tokens prices all its tokens at the long-context prices.
    public func cost(_ usage: UsageMetadata) -> Int64 {
        let long = longContextThreshold.map { usage.prompt > $0 } ?? false
        let cached = Int64(min(max(usage.cached, 0), max(usage.prompt, 0)))
        let fresh = Int64(max(usage.prompt, 0)) - cached + Int64(max(usage.toolUse, 0))
        let inputPrice = long ? inputLong ?? input : input
        // The prompt's audio tokens, at most its fresh ones (Gemini counts cached ones in both).
        let audio = audioInput == nil ? 0 : min(Int64(max(usage.audio, 0)), Int64(max(usage.prompt, 0)) - cached)
        let parts = (fresh - audio) * inputPrice + audio * (audioInput ?? inputPrice)
            + cached * (long ? cachedInputLong ?? cachedInput : cachedInput)
            + Int64(max(usage.candidates, 0)) * (long ? outputLong ?? output : output)
            + Int64(max(usage.thoughts, 0)) * (long ? thinkingLong ?? thinking : thinking)
        return (parts + 500_000) / 1_000_000
    }
}

/// How a request's cost was judged: `requests.price_status`.
public enum PriceStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Priced at its model's price.
    case priced
    /// Served by a free-tier key: cost 0, its list price recorded.
    case freeTier = "free_tier"
    /// Tokens of a model the price table does not know: cost 0, flagged in reports.
    case unpriced
    /// No tokens: nothing to price.
    case none
}

/// What a request cost: micro-dollars charged and at list price.
public struct RequestCost: Sendable, Equatable, Codable {
    public var costMicros: Int64
    public var listCostMicros: Int64
    public var status: PriceStatus

    public init(costMicros: Int64, listCostMicros: Int64, status: PriceStatus) {
        self.costMicros = costMicros
        self.listCostMicros = listCostMicros
        self.status = status
    }

    public static let zero = RequestCost(costMicros: 0, listCostMicros: 0, status: .none)
}

/// The price table in memory: names looked up in a dictionary, then the globs, longest first.
public struct PriceTable: Sendable {
    private var exact: [String: ModelPrice] = [:]
    private var globs: [(prefix: String, price: ModelPrice)] = []
    public private(set) var all: [ModelPrice] = []

    public init(_ prices: [ModelPrice] = []) {
        all = prices
        for price in prices {
            if price.model.hasSuffix("*") {
                globs.append((String(price.model.dropLast()), price))
            } else {
                exact[price.model] = price
            }
        }
        globs.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
    }

    public var isEmpty: Bool { all.isEmpty }

    /// The price of `model` (a `models/` prefix is ignored); nil when the table has none.
    public func price(of model: String) -> ModelPrice? {
        let name = model.hasPrefix("models/") ? String(model.dropFirst("models/".count)) : model
        if let price = exact[name] { return price }
        return globs.first { name.hasPrefix($0.prefix) }?.price
    }

    /// What a request for `model` that used `usage` cost; on a `freeTier` key nothing, at its
    /// list price all the same.
    public func cost(model: String?, usage: UsageMetadata, freeTier: Bool) -> RequestCost {
        guard usage.prompt > 0 || usage.candidates > 0 || usage.thoughts > 0 || usage.toolUse > 0 else { return .zero }
        guard let model, let price = price(of: model) else {
            return RequestCost(costMicros: 0, listCostMicros: 0, status: .unpriced)
        }
        let list = price.cost(usage)
        return RequestCost(costMicros: freeTier ? 0 : list, listCostMicros: list, status: freeTier ? .freeTier : .priced)
    }
}

// MARK: - The price file

/// `etc/prices.csv`: `#` comment lines (`# source: URL`, `# taken: DATE` apply to the rows after
/// them), a header line naming the columns, then one model a line. Prices are US dollars per
/// 1,000,000 tokens, written as decimals (at most 6 decimals); an empty long-context cell means
/// the short price, an empty `audio_input` the `input` price.
public enum PriceFile {
    public static let columns = [
        "model", "input", "cached_input", "output", "thinking", "long_context_threshold",
        "input_long", "cached_input_long", "output_long", "thinking_long", "audio_input",
    ]

    /// The rows of a price file, or the first problem with its line number.
    public static func parse(_ text: String) -> Result<[ModelPrice], PriceFileError> {
        var source: String?
        var taken: String?
        var header: [String]?
        var prices: [ModelPrice] = []
        var seen = Set<String>()
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let comment = line.dropFirst().trimmingCharacters(in: .whitespaces)
                if comment.lowercased().hasPrefix("source:") { source = comment.dropFirst(7).trimmingCharacters(in: .whitespaces) }
                if comment.lowercased().hasPrefix("taken:") { taken = comment.dropFirst(6).trimmingCharacters(in: .whitespaces) }
                continue
            }
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let names = header else {
                guard cells == columns else {
                    return .failure(PriceFileError(line: number, message: "the header must be: \(columns.joined(separator: ","))"))
                }
                header = cells
                continue
            }
            guard cells.count == names.count else {
                return .failure(PriceFileError(line: number, message: "\(cells.count) cells, expected \(names.count)"))
            }
            let model = cells[0]
            guard !model.isEmpty, model.count <= 200, !model.dropLast().contains("*"),
                  model.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
                return .failure(PriceFileError(line: number, message: "'\(model)' is no model name (or glob ending in *)"))
            }
            guard seen.insert(model).inserted else {
                return .failure(PriceFileError(line: number, message: "model '\(model)' appears twice"))
            }
            var values: [Int64?] = []
            for (column, cell) in zip(names.dropFirst(), cells.dropFirst()) {
                if cell.isEmpty {
                    guard column.hasSuffix("_long") || column == "long_context_threshold" || column == "audio_input" else {
                        return .failure(PriceFileError(line: number, message: "no \(column) price"))
                    }
                    values.append(nil)
                } else if column == "long_context_threshold" {
                    guard let tokens = Int64(cell), tokens > 0 else {
                        return .failure(PriceFileError(line: number, message: "long_context_threshold '\(cell)' is no token count"))
                    }
                    values.append(tokens)
                } else {
                    guard let micros = Micros.parse(dollars: cell) else {
                        return .failure(PriceFileError(line: number, message: "\(column) '\(cell)' is no price in dollars per 1M tokens"))
                    }
                    values.append(micros)
                }
            }
            prices.append(ModelPrice(
                model: model, input: values[0]!, cachedInput: values[1]!, output: values[2]!, thinking: values[3]!,
                longContextThreshold: values[4].map { Int($0) }, inputLong: values[5], cachedInputLong: values[6],
                outputLong: values[7], thinkingLong: values[8], audioInput: values[9], source: source, takenOn: taken
            ))
        }
        guard header != nil else { return .failure(PriceFileError(line: 1, message: "no header line")) }
        guard !prices.isEmpty else { return .failure(PriceFileError(line: 1, message: "no price line")) }
        return .success(prices)
    }
}

/// A problem in a line of a price file.
public struct PriceFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

import Foundation
import GatewayCore
import Testing

/// The price maths: integer micro-dollars, cached and thinking tokens, the long-context tier.
@Suite struct PricingTests {
    static let pro = ModelPrice(
        model: "gemini-2.5-pro", input: 1_250_000, cachedInput: 125_000, output: 10_000_000, thinking: 10_000_000,
        longContextThreshold: 200_000, inputLong: 2_500_000, cachedInputLong: 250_000, outputLong: 15_000_000,
        thinkingLong: 15_000_000)
    static let flash = ModelPrice(model: "gemini-2.5-flash", input: 300_000, cachedInput: 30_000, output: 2_500_000, thinking: 2_500_000)

    @Test func everyKindOfTokenAtItsPriceRoundedOnceToTheMicroDollar() {
        // 11 prompt, 7 candidates, 5 thoughts on flash: 3.3 + 17.5 + 12.5 = 33.3 micro-dollars.
        #expect(Self.flash.cost(UsageMetadata(prompt: 11, candidates: 7, thoughts: 5)) == 33)
        // 10,000 prompt of which 8,000 cached, 1,000 candidates, 2,000 thoughts on pro:
        // 2,000 x 1.25 + 8,000 x 0.125 + 1,000 x 10 + 2,000 x 10 = 2,500 + 1,000 + 10,000 + 20,000.
        #expect(Self.pro.cost(UsageMetadata(prompt: 10_000, cached: 8_000, candidates: 1_000, thoughts: 2_000)) == 33_500)
        // Half a micro-dollar rounds up: 5 tokens at $0.10 per 1M = 0.5.
        #expect(ModelPrice(model: "x", input: 100_000, cachedInput: 0, output: 0, thinking: 0).cost(UsageMetadata(prompt: 5)) == 1)
    }

    @Test func aPromptOverTheThresholdPricesEveryTokenAtTheLongContextPrices() {
        let atThreshold = UsageMetadata(prompt: 200_000, candidates: 1_000, thoughts: 1_000)
        #expect(Self.pro.cost(atThreshold) == 200_000 * 125 / 100 + 1_000 * 10 + 1_000 * 10)
        let over = UsageMetadata(prompt: 250_000, cached: 50_000, candidates: 1_000, thoughts: 2_000)
        // 200,000 x 2.50 + 50,000 x 0.25 + 1,000 x 15 + 2,000 x 15.
        #expect(Self.pro.cost(over) == 500_000 + 12_500 + 15_000 + 30_000)
    }

    @Test func audioPromptTokensAtTheAudioPrice() {
        var flash = Self.flash
        flash.audioInput = 1_000_000
        // 1,300 prompt tokens of which 1,000 audio, 20 candidates: 300 x 0.30 + 1,000 x 1.00 + 20 x 2.50.
        #expect(flash.cost(UsageMetadata(prompt: 1_300, candidates: 20, audio: 1_000)) == 90 + 1_000 + 50)
        // Cached tokens are priced as cached whatever their modality, and the audio price applies
        // at most to the fresh prompt: 1,000 prompt, 900 cached, 1,000 audio -> 100 fresh audio.
        #expect(flash.cost(UsageMetadata(prompt: 1_000, cached: 900, audio: 1_000)) == (900 * 30_000 + 100 * 1_000_000 + 500_000) / 1_000_000)
        // Without an audio price, audio tokens are input tokens.
        #expect(Self.flash.cost(UsageMetadata(prompt: 1_300, candidates: 20, audio: 1_000)) == (1_300 * 300_000 + 20 * 2_500_000 + 500_000) / 1_000_000)
    }

    @Test func freeTierAndUnknownModels() {
        let table = PriceTable([Self.flash, ModelPrice(model: "gemini-2.5-flash-preview-*", input: 1_000_000, cachedInput: 0, output: 0, thinking: 0)])
        let usage = UsageMetadata(prompt: 11, candidates: 7, thoughts: 5)
        #expect(table.cost(model: "gemini-2.5-flash", usage: usage, freeTier: false) == RequestCost(costMicros: 33, listCostMicros: 33, status: .priced))
        #expect(table.cost(model: "models/gemini-2.5-flash", usage: usage, freeTier: true) == RequestCost(costMicros: 0, listCostMicros: 33, status: .freeTier))
        #expect(table.cost(model: "gemini-2.5-flash-preview-09-2025", usage: UsageMetadata(prompt: 3), freeTier: false).costMicros == 3)
        #expect(table.cost(model: "gemini-9", usage: usage, freeTier: false) == RequestCost(costMicros: 0, listCostMicros: 0, status: .unpriced))
        #expect(table.cost(model: "gemini-9", usage: UsageMetadata(), freeTier: false) == .zero, "no tokens: nothing to price")
    }

    @Test func theShippedPriceFileFormat() throws {
        let text = """
            # source: https://ai.google.dev/gemini-api/docs/pricing
            # taken: 2026-12-07
            model,input,cached_input,output,thinking,long_context_threshold,input_long,cached_input_long,output_long,thinking_long,audio_input
            gemini-2.5-pro,1.25,0.125,10.00,10.00,200000,2.50,0.25,15.00,15.00,
            gemini-2.5-flash,0.30,0.03,2.50,2.50,,,,,,
            gemini-2.0-flash,0.10,0.025,0.40,0.40,,,,,,0.70
            """
        let prices = try PriceFile.parse(text).get()
        #expect(prices == [
            { var p = Self.pro; p.source = "https://ai.google.dev/gemini-api/docs/pricing"; p.takenOn = "2026-12-07"; return p }(),
            { var p = Self.flash; p.source = "https://ai.google.dev/gemini-api/docs/pricing"; p.takenOn = "2026-12-07"; return p }(),
            ModelPrice(
                model: "gemini-2.0-flash", input: 100_000, cachedInput: 25_000, output: 400_000, thinking: 400_000, audioInput: 700_000,
                source: "https://ai.google.dev/gemini-api/docs/pricing", takenOn: "2026-12-07"),
        ])
        let header = "model,input,cached_input,output,thinking,long_context_threshold,input_long,cached_input_long,output_long,thinking_long,audio_input\n"
        #expect(throws: PriceFileError.self) { try PriceFile.parse(header + "m,0.1,x,1,1,,,,,,").get() }
        #expect(throws: PriceFileError.self) { try PriceFile.parse(header + "m,0.1,0.1,1,1,,,,,").get() }
        #expect(throws: PriceFileError.self) { try PriceFile.parse(header + "m,0.1,0.1,1,1,,,,,,\nm,1,1,1,1,,,,,,").get() }
        #expect(throws: PriceFileError.self) { try PriceFile.parse(header + "m,0.1,0.1,1,1,,,,,,audio").get() }
        #expect(throws: PriceFileError.self) { try PriceFile.parse("model,input\nm,1").get() }
    }
}

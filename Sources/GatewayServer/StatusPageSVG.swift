import Foundation

// MARK: - The status page's charts: inline SVG, no script

/// Bar charts drawn as inline SVG. Every string that reaches the markup goes through
/// `HTMLText.escape`; a bar's `<title>` is its tooltip.
enum StatusChart {
    /// One column of a column chart: `value` drawn in full, its `alarm` part (errors) in red at
    /// the bottom; `tooltip` names both.
    struct Column {
        var value: Int
        var alarm = 0
        var tooltip: String
    }

    /// A column chart over time, `labels` under some columns (index, text).
    static func columns(_ columns: [Column], labels: [(Int, String)], caption: String) -> String {
        let width = 960.0, height = 170.0, left = 52.0, right = 8.0, top = 10.0, bottom = 22.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let maximum = niceCeiling(columns.map(\.value).max() ?? 0)
        let slot = plotWidth / Double(max(columns.count, 1))
        let barWidth = max(1, slot * 0.78)
        func y(_ value: Int) -> Double { top + plotHeight * (1 - Double(value) / Double(maximum)) }

        var svg = #"<svg class="chart" viewBox="0 0 \#(Int(width)) \#(Int(height))" role="img" aria-label="\#(HTMLText.escape(caption))">"#
        for value in maximum >= 2 ? [0, maximum / 2, maximum] : [0, maximum] {
            let line = y(value)
            svg += #"<line class="grid" x1="\#(fmt(left))" x2="\#(fmt(width - right))" y1="\#(fmt(line))" y2="\#(fmt(line))"/>"#
            svg += #"<text x="\#(fmt(left - 6))" y="\#(fmt(line + 4))" text-anchor="end">\#(StatusFormat.count(value))</text>"#
        }
        for (index, column) in columns.enumerated() where column.value > 0 {
            let x = left + Double(index) * slot + (slot - barWidth) / 2
            let alarm = min(column.alarm, column.value)
            svg += "<g><title>\(HTMLText.escape(column.tooltip))</title>"
            if column.value > alarm {
                svg += #"<rect class="bar" x="\#(fmt(x))" y="\#(fmt(y(column.value)))" width="\#(fmt(barWidth))" height="\#(fmt(y(alarm) - y(column.value)))"/>"#
            }
            if alarm > 0 {
                svg += #"<rect class="alarm" x="\#(fmt(x))" y="\#(fmt(y(alarm)))" width="\#(fmt(barWidth))" height="\#(fmt(y(0) - y(alarm)))"/>"#
            }
            svg += "</g>"
        }
        for (index, text) in labels {
            let x = left + (Double(index) + 0.5) * slot
            svg += #"<text x="\#(fmt(x))" y="\#(fmt(height - 6))" text-anchor="middle">\#(HTMLText.escape(text))</text>"#
        }
        return svg + "</svg>"
    }

    /// One row of a horizontal bar chart.
    struct Row {
        var label: String
        var value: Int
        var tooltip: String
    }

    /// Horizontal bars, one per row, the label left and the value right of each bar.
    static func bars(_ rows: [Row], caption: String) -> String {
        let width = 960.0, rowHeight = 24.0, labelWidth = 300.0, valueWidth = 110.0
        let height = rowHeight * Double(rows.count) + 4
        let maximum = max(rows.map(\.value).max() ?? 0, 1)
        let barSpace = width - labelWidth - valueWidth
        var svg = #"<svg class="chart" viewBox="0 0 \#(Int(width)) \#(Int(height))" role="img" aria-label="\#(HTMLText.escape(caption))">"#
        for (index, row) in rows.enumerated() {
            let top = Double(index) * rowHeight + 2
            let length = row.value > 0 ? max(2, barSpace * Double(row.value) / Double(maximum)) : 0
            svg += "<g><title>\(HTMLText.escape(row.tooltip))</title>"
            svg += #"<text x="\#(fmt(labelWidth - 8))" y="\#(fmt(top + 16))" text-anchor="end">\#(HTMLText.escape(StatusFormat.shortened(row.label, to: 44)))</text>"#
            svg += #"<rect class="bar" x="\#(fmt(labelWidth))" y="\#(fmt(top + 3))" width="\#(fmt(length))" height="\#(fmt(rowHeight - 8))"/>"#
            svg += #"<text x="\#(fmt(labelWidth + length + 6))" y="\#(fmt(top + 16))">\#(StatusFormat.count(row.value))</text>"#
            svg += "</g>"
        }
        return svg + "</svg>"
    }

    /// The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1), so that the
    /// axis reads in round numbers.
    static func niceCeiling(_ value: Int) -> Int {
        guard value > 1 else { return 1 }
        var power = 1
        while true {
            for step in [1, 2, 5] where step * power >= value { return step * power }
            power *= 10
        }
    }

    private static func fmt(_ value: Double) -> String {
        String(format: "%.1f", value)
    }
}

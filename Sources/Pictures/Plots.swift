// The pictures mnist-dist draws: line charts (accuracy and loss per epoch, the smoothing example), grids of digits
// with their labels, grids of filters and feature maps, and a confusion matrix.
import Foundation

public enum Plots {
    /// One line of a chart.
    public struct Series {
        public var name: String
        public var color: Color
        public var points: [(x: Double, y: Double)]
        /// Draw a dot at every point (epochs) or only the line (dense curves).
        public var markers: Bool
        public init(name: String, color: Color, points: [(x: Double, y: Double)], markers: Bool = true) {
            self.name = name
            self.color = color
            self.points = points
            self.markers = markers
        }
    }

    /// Where a chart's legend goes (away from the curves: bottom right for rising ones).
    public enum LegendPlace: Sendable { case topRight, bottomRight }

    /// A line chart with axes, ticks, labels and a legend.
    /// - Parameter integerX: ticks on whole numbers only (epochs).
    public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series],
                                 yRange: ClosedRange<Double>? = nil, integerX: Bool = false, legend: LegendPlace = .topRight,
                                 width: Int = 800, height: Int = 500) -> Canvas {
        var canvas = Canvas(width: width, height: height)
        let (left, right, top, bottom) = (90, 30, 50, 70)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }, ys = series.flatMap { $0.points.map(\.y) }.filter(\.isFinite)
        var xMin = xs.min() ?? 0, xMax = xs.max() ?? 1
        if xMax == xMin { xMax = xMin + 1 }
        var (yMin, yMax) = yRange.map { ($0.lowerBound, $0.upperBound) } ?? (ys.min() ?? 0, ys.max() ?? 1)
        if yRange == nil {
            let pad = max((yMax - yMin) * 0.05, 1e-9)
            (yMin, yMax) = (yMin - pad, yMax + pad)
        }
        if yMax == yMin { yMax = yMin + 1 }
        let xTicks = niceTicks(xMin, xMax, count: 8, minimumStep: integerX ? 1 : 0), yTicks = niceTicks(yMin, yMax, count: 6)
        xMin = min(xMin, xTicks.first ?? xMin)
        xMax = max(xMax, xTicks.last ?? xMax)
        func px(_ x: Double) -> Int { left + Int(((x - xMin) / (xMax - xMin) * Double(plotWidth)).rounded()) }
        func py(_ y: Double) -> Int { top + plotHeight - Int(((y - yMin) / (yMax - yMin) * Double(plotHeight)).rounded()) }

        canvas.text(title, x: (width - Font.width(title, scale: 2)) / 2, y: 14, scale: 2)
        for tick in yTicks where tick >= yMin && tick <= yMax {
            canvas.line(left, py(tick), left + plotWidth, py(tick), .lightGray)
            let label = formatTick(tick, step: yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1)
            canvas.text(label, x: left - 8 - Font.width(label, scale: 2), y: py(tick) - 7, scale: 2)
        }
        for tick in xTicks where tick >= xMin && tick <= xMax {
            canvas.line(px(tick), top + plotHeight, px(tick), top + plotHeight + 5, .black)
            let label = formatTick(tick, step: xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1)
            canvas.text(label, x: px(tick) - Font.width(label, scale: 2) / 2, y: top + plotHeight + 10, scale: 2)
        }
        canvas.frame(x: left, y: top, width: plotWidth + 1, height: plotHeight + 1, .black)
        canvas.text(xLabel, x: left + (plotWidth - Font.width(xLabel, scale: 2)) / 2, y: height - 28, scale: 2)
        for (i, character) in yLabel.enumerated() {  // vertical, one character per line
            canvas.text(String(character), x: 8, y: top + (plotHeight - yLabel.count * 16) / 2 + 16 * i, scale: 2)
        }
        for entry in series {
            let points = entry.points.filter { $0.y.isFinite }
            for (a, b) in zip(points, points.dropFirst()) {
                canvas.line(px(a.x), py(a.y), px(b.x), py(b.y), entry.color, thickness: 2)
            }
            if entry.markers {
                for p in points { canvas.fill(x: px(p.x) - 3, y: py(p.y) - 3, width: 7, height: 7, entry.color) }
            }
        }
        // Legend, top right inside the plot.
        let legendWidth = (series.map { Font.width($0.name, scale: 2) }.max() ?? 0) + 40
        var legendY = legend == .topRight ? top + 10 : top + plotHeight - series.count * 22 - 4
        let legendX = left + plotWidth - legendWidth - 10
        if !series.isEmpty {
            canvas.fill(x: legendX - 6, y: legendY - 6, width: legendWidth + 12, height: series.count * 22 + 8, .white)
            canvas.frame(x: legendX - 6, y: legendY - 6, width: legendWidth + 12, height: series.count * 22 + 8, .gray)
        }
        for entry in series {
            canvas.fill(x: legendX, y: legendY + 5, width: 24, height: 4, entry.color)
            canvas.text(entry.name, x: legendX + 32, y: legendY, scale: 2)
            legendY += 22
        }
        return canvas
    }

    /// A grid of grayscale images (bytes 0...255, dark strokes on white) with a caption under each; a caption
    /// marked as a mistake is red and its image framed in red.
    public static func digitGrid(title: String, images: [[UInt8]], rows: Int, columns: Int,
                                 captions: [(text: String, mistake: Bool)], perRow: Int = 10, scale: Int = 3) -> Canvas {
        let cellWidth = max(columns * scale, 60) + 16, cellHeight = rows * scale + 34
        let gridRows = (images.count + perRow - 1) / perRow
        var canvas = Canvas(width: max(cellWidth * min(perRow, max(images.count, 1)) + 20, Font.width(title, scale: 2) + 20),
                            height: gridRows * cellHeight + 56)
        canvas.text(title, x: 10, y: 12, scale: 2)
        for (index, image) in images.enumerated() {
            let x = 10 + (index % perRow) * cellWidth + (cellWidth - columns * scale) / 2
            let y = 44 + (index / perRow) * cellHeight
            canvas.image(image.map { Double($0) / 255 }, width: columns, height: rows, x: x, y: y, scale: scale)
            let caption = captions[index]
            if caption.mistake { canvas.frame(x: x - 3, y: y - 3, width: columns * scale + 6, height: rows * scale + 6, .red, thickness: 2) }
            canvas.text(caption.text, x: 10 + (index % perRow) * cellWidth + (cellWidth - Font.width(caption.text, scale: 2)) / 2,
                        y: y + rows * scale + 8, scale: 2, caption.mistake ? .red : .black)
        }
        return canvas
    }

    /// A grid of maps (filters, feature maps), each scaled to its own largest magnitude and drawn blue (negative)
    /// to red (positive), or in gray for non-negative maps, with a label under each.
    public static func mapGrid(title: String, maps: [[Double]], width: Int, height: Int, labels: [String],
                               perRow: Int = 8, scale: Int = 6, signed: Bool = true) -> Canvas {
        let cellWidth = max(width * scale, Font.width(labels.map(\.count).max().map { String(repeating: "0", count: $0) } ?? "", scale: 2)) + 16
        let cellHeight = height * scale + 30
        let gridRows = (maps.count + perRow - 1) / perRow
        var canvas = Canvas(width: max(cellWidth * min(perRow, max(maps.count, 1)) + 20, Font.width(title, scale: 2) + 20),
                            height: gridRows * cellHeight + 56)
        canvas.text(title, x: 10, y: 12, scale: 2)
        for (index, map) in maps.enumerated() {
            let x = 10 + (index % perRow) * cellWidth + (cellWidth - width * scale) / 2
            let y = 44 + (index / perRow) * cellHeight
            let magnitude = max(map.map(abs).max() ?? 0, 1e-12)
            canvas.image(map, width: width, height: height, x: x, y: y, scale: scale,
                         color: signed ? { Color.diverging($0 / magnitude) } : { Color.gray(1 - max(0, $0) / magnitude) })
            canvas.frame(x: x - 1, y: y - 1, width: width * scale + 2, height: height * scale + 2, .gray)
            canvas.text(labels[index], x: 10 + (index % perRow) * cellWidth + (cellWidth - Font.width(labels[index], scale: 2)) / 2,
                        y: y + height * scale + 6, scale: 2)
        }
        return canvas
    }

    /// The confusion matrix: rows are true classes, columns predicted ones, cells shaded by their share of the row.
    public static func confusionMatrix(_ matrix: [[Int]], title: String) -> Canvas {
        let n = matrix.count, cell = 52, left = 80, top = 70
        var canvas = Canvas(width: max(left + n * cell + 30, Font.width(title, scale: 2) + 20), height: top + n * cell + 60)
        canvas.text(title, x: 10, y: 12, scale: 2)
        canvas.text("predicted", x: left + (n * cell - Font.width("predicted", scale: 2)) / 2, y: 36, scale: 2)
        for (i, character) in "true".enumerated() { canvas.text(String(character), x: 8, y: top + (n * cell) / 2 - 32 + 16 * i, scale: 2) }
        for row in 0..<n {
            let total = max(matrix[row].reduce(0, +), 1)
            canvas.text("\(row)", x: left - 22, y: top + row * cell + cell / 2 - 7, scale: 2)
            canvas.text("\(row)", x: left + row * cell + cell / 2 - 6, y: top + n * cell + 10, scale: 2)
            for column in 0..<n {
                let share = Double(matrix[row][column]) / Double(total)
                let shade = row == column ? Color(UInt8(255 - 180 * share), UInt8(255 - 80 * share), UInt8(255 - 180 * share))
                    : Color(255, UInt8(255 - 200 * min(1, share * 5)), UInt8(255 - 200 * min(1, share * 5)))
                canvas.fill(x: left + column * cell, y: top + row * cell, width: cell, height: cell, shade)
                canvas.frame(x: left + column * cell, y: top + row * cell, width: cell + 1, height: cell + 1, .lightGray)
                let label = "\(matrix[row][column])"
                canvas.text(label, x: left + column * cell + (cell - Font.width(label, scale: 1)) / 2, y: top + row * cell + cell / 2 - 4,
                            scale: 1)
            }
        }
        return canvas
    }

    /// About `count` round tick values covering lo...hi (steps of 1, 2 or 5 times a power of ten).
    static func niceTicks(_ lo: Double, _ hi: Double, count: Int, minimumStep: Double = 0) -> [Double] {
        let span = hi - lo
        guard span > 0, span.isFinite else { return [lo] }
        let raw = max(span / Double(max(count - 1, 1)), minimumStep)
        let power = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        var ticks: [Double] = []
        var tick = Foundation.ceil(lo / step) * step
        while tick <= hi + step * 1e-9 {
            ticks.append(abs(tick) < step * 1e-9 ? 0 : tick)
            tick += step
        }
        return ticks
    }

    static func formatTick(_ value: Double, step: Double) -> String {
        let decimals = max(0, Int(Foundation.ceil(-Foundation.log10(step))))
        return String(format: "%.\(decimals)f", value)
    }
}

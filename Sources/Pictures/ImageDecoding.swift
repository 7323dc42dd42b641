// PNG and JPEG decoding through Debian's libpng and libjpeg-turbo: the only file that talks to them.
//
// Why these two rather than stb_image (libstb-dev): they are the formats' reference decoders, maintained upstream
// and patched by Debian's security team, and they take every valid file: PNG of every colour type and bit depth,
// palettes with transparency, interlacing, gamma; JPEG baseline, progressive, CMYK. stb_image is a compact
// single-header alternative; for pictures users bring from anywhere we prefer the reference decoders. The two APIs
// used here (libpng's png_image, TurboJPEG) report errors by return value: no setjmp/longjmp crosses Swift code.
import CPNG
import CTurboJPEG
import Foundation

enum ImageDecoding {
    /// The largest side accepted: larger files are refused before their pixels are allocated.
    static let maximumSide = 16384

    /// A PNG as grey on white: alpha composited onto a white background (a transparent drawing is ink on paper).
    static func png(_ bytes: [UInt8]) throws(ImageError) -> GrayImage {
        var image = png_image()
        let begun = bytes.withUnsafeBytes { cpng_begin(&image, $0.baseAddress, $0.count) }
        defer { png_image_free(&image) }
        guard begun != 0 else { throw ImageError("is not a PNG libpng can read (\(message(of: &image)))") }
        let (width, height) = (Int(image.width), Int(image.height))
        try checkSize(width, height, "PNG")
        var grayAlpha = [UInt8](repeating: 0, count: 2 * width * height)
        guard grayAlpha.withUnsafeMutableBytes({ cpng_finish_gray_alpha(&image, $0.baseAddress) }) != 0 else {
            throw ImageError("is a damaged PNG (\(message(of: &image)))")
        }
        let pixels = (0..<(width * height)).map { i -> UInt8 in
            let (gray, alpha) = (Int(grayAlpha[2 * i]), Int(grayAlpha[2 * i + 1]))
            return UInt8((gray * alpha + 255 * (255 - alpha) + 127) / 255)
        }
        return GrayImage(width: width, height: height, pixels: pixels)
    }

    /// A JPEG as grey (libjpeg-turbo converts colour with the JPEG luminance weights).
    static func jpeg(_ bytes: [UInt8]) throws(ImageError) -> GrayImage {
        guard let handle = tjInitDecompress() else { throw ImageError("cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        var (width, height, subsampling, colorspace): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        let header = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0 else { throw ImageError("is a damaged JPEG (\(errorText(handle)))") }
        try checkSize(Int(width), Int(height), "JPEG")
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height))
        let status = bytes.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { output in
                tjDecompress2(handle, source.baseAddress, UInt(source.count), output.baseAddress, width, 0, height,
                              Int32(TJPF_GRAY.rawValue), 0)
            }
        }
        // A warning (a truncated but decodable file, say) still gives pixels; an error does not.
        guard status == 0 || tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) else {
            throw ImageError("is a damaged JPEG (\(errorText(handle)))")
        }
        return GrayImage(width: Int(width), height: Int(height), pixels: pixels)
    }

    private static func checkSize(_ width: Int, _ height: Int, _ format: String) throws(ImageError) {
        guard width > 0, height > 0 else { throw ImageError("is a damaged \(format) (its header gives no size)") }
        guard width <= maximumSide, height <= maximumSide else {
            throw ImageError("is a \(width)x\(height) \(format); the largest side taken is \(maximumSide) pixels")
        }
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    private static func errorText(_ handle: tjhandle) -> String {
        String(cString: tjGetErrorStr2(handle))
    }
}

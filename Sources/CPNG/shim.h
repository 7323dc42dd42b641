// CPNG: libpng's simplified read API (png_image), which reports errors in the structure instead of longjmp-ing
// out of the caller (the classic API's setjmp/longjmp cannot cross Swift frames). Two wrappers hide the macros.
#ifndef MNIST_DIST_CPNG_SHIM_H
#define MNIST_DIST_CPNG_SHIM_H
#include <png.h>
#include <string.h>

/// Reads the header of the PNG in `bytes`: 1 and the size on success, 0 with `image->message` set otherwise.
static inline int cpng_begin(png_imagep image, const void *bytes, size_t count) {
    memset(image, 0, sizeof *image);
    image->version = PNG_IMAGE_VERSION;
    return png_image_begin_read_from_memory(image, bytes, count);
}

/// Decodes the whole image as 8-bit grey + alpha (any colour type, bit depth, palette, transparency or interlacing;
/// colour becomes grey by libpng's sRGB-aware conversion) into `pixels` (2 * width * height bytes).
static inline int cpng_finish_gray_alpha(png_imagep image, void *pixels) {
    image->format = PNG_FORMAT_GA;
    return png_image_finish_read(image, NULL, pixels, 0, NULL);
}
#endif

// CZlib: zlib, plus static inline wrappers for the init functions zlib defines as macros (they pass
// ZLIB_VERSION and sizeof(z_stream), which Swift cannot do through the macro).
#ifndef MNIST_DIST_CZLIB_SHIM_H
#define MNIST_DIST_CZLIB_SHIM_H
#include <zlib.h>

static inline int czlib_inflate_init2(z_streamp stream, int window_bits) {
    return inflateInit2(stream, window_bits);
}
static inline int czlib_deflate_init(z_streamp stream, int level) {
    return deflateInit(stream, level);
}

#endif

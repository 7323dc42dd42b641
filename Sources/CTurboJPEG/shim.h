// CTurboJPEG: libjpeg-turbo's TurboJPEG API, which returns errors (no setjmp/longjmp through the caller).
#ifndef MNIST_DIST_CTURBOJPEG_SHIM_H
#define MNIST_DIST_CTURBOJPEG_SHIM_H
#include <turbojpeg.h>
#endif

// COpenBLAS: the CBLAS interface of OpenBLAS and its thread-control extensions.
#ifndef MNIST_DIST_COPENBLAS_SHIM_H
#define MNIST_DIST_COPENBLAS_SHIM_H
#include <cblas.h>

// Declared by OpenBLAS's cblas.h on most builds; repeated so the shim does not depend on that.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
char *openblas_get_config(void);

#endif

/* time_embedding.c — sinusoidal timestep embedding as lucidrains'
 * SinusoidalPosEmb: half = dim/2, f_i = exp(-ln(10000) i / (half - 1)),
 * out = [sin(t f), cos(t f)]. Computed in double (PyTorch does it in float32;
 * the difference is float rounding of the phase, < 1e-4 for t < 1000). */
#include <math.h>

#include "shape_ops.h"

ubd_status ubd_cpu_time_embedding(float *out, const float *t, int B, int dim) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE(dim >= 4 && dim % 2 == 0, UBD_ERR_VALUE,
                "%s: dim must be even and at least 4 (half - 1 divides), got %d", __func__, dim);
    UBD_REQUIRE_PTR(out);
    UBD_REQUIRE_PTR(t);
    const int half = dim / 2;
    const double k = log(10000.0) / (half - 1);
    for (int b = 0; b < B; b++) { /* tiny: B*dim values, no threads */
        float *y = out + (size_t)b * dim;
        for (int i = 0; i < half; i++) {
            const double ph = (double)t[b] * exp(-k * i);
            y[i] = (float)sin(ph);
            y[half + i] = (float)cos(ph);
        }
    }
    return UBD_OK;
}

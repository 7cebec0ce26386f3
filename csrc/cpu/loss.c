/* loss.c — mean L1 and mean squared error, sums accumulated in double so the
 * value does not depend on the thread count beyond float rounding. */
#include <math.h>

#include "ops.h"

static ubd_status check_loss(const char *who, const void *a, const void *b, const void *c, size_t n) {
    UBD_REQUIRE(n > 0, UBD_ERR_VALUE, "%s: empty input", who);
    UBD_REQUIRE(a && b && c, UBD_ERR_VALUE, "%s: NULL buffer", who);
    return UBD_OK;
}

ubd_status ubd_cpu_l1_forward(float *loss, const float *pred, const float *target, size_t n) {
    UBD_TRY(check_loss("l1_forward", loss, pred, target, n));
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) s += fabsf(pred[i] - target[i]);
    *loss = (float)(s / (double)n);
    return UBD_OK;
}

ubd_status ubd_cpu_l1_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    UBD_TRY(check_loss("l1_backward", dpred, pred, target, n));
    const float k = scale / (float)n;
    /* k * sign(d) with sign(NaN) = NaN (NumPy's sign; PyTorch's sign(NaN) is 0,
     * which would hide a NaN prediction from the gradient), sign(0) = 0, and a
     * product, so that a NaN scale reaches every element (k * 0 = NaN). */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float d = pred[i] - target[i];
        const float sign = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : (d == 0.0f ? 0.0f : NAN));
        dpred[i] += k * sign;
    }
    return UBD_OK;
}

ubd_status ubd_cpu_mse_forward(float *loss, const float *pred, const float *target, size_t n) {
    UBD_TRY(check_loss("mse_forward", loss, pred, target, n));
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        s += d * d;
    }
    *loss = (float)(s / (double)n);
    return UBD_OK;
}

ubd_status ubd_cpu_mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    UBD_TRY(check_loss("mse_backward", dpred, pred, target, n));
    const float k = 2.0f * scale / (float)n;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dpred[i] += k * (pred[i] - target[i]);
    return UBD_OK;
}

/* activations.c — elementwise activations (formulas in act_math.h). */
#include "act_math.h"
#include "ops.h"

#define UBD_PAR_THRESHOLD 32768

static ubd_status check_act(ubd_act act) {
    UBD_REQUIRE(act >= 0 && act < UBD_ACT_NUM, UBD_ERR_VALUE, "activation: unknown kind %d", (int)act);
    return UBD_OK;
}

ubd_status ubd_cpu_act_forward(float *out, const float *inp, size_t n, ubd_act act, float param) {
    UBD_TRY(check_act(act));
    UBD_REQUIRE((out && inp) || n == 0, UBD_ERR_VALUE, "act_forward: NULL buffer");
#pragma omp parallel for schedule(static) if (n > UBD_PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) out[i] = ubd_act_f(inp[i], act, param);
    return UBD_OK;
}

ubd_status ubd_cpu_act_backward(float *dinp, const float *dout, const float *inp, size_t n, ubd_act act,
                                float param) {
    UBD_TRY(check_act(act));
    UBD_REQUIRE((dinp && dout && inp) || n == 0, UBD_ERR_VALUE, "act_backward: NULL buffer");
#pragma omp parallel for schedule(static) if (n > UBD_PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * ubd_act_df(inp[i], act, param);
    return UBD_OK;
}

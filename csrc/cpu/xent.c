/* xent.c — softmax cross-entropy (xent.h). Rows are independent; the batch
 * sum is accumulated in double so the loss does not depend on the thread
 * count beyond float rounding. Probabilities are computed max-shifted, so
 * large logits do not overflow; the log-probability is taken from the
 * shifted logits (log-sum-exp), not log(prob), so it stays finite when a
 * probability underflows to 0. */
#include <math.h>

#include "xent.h"

static ubd_status check_labels(const char *who, const int *labels, int B, int K) {
    for (int b = 0; b < B; b++)
        UBD_REQUIRE(labels[b] >= 0 && labels[b] < K, UBD_ERR_VALUE, "%s: label %d of row %d is outside [0, %d)",
                    who, labels[b], b, K);
    return UBD_OK;
}

ubd_status ubd_cpu_xent_forward(float *loss, float *probs, int *correct, const float *logits, const int *labels,
                                int B, int K) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(K);
    UBD_REQUIRE_PTR(loss);
    UBD_REQUIRE_PTR(probs);
    UBD_REQUIRE_PTR(logits);
    UBD_REQUIRE_PTR(labels);
    UBD_TRY(check_labels("xent_forward", labels, B, K));
    double total = 0.0;
    int hits = 0;
#pragma omp parallel for reduction(+ : total, hits) schedule(static) if ((long long)B * K > 65536)
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (l[k] > l[arg]) arg = k;
        const float mx = l[arg];
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            p[k] = expf(l[k] - mx);
            s += p[k];
        }
        const float inv = (float)(1.0 / s);
        for (int k = 0; k < K; k++) p[k] *= inv;
        total += log(s) - (double)(l[labels[b]] - mx);
        hits += arg == labels[b];
    }
    *loss = (float)(total / B);
    if (correct) *correct = hits;
    return UBD_OK;
}

ubd_status ubd_cpu_xent_backward(float *dlogits, const float *probs, const int *labels, int B, int K, float scale) {
    UBD_REQUIRE_POSITIVE(B);
    UBD_REQUIRE_POSITIVE(K);
    UBD_REQUIRE_PTR(dlogits);
    UBD_REQUIRE_PTR(probs);
    UBD_REQUIRE_PTR(labels);
    UBD_TRY(check_labels("xent_backward", labels, B, K));
    const float k1 = scale / (float)B;
#pragma omp parallel for schedule(static) if ((long long)B * K > 65536)
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) d[k] += k1 * (p[k] - (k == labels[b] ? 1.0f : 0.0f));
    }
    return UBD_OK;
}

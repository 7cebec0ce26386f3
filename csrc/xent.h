/* xent.h — softmax cross-entropy over class logits (mean over the batch).
 *
 *   loss = -(1/B) sum_b log softmax(logits_b)[label_b]
 *
 * The forward saves the softmax probabilities, which is all backward needs:
 *   dlogits += scale * (probs - onehot(label)) / B.
 * Labels are int32 class indices in [0, K); an out-of-range label is a
 * UBD_ERR_VALUE (checked before any parallel work).
 */
#ifndef UBD_XENT_H
#define UBD_XENT_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* loss (1); probs (B, K) softmax of logits; logits (B, K); labels (B).
 * correct (1) or NULL: number of rows whose arg-max (first on ties) equals the label. */
ubd_status ubd_cpu_xent_forward(float *loss, float *probs, int *correct, const float *logits, const int *labels,
                                int B, int K);
/* dlogits (B, K) += scale * (probs - onehot(labels)) / B; probs (B, K) from the forward. */
ubd_status ubd_cpu_xent_backward(float *dlogits, const float *probs, const int *labels, int B, int K, float scale);

/* ---- CUDA twins (csrc/cuda/xent.cu); every pointer on the device (loss,
 * correct and labels included). The label check reads one int back, so each
 * call synchronises with the host once. ------------------------------------ */
#ifdef UBDIFF_WITH_CUDA
ubd_status ubd_cuda_xent_forward(float *loss, float *probs, int *correct, const float *logits, const int *labels,
                                 int B, int K);
ubd_status ubd_cuda_xent_backward(float *dlogits, const float *probs, const int *labels, int B, int K, float scale);
#endif

#ifdef __cplusplus
}
#endif
#endif

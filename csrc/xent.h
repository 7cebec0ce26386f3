/* xent.h — softmax cross-entropy over class logits (mean over the batch).
 * Prototypes and shapes in backend.h (included at the end).
 *
 *   loss = -(1/B) sum_b log softmax(logits_b)[label_b]
 *
 * xent_forward: loss (1); probs (B, K) the softmax of logits (B, K); labels
 *   (B); correct (1) or NULL: number of rows whose arg-max (first on ties)
 *   equals the label. The probabilities are all backward needs:
 * xent_backward: dlogits (B, K) += scale * (probs - onehot(labels)) / B.
 * Labels are int32 class indices in [0, K); an out-of-range label is a
 * UBD_ERR_VALUE (checked before any parallel work).
 * CUDA (cuda/xent.cu): every pointer on the device (loss, correct and labels
 * included); the label check reads one int back, so each call synchronises
 * with the host once.
 */
#ifndef UBD_XENT_H
#define UBD_XENT_H

#include "ubd.h"

#include "backend.h" /* the prototypes */
#endif

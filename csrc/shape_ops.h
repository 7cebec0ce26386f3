/* shape_ops.h — data-movement layers and small pieces: nearest upsampling,
 * border crop/pad, channel concatenation, sinusoidal time embedding, the
 * scale-shift modulation, bias/residual helpers. Gradients accumulate (+=).
 * Semantics here; prototypes and shapes in backend.h (included at the end).
 *
 * upsample1d/2d_forward: nearest-neighbour x2. 1-D: inp (B,C,L) -> out (B,C,2L);
 *   2-D: inp (B,C,H,W) -> out (B,C,2H,2W). Backward sums the copies.
 * crop2d_forward: crop (t,b,l,r >= 0 remove rows/columns) or zero-pad
 *   (negative values add them) the spatial borders: inp (B,C,H,W) ->
 *   out (B,C,H-t-b,W-l-r). OpenFWI's decoders crop 5 cells from every side.
 * concat_forward: channel concatenation of a (B,C1,S) and b (B,C2,S) ->
 *   out (B,C1+C2,S); backward splits dout into da, db (either may be NULL).
 * time_embedding: sinusoidal embedding of timesteps t (B) -> out (B, dim), dim
 *   even: half = dim/2, f_i = exp(-ln(10000) i / (half - 1)), out = [sin(t f), cos(t f)].
 * scale_shift_forward: modulation over (B, C, L): out = x * (1 + scale) + shift,
 *   with ss (B, 2C) = [scale (C), shift (C)] per sample (chunk order of the
 *   U-Net). Backward: dx (B,C,L) +=, dss (B,2C) +=.
 * axpy: y (n) += a * x (n) — residual adds and gradient routing.
 */
#ifndef UBD_SHAPE_OPS_H
#define UBD_SHAPE_OPS_H

#include "ubd.h"

#include "backend.h" /* the prototypes */
#endif
